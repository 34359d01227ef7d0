"""NIfTI in and out, on calcdetect's canonical LPS grid.

NIfTI affines map voxel ``(i, j, k)`` to RAS mm; calcdetect's map array index
``(k, j, i)`` to LPS mm (see ``calcdetect.types``). The two differ by an axis
reversal and the sign of x and y:

``A_nifti = F @ A_kji @ P`` with ``F = diag(-1, -1, 1, 1)`` and ``P`` the
permutation ``(i, j, k) -> (k, j, i)``; the data array is transposed the same way.
A NIfTI written by :func:`write_nifti` from a ``Volume`` grid therefore overlays
the DICOM exactly in any viewer, and :func:`load_nifti` gives back the same array
and affine (float32 precision of the NIfTI header: about 1e-4 mm).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

from calcdetect.errors import InputError, MemoryBudgetError
from calcdetect.export.atomic import atomic_write_with
from calcdetect.io.decode import DEFAULT_MEMORY_BUDGET
from calcdetect.io.geometry import to_canonical
from calcdetect.types import AcquisitionInfo, Volume

__all__ = [
    "is_nifti",
    "load_nifti",
    "read_nifti_array",
    "write_nifti",
    "write_nifti_labels",
    "kji_lps_to_ras",
    "ras_to_kji_lps",
]

_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])
_SWAP = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def kji_lps_to_ras(affine_kji: np.ndarray) -> np.ndarray:
    """Convert a ``(k, j, i) -> LPS`` affine to a NIfTI ``(i, j, k) -> RAS`` affine."""
    return _FLIP @ np.asarray(affine_kji, dtype=np.float64) @ _SWAP


def ras_to_kji_lps(affine_ras: np.ndarray) -> np.ndarray:
    """Convert a NIfTI ``(i, j, k) -> RAS`` affine to a ``(k, j, i) -> LPS`` affine."""
    return _FLIP @ np.asarray(affine_ras, dtype=np.float64) @ _SWAP


def is_nifti(path: Path) -> bool:
    """True when ``path`` is a NIfTI-1 / NIfTI-2 file (``.nii`` or ``.nii.gz``).

    The magic string is checked, not only the name, so a DICOM file called
    ``x.nii`` is not mistaken for NIfTI.
    """
    path = Path(path)
    if not path.is_file():
        return False
    try:
        opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:  # type: ignore[operator]
            head = fh.read(544)
    except (OSError, EOFError):
        return False
    return (len(head) >= 348 and head[344:347] in (b"n+1", b"ni1")) or (
        len(head) >= 8 and head[4:8] in (b"n+2\x00", b"ni2\x00")
    )


def read_nifti_array(
    path: Path, *, dtype: type = np.float32, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a 3-D NIfTI file onto the canonical grid: ``(array [k, j, i], affine, warnings)``.

    Floating ``dtype`` applies the NIfTI scale slope / intercept; an integer
    ``dtype`` (label maps) keeps the stored values. Flips and axis swaps only.

    Raises
    ------
    InputError
        Not a readable NIfTI file, or not a single 3-D volume.
    MemoryBudgetError
        The voxels would exceed ``memory_budget_bytes``.
    """
    path = Path(path)
    if not is_nifti(path):
        raise InputError(f"{path.name} is not a NIfTI file (.nii / .nii.gz with a NIfTI header)")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for damaged headers
        raise InputError(f"cannot read NIfTI file {path.name}: {exc}") from exc
    shape = tuple(int(s) for s in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(
            f"NIfTI file {path.name} has shape {img.shape}; calcdetect needs one 3-D volume"
        )
    needed = int(np.prod(shape)) * 8
    if needed > memory_budget_bytes:
        raise MemoryBudgetError(
            f"NIfTI file {path.name} ({'x'.join(map(str, shape))} voxels) needs about "
            f"{needed / 1024**3:.1f} GiB, over the memory budget of "
            f"{memory_budget_bytes / 1024**3:.1f} GiB; raise memory_budget_bytes"
        )
    warnings = []
    qcode, scode = int(img.header["qform_code"]), int(img.header["sform_code"])
    if qcode == 0 and scode == 0:
        warnings.append("NIfTI header has no qform / sform: orientation is a guess (RAS assumed)")
    try:
        if np.issubdtype(np.dtype(dtype), np.floating):
            data = np.asarray(img.get_fdata(dtype=np.float32))
        else:
            data = np.asanyarray(img.dataobj)
        data = data.reshape(shape)
    except Exception as exc:
        raise InputError(f"cannot read the voxels of NIfTI file {path.name}: {exc}") from exc
    array = np.transpose(data, (2, 1, 0))  # (i, j, k) -> (k, j, i)
    array, affine = to_canonical(array, ras_to_kji_lps(img.affine))
    return np.ascontiguousarray(array).astype(dtype, copy=False), affine, warnings


def load_nifti(path: Path, *, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> Volume:
    """Load a NIfTI volume (HU) onto the canonical LPS grid.

    Parameters
    ----------
    path : pathlib.Path
        ``.nii`` or ``.nii.gz``; 3-D, or 4-D with a single volume.
    memory_budget_bytes : int
        Refuse before reading voxels when float32 data would exceed it.

    Returns
    -------
    Volume
        ``array`` float32 ``[k, j, i]`` (i -> L, j -> P, k -> S), values as stored
        after the NIfTI scale slope / intercept. ``info`` has no acquisition
        facts (NIfTI does not carry them); a warning says so.

    Raises
    ------
    InputError
        Not a readable NIfTI file, or not a single 3-D volume.
    """
    array, affine, warnings = read_nifti_array(path, memory_budget_bytes=memory_budget_bytes)
    warnings.insert(0, "NIfTI input: no acquisition facts (kVp, kernel, thickness); values taken as HU")
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    return Volume(
        array=array,
        spacing=spacing,  # type: ignore[arg-type]
        affine=affine,
        info=AcquisitionInfo(modality="CT"),
        warnings=tuple(warnings),
    )


def write_nifti(array: np.ndarray, affine_kji: np.ndarray, path: Path) -> Path:
    """Write a ``[k, j, i]`` volume (labels or HU) on a Volume grid as NIfTI (RAS).

    Parameters
    ----------
    array : (nk, nj, ni) array
        Kept in its dtype (integer labels stay integers; bool becomes uint8).
    affine_kji : (4, 4) array
        ``Volume.affine`` (or ``AnatomyMap.affine``): ``(k, j, i, 1)`` -> LPS mm.
    path : pathlib.Path
        ``.nii.gz`` (compressed) or ``.nii``; written atomically.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> write_nifti(volume.array, volume.affine, Path("ct.nii.gz"))  # doctest: +SKIP
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise InputError(f"write_nifti needs a 3-D [k, j, i] array, got shape {array.shape}")
    affine_kji = np.asarray(affine_kji, dtype=np.float64)
    if affine_kji.shape != (4, 4):
        raise InputError(f"write_nifti needs a 4x4 affine, got shape {affine_kji.shape}")
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise InputError(f"NIfTI output must end in .nii or .nii.gz, got {path.name}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    affine_ras = kji_lps_to_ras(affine_kji)
    img = nib.Nifti1Image(np.transpose(array, (2, 1, 0)), affine_ras)
    img.header.set_qform(affine_ras, code=1)  # 1 = scanner coordinates
    img.header.set_sform(affine_ras, code=1)
    img.header.set_xyzt_units("mm")
    suffix = ".nii.gz" if name.endswith(".nii.gz") else ".nii"
    return atomic_write_with(path, lambda tmp: nib.save(img, str(tmp)), suffix=suffix)


#: The name STAGES.md uses for label maps; the same function.
write_nifti_labels = write_nifti
