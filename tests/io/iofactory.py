"""Build small DICOM files with pydicom for the io tests (no calcdetect code used).

Kept independent of ``calcdetect.io.dicom_write`` on purpose: the loader is tested
against files made by a different code path than the one that loads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

CT_SOP = CTImageStorage


def _base(sop_class: str, series_uid: str, study_uid: str, for_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.PatientName = "Test^Synthetic"
    ds.PatientID = "SYN-0001"
    return ds


def _set_pixels(ds: Dataset, frame: np.ndarray) -> None:
    frame = np.ascontiguousarray(frame, dtype=np.int16)
    ds.Rows, ds.Columns = (int(v) for v in frame.shape)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = frame.tobytes()


def write_acquisition(
    acq: np.ndarray,
    affine: np.ndarray,
    out_dir: Path,
    *,
    names: list[str] | None = None,
    instance_numbers: list[int] | None = None,
    image_type: str = "ORIGINAL\\PRIMARY\\AXIAL",
    series_uid: str | None = None,
    slope: float = 1.0,
    intercept: float = 0.0,
) -> list[Path]:
    """Write ``acq[slice, row, column]`` (int16) whose ``affine`` maps (s, r, c, 1) -> LPS.

    Column 1 of ``affine`` (per row step) becomes the column direction cosine,
    column 2 (per column step) the row direction cosine, column 0 the slice step.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    n = acq.shape[0]
    names = names or [f"slice{k:03d}.dcm" for k in range(n)]
    instance_numbers = instance_numbers or list(range(1, n + 1))
    series_uid = series_uid or generate_uid()
    study_uid, for_uid = generate_uid(), generate_uid()
    col_step, row_step = affine[:3, 1], affine[:3, 2]
    dr, dc = float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))
    iop = list(row_step / dc) + list(col_step / dr)
    paths = []
    for k in range(n):
        ds = _base(CT_SOP, series_uid, study_uid, for_uid)
        ds.Modality = "CT"
        ds.ImageType = image_type.split("\\")
        ds.ImagePositionPatient = [float(v) for v in affine[:3, 3] + k * affine[:3, 0]]
        ds.ImageOrientationPatient = [round(float(v), 10) for v in iop]
        ds.PixelSpacing = [dr, dc]
        ds.SliceThickness = float(np.linalg.norm(affine[:3, 0]))
        ds.InstanceNumber = instance_numbers[k]
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.KVP = 120
        ds.ConvolutionKernel = "B30f"
        _set_pixels(ds, acq[k])
        path = out_dir / names[k]
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_axial_series(
    volume: np.ndarray,
    out_dir: Path,
    spacing: tuple[float, float, float] = (2.0, 0.8, 0.8),
    origin: tuple[float, float, float] = (-100.0, -120.0, -50.0),
    **kwargs,
) -> list[Path]:
    """A plain axial series: ``volume[k, j, i]`` already canonical (i->L, j->P, k->S)."""
    affine = np.eye(4)
    affine[:3, :3] = np.array([[0, 0, spacing[2]], [0, spacing[1], 0], [spacing[0], 0, 0]])
    affine[:3, 3] = origin
    return write_acquisition(volume, affine, out_dir, **kwargs)


def write_secondary_capture(path: Path) -> Path:
    ds = _base(SecondaryCaptureImageStorage, generate_uid(), generate_uid(), generate_uid())
    ds.Modality = "OT"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    _set_pixels(ds, np.zeros((16, 16), np.int16))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_memory_bomb(path: Path) -> Path:
    """A tiny CT file whose header claims 65535 x 65535 x 10000 frames."""
    ds = _base("1.2.840.10008.5.1.4.1.1.2.1", generate_uid(), generate_uid(), generate_uid())
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    _set_pixels(ds, np.zeros((2, 2), np.int16))
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 10000
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_radiograph(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME1",
    bits_stored: int = 12,
    tags: dict | None = None,
) -> Path:
    """A DX (for presentation) image with unsigned pixels and the given extra tags."""
    ds = _base("1.2.840.10008.5.1.4.1.1.1.1", generate_uid(), generate_uid(), generate_uid())
    ds.Modality = "DX"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    frame = np.ascontiguousarray(pixels, dtype=np.uint16)
    ds.Rows, ds.Columns = (int(v) for v in frame.shape)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    ds.PixelData = frame.tobytes()
    for key, value in (tags or {}).items():
        setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
