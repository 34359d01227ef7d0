"""Core data types that flow between the pipeline stages.

Frozen dataclasses, numpy only (no torch import here), so that every stage can be
used and tested on its own. See ``DESIGN.md`` for the data flow.

Geometry conventions (shared by every stage)
--------------------------------------------
* ``Volume.array`` is float32 in Hounsfield units, indexed ``[k, j, i]`` =
  ``[slice, row, column]``.
* Canonical orientation after loading (flips and axis swaps only, never
  resampling): ``i`` increases to the patient's Left, ``j`` to Posterior, ``k`` to
  Superior, i.e. DICOM LPS.
* ``spacing`` is given **in array-axis order** ``(sk, sj, si)`` in mm.
* ``affine`` maps homogeneous array indices ``(k, j, i, 1)`` to patient
  coordinates ``(x, y, z, 1)`` in LPS mm. For a pure axial scan it is a diagonal
  permutation; residual obliquity stays in the affine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from collections.abc import Sequence
from functools import cached_property
from typing import Literal

import numpy as np

from calcdetect.workers import thread_map

__all__ = [
    "AcquisitionInfo",
    "Volume",
    "Radiograph",
    "AnatomyMap",
    "Lesion",
    "Finding",
    "Kind",
    "Morphology",
    "Side",
    "Report",
    "label_runs",
]

Side = Literal["left", "right"]


@dataclass(frozen=True)
class AcquisitionInfo:
    """Acquisition facts that change how calcium is measured or reported.

    Identifiers are stored only as salted SHA-256 hashes (see ``calcdetect.ids``);
    no patient name, ID, birth date or accession number is ever kept.
    """

    modality: str
    kvp: float | None = None
    convolution_kernel: str | None = None
    slice_thickness_mm: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    manufacturer: str | None = None
    manufacturer_model: str | None = None
    contrast_agent: str | None = None
    contrast_route: str | None = None
    series_description: str | None = None
    body_part_examined: str | None = None
    study_uid_hash: str | None = None
    series_uid_hash: str | None = None
    frame_of_reference_hash: str | None = None


@dataclass(frozen=True)
class Volume:
    """A CT volume in HU on its canonical LPS grid (see module docstring)."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    info: AcquisitionInfo
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume.array must be 3-D [k, j, i], got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"Volume.affine must be 4x4, got {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS mm of voxel ``[0, 0, 0]``."""
        return tuple(float(v) for v in self.affine[:3, 3])  # type: ignore[return-value]

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    def crop(self, box: tuple[slice, slice, slice]) -> Volume:
        """The volume inside ``box`` (a view, not a copy), its affine moved to the box's first voxel."""
        shift = np.eye(4)
        shift[:3, 3] = [sl.start or 0 for sl in box]
        return Volume(self.array[box], self.spacing, self.affine @ shift, self.info, self.warnings)

    def index_to_lps(self, kji: np.ndarray) -> np.ndarray:
        """Map ``(..., 3)`` array indices ``(k, j, i)`` to LPS mm."""
        kji = np.asarray(kji, dtype=np.float64)
        return kji @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Map ``(..., 3)`` LPS mm to fractional array indices ``(k, j, i)``."""
        inv = np.linalg.inv(self.affine)
        xyz = np.asarray(xyz, dtype=np.float64)
        return xyz @ inv[:3, :3].T + inv[:3, 3]


@dataclass(frozen=True)
class Radiograph:
    """A projection radiograph, photometric interpretation applied: bright = dense.

    ``pixel_spacing`` is ``(row, column)`` mm at the detector or, when a
    magnification factor is known, corrected to the patient plane;
    ``spacing_source`` says which (``"ImagerPixelSpacing"``, ``"PixelSpacing"``,
    ``"EstimatedRadiographicMagnificationFactor"``, ``"user"`` or ``None``).
    """

    array: np.ndarray
    pixel_spacing: tuple[float, float] | None
    info: AcquisitionInfo
    view: Literal["lateral", "AP", "PA", "unknown"] = "unknown"
    spacing_source: str | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.array.ndim != 2:
            raise ValueError(f"Radiograph.array must be 2-D [row, column], got {self.array.shape}")


@dataclass(frozen=True)
class AnatomyMap:
    """Anatomy labels on a grid, plus the vertebral level of every slice.

    ``labels`` is an integer label volume ``[k, j, i]`` whose values are
    ``Structure`` label ids from ``calcdetect.anatomy.regions`` (0 = background).
    ``affine`` maps its indices to LPS mm exactly like ``Volume.affine`` (it may be a
    coarser grid than the CT). ``slice_levels[k]`` is the vertebral level at slice
    ``k`` of *this* grid (e.g. ``"L3"`` or ``"L3-L4"`` for a disc) or ``None``.
    ``source`` records where each structure came from (``"rules"``, ``"cnn"``,
    ``"totalsegmentator"``); ``notes`` carry caveats for the report (e.g.
    transitional anatomy).
    """

    labels: np.ndarray
    affine: np.ndarray
    slice_levels: tuple[str | None, ...]
    source: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.labels.ndim != 3:
            raise ValueError(f"AnatomyMap.labels must be 3-D, got {self.labels.shape}")
        if len(self.slice_levels) != self.labels.shape[0]:
            raise ValueError(
                f"AnatomyMap.slice_levels has {len(self.slice_levels)} entries for "
                f"{self.labels.shape[0]} slices"
            )

    @cached_property
    def structure_boxes(self) -> dict[int, tuple[slice, slice, slice]]:
        """Bounding box of every label present (label id -> ``[k, j, i]`` slices).

        One pass over the map, cached: later questions about a structure read
        only its box, not the whole (CT-sized) map.
        """
        from scipy import ndimage  # scipy only where a map is queried

        boxes = ndimage.find_objects(self.labels)
        return {lab: bb for lab, bb in enumerate(boxes, start=1) if bb is not None}

    @cached_property
    def slice_label_counts(self) -> np.ndarray:
        """Voxel count of every label in every slice, ``[k, label]`` (int64)."""
        boxes = self.structure_boxes
        out = np.zeros((self.labels.shape[0], max(boxes, default=0) + 1), dtype=np.int64)
        # A few slices at a time: the body's box is the whole map, and one
        # comparison over it made a CT-sized (~100 MB) temporary.
        step = 8
        for lab, bb in boxes.items():
            for k0 in range(bb[0].start, bb[0].stop, step):
                k1 = min(k0 + step, bb[0].stop)
                out[k0:k1, lab] = np.count_nonzero(self.labels[k0:k1, bb[1], bb[2]] == lab, axis=(1, 2))
        return out

    @property
    def knows_structure_boxes(self) -> bool:
        """Whether :attr:`structure_boxes` is already known (no whole-map pass to ask it)."""
        return "structure_boxes" in self.__dict__

    def know_summaries(self, structure_boxes: dict[int, tuple[slice, slice, slice]],
                       slice_label_counts: np.ndarray) -> None:
        """Record :attr:`structure_boxes` and :attr:`slice_label_counts` worked out
        elsewhere (e.g. on the coarse grid this map was upsampled from), so that
        they are not recomputed by whole-map passes. They must equal what the
        properties would compute; the counts must be ``[slices, max label + 1]``.
        """
        if slice_label_counts.shape[0] != self.labels.shape[0]:
            raise ValueError(f"slice_label_counts has {slice_label_counts.shape[0]} slices for a map of "
                             f"{self.labels.shape[0]}")
        # cached_property keeps its value in the instance __dict__ (also on a frozen dataclass)
        self.__dict__["structure_boxes"] = structure_boxes
        self.__dict__["slice_label_counts"] = slice_label_counts

    def mask_of(self, label_ids: Sequence[int]) -> np.ndarray | None:
        """Boolean union of ``label_ids`` on this grid, or ``None`` if none is present.

        Only the union of their boxes is read (a CT-sized map holds 10^8 voxels).
        """
        boxes = [self.structure_boxes[lab] for lab in label_ids if lab in self.structure_boxes]
        if not boxes:
            return None
        bb = tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))
        wanted = np.zeros(max(self.structure_boxes) + 1, dtype=bool)
        wanted[[lab for lab in label_ids if lab in self.structure_boxes]] = True
        mask = np.zeros(self.labels.shape, dtype=bool)
        mask[bb] = wanted[self.labels[bb]]
        return mask

    def masks_of(self, groups: Sequence[Sequence[int]], workers: int = 1) -> list[np.ndarray | None]:
        """:meth:`mask_of` of each group of label ids, in one pass over the map.

        ``mask_of`` first finds every structure's box, a 0.4 s pass over a
        CT-sized map. Here label ranges are compared slab by slab (~0.03 s per
        range over the map, on ``workers`` threads) and each mask is written only
        in the row band its labels occupy in a slab: untouched pages of the
        calloc'd masks cost no memory.
        """
        runs = [label_runs(ids) for ids in groups]
        masks = [np.zeros(self.labels.shape, dtype=bool) for _ in groups]

        def slab(k0: int) -> list[bool]:
            part = self.labels[k0 : k0 + _MASK_SLAB]
            found = []
            for mask, rr in zip(masks, runs):
                hit = _in_label_runs(part, rr)
                # max over uint8 is a vectorised reduction; any() over axes is not
                rows = np.flatnonzero(hit.view(np.uint8).max(axis=2).max(axis=0))
                if rows.size:
                    r0, r1 = int(rows[0]), int(rows[-1]) + 1
                    mask[k0 : k0 + part.shape[0], r0:r1] = hit[:, r0:r1]
                found.append(bool(rows.size))
            return found

        # Slabs write disjoint parts of the masks: the result does not depend on workers.
        per_slab = thread_map(slab, range(0, self.labels.shape[0], _MASK_SLAB), workers)
        return [m if any(f[g] for f in per_slab) else None for g, m in enumerate(masks)]


_MASK_SLAB = 16  # slices per step of AnatomyMap.masks_of


def label_runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted label ids as inclusive runs of consecutive ids: ``[40, 41, 42, 50]`` -> ``[(40, 42), (50, 50)]``."""
    out: list[tuple[int, int]] = []
    for lab in sorted(set(ids)):
        if out and lab == out[-1][1] + 1:
            out[-1] = (out[-1][0], lab)
        else:
            out.append((lab, lab))
    return out


def _in_label_runs(labels: np.ndarray, runs: list[tuple[int, int]]) -> np.ndarray:
    """Where ``labels`` lies in any of the inclusive ``runs``."""
    out: np.ndarray | None = None
    for lo, hi in runs:
        if lo == hi:
            hit = labels == lo
        else:
            hit = labels >= lo
            hit &= labels <= hi
        out = hit if out is None else np.logical_or(out, hit, out=out)
    return out if out is not None else np.zeros(labels.shape, dtype=bool)


class Kind(str, enum.Enum):
    """What a calcification (or look-alike) is."""

    ATHEROSCLEROTIC = "atherosclerotic"
    STONE = "stone"
    URETERAL_STONE = "ureteral_stone"
    NEPHROCALCINOSIS = "nephrocalcinosis"
    LIGAMENT = "ligament"
    PHLEBOLITH = "phlebolith"
    COSTAL_CARTILAGE = "costal_cartilage"
    LYMPH_NODE = "lymph_node"
    BOWEL = "bowel"
    METAL = "metal"
    BONE = "bone"
    CONTRAST = "contrast"
    UNKNOWN = "unknown"


class Morphology(str, enum.Enum):
    PUNCTATE = "punctate"
    LINEAR = "linear"
    CURVILINEAR = "curvilinear"
    PLAQUE = "plaque"
    RING = "ring"


@dataclass(frozen=True)
class Lesion:
    """One connected component of calcium-dense voxels, with its measurements.

    ``bbox`` is ``(k0, j0, i0, k1, j1, i1)`` (half-open) on the Volume grid and
    ``mask`` the boolean component inside that box. Agatston follows the
    conventional per-slice definition (see ``calcdetect.candidates``).
    """

    label: int
    bbox: tuple[int, int, int, int, int, int]
    mask: np.ndarray
    voxel_count: int
    volume_mm3: float
    agatston: float
    mass_mg: float
    peak_hu: float
    mean_hu: float
    centroid_lps_mm: tuple[float, float, float]
    centroid_kji: tuple[float, float, float]
    max_diameter_mm: float
    # Shape descriptors: principal-axis lengths (mm, descending), elongation
    # (1 - l2/l1), flatness (1 - l3/l2), and the fraction of the bounding sphere
    # that the component fills; used for morphology and look-alike rules.
    axes_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    elongation: float = 0.0
    flatness: float = 0.0
    central_lucency: bool = False
    # Partial-volume-corrected volume (integrated HU excess / peak excess); the
    # threshold volume above is the conventional volume score.
    volume_pv_mm3: float | None = None
    # Volume of its voxels that the candidate stage took back from the bone mask
    # as ligamentum flavum calcium on an interlaminar slice
    # (calcdetect.bone.release_ligament_calcification); 0 elsewhere. Classification
    # trusts a small ligament calcification with such a released core.
    released_ligament_mm3: float = 0.0


@dataclass(frozen=True)
class Finding:
    """A Lesion placed and named: where it is and what it is."""

    id: str
    lesion: Lesion
    region: str  # a Region value from calcdetect.anatomy.regions
    side: Side | None
    level: str | None
    kind: Kind
    morphology: Morphology
    confidence: float
    segment: str | None = None  # e.g. "infrarenal", "common", "lower pole", "medullary"
    structure: str | None = None  # the anatomy Structure name it was attributed to


@dataclass(frozen=True)
class Report:
    """A draft radiology report: always marked as a computer-generated draft."""

    header: str
    findings: str
    impression: str
    # Caveats for the reader (level counting, field of view, contrast): kept out
    # of the report's wording so that the draft reads as a radiologist writes.
    notes: str = ""

    def text(self) -> str:
        body = f"{self.header}\n\nFINDINGS:\n{self.findings}\n\nIMPRESSION:\n{self.impression}\n"
        if self.notes:
            body += f"\nNOTES (calcdetect, for the reader; not part of the report):\n{self.notes}\n"
        return body
