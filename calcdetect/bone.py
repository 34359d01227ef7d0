"""Skeleton segmentation from HU alone, so that bone is not reported as calcification.

Recipe (all radii are balls in mm on the anisotropic grid)
----------------------------------------------------------
1. ``dense = HU >= bone_hu`` (130 HU, the calcium threshold: cortex and most
   cancellous bone; ``find_candidates`` passes the kVp / contrast-adapted
   calcium threshold, so contrast-filled vessels do not become "bone").
2. Closing (``close_mm``, 1 mm, at least one pixel) closes cortical rings broken
   by noise, only to find the marrow holes of step 3: the closing's own voxels
   are not bone, so its bridges through partial-volume tissue to a
   calcification one pixel off the bone do not fuse the two.
3. Per-slice hole filling (of the closed mask for marrow inside cortical rings,
   of the dense mask for noise pits), only of holes whose mean HU is at least
   ``marrow_min_hu`` (60 HU): marrow, also osteoporotic marrow below the
   threshold, is filled; the spinal canal (CSF ~ 0-20 HU) and fat are not, so
   ligamentum-flavum calcification in the canal stays outside bone. Marrow of a
   bone cut by the field of view (open to the image border) is filled when the
   region is at most ``border_hole_max_mm2`` (25 cm2) in the slice.
4. Opening (``open_mm``, 1.5 mm) strips what is thinner than ~3 mm from bone:
   an aortic plaque or a calcified ligament fused to the bone by the threshold is
   cut off here and so keeps its identity as a candidate. Laminae and ribs
   (>= ~4 mm) survive; a larger radius would strip them too. On the slices
   whose ball reaches past the first / last slice the opening is in-plane: a
   bone tip entering the scan for a slice or two is thin along z only because
   the scan cuts it.
5. Connected components (26-connected, cc3d) of at least ``min_volume_mm3``
   (1500 mm3) are bone; smaller dense things (calcifications) are not. A
   *compact* component (elongation of its principal axes below
   ``compact_max_elongation``, 0.5) is bone only from ``compact_min_volume_mm3``
   (6000 mm3, a 22 mm ball) or when it touches the first or last slice: in the
   abdomen the small isolated bones are rib segments (long and thin), while a
   round dense blob of 1.5-6 mL is a renal calculus, a calcified node or a
   calcified aneurysm wall, which must reach the candidate stage. Bones cut by
   the field of view stay bone: a component is bone whatever its volume when
   its cross-section on the first or last slice is at least
   ``cut_min_area_mm2`` (40 mm2; the tips of vertebral processes cut there
   measure 50-110 mm2, calcifications that thick rarely this much).
6. Voxels of ``exclude_mask`` (e.g. the contrast-filled aortic lumen, which hole
   filling would otherwise take for marrow inside a calcified ring) are removed.

The candidate stage then excludes bone dilated by a cortical margin (1 mm, at
least one pixel: the cortex's partial-volume halo), so a plaque touching bone
loses only its contact layer and survives; see :mod:`calcdetect.candidates`.

Known limitations (shape and HU cannot do better; the anatomy can):

* A calcification fused to the bone and broad or thick enough to hold the
  opening ball (a plaque lying flat on the cortex, a nodule in a concave corner
  of the lamina) becomes bone. ``find_candidates(..., protect_mask=...)`` with
  the aortic / iliac wall or the ligamentum-flavum zone from the anatomy stage
  keeps such calcifications.
* Calcified ligamentum flavum fused to a lamina becomes bone here; with the
  anatomy's ligamentum-flavum zone, :func:`release_ligament_calcification`
  takes it back on interlaminar slices (where soft tissue, the ligament, lines
  the canal's back wall between the lumen and the laminae, or where soft
  tissue lies 4-6 mm behind the back wall, however dense the wall: the
  ligament calcified along it, with no lamina behind).
* A calculus larger than ``compact_min_volume_mm3``, or a branched one larger
  than ``min_volume_mm3`` (a staghorn), is taken for bone.
* A small compact bone away from the skeleton (an ossicle, the coccyx tip
  separated by the opening) becomes a candidate; the classifier names it.
* Thin bony tips stripped by the opening (spinous processes, osteophytes,
  endplate rims) can appear as small candidates next to the bone;
  ``Candidates.bone_adjacent`` lists them for the classifier.
* Hole filling is per axial slice: marrow that is open to soft tissue in a slice
  (a cortex gap wider than the closing) stays out of the mask there. A soft-tissue
  region of >= 60 HU mean (liver, muscle at the high end of normal) boxed in by
  bone and the image border would be filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cc3d
import numpy as np

from calcdetect.candidates._voxel import (
    ball_footprint,
    bbox_of,
    dilate,
    distance_in_plane,
    erode,
    fill_holes_per_slice,
    label_per_slice,
)
from calcdetect.device import Device
from calcdetect.workers import resolve_workers, thread_map

__all__ = ["BoneSettings", "release_ligament_calcification", "segment_bone"]


@dataclass(frozen=True)
class BoneSettings:
    """Parameters of :func:`segment_bone` (see the module docstring)."""

    bone_hu: float = 130.0
    close_mm: float = 1.0
    open_mm: float = 1.5
    marrow_min_hu: float = 60.0
    min_volume_mm3: float = 1500.0
    compact_min_volume_mm3: float = 6000.0
    compact_max_elongation: float = 0.5
    border_hole_max_mm2: float = 2500.0
    cut_min_area_mm2: float = 40.0

    def __post_init__(self) -> None:
        for name in ("close_mm", "open_mm", "min_volume_mm3", "compact_min_volume_mm3", "cut_min_area_mm2"):
            if getattr(self, name) < 0:
                raise ValueError(f"BoneSettings.{name} must be >= 0, got {getattr(self, name)}")


def segment_bone(
    array: np.ndarray,
    spacing: tuple[float, float, float],
    device: Device,
    settings: BoneSettings = BoneSettings(),
    *,
    exclude_mask: np.ndarray | None = None,
    workers: int | None = None,
    _torch_device: Any = None,
) -> np.ndarray:
    """Segment the skeleton (cortex plus marrow) of a CT volume.

    Parameters
    ----------
    array : numpy.ndarray
        HU volume ``[k, j, i]``.
    spacing : tuple of float
        ``(sk, sj, si)`` mm.
    device : Device
        ``cpu`` runs scipy morphology; ``cuda`` runs the morphology in torch.
    settings : BoneSettings
    exclude_mask : numpy.ndarray, optional
        Voxels that are never bone (e.g. the aortic lumen).
    workers : int or None
        CPU threads (slabs of slices; the mask does not depend on it); ``None``
        uses every available CPU (:mod:`calcdetect.workers`).
    _torch_device : torch.device, optional
        Force the torch implementation on this device (used by the parity tests
        on CPU); normally derived from ``device``.

    Returns
    -------
    numpy.ndarray
        Boolean bone mask on the input grid.

    Examples
    --------
    >>> from calcdetect.device import Device
    >>> vol = np.zeros((20, 40, 40), np.float32)
    >>> vol[2:18, 5:35, 5:35] = 700.0
    >>> bool(segment_bone(vol, (1.0, 1.0, 1.0), Device("cpu"))[10, 20, 20])
    True
    """
    settings = settings if settings is not None else BoneSettings()
    tdev = _torch_device if _torch_device is not None else (
        _torch_dev(device) if device.is_cuda else None)
    out = np.zeros(array.shape, dtype=bool)
    dense_np = array >= settings.bone_hu
    # Everything happens inside the bounding box of dense voxels, grown by the
    # closing radius; this is what keeps the morphology affordable on CPU.
    # The closing is at least one pixel in-plane: at coarse pixels (> close_mm) a
    # cortical ring broken by one noisy pixel must still close.
    close_mm = max(settings.close_mm, float(spacing[1]), float(spacing[2]))
    pad = tuple(int(np.ceil(close_mm / s)) + 1 for s in spacing)
    bb = bbox_of(dense_np, pad)  # type: ignore[arg-type]
    if bb is None:
        return out
    sub_hu = array[bb]
    border_px = int(settings.border_hole_max_mm2 / (spacing[1] * spacing[2]))
    if tdev is not None:
        opened_np = _opened_bone(sub_hu, dense_np[bb], spacing, settings, close_mm, border_px, tdev)
    else:
        opened_np = _opened_bone_in_slabs(sub_hu, dense_np[bb], spacing, settings, close_mm, border_px,
                                          resolve_workers(workers))
    ends = (bb[0].start == 0, bb[0].stop == array.shape[0])
    _open_cut_slices_in_plane(opened_np, sub_hu, dense_np[bb], spacing, settings, close_mm, border_px, ends)
    lab, n = cc3d.connected_components(opened_np, connectivity=26, return_N=True)
    if n == 0:
        return out
    # Work on the (sparse) bone voxels only: a bincount or gather over the whole
    # crop costs more than everything else here.
    idx = np.flatnonzero(opened_np)
    ids = lab.reshape(-1)[idx]
    counts = np.bincount(ids, minlength=n + 1)
    volume_mm3 = counts * float(np.prod(spacing))
    big = volume_mm3 >= settings.min_volume_mm3
    # A bone cut by the first / last slice may show only its tip inside the
    # volume (a spinous or articular process, a rib): its cross-section on the
    # cut slice, not its visible volume, says it is bone. A calcification cut
    # there has survived the opening only if >= ~3 mm thick, and is rarely
    # this broad.
    big |= _cut_area_mm2(lab, n, ends, spacing) >= settings.cut_min_area_mm2
    big[0] = False
    doubtful = np.flatnonzero(big & (volume_mm3 < settings.compact_min_volume_mm3))
    if doubtful.size:
        compact = _compact_interior(lab, idx, ids, doubtful, spacing, settings.compact_max_elongation,
                                    touches_ends=ends)
        big[compact] = False
    # The bone is the opened mask less its small components (a few voxels):
    # copied whole and edited there, not rebuilt voxel by voxel.
    out[bb] = opened_np
    dropped = idx[~big[ids]]
    out[bb][np.unravel_index(dropped, opened_np.shape)] = False
    if exclude_mask is not None:
        out &= ~exclude_mask.astype(bool)
    return out


def _opened_bone(sub_hu: np.ndarray, dense_sub: np.ndarray, spacing: tuple[float, float, float],
                 settings: BoneSettings, close_mm: float, border_px: int, tdev: Any) -> np.ndarray:
    """Steps 2-4 of the recipe (closing, hole filling, opening) on a block of slices."""
    if tdev is not None:
        import torch

        hu_t = torch.as_tensor(np.ascontiguousarray(sub_hu), device=tdev)
        dense = hu_t >= settings.bone_hu
        closed = erode(dilate(dense, spacing, close_mm), spacing, close_mm)
        closed_np = closed.cpu().numpy()
    else:
        closed_np = erode(dilate(dense_sub, spacing, close_mm), spacing, close_mm)
    filled_np = _filled_from_closed(closed_np, sub_hu, dense_sub, settings, border_px)
    if tdev is not None:
        filled = torch.as_tensor(filled_np, device=tdev)
        opened_np = dilate(erode(filled, spacing, settings.open_mm), spacing,
                           settings.open_mm).cpu().numpy()
    else:
        opened_np = dilate(erode(filled_np, spacing, settings.open_mm), spacing, settings.open_mm)
    opened_np &= filled_np  # an opening is anti-extensive; this only guards it
    return opened_np


def _filled_bone(sub_hu: np.ndarray, dense_sub: np.ndarray, spacing: tuple[float, float, float],
                 settings: BoneSettings, close_mm: float, border_px: int) -> np.ndarray:
    """Steps 1-3 of the recipe (dense voxels and their filled marrow) on a block of slices (CPU)."""
    closed = erode(dilate(dense_sub, spacing, close_mm), spacing, close_mm)
    return _filled_from_closed(closed, sub_hu, dense_sub, settings, border_px)


def _filled_from_closed(closed_np: np.ndarray, sub_hu: np.ndarray, dense_sub: np.ndarray,
                        settings: BoneSettings, border_px: int) -> np.ndarray:
    """Step 3: the dense voxels plus the marrow holes and pits of the closed mask."""
    # Hole filling needs connected components: CPU (cc3d) on both paths. Large
    # marrow holes are found in the closed mask (cortical rings with small gaps),
    # noise pits in the dense mask itself. The closing's own voxels are not bone,
    # so its bridges to a calcification 1 px off the bone do not fuse the two.
    # Marrow open to the field-of-view edge (a bone cut by the FOV) counts too,
    # up to border_hole_max_mm2 per region and slice (soft tissue there is
    # larger, and below the marrow HU anyway).
    holes_big = fill_holes_per_slice(closed_np, sub_hu, settings.marrow_min_hu,
                                     border_max_px=border_px) & ~closed_np
    holes_pits = _enclosed_pits(closed_np, closed_np | holes_big, dense_sub, sub_hu,
                                settings.marrow_min_hu)
    return dense_sub | holes_big | holes_pits


def _opened_bone_in_slabs(sub_hu: np.ndarray, dense_sub: np.ndarray, spacing: tuple[float, float, float],
                          settings: BoneSettings, close_mm: float, border_px: int,
                          workers: int) -> np.ndarray:
    """:func:`_opened_bone` on ``workers`` slabs of slices at once (threads), exactly.

    Every step is per slice or a ball morphology, so a voxel depends only on the
    slices within the closing's and the opening's reach (each applied twice);
    a slab computed with that many extra slices on each side is exact in its
    core, whatever the number of slabs.
    """
    nk = sub_hu.shape[0]
    reach = 2 * (_half_extent_k(spacing, close_mm) + _half_extent_k(spacing, settings.open_mm)) + 1
    n_slabs = min(workers, max(1, nk // (4 * reach)))  # a thin slab is mostly halo
    if n_slabs <= 1:
        return _opened_bone(sub_hu, dense_sub, spacing, settings, close_mm, border_px, None)
    edges = np.linspace(0, nk, n_slabs + 1).round().astype(int)
    out = np.empty(dense_sub.shape, dtype=bool)

    def one_slab(s: int) -> None:
        k0, k1 = int(edges[s]), int(edges[s + 1])
        lo, hi = max(0, k0 - reach), min(nk, k1 + reach)
        part = _opened_bone(sub_hu[lo:hi], dense_sub[lo:hi], spacing, settings, close_mm, border_px, None)
        out[k0:k1] = part[k0 - lo:k1 - lo]

    thread_map(one_slab, range(n_slabs), n_slabs)
    return out


def _open_cut_slices_in_plane(opened: np.ndarray, sub_hu: np.ndarray, dense_sub: np.ndarray,
                              spacing: tuple[float, float, float], settings: BoneSettings, close_mm: float,
                              border_px: int, ends: tuple[bool, bool]) -> None:
    """Add to ``opened`` (in place) the in-plane opening of the filled bone on the
    slices whose opening ball reaches past the volume's first / last slice.

    What lies beyond the scan is unknown: a bone whose tip enters the volume for
    a slice or two (a process of the vertebra above) is thin along z only
    because the scan cuts it, and the 3-D opening would strip it, leaving it to
    be reported as a calcification. On those slices thickness is judged in-plane.
    """
    reach_k = _half_extent_k(spacing, settings.open_mm)
    if reach_k == 0:
        return  # the ball is flat: the 3-D opening is already in-plane
    nk = sub_hu.shape[0]
    # Enough slices below the cut ones that the closing and hole filling there
    # are as on the whole volume.
    block = min(nk, reach_k + 2 * _half_extent_k(spacing, close_mm) + 1)
    flat = (1e6, spacing[1], spacing[2])  # a ball that never reaches another slice
    for at_end, sl, cut in ((ends[0], slice(0, block), slice(0, reach_k)),
                            (ends[1], slice(nk - block, nk), slice(max(0, block - reach_k), block))):
        if not at_end:
            continue
        filled = _filled_bone(sub_hu[sl], dense_sub[sl], spacing, settings, close_mm, border_px)[cut]
        in_plane = dilate(erode(filled, flat, settings.open_mm), flat, settings.open_mm) & filled
        opened[sl][cut] |= in_plane


def _cut_area_mm2(lab: np.ndarray, n: int, ends: tuple[bool, bool],
                  spacing: tuple[float, float, float]) -> np.ndarray:
    """Per label, its largest area (mm2) on the volume's first or last slice
    (0 for labels that do not reach them, or when the crop is not at the end)."""
    area = np.zeros(n + 1, dtype=np.float64)
    for at_end, k in ((ends[0], 0), (ends[1], lab.shape[0] - 1)):
        if at_end:
            area = np.maximum(area, np.bincount(lab[k].reshape(-1), minlength=n + 1)[: n + 1]
                              * float(spacing[1] * spacing[2]))
    area[0] = 0.0
    return area


def _half_extent_k(spacing: tuple[float, float, float], radius_mm: float) -> int:
    """Slices a ball of ``radius_mm`` reaches on each side (as ``ball_footprint``)."""
    return int(ball_footprint(spacing, radius_mm).shape[0]) // 2


def _compact_interior(lab: np.ndarray, idx: np.ndarray, ids: np.ndarray, candidates: np.ndarray,
                      spacing: tuple[float, float, float], max_elongation: float,
                      touches_ends: tuple[bool, bool]) -> np.ndarray:
    """Labels among ``candidates`` that are round (elongation below ``max_elongation``)
    and do not reach the first / last slice of the volume (a bone cut by the FOV)."""
    sel = np.isin(ids, candidates)
    kji = np.column_stack(np.unravel_index(idx[sel], lab.shape))
    sub_ids = ids[sel]
    out = []
    for c in candidates:
        pts = kji[sub_ids == c]
        if (touches_ends[0] and pts[:, 0].min() == 0) or (touches_ends[1] and pts[:, 0].max() == lab.shape[0] - 1):
            continue
        xyz = pts * np.asarray(spacing, dtype=np.float64)
        ev = np.sort(np.linalg.eigvalsh(np.cov(xyz.T)))[::-1]
        l1, l2 = np.sqrt(np.maximum(ev[:2], 0.0))
        if l1 > 0 and 1.0 - l2 / l1 < max_elongation:
            out.append(int(c))
    return np.asarray(out, dtype=np.int64)


def _enclosed_pits(closed: np.ndarray, inside: np.ndarray, dense: np.ndarray, hu: np.ndarray,
                   min_mean_hu: float) -> np.ndarray:
    """Voxels the closing added that are enclosed by bone in their slice.

    Computed on the (sparse) added voxels ``closed & ~dense``: a 4-connected
    in-plane group of them is a pit when no member has an in-plane neighbour
    outside ``inside`` (the closed mask with its filled marrow holes) or outside
    the array, and its mean HU is marrow-like. Groups that reach soft tissue are
    the closing's bridges and are left out.
    """
    added = closed & ~dense
    out = np.zeros_like(added)
    idx = np.flatnonzero(added)
    if idx.size == 0:
        return out
    lab, n = label_per_slice(added, connectivity=4)
    ids = lab.reshape(-1)[idx].astype(np.int64)
    k, j, i = np.unravel_index(idx, added.shape)
    leaks = np.zeros(n + 1, dtype=bool)
    for axis, coord in ((1, j), (2, i)):
        for d in (-1, 1):
            moved = coord + d
            ok = (moved >= 0) & (moved < added.shape[axis])
            nb = (k, np.where(ok, moved, 0), i) if axis == 1 else (k, j, np.where(ok, moved, 0))
            leaks[ids[~ok | ~inside[nb]]] = True
    mean = np.bincount(ids, weights=hu[k, j, i].astype(np.float64), minlength=n + 1)
    mean /= np.maximum(np.bincount(ids, minlength=n + 1), 1)
    good = ~leaks & (mean >= min_mean_hu)
    out.reshape(-1)[idx[good[ids]]] = True
    return out


def _torch_dev(device: Device) -> Any:
    import torch

    return torch.device(device.torch)


# --------------------------------------------------------------------------- ligamentum flavum

# CSF, epidural fat and the cord stay below this (after a light 3-D
# smoothing); the ligamentum flavum (~60 HU), bone and calcium do not.
LUMEN_MAX_HU = 30.0
LUMEN_SMOOTH_MM = (1.0, 0.7)  # Gaussian sigma along z and in-plane
# Calcified ligament released from the bone mask lies within this distance of
# the canal lumen: ossification grows from the ligament's canal side; the
# laminar cortex behind an intact ligament starts ~3.5 mm out.
LIGAMENT_RELEASE_MM = 2.7
# The shell outside the lumen where soft tissue (the ligament) must be seen on
# an interlaminar slice; on a laminar slice the lamina is there. It starts one
# pixel out: the lumen's first ring is partial volume whatever lies beyond.
LIGAMENT_SHELL_MM = (1.0, 2.5)
# Fraction of that shell that must be soft tissue: a calcified ligament covers
# at most about a third of the posterior wall on each side.
INTERLAMINAR_MIN_SOFT_FRACTION = 0.3
# A calcified ligament on both sides can line the whole posterior wall (seed
# 2111, 3 mm slices: a 10 mm pair on T11-T12 left 0-26 % of the shell soft on
# every slice and stayed bone, missed). What tells it from a lamina is what lies
# behind it: ligament calcium is at most ~3.5 mm thick (the ligament), a lamina
# is dense from the canal wall to well beyond that. A slice whose posterior
# arc is mostly soft tissue in this band behind the back wall (the shell on the
# arc) is interlaminar however dense its shell.
LIGAMENT_BEHIND_MM = (4.0, 6.0)
INTERLAMINAR_MIN_SOFT_BEHIND_FRACTION = 0.5
# ... provided the back wall is seen: at least this fraction of the shell lies
# on the posterior arc. Where the zone's shell is mostly at the canal's sides
# (the facet pillars, at the zone's ends on 0.625 mm phantoms 1800, 1803), the
# tissue behind the arc says nothing about what the shell holds.
BACK_WALL_MIN_SHELL_FRACTION = 1.0 / 3.0
INTERLAMINAR_Z_MARGIN_MM = 1.0
# A slice next to a laminar one whose shell is at least this soft is kept
# interlaminar despite the z margin: a lamina's partial-volume edge lines most
# of the posterior wall, a ligament calcification on one side a fifth of it.
# On phantom seeds 1421, 1428, 1433 (issue #4) ligament calcifications of
# 3.9-4.9 mm lay on such slices (80-83 % soft; at 3 mm slices the whole lesion
# is one slice) and stayed bone: missed. ``None`` erodes every edge slice.
INTERLAMINAR_CLEAR_SOFT_FRACTION: float | None = 0.75
# On such an edge slice a voxel is released only this far above the calcium
# threshold: the lamina's partial volume there is faint (seed 1529:
# ~20 HU above; released, it dragged a true calcification's mean HU under the
# faint-cluster rule), the calcifications above were not (10th percentile of
# their voxels 150-270 HU above).
EDGE_SLICE_MIN_EXCESS_HU = 100.0
# Calcium in the same place that the bone mask did not swallow is marked too, so
# the candidate stage judges it by the released reach, not by the 3 mm one
# meant for lamina edges: calcium lying against a lamina ~3.5 mm out cannot
# reach 3 mm from it. Seed 1556 (a 3.2 mm calcification 1-2 mm off
# the lumen, not in the bone mask) was dropped so (issue #4). Only voxels at
# least UNFUSED_MIN_OFF_BONE_MM from the bone (in-plane) count: the lamina's
# partial-volume halo, one pixel deep, is not calcium (where the bone mask
# missed it, it lined the whole posterior wall as one "calcification").
RELEASE_UNFUSED_LIGAMENT_CALCIUM = True
UNFUSED_MIN_OFF_BONE_MM = 1.2  # beyond one pixel's diagonal at 0.94 mm pixels
# The back half of an adult canal is >= ~80 mm2 (T10, 16 x 14 mm); a smaller
# "lumen" means the zone sits on a foramen or recess, not on the canal.
CANAL_MIN_HALF_AREA_MM2 = 40.0
# Released calcium lies within this angle of the posterior midline, seen from
# the canal centre: the laminae; the facet pillars lie further round.
LIGAMENT_MAX_ANGLE_DEG = 60.0


def release_ligament_calcification(
    bone: np.ndarray,
    hu: np.ndarray,
    zone: np.ndarray,
    spacing: tuple[float, float, float],
    threshold_hu: float,
) -> np.ndarray:
    """Bone voxels that are calcified ligamentum flavum, not lamina.

    Calcification of the ligament lies on the lamina and fuses with it at the
    calcium threshold, so :func:`segment_bone` takes it for bone. The anatomy
    separates the two: on an *interlaminar* slice (where the posterior canal
    wall is the ligament, a band of soft tissue between the lumen and the
    laminae, or a wall of any density with soft tissue 4-6 mm behind it: the
    ligament calcified along it) dense voxels within ``LIGAMENT_RELEASE_MM``
    of the lumen are the ligament's calcium; on a *laminar* slice the lamina
    itself forms the wall and nothing is released.

    Parameters
    ----------
    bone : numpy.ndarray
        Boolean bone mask ``[k, j, i]``.
    hu : numpy.ndarray
        The CT in HU, same grid.
    zone : numpy.ndarray
        The ligamentum-flavum zone from the anatomy stage (a coarse band on the
        posterior canal wall); only voxels in it are released.
    spacing : tuple of float
        ``(sk, sj, si)`` mm.
    threshold_hu : float
        The calcium threshold in use.

    Returns
    -------
    numpy.ndarray
        Boolean mask of the ligament's calcium (a subset of ``zone``): the bone
        voxels to release and, with ``RELEASE_UNFUSED_LIGAMENT_CALCIUM``, the
        same calcium outside ``bone``.
    """
    out = np.zeros(bone.shape, dtype=bool)
    _, sj, si = spacing
    # The box reaches past the band behind the wall (the zone is a band on it).
    pad_j, pad_i = (int(np.ceil(LIGAMENT_BEHIND_MM[1] / s)) + 1 for s in (sj, si))
    bb = bbox_of(zone, (0, pad_j, pad_i))  # type: ignore[arg-type]
    if bb is None:
        return out
    from scipy import ndimage as ndi

    z_sub, b_sub = zone[bb], bone[bb]
    hu_sub = np.asarray(hu[bb], dtype=np.float32)
    # Smoothed in 3-D: at 40 HU of noise the ligament (~60 HU) must not pass for
    # CSF (~10 HU) on single pixels; both run for centimetres along z.
    smooth = ndi.gaussian_filter(hu_sub, (LUMEN_SMOOTH_MM[0] / spacing[0], LUMEN_SMOOTH_MM[1] / sj,
                                          LUMEN_SMOOTH_MM[1] / si))
    # Everything below is per slice, done for all slices at once: in-plane
    # structuring elements and a distance transform that never looks along z.
    lumen = _canal_lumen(z_sub, smooth)
    canal_known = lumen.sum(axis=(1, 2)) * sj * si >= CANAL_MIN_HALF_AREA_MM2
    # (a smaller "lumen" means the zone sits on a foramen or recess, not the canal)
    lumen &= canal_known[:, None, None]
    if not lumen.any():
        return out
    dist = distance_in_plane(lumen, max(LIGAMENT_SHELL_MM[1], LIGAMENT_RELEASE_MM, LIGAMENT_BEHIND_MM[1]), sj, si)
    dense = hu_sub >= threshold_hu
    shell = z_sub & (dist > LIGAMENT_SHELL_MM[0]) & (dist <= LIGAMENT_SHELL_MM[1])
    n_shell = shell.sum(axis=(1, 2))
    n_soft = (shell & ~dense).sum(axis=(1, 2))
    arc = _posterior_arc(lumen, sj, si)
    # On a laminar slice the dense wall in the shell is the lamina itself, unless
    # soft tissue lies right behind it: then it is the ligament, calcified.
    interlaminar = canal_known & (n_shell > 0) & (
        (n_soft >= INTERLAMINAR_MIN_SOFT_FRACTION * n_shell) | _soft_behind_back_wall(shell, arc, dist, dense))
    # The slices next to a laminar one hold its partial volume (the lamina's edge
    # along z sits within the release distance): only the core of each
    # interlaminar run counts.
    # At least one slice: at 2-3 mm the slice at a lamina's edge averages it
    # with the soft tissue above and passed for interlaminar on a real chest CT.
    margin = max(int(np.ceil(INTERLAMINAR_Z_MARGIN_MM / spacing[0])), 1)
    core = ndi.binary_erosion(interlaminar, iterations=margin, border_value=1)
    edge = np.zeros_like(core)
    if INTERLAMINAR_CLEAR_SOFT_FRACTION is not None:
        edge = interlaminar & ~core & (n_soft >= INTERLAMINAR_CLEAR_SOFT_FRACTION * n_shell)
    near_wall = z_sub & dense & (dist <= LIGAMENT_RELEASE_MM) & (core | edge)[:, None, None]
    # On an edge slice only calcium well above the threshold is released, not
    # the lamina's faint partial volume there.
    near_wall[edge] &= hu_sub[edge] >= threshold_hu + EDGE_SLICE_MIN_EXCESS_HU
    if RELEASE_UNFUSED_LIGAMENT_CALCIUM:
        # bone on the slices that hold candidates only: the distance is per slice
        on_slices = b_sub & near_wall.any(axis=(1, 2))[:, None, None]
        off_bone = distance_in_plane(on_slices, UNFUSED_MIN_OFF_BONE_MM, sj, si) >= UNFUSED_MIN_OFF_BONE_MM
        near_wall &= b_sub | off_bone
    else:
        near_wall &= b_sub
    if not near_wall.any():
        return out
    seeds = near_wall & arc
    # A calcification centred on the lamina reaches round towards the pillars:
    # it is released whole, not cut at the arc's edge.
    out[bb] = ndi.binary_propagation(seeds, structure=_PLANE8, mask=near_wall)
    return out


def _soft_behind_back_wall(shell: np.ndarray, arc: np.ndarray, dist: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """Per slice, whether soft tissue lies behind the canal's back wall, where a
    lamina would be dense: the wall is ligament, calcified or not, not a lamina
    (see ``LIGAMENT_BEHIND_MM``).

    ``shell``: the zone's shell round the lumen; ``arc``: :func:`_posterior_arc`;
    ``dist``: in-plane distance (mm) from the lumen, exact at least to the
    band's outer edge; ``dense``: calcium-dense voxels.
    """
    def count(mask: np.ndarray) -> np.ndarray:
        return mask.sum(axis=(1, 2))

    n_back = count(shell & arc)
    seen = (n_back > 0) & (n_back >= BACK_WALL_MIN_SHELL_FRACTION * count(shell))
    # The wall itself may be dense or partly soft: what is behind it decides.
    # (Requiring it dense as a lamina, < 30 % soft, left slices of a calcified
    # pair with a third of the back wall soft laminar between interlaminar ones;
    # at 0.625 mm the z margin then ate the short runs: phantom 2185, a 9-10 mm
    # pair at T10-T11 with nothing but soft tissue behind it, stayed bone.)
    band = arc & (dist > LIGAMENT_BEHIND_MM[0]) & (dist <= LIGAMENT_BEHIND_MM[1])
    n_band = count(band)
    soft_behind = (n_band > 0) & (count(band & ~dense) >= INTERLAMINAR_MIN_SOFT_BEHIND_FRACTION * n_band)
    return seen & soft_behind


_PLANE4 = np.zeros((3, 3, 3), dtype=bool)
_PLANE4[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
_PLANE8 = np.zeros((3, 3, 3), dtype=bool)
_PLANE8[1] = True


def _posterior_arc(lumen: np.ndarray, sj: float, si: float) -> np.ndarray:
    """Pixels within ``LIGAMENT_MAX_ANGLE_DEG`` of the posterior midline, seen from
    the canal's centre on their slice: the laminae, not the facet pillars that
    close the canal posterolaterally (without this limit their canal-side cortex
    was released on interlaminar slices, in left/right pairs).

    The centre is taken on the lumen's widest rows: the canal is widest at its
    centre, and those rows stay put when the zone (and so the lumen's hull)
    strays forward. Slices without lumen get no arc.
    """
    nk, nj, ni = lumen.shape
    cols = np.arange(ni)
    # Row extents, not pixel counts: the cord is no gap in the canal.
    first = np.where(lumen, cols, ni).min(axis=2)
    width = np.maximum(np.where(lumen, cols, -1).max(axis=2) - first + 1, 0)  # (k, j)
    widest = (width >= 0.9 * width.max(axis=1, keepdims=True)) & (width > 0)
    n_rows = np.maximum(widest.sum(axis=1), 1)
    jc = (widest * np.arange(nj)).sum(axis=1) / n_rows
    on_rows = lumen & widest[:, :, None]
    ic = (on_rows * cols).sum(axis=(1, 2)) / np.maximum(on_rows.sum(axis=(1, 2)), 1)
    dj = np.maximum(np.arange(nj)[None, :, None] - jc[:, None, None], 0.0) * sj
    di = np.abs(cols[None, None, :] - ic[:, None, None]) * si
    return (np.degrees(np.arctan2(di, dj)) <= LIGAMENT_MAX_ANGLE_DEG) & widest.any(axis=1)[:, None, None]


def _canal_lumen(zone: np.ndarray, smooth_hu: np.ndarray) -> np.ndarray:
    """The canal lumen next to a (posterior, U-shaped) ligament zone, per slice.

    Filling each row between the zone's outermost pixels closes the U across
    the canal (a row-wise hull: a convex hull per slice cost seconds per scan);
    the lumen is the low-density region inside it that reaches outside the
    zone (the canal side), so fat behind the ligament is not taken.
    """
    from scipy import ndimage as ndi

    hull = np.maximum.accumulate(zone, axis=2) & np.maximum.accumulate(zone[:, :, ::-1], axis=2)[:, :, ::-1]
    # The opening cuts the one-pixel bridges that noise opens through the
    # ligament to the fat behind it.
    low = ndi.binary_opening(hull & (smooth_hu < LUMEN_MAX_HU), structure=_PLANE4)
    lab, _ = ndi.label(low, structure=_PLANE4)  # labels never join across slices
    canal_side = np.unique(lab[low & ~zone])
    canal_side = canal_side[canal_side > 0]
    return np.isin(lab, canal_side)
