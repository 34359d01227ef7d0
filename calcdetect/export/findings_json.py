"""findings.json and run.json: the versioned contract that scripts outside read.

Key names listed in ``FINDING_KEYS`` and the top-level keys stay stable across
versions; new keys may be added (readers must ignore unknown keys). Bump
``FINDINGS_SCHEMA`` on any breaking change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from calcdetect import __version__
from calcdetect.types import AcquisitionInfo, Finding, Radiograph, Report, Volume

__all__ = [
    "FINDINGS_SCHEMA",
    "RUN_SCHEMA",
    "FINDING_KEYS",
    "finding_to_dict",
    "volume_summary",
    "radiograph_summary",
    "findings_document",
]

FINDINGS_SCHEMA = "calcdetect-findings/1.0"
RUN_SCHEMA = "calcdetect-run/1.0"

FINDING_KEYS = (
    "id", "region", "side", "level", "kind", "morphology", "centroid_lps_mm",
    "volume_mm3", "agatston", "mass_mg", "peak_hu", "max_diameter_mm", "confidence",
)


def _r(value: float, ndigits: int = 2) -> float | None:
    value = float(value)
    return None if not math.isfinite(value) else round(value, ndigits)


def finding_to_dict(f: Finding) -> dict[str, Any]:
    les = f.lesion
    return {
        "id": f.id,
        "region": f.region,
        "side": f.side,
        "level": f.level,
        "kind": f.kind.value,
        "morphology": f.morphology.value,
        "centroid_lps_mm": [_r(v) for v in les.centroid_lps_mm],
        "volume_mm3": _r(les.volume_mm3),
        "agatston": _r(les.agatston),
        "mass_mg": _r(les.mass_mg, 3),
        "peak_hu": _r(les.peak_hu, 1),
        "max_diameter_mm": _r(les.max_diameter_mm),
        "confidence": _r(f.confidence, 3),
        # Extra keys (welcome by the contract, may grow):
        "segment": f.segment,
        "structure": f.structure,
        "mean_hu": _r(les.mean_hu, 1),
        "volume_pv_mm3": None if les.volume_pv_mm3 is None else _r(les.volume_pv_mm3),
        "voxel_count": int(les.voxel_count),
        "bbox_kji": [int(v) for v in les.bbox],
        "mask_label": int(les.label),
        "axes_mm": [_r(v) for v in les.axes_mm],
        "central_lucency": bool(les.central_lucency),
    }


def _info_dict(info: AcquisitionInfo) -> dict[str, Any]:
    return {
        "modality": info.modality,
        "kvp": info.kvp,
        "convolution_kernel": info.convolution_kernel,
        "slice_thickness_mm": info.slice_thickness_mm,
        "manufacturer": info.manufacturer,
        "manufacturer_model": info.manufacturer_model,
        "contrast_agent": info.contrast_agent,
        "contrast_route": info.contrast_route,
        "series_description": info.series_description,
        "body_part_examined": info.body_part_examined,
        "study_uid_hash": info.study_uid_hash,
        "series_uid_hash": info.series_uid_hash,
    }


def volume_summary(volume: Volume) -> dict[str, Any]:
    out = _info_dict(volume.info)
    out.update(
        {
            "shape": list(volume.shape),
            "shape_order": "slices x rows x columns",
            "spacing_mm": [_r(s, 4) for s in volume.spacing],
            "origin_lps_mm": [_r(v, 3) for v in volume.origin],
            "affine_kji_to_lps": [[_r(v, 6) for v in row] for row in volume.affine],
        }
    )
    return out


def radiograph_summary(radiograph: Radiograph) -> dict[str, Any]:
    out = _info_dict(radiograph.info)
    out.update(
        {
            "shape": list(radiograph.array.shape),
            "shape_order": "rows x columns",
            "pixel_spacing_mm": list(radiograph.pixel_spacing) if radiograph.pixel_spacing else None,
            "spacing_source": radiograph.spacing_source,
            "view": radiograph.view,
        }
    )
    return out


def findings_document(
    input_summary: dict[str, Any],
    findings: Sequence[Finding],
    report: Report | None,
    warnings: Iterable[str],
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble findings.json (see the module docstring for the contract)."""
    doc: dict[str, Any] = {
        "schema": FINDINGS_SCHEMA,
        "calcdetect_version": __version__,
        "input": input_summary,
        "warnings": list(dict.fromkeys(warnings)),  # de-duplicated, order kept
        "findings": [finding_to_dict(f) for f in findings],
        "report": (
            {"header": report.header, "findings": report.findings, "impression": report.impression,
             "notes": report.notes}
            if report
            else {"header": "", "findings": "", "impression": ""}
        ),
    }
    if extra:
        doc.update(extra)
    return doc
