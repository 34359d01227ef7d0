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
   (>= ~4 mm) survive; a larger radius would strip them too.
5. Connected components (26-connected, cc3d) of at least ``min_volume_mm3``
   (1500 mm3) are bone; smaller dense things (calcifications) are not. A
   *compact* component (elongation of its principal axes below
   ``compact_max_elongation``, 0.5) is bone only from ``compact_min_volume_mm3``
   (6000 mm3, a 22 mm ball) or when it touches the first or last slice: in the
   abdomen the small isolated bones are rib segments (long and thin), while a
   round dense blob of 1.5-6 mL is a renal calculus, a calcified node or a
   calcified aneurysm wall, which must reach the candidate stage. Bones cut by
   the field of view stay bone.
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
    bbox_of,
    dilate,
    erode,
    fill_holes_per_slice,
    label_per_slice,
)
from calcdetect.device import Device

__all__ = ["BoneSettings", "segment_bone"]


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

    def __post_init__(self) -> None:
        for name in ("close_mm", "open_mm", "min_volume_mm3", "compact_min_volume_mm3"):
            if getattr(self, name) < 0:
                raise ValueError(f"BoneSettings.{name} must be >= 0, got {getattr(self, name)}")


def segment_bone(
    array: np.ndarray,
    spacing: tuple[float, float, float],
    device: Device,
    settings: BoneSettings = BoneSettings(),
    *,
    exclude_mask: np.ndarray | None = None,
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
    if tdev is not None:
        import torch

        hu_t = torch.as_tensor(np.ascontiguousarray(sub_hu), device=tdev)
        dense = hu_t >= settings.bone_hu
        closed = erode(dilate(dense, spacing, close_mm), spacing, close_mm)
        closed_np = closed.cpu().numpy()
    else:
        dense = dense_np[bb]
        closed_np = erode(dilate(dense, spacing, close_mm), spacing, close_mm)
    # Hole filling needs connected components: CPU (cc3d) on both paths. Large
    # marrow holes are found in the closed mask (cortical rings with small gaps),
    # noise pits in the dense mask itself. The closing's own voxels are not bone,
    # so its bridges to a calcification 1 px off the bone do not fuse the two.
    dense_sub = dense_np[bb]
    # Marrow open to the field-of-view edge (a bone cut by the FOV) counts too,
    # up to border_hole_max_mm2 per region and slice (soft tissue there is
    # larger, and below the marrow HU anyway).
    border_px = int(settings.border_hole_max_mm2 / (spacing[1] * spacing[2]))
    holes_big = fill_holes_per_slice(closed_np, sub_hu, settings.marrow_min_hu,
                                     border_max_px=border_px) & ~closed_np
    holes_pits = _enclosed_pits(closed_np, closed_np | holes_big, dense_sub, sub_hu,
                                settings.marrow_min_hu)
    filled_np = dense_sub | holes_big | holes_pits
    if tdev is not None:
        filled = torch.as_tensor(filled_np, device=tdev)
        opened_np = dilate(erode(filled, spacing, settings.open_mm), spacing,
                           settings.open_mm).cpu().numpy()
    else:
        opened_np = dilate(erode(filled_np, spacing, settings.open_mm), spacing, settings.open_mm)
    opened_np &= filled_np  # an opening is anti-extensive; this only guards it
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
    big[0] = False
    doubtful = np.flatnonzero(big & (volume_mm3 < settings.compact_min_volume_mm3))
    if doubtful.size:
        compact = _compact_interior(lab, idx, ids, doubtful, spacing, settings.compact_max_elongation,
                                    touches_ends=(bb[0].start == 0, bb[0].stop == array.shape[0]))
        big[compact] = False
    keep = np.zeros(opened_np.shape, dtype=bool)
    keep.reshape(-1)[idx[big[ids]]] = True
    out[bb] = keep
    if exclude_mask is not None:
        out &= ~exclude_mask.astype(bool)
    return out


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
