"""Read training NIfTI files onto calcdetect's canonical ``[k, j, i]`` LPS grid.

The same convention as ``calcdetect.types.Volume``: ``i`` to the patient's Left,
``j`` Posterior, ``k`` Superior; flips and axis swaps only, never resampling, so
image and label files of one case stay voxel-aligned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calcdetect.errors import InputError

__all__ = ["read_nifti_kji", "write_nifti_kji"]

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_XYZ_TO_KJI = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def read_nifti_kji(path: Path, *, dtype: type = np.float32) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """Read a 3-D NIfTI file as ``(array [k, j, i], spacing (sk, sj, si), affine kji->LPS)``.

    Parameters
    ----------
    path
        ``*.nii`` or ``*.nii.gz``.
    dtype
        Output dtype (``np.float32`` for images, an integer type for labels).
    """
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
    except FileNotFoundError:
        raise InputError(f"NIfTI file {str(path)!r} does not exist") from None
    except Exception as exc:  # nibabel raises several types
        raise InputError(f"{str(path)!r} is not a readable NIfTI file: {exc}") from None
    if len(img.shape) == 4 and img.shape[3] == 1:
        img = img.slicer[..., 0]
    if len(img.shape) != 3:
        raise InputError(f"{str(path)!r} has shape {img.shape}; a 3-D volume was expected")
    img = nib.as_closest_canonical(img)
    ras = img.affine
    data = np.asanyarray(img.dataobj)
    # canonical RAS axes: index0 increases toward R(+x), index1 toward A, index2 toward S.
    # Flip index0 and index1 so they increase toward L and P, then order as [k, j, i].
    data = data[::-1, ::-1, :]
    n0, n1 = img.shape[0], img.shape[1]
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, n0 - 1
    flip[1, 1], flip[1, 3] = -1.0, n1 - 1
    affine = _RAS_TO_LPS @ ras @ flip @ _XYZ_TO_KJI
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0))).astype(dtype, copy=False)
    spacing = tuple(float(np.linalg.norm(affine[:3, c])) for c in range(3))
    return array, spacing, affine  # type: ignore[return-value]


def write_nifti_kji(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Inverse of :func:`read_nifti_kji` (used by tests and dataset converters)."""
    import nibabel as nib

    xyz = np.transpose(np.asarray(array), (2, 1, 0))
    ras_affine = np.linalg.inv(_RAS_TO_LPS) @ np.asarray(affine, dtype=np.float64) @ np.linalg.inv(_XYZ_TO_KJI)
    nib.save(nib.Nifti1Image(xyz, ras_affine), str(path))
