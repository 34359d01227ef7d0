"""Skeleton segmentation from HU alone, so that bone is not reported as calcification.

Recipe (all radii are balls in mm on the anisotropic grid)
----------------------------------------------------------
1. ``dense = HU >= bone_hu`` (200 HU: cortex and most cancellous bone).
2. Closing (``close_mm``, 1 mm) joins cortex broken by noise or thin cortex,
   only to find the holes of step 3; the closing's own bridge voxels are not
   bone, so a plaque 1 mm off the bone never fuses with it.
3. Per-slice hole filling of the closed mask, but only of holes whose mean HU is
   at least ``marrow_min_hu`` (60 HU): the marrow of vertebral bodies and ribs is
   filled (also osteoporotic marrow between the calcium and the bone threshold),
   the spinal canal (CSF ~ 0-20 HU) and fat are not, so ligamentum-flavum
   calcification on the canal's wall stays outside bone. ``filled = dense | holes``.
4. Opening (``open_mm``, 1.5 mm) strips what is thinner than ~3 mm from bone:
   an aortic plaque or a calcified ligament fused to the bone by the threshold is
   cut off here and so keeps its identity as a candidate. Laminae and ribs
   (>= ~4 mm) survive; a larger radius would strip them too.
5. Connected components (26-connected, cc3d) of at least ``min_volume_mm3``
   (1500 mm3) are bone; smaller dense things (calcifications) are not.
6. Voxels of ``exclude_mask`` (e.g. the contrast-filled aortic lumen, which hole
   filling would otherwise take for marrow inside a calcified ring) are removed.

The candidate stage then excludes bone dilated by a ~1 mm cortical margin
(partial volume of the cortex), so a plaque touching bone loses only its ~1 mm
contact layer and survives; see :mod:`calcdetect.candidates`.

Known limitations: calcifications thicker than ~3 mm (at 0.8 mm pixels: 3 voxels) *and* fused to bone are
absorbed into it (bulky osteophyte-like plaque); a calculus larger than
``min_volume_mm3`` and thicker than the opening (a large staghorn) is taken for
bone; thin bony tips (spinous processes, osteophytes) stripped by the opening can
appear as candidates next to the bone (``Candidates.bone_adjacent`` lists them
for the classifier). An external skeleton mask (e.g. TotalSegmentator) can be
passed to ``find_candidates`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cc3d
import numpy as np

from calcdetect.candidates._voxel import bbox_of, dilate, erode, fill_holes_per_slice
from calcdetect.device import Device

__all__ = ["BoneSettings", "segment_bone"]


@dataclass(frozen=True)
class BoneSettings:
    """Parameters of :func:`segment_bone` (see the module docstring)."""

    bone_hu: float = 200.0
    close_mm: float = 1.0
    open_mm: float = 1.5
    marrow_min_hu: float = 60.0
    min_volume_mm3: float = 1500.0

    def __post_init__(self) -> None:
        for name in ("close_mm", "open_mm", "min_volume_mm3"):
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
    pad = tuple(int(np.ceil(settings.close_mm / s)) + 1 for s in spacing)
    bb = bbox_of(dense_np, pad)  # type: ignore[arg-type]
    if bb is None:
        return out
    sub_hu = array[bb]
    if tdev is not None:
        import torch

        hu_t = torch.as_tensor(np.ascontiguousarray(sub_hu), device=tdev)
        dense = hu_t >= settings.bone_hu
        closed = erode(dilate(dense, spacing, settings.close_mm), spacing, settings.close_mm)
        closed_np = closed.cpu().numpy()
    else:
        dense = dense_np[bb]
        closed_np = erode(dilate(dense, spacing, settings.close_mm), spacing, settings.close_mm)
    # Hole filling needs connected components: CPU (cc3d) on both paths. The
    # closing only serves to close cortical rings for the filling; its own bridge
    # voxels are not bone, so a plaque 1 mm off the bone is never fused to it.
    dense_sub = dense_np[bb]
    holes = fill_holes_per_slice(closed_np, sub_hu, settings.marrow_min_hu) & ~closed_np
    filled_np = dense_sub | holes
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
    big = counts * float(np.prod(spacing)) >= settings.min_volume_mm3
    keep = np.zeros(opened_np.shape, dtype=bool)
    keep.reshape(-1)[idx[big[ids]]] = True
    out[bb] = keep
    if exclude_mask is not None:
        out &= ~exclude_mask.astype(bool)
    return out


def _torch_dev(device: Device) -> Any:
    import torch

    return torch.device(device.torch)
