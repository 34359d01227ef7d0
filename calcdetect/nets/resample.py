"""Grid changes shared by training and inference (same code on both sides).

Grids are axis-aligned with the Volume's canonical ``[k, j, i]`` axes; a change of
spacing keeps the physical extent (voxel-centre convention of
``align_corners=False``): output index ``x'`` sits at input index
``(x' + 0.5) * n_in / n_out - 0.5``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["target_shape", "resample_image", "nearest_indices", "resample_labels", "resampled_affine"]


def target_shape(shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]) -> tuple[int, ...]:
    """Shape covering the same extent at ``target_spacing`` (at least 1 voxel per axis).

    >>> target_shape((100, 50, 50), (1.0, 0.5, 0.5), (2.0, 2.0, 2.0))
    (50, 12, 12)
    """
    if len(shape) != len(spacing) or len(spacing) != len(target_spacing):
        raise ValueError(f"shape {shape}, spacing {spacing} and target {target_spacing} differ in length")
    if any(s <= 0 for s in spacing) or any(t <= 0 for t in target_spacing):
        raise ValueError(f"spacings must be positive, got {spacing} -> {target_spacing}")
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target_spacing))


def resample_image(
    array: np.ndarray | torch.Tensor, out_shape: Sequence[int], *, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Resample a 3-D image to ``out_shape``: area averaging when every axis shrinks
    (anti-aliased down-sampling), trilinear otherwise. Returns float32 ``[k, j, i]``.
    """
    t = torch.as_tensor(array, dtype=torch.float32, device=device)
    if tuple(t.shape) == tuple(out_shape):
        return t
    x = t[None, None]
    if all(o <= n for o, n in zip(out_shape, t.shape)):
        y = F.interpolate(x, size=tuple(out_shape), mode="area")
    else:
        y = F.interpolate(x, size=tuple(out_shape), mode="trilinear", align_corners=False)
    return y[0, 0]


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Index into an axis of length ``n_in`` for each of ``n_out`` output voxels."""
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    return np.clip(np.rint(x), 0, n_in - 1).astype(np.intp)


def resample_labels(labels: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resampling of an integer label map; dtype is kept.

    Works by index gathering, so no float copy of the label map is ever made.
    """
    labels = np.asarray(labels)
    if tuple(labels.shape) == tuple(out_shape):
        return labels
    idx = [nearest_indices(n, o) for n, o in zip(labels.shape, out_shape)]
    return labels[np.ix_(*idx)]


def resampled_affine(affine: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int]) -> np.ndarray:
    """Affine (index -> LPS mm) of the resampled grid with the same physical extent."""
    scale = np.array([n / o for n, o in zip(in_shape, out_shape)], dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = np.diag(scale)
    m[:3, 3] = 0.5 * scale - 0.5
    return np.asarray(affine, dtype=np.float64) @ m
