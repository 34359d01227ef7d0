"""Training-data NIfTI access: thin adapters over :mod:`calcdetect.io.nifti`.

Images and labels land on calcdetect's canonical ``[k, j, i]`` LPS grid (flips and
axis swaps only), so the image and label files of one case stay voxel-aligned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calcdetect.io.nifti import read_nifti_array, write_nifti

__all__ = ["read_nifti_kji", "write_nifti_kji"]


def read_nifti_kji(path: Path, *, dtype: type = np.float32) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """Read a 3-D NIfTI file as ``(array [k, j, i], spacing (sk, sj, si), affine kji->LPS)``.

    ``dtype``: ``np.float32`` for images, an integer type for labels (stored values kept).
    """
    array, affine, _ = read_nifti_array(Path(path), dtype=dtype)
    spacing = tuple(float(np.linalg.norm(affine[:3, c])) for c in range(3))
    return array, spacing, affine  # type: ignore[return-value]


def write_nifti_kji(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Inverse of :func:`read_nifti_kji` (used by tests and dataset converters)."""
    write_nifti(array, affine, Path(path))
