"""Writers for calcdetect's outputs (JSON, text, NIfTI masks, overlays)."""
