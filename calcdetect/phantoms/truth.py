"""Ground truth of the synthetic phantoms: lesion records, levels, NIfTI and JSON output.

Truth layout (see STAGES.md): ``DIR/truth/truth.json`` (schema
``"calcdetect-truth/1"``), ``DIR/truth/lesions.nii.gz`` (lesion instance ids,
== ``truth.json`` ``lesions[].id``) and ``DIR/truth/anatomy.nii.gz`` (Structure
label ids from :mod:`calcdetect.anatomy.regions`). Both NIfTI files lie on the
DICOM grid exactly.

Level convention (``lesions[].level``): the vertebral bodies and disc spaces
(``"L2-L3"``) that the lesion's analytic z extent -- its geometry in mm, not
the voxels it touches -- overlaps by at least :data:`MIN_LEVEL_OVERLAP_MM`
(1 mm), summarised as a span (``"L2-L4"``); a lesion that reaches 1 mm in no
level gets the level holding its z centroid. Radiologists name the level where
a calcification lies; a plaque that enters a disc by a fraction of a
millimetre (invisible at 1.25-3 mm slices) is "L2", not "L2-L3". Body and disc
z ranges are ``anatomy.vertebrae`` (``z_top_mm`` / ``z_bottom_mm`` along each
body's axis); see :func:`level_span`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calcdetect.anatomy.regions import format_level_span
from calcdetect.export.atomic import atomic_write_json
from calcdetect.io.nifti import kji_lps_to_ras, write_nifti

__all__ = [
    "TRUTH_SCHEMA",
    "TruthLesion",
    "VertebraTruth",
    "nifti_affine_from_kji",
    "write_label_nifti",
    "MIN_LEVEL_OVERLAP_MM",
    "level_span",
    "write_truth_json",
]

TRUTH_SCHEMA = "calcdetect-truth/1"

# NIfTI world space is RAS; ours is LPS.


@dataclass(frozen=True)
class TruthLesion:
    """One synthetic calcification (or look-alike) with its exact measurements.

    ``bbox_kji`` is ``(k0, j0, i0, k1, j1, i1)`` half-open on the CT grid;
    ``bbox_mm`` is ``(x0, y0, z0, x1, y1, z1)`` LPS mm of the fine-model extent
    (the outermost inside sub-samples, within a sub-sample of the analytic
    shape). ``level`` follows the module's level convention. ``volume_mm3`` comes from the fine (supersampled) model; ``mass_mg``
    = volume x density / 1000. ``density_mg_cm3`` and ``mass_mg`` are ``None``
    for metal and iodinated contrast, which are not calcium.
    """

    id: int
    region: str
    kind: str
    side: str | None
    level: str | None
    segment: str | None
    volume_mm3: float
    density_mg_cm3: float | None
    mass_mg: float | None
    centroid_lps_mm: tuple[float, float, float]
    bbox_kji: tuple[int, int, int, int, int, int]
    bbox_mm: tuple[float, float, float, float, float, float]
    morphology: str | None = None
    pole: str | None = None
    structure: str | None = None
    diameter_mm: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["bbox"] = {"kji": list(self.bbox_kji), "mm": list(self.bbox_mm)}
        del d["bbox_kji"], d["bbox_mm"]
        return d


@dataclass(frozen=True)
class VertebraTruth:
    """z extent (LPS mm) of one vertebral body along its axis."""

    level: str
    z_top_mm: float
    z_bottom_mm: float


def nifti_affine_from_kji(affine_kji: np.ndarray) -> np.ndarray:
    """NIfTI affine (``(i, j, k) -> RAS``) for a ``(k, j, i) -> LPS`` affine (see calcdetect.io.nifti)."""
    affine_kji = np.asarray(affine_kji, dtype=np.float64)
    if affine_kji.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got {affine_kji.shape}")
    return kji_lps_to_ras(affine_kji)


def write_label_nifti(labels_kji: np.ndarray, affine_kji: np.ndarray, path: Path) -> Path:
    """Write an integer label volume ``[k, j, i]`` as NIfTI (atomically), via the io writer."""
    return write_nifti(labels_kji, affine_kji, path)


# A level is reported for a lesion only where the lesion lies in it by at least
# this much along z: readers name the level where the calcification lies, and a
# sub-millimetre overlap is not resolvable at 1.25-3 mm slices. A reporting
# convention, not a fit to the detector: do not tune it.
MIN_LEVEL_OVERLAP_MM = 1.0


def level_span(z0: float, z1: float, vertebrae: list[VertebraTruth], centroid_z: float | None = None,
               min_overlap_mm: float = MIN_LEVEL_OVERLAP_MM) -> str | None:
    """Vertebral level(s) of a lesion whose analytic z extent is ``[z0, z1]`` (LPS mm).

    The levels are the vertebral bodies and the disc spaces between adjacent
    bodies (``"L3-L4"``). A level is part of the span when the lesion overlaps
    it by at least ``min_overlap_mm`` along z. When no level reaches that (a
    lesion thinner than ``min_overlap_mm``, or one straddling a boundary), the
    span is the level holding ``centroid_z`` (default: the middle of
    ``[z0, z1]``). Several levels are summarised with
    :func:`calcdetect.anatomy.regions.format_level_span` (``"L2-L4"``). Just
    beyond the modelled spine the nearest body within 10 mm is given; further
    away (the pelvis below S1), ``None``.

    ``z0, z1`` must come from the lesion's geometry (its analytic shape), not
    from the voxels it touches, so the span does not depend on the slice grid.
    """
    if not vertebrae:
        return None
    lo, hi = min(z0, z1), max(z0, z1)
    centre = 0.5 * (lo + hi) if centroid_z is None else float(centroid_z)
    ordered = sorted(vertebrae, key=lambda v: -v.z_top_mm)  # cranial first
    zones = _level_zones(ordered)
    levels = [name for name, bottom, top in zones if min(hi, top) - max(lo, bottom) >= min_overlap_mm]
    if not levels:
        levels = [name for name, bottom, top in zones if bottom <= centre <= top][:1]
    if not levels:
        dist = lambda v: min(abs(centre - v.z_top_mm), abs(centre - v.z_bottom_mm))  # noqa: E731
        near = min(ordered, key=dist)
        return near.level if dist(near) <= 10.0 else None
    if len(levels) == 1:
        return levels[0]
    return format_level_span(levels)


def _level_zones(ordered: list[VertebraTruth]) -> list[tuple[str, float, float]]:
    """``(level, z_bottom, z_top)`` of each body and of each disc space between two
    adjacent bodies (``ordered`` cranial first)."""
    zones: list[tuple[str, float, float]] = []
    for n, v in enumerate(ordered):
        zones.append((v.level, v.z_bottom_mm, v.z_top_mm))
        if n + 1 < len(ordered):
            below = ordered[n + 1]
            if below.z_top_mm < v.z_bottom_mm:
                zones.append((f"{v.level}-{below.level}", below.z_top_mm, v.z_bottom_mm))
    return zones


def truth_slice_levels(vertebrae: list[dict[str, Any]], affine_kji: np.ndarray, nk: int) -> list[str | None]:
    """Per-slice level from a phantom's vertebra z ranges (``truth.json`` ``anatomy.vertebrae``):
    the body a slice cuts, ``"L3-L4"`` between two bodies, ``None`` elsewhere."""
    from calcdetect.anatomy.regions import VERTEBRA_LEVELS

    verts = sorted(vertebrae, key=lambda v: VERTEBRA_LEVELS.index(v["level"]))
    out: list[str | None] = []
    for k in range(nk):
        zk = float(affine_kji[2, 0] * k + affine_kji[2, 3])
        lv = None
        for v in verts:
            if v["z_bottom_mm"] <= zk <= v["z_top_mm"]:
                lv = v["level"]
        if lv is None:
            for up, lo in zip(verts, verts[1:]):
                if lo["z_top_mm"] < zk < up["z_bottom_mm"]:
                    lv = f"{up['level']}-{lo['level']}"
        out.append(lv)
    return out


def write_truth_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``truth.json`` atomically (adds the schema string)."""
    return atomic_write_json(path, {"schema": TRUTH_SCHEMA, **payload})
