"""Load a CR / DX / DR radiograph into a :class:`~calcdetect.types.Radiograph`.

Decisions
---------
* Values: the Modality LUT (Rescale Slope / Intercept or a Modality LUT
  Sequence) is applied and kept for analysis; the VOI LUT / window is *not*
  applied, because it is a display choice that clips the dense end where
  calcium lives. Consumers window for display themselves.
* MONOCHROME1 images are inverted over the stored bit range so that dense is
  bright, like MONOCHROME2.
* Pixel spacing, in order of preference: Pixel Spacing (calibrated to the
  patient plane when present), Imager Pixel Spacing divided by Estimated
  Radiographic Magnification Factor, Imager Pixel Spacing at the detector (with a
  warning: distances read 10-20 % large), else ``None`` (with a warning). Zero or
  negative spacings count as absent.
* View: View Position ``LL`` / ``RL`` / ``LAT`` / ``LATERAL`` -> lateral, ``AP``,
  ``PA``; otherwise Patient Orientation whose row direction is A or P -> lateral;
  otherwise ``unknown``.
"""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

from calcdetect.errors import DecodeError, UnsupportedSeriesError
from calcdetect.io.decode import (
    DEFAULT_MEMORY_BUDGET,
    _ensure_transfer_syntax,
    check_decoder,
    check_memory_budget,
    lenient_reading,
)
from calcdetect.io.dicom import acquisition_info
from calcdetect.io.discovery import SeriesGroup, group_headers
from calcdetect.types import Radiograph

__all__ = ["load_radiograph", "radiograph_view"]

_LATERAL = {"LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "LLO", "RLO"}


def _spacing(ds: pydicom.Dataset) -> tuple[tuple[float, float] | None, str | None, list[str]]:
    def pair(attr: str) -> tuple[float, float] | None:
        try:
            value = ds.get(attr)
            if value is None or len(value) != 2:
                return None
            out = (float(value[0]), float(value[1]))
        except (TypeError, ValueError):
            return None
        return out if out and min(out) > 0 and all(np.isfinite(out)) else None

    pixel, imager = pair("PixelSpacing"), pair("ImagerPixelSpacing")
    if pixel is not None:
        return pixel, "PixelSpacing", []
    if imager is not None:
        try:
            factor = float(ds.get("EstimatedRadiographicMagnificationFactor") or 0)
        except (TypeError, ValueError):
            factor = 0.0
        if factor > 0:
            corrected = (imager[0] / factor, imager[1] / factor)
            return corrected, "EstimatedRadiographicMagnificationFactor", []
        return imager, "ImagerPixelSpacing", [
            "pixel spacing is Imager Pixel Spacing at the detector, not corrected for "
            "magnification: sizes may read 10-20 % large"
        ]
    return None, None, ["no usable pixel spacing in the header: sizes cannot be given in mm"]


def radiograph_view(ds: pydicom.Dataset) -> str:
    """``"lateral" | "AP" | "PA" | "unknown"`` from View Position / Patient Orientation."""
    view = str(ds.get("ViewPosition") or "").strip().upper()
    if view in _LATERAL:
        return "lateral"
    if view in ("AP", "PA"):
        return view
    orientation = ds.get("PatientOrientation")
    if orientation is not None and len(orientation) >= 1:
        first = str(orientation[0]).strip().upper()[:1]
        if first in ("A", "P"):
            return "lateral"
    for item in ds.get("ViewCodeSequence") or []:
        if "LATERAL" in str(item.get("CodeMeaning", "")).upper():
            return "lateral"
    return "unknown"


def load_radiograph(
    group: SeriesGroup, *, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET
) -> Radiograph:
    """Decode a radiograph group (one image) into a :class:`Radiograph`.

    Parameters
    ----------
    group : SeriesGroup
        From :func:`calcdetect.io.discover` with ``kind == "radiograph"``.
    memory_budget_bytes : int
        Refuse before decoding when the image would need more memory.

    Raises
    ------
    UnsupportedSeriesError, MemoryBudgetError, DecoderMissingError, DecodeError
    """
    if group.kind != "radiograph":
        raise UnsupportedSeriesError(
            f"series {group.key} is a {group.kind.replace('_', ' ')}, not a radiograph "
            "(CR / DX / DR); use load_ct for CT volumes"
        )
    header = group_headers(group)[0]
    check_memory_budget(
        1, header.rows, header.columns, header.samples, header.bits_allocated, memory_budget_bytes
    )
    check_decoder(header.transfer_syntax)
    warnings: list[str] = []
    try:
        with lenient_reading():
            ds = pydicom.dcmread(header.path, force=True)
            _ensure_transfer_syntax(ds)
            raw = pydicom.pixels.pixel_array(ds, index=0) if header.frames > 1 else ds.pixel_array
            values = np.asarray(apply_modality_lut(raw, ds), dtype=np.float32)
            photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").upper()
            if photometric == "MONOCHROME1":
                bits = int(ds.get("BitsStored") or header.bits_allocated)
                signed = int(ds.get("PixelRepresentation") or 0) == 1
                if signed:
                    lo_raw, hi_raw = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
                else:
                    lo_raw, hi_raw = 0, 2**bits - 1
                bounds = apply_modality_lut(np.array([lo_raw, hi_raw]), ds).astype(np.float32)
                values = np.float32(bounds.max() + bounds.min()) - values
            spacing, source, spacing_warnings = _spacing(ds)
            view = radiograph_view(ds)
    except Exception as exc:  # corrupt streams surface as several pydicom / plugin errors
        detail = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise DecodeError(
            f"could not decode radiograph {group.key}: {type(exc).__name__}: {detail}; the "
            "file may be corrupt; re-export it"
        ) from exc
    if header.frames > 1:
        warnings.append(f"multi-frame radiograph: frame 1 of {header.frames} used")
    warnings.extend(spacing_warnings)
    if values.ndim != 2:
        raise UnsupportedSeriesError(
            f"radiograph {group.key} decoded to shape {values.shape}; 2-D greyscale expected"
        )
    return Radiograph(
        array=np.ascontiguousarray(values),
        pixel_spacing=spacing,
        info=acquisition_info(header.path, group.modality or "DX"),
        view=view,  # type: ignore[arg-type]
        spacing_source=source,
        warnings=tuple(warnings),
    )
