"""Write a HU volume as a DICOM CT Image Storage series (one file per slice).

Used by the phantom generators and by tests that need a real DICOM series. The
writer takes the canonical calcdetect geometry (``array[k, j, i]`` plus an affine
mapping ``(k, j, i, 1)`` to LPS mm, see :mod:`calcdetect.types`) and derives every
geometry tag from the affine, so a loader that reads the series back must recover
the same affine.

Only synthetic, anonymous patient tags are written (``PatientName`` "PHANTOM^CT",
``PatientID`` "PHANTOM-<seed>"); there is no way to pass real identifiers except
through ``extra_tags``, which the caller owns.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

__all__ = ["write_ct_series", "geometry_from_affine"]

# pydicom's own UID root: fine for synthetic data, and never a real scanner's root.
_UID_PREFIX = "1.2.826.0.1.3680043.8.498."
# Fixed dates keep phantom series byte-for-byte reproducible for a given seed.
_FIXED_DATE = "20000101"
_FIXED_TIME = "120000"


def geometry_from_affine(
    affine: np.ndarray, n_slices: int
) -> tuple[list[float], tuple[float, float], list[list[float]], float]:
    """Derive DICOM geometry from a ``(k, j, i, 1) -> LPS`` affine.

    Parameters
    ----------
    affine : ndarray, shape (4, 4)
        Canonical calcdetect affine.
    n_slices : int
        Number of slices (``k`` extent).

    Returns
    -------
    iop : list of 6 float
        ImageOrientationPatient: row direction (``i`` axis) then column
        direction (``j`` axis), unit vectors.
    pixel_spacing : (float, float)
        PixelSpacing ``[row spacing (along j), column spacing (along i)]`` in mm.
    positions : list of [x, y, z]
        ImagePositionPatient of every slice ``k`` (LPS mm of voxel ``[k, 0, 0]``).
    slice_step : float
        Distance between adjacent slice centres in mm.
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {affine.shape}")
    col_k, col_j, col_i = affine[:3, 0], affine[:3, 1], affine[:3, 2]
    norms = [float(np.linalg.norm(c)) for c in (col_k, col_j, col_i)]
    if min(norms) <= 0:
        raise ValueError(f"affine has a zero-length axis (column norms {norms}); cannot derive geometry")
    row_dir = col_i / norms[2]
    col_dir = col_j / norms[1]
    if abs(float(np.dot(row_dir, col_dir))) > 1e-4:
        raise ValueError("affine i and j axes are not orthogonal; DICOM CT images need orthogonal rows/columns")
    positions = [
        [float(v) for v in (affine @ np.array([k, 0.0, 0.0, 1.0]))[:3]] for k in range(n_slices)
    ]
    iop = [float(v) for v in np.concatenate([row_dir, col_dir])]
    return iop, (norms[1], norms[2]), positions, norms[0]


def _uid(seed: int | None, *parts: str) -> str:
    """A UID: deterministic from ``seed`` and ``parts`` when a seed is given."""
    if seed is None:
        return str(generate_uid(prefix=_UID_PREFIX))
    return str(generate_uid(prefix=_UID_PREFIX, entropy_srcs=["calcdetect-phantom", str(seed), *parts]))


def write_ct_series(
    array_hu: np.ndarray,
    spacing: tuple[float, float, float],
    affine: np.ndarray,
    out_dir: Path,
    *,
    kvp: float = 120.0,
    kernel: str = "B30f",
    series_description: str = "calcdetect synthetic CT phantom",
    study_uid: str | None = None,
    series_uid: str | None = None,
    slice_thickness_mm: float | None = None,
    rescale_intercept: float = -1024.0,
    extra_tags: dict[str, Any] | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    transfer_syntax: str | None = None,
) -> list[Path]:
    """Write ``array_hu`` as a CT Image Storage series, one file per slice.

    Parameters
    ----------
    array_hu : ndarray, shape (K, J, I)
        HU values on the canonical grid (``[slice, row, column]``).
    spacing : (float, float, float)
        ``(sk, sj, si)`` in mm; must agree with the affine's column norms.
    affine : ndarray, shape (4, 4)
        Maps ``(k, j, i, 1)`` to LPS mm.
    out_dir : Path
        Destination folder; files are named ``CT000.dcm``, ``CT001.dcm`` ... in
        ``k`` order.
    kvp, kernel, series_description : acquisition tags.
    study_uid, series_uid : str, optional
        Given UIDs; otherwise generated (deterministically when ``seed`` is set).
    slice_thickness_mm : float, optional
        Nominal reconstructed thickness; defaults to the slice spacing.
    rescale_intercept : float
        Stored value = round(HU - intercept); RescaleSlope is 1.
    extra_tags : dict, optional
        Keyword -> value pairs set on every slice last (e.g.
        ``{"ContrastBolusAgent": "IOMEPROL"}``).
    seed : int, optional
        Makes UIDs deterministic and sets ``PatientID`` "PHANTOM-<seed>".
    overwrite : bool
        Replace existing ``.dcm`` files in ``out_dir``; otherwise an existing
        non-empty series there is an error (mixing two series in one folder
        would silently corrupt both).
    transfer_syntax : str, optional
        A lossless transfer syntax UID to compress with (e.g.
        ``pydicom.uid.JPEG2000Lossless`` or ``RLELossless``); default uncompressed.

    Returns
    -------
    list of Path
        The written files in slice order.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> vol = np.zeros((3, 8, 8), np.float32)
    >>> aff = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [2, 0, 0, 0], [0, 0, 0, 1.0]])
    >>> files = write_ct_series(vol, (2.0, 1.0, 1.0), aff, Path(tempfile.mkdtemp()) / "s")
    >>> len(files)
    3
    """
    arr = np.asarray(array_hu)
    if arr.ndim != 3:
        raise ValueError(f"array_hu must be 3-D [k, j, i], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("array_hu contains NaN or infinite values; DICOM pixel data cannot hold them")
    n_k, n_j, n_i = (int(s) for s in arr.shape)
    iop, pixel_spacing, positions, slice_step = geometry_from_affine(affine, n_k)
    aff_spacing = (slice_step, pixel_spacing[0], pixel_spacing[1])
    if not np.allclose(aff_spacing, spacing, rtol=1e-4, atol=1e-4):
        raise ValueError(
            f"spacing {tuple(spacing)} disagrees with the affine's axis lengths {aff_spacing}; "
            "pass the spacing of the affine (sk, sj, si)"
        )

    # int16 signed storage: HU from intercept-32768 to intercept+32767, enough for metal.
    stored = np.rint(arr.astype(np.float64) - rescale_intercept)
    lo, hi = np.iinfo(np.int16).min, np.iinfo(np.int16).max
    stored = np.clip(stored, lo, hi).astype(np.int16)

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.glob("*.dcm")) and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds .dcm files; choose an empty folder or pass overwrite=True"
        )
    study_uid = study_uid or _uid(seed, "study")
    series_uid = series_uid or _uid(seed, "series", series_description)
    for_uid = _uid(seed, "frame-of-reference", study_uid)
    thickness = float(slice_thickness_mm) if slice_thickness_mm is not None else slice_step
    patient_id = f"PHANTOM-{seed}" if seed is not None else "PHANTOM"

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    names: list[str] = []
    try:
        for k in range(n_k):
            ds = _slice_dataset(
                stored[k], k, positions[k], iop, pixel_spacing, thickness, slice_step,
                kvp=kvp, kernel=kernel, series_description=series_description,
                study_uid=study_uid, series_uid=series_uid, for_uid=for_uid,
                sop_uid=_uid(seed, "sop", series_uid, str(k)) if seed is not None else _uid(None),
                rescale_intercept=rescale_intercept, patient_id=patient_id,
            )
            for key, value in (extra_tags or {}).items():
                setattr(ds, key, value)
            if transfer_syntax is not None:
                # Lossless only (RLE, JPEG 2000 lossless, JPEG-LS lossless): the
                # pixels must stay exactly the HU the truth was computed from.
                ds.compress(transfer_syntax)
            name = f"CT{k:03d}.dcm"
            ds.save_as(tmp_dir / name, enforce_file_format=True)
            names.append(name)
        if not out_dir.exists():
            # Whole-folder rename: readers see either no series or all of it.
            os.replace(tmp_dir, out_dir)
        else:
            for old in out_dir.glob("*.dcm"):
                old.unlink()
            for name in names:
                os.replace(tmp_dir / name, out_dir / name)
            shutil.rmtree(tmp_dir, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return [out_dir / n for n in names]


def _slice_dataset(
    pixels: np.ndarray,
    k: int,
    position: list[float],
    iop: list[float],
    pixel_spacing: tuple[float, float],
    thickness: float,
    slice_step: float,
    *,
    kvp: float,
    kernel: str,
    series_description: str,
    study_uid: str,
    series_uid: str,
    for_uid: str,
    sop_uid: str,
    rescale_intercept: float,
    patient_id: str,
) -> Dataset:
    """One CT Image Storage dataset (explicit VR little endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _FIXED_DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _FIXED_TIME
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "calcdetect"
    ds.ManufacturerModelName = "synthetic phantom"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = series_description
    ds.StudyDescription = "calcdetect phantom"
    # Synthetic, anonymous patient module.
    ds.PatientName = "PHANTOM^CT"
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.BodyPartExamined = "ABDOMEN"
    ds.KVP = f"{float(kvp):g}"
    ds.ConvolutionKernel = kernel
    ds.SliceThickness = f"{thickness:.6g}"
    ds.SpacingBetweenSlices = f"{slice_step:.6g}"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = k + 1
    ds.AcquisitionNumber = 1
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{position[2]:.6f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(s) for s in pixels.shape)
    ds.PixelSpacing = [f"{pixel_spacing[0]:.6g}", f"{pixel_spacing[1]:.6g}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = f"{rescale_intercept:g}"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    return ds
