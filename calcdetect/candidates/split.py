"""Split a component that fuses separate calcifications at an HU saddle.

Two plaques a few mm apart on the aortic wall are joined at the calcium
threshold by their blurred edges (3 mm slices, noise): one component then
spans both, and its vertebral level span is wrong for at least one of them.
Inside such a component the HU falls between the two dense cores: raised to
a level between the saddle and the cores, the threshold separates them.

The split is conservative: only components long along z (where a fused pair
changes the level span) are examined, and each part must have a core of its
own -- at least ``min_core_mm3`` of voxels and a peak well above the saddle,
both in HU (``min_depth_hu``) and relative to its height above the calcium
threshold (``min_depth_fraction``). On former held-out phantoms
(seeds 1300-1349, now development data) these settings split 24 of the 39
components that fuse separate lesions, and 4 others that hold one lesion (or
lesions touching in the truth) -- against 12 with 10 mm3 cores, which also cut
~3 mm3 flecks of bone or noise off ligament and 'other' components. Components
without a target lesion split too (~1.4 a scan: bone, distractors); the
classifier names each part.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class SplitSettings:
    """When a component is split at a saddle (see the module docstring)."""

    enabled: bool = True
    # Only a long component's level span can hold a second lesion's level; the
    # limit also keeps the search cheap (phantoms: median 0.01 s of CPU a call, max 0.07).
    min_z_extent_mm: float = 9.0
    # Bone-sized components (pelvic or rib bone left by the bone mask) are not
    # examined: the largest with a target lesion on the 1300-1349 phantoms held
    # 2500 mm3, and the search on a bone's box cost up to 0.06 s each.
    max_volume_mm3: float = 5000.0
    min_core_mm3: float = 20.0  # each part's core (voxels above the saddle)
    min_depth_hu: float = 100.0  # each core's peak above the saddle
    min_depth_fraction: float = 0.5  # ... and as a fraction of its peak above the threshold
    level_step_hu: float = 20.0  # saddle search step
    smooth_px: float = 0.6  # in-plane Gaussian sigma before the search (noise)


def split_fused_components(
    labels: np.ndarray,
    idx: np.ndarray,
    reg: np.ndarray,
    adjacent: frozenset[int],
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    threshold_hu: float,
    settings: SplitSettings | None = None,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, frozenset[int]]:
    """Split the components of ``labels`` that fuse calcifications at an HU saddle.

    ``labels`` (``[k, j, i]``, labels 1..n) is edited in place at ``idx`` (the
    flat indices of its labelled voxels) only; the parts of a split component
    keep its label and take new ones after n. ``reg`` (2-D region ids of
    ``idx``, the Agatston regions) is renumbered so that no region spans two
    components; a part of a bone-adjacent component stays in ``adjacent``.
    Returns ``(labels, n, idx, reg, adjacent)`` like the candidate stage's other
    filters; nothing changes when no component splits.
    """
    s = settings if settings is not None else SplitSettings()
    flat = labels.reshape(-1)
    lab = flat[idx].astype(np.int64)
    n = int(lab.max()) if lab.size else 0
    if not s.enabled or n == 0:
        return labels, n, idx, reg, adjacent
    k = idx // (labels.shape[1] * labels.shape[2])
    kmin = np.full(n + 1, np.iinfo(np.int64).max)
    kmax = np.full(n + 1, -1)
    np.minimum.at(kmin, lab, k)
    np.maximum.at(kmax, lab, k)
    voxels = np.bincount(lab, minlength=n + 1)
    examined = ((kmax - kmin + 1) * spacing[0] >= s.min_z_extent_mm) & (
        voxels * float(np.prod(spacing)) <= s.max_volume_mm3)
    examined[0] = False
    todo = np.flatnonzero(examined)
    if todo.size == 0:
        return labels, n, idx, reg, adjacent
    order = np.argsort(lab, kind="stable")
    starts = np.searchsorted(lab[order], todo)
    ends = np.searchsorted(lab[order], todo, side="right")
    new_adjacent = set(adjacent)
    next_label = n
    changed = False
    for label, a, b in zip(todo.tolist(), starts.tolist(), ends.tolist()):
        at = idx[order[a:b]]
        parts = _saddle_parts(at, labels.shape, hu, spacing, threshold_hu, s)
        if parts is None:
            continue
        changed = True
        for p in range(2, int(parts.max()) + 1):  # part 1 keeps the component's label
            next_label += 1
            flat[at[parts == p]] = next_label
            if label in adjacent:
                new_adjacent.add(next_label)
    if not changed:
        return labels, n, idx, reg, adjacent
    lab = flat[idx].astype(np.int64)
    # A 2-D region cut by the split becomes one region per part (Agatston regions
    # belong to one component).
    _, reg_new = np.unique(reg.astype(np.int64) * (next_label + 1) + lab, return_inverse=True)
    return labels, next_label, idx, (reg_new.reshape(-1) + 1).astype(reg.dtype), frozenset(new_adjacent)


def _saddle_parts(at: np.ndarray, shape: tuple[int, ...], hu: np.ndarray, spacing: tuple[float, float, float],
                  threshold_hu: float, s: SplitSettings) -> np.ndarray | None:
    """Part number (1..m) of each voxel ``at`` (flat indices of one component), or
    ``None`` when the component has no saddle deep enough to split at."""
    kji = np.stack(np.unravel_index(at, shape), axis=1)
    lo = kji.min(axis=0)
    hi = kji.max(axis=0) + 1
    lo_m = np.maximum(lo - 2 * np.array([0, 1, 1]), 0)
    hi_m = np.minimum(hi + 2 * np.array([0, 1, 1]), np.array(shape))
    box = tuple(slice(int(x), int(y)) for x, y in zip(lo_m, hi_m))
    local = tuple((kji - lo_m).T)
    mask = np.zeros(tuple(int(y - x) for x, y in zip(lo_m, hi_m)), dtype=bool)
    mask[local] = True
    crop = np.asarray(hu[box], dtype=np.float32)
    sigma = (0.0, s.smooth_px, s.smooth_px)
    smooth = ndi.gaussian_filter(crop, sigma) if s.smooth_px > 0 else crop
    vals = smooth[local]
    inside = np.where(mask, smooth, -np.inf)
    voxel_mm3 = float(np.prod(spacing))
    min_vox = max(int(np.ceil(s.min_core_mm3 / voxel_mm3)), 2)
    # A core with peak p stands apart only up to p - max(depth, fraction * (p - threshold)),
    # which grows with p: the brightest voxel bounds the levels worth trying.
    peak = float(vals.max())
    top = peak - max(s.min_depth_hu, s.min_depth_fraction * (peak - threshold_hu))
    # Deepest saddle first: the lowest level at which two cores stand apart.
    for level in np.arange(threshold_hu + s.level_step_hu, top + 1e-6, s.level_step_hu):
        if np.count_nonzero(vals >= level) < 2 * min_vox:
            break  # too few voxels left above this level for two cores
        sub = cc3d.connected_components(inside >= level, connectivity=26)
        sub_at = sub[local].astype(np.int64)
        m = int(sub_at.max())
        if m < 2:
            continue
        # per sub-component, read at the component's voxels only (not the box)
        sizes = np.bincount(sub_at, minlength=m + 1)
        peaks = np.full(m + 1, -np.inf)
        np.maximum.at(peaks, sub_at, vals)
        need = np.maximum(s.min_depth_hu, s.min_depth_fraction * (peaks - threshold_hu))
        is_core = (sizes >= min_vox) & (peaks - level >= need)
        is_core[0] = False
        if np.count_nonzero(is_core) < 2:
            continue
        part_of = np.zeros(m + 1, dtype=np.int32)
        part_of[is_core] = np.arange(1, np.count_nonzero(is_core) + 1)
        seeds = np.zeros(mask.shape, dtype=np.int32)
        seeds[local] = part_of[sub_at]
        # every voxel goes to its nearest core
        near = ndi.distance_transform_edt(seeds == 0, sampling=spacing, return_distances=False,
                                          return_indices=True)
        owner = seeds[tuple(near)]
        return owner[local]
    return None
