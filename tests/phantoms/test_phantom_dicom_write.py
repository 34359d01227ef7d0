"""write_ct_series: the files read back through pydicom with the same geometry and HU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from calcdetect.io.dicom_write import write_ct_series


def _affine(spacing: tuple[float, float, float], origin=(-100.0, -80.0, 30.0)) -> np.ndarray:
    sk, sj, si = spacing
    aff = np.zeros((4, 4))
    aff[0, 2] = si  # i -> x (Left)
    aff[1, 1] = sj  # j -> y (Posterior)
    aff[2, 0] = sk  # k -> z (Superior)
    aff[:3, 3] = origin
    aff[3, 3] = 1
    return aff


def _read(files: list[Path]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f) for f in files]


def test_round_trip_geometry_and_hu(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    spacing = (2.5, 0.7, 0.8)
    vol = rng.uniform(-1100, 2500, size=(4, 12, 10)).astype(np.float32)
    aff = _affine(spacing)
    files = write_ct_series(vol, spacing, aff, tmp_path / "ser", kvp=100, kernel="B45f", seed=7)
    assert [f.name for f in files] == ["CT000.dcm", "CT001.dcm", "CT002.dcm", "CT003.dcm"]
    dss = _read(files)
    for k, ds in enumerate(dss):
        assert ds.Modality == "CT"
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], aff[:3, :3] @ [k, 0, 0] + aff[:3, 3])
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], [1, 0, 0, 0, 1, 0])
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.7, 0.8])
        assert float(ds.SliceThickness) == pytest.approx(2.5)
        assert float(ds.SpacingBetweenSlices) == pytest.approx(2.5)
        assert float(ds.KVP) == 100 and ds.ConvolutionKernel == "B45f"
        assert (ds.Rows, ds.Columns) == (12, 10)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.max(np.abs(hu - vol[k])) <= 0.5 + 1e-6
        assert str(ds.PatientName) == "PHANTOM^CT" and ds.PatientID == "PHANTOM-7"
    assert len({ds.SOPInstanceUID for ds in dss}) == 4
    assert len({ds.SeriesInstanceUID for ds in dss}) == 1
    assert len({ds.FrameOfReferenceUID for ds in dss}) == 1


def test_oblique_flipped_affine(tmp_path: Path) -> None:
    """Row/column directions come from the affine's i and j columns, normalised."""
    theta = np.deg2rad(10)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, 2] = rot @ [0.9, 0, 0]
    aff[:3, 1] = rot @ [0, 0.9, 0]
    aff[:3, 0] = [0, 0, -3.0]  # k runs inferior
    aff[:3, 3] = [5, 6, 7]
    files = write_ct_series(np.zeros((2, 4, 4)), (3.0, 0.9, 0.9), aff, tmp_path / "o")
    ds1 = pydicom.dcmread(files[1])
    np.testing.assert_allclose([float(v) for v in ds1.ImagePositionPatient], [5, 6, 4], atol=1e-5)
    iop = np.array([float(v) for v in ds1.ImageOrientationPatient])
    np.testing.assert_allclose(iop[:3], rot[:, 0], atol=1e-6)
    np.testing.assert_allclose(iop[3:], rot[:, 1], atol=1e-6)


def test_deterministic_uids_with_seed(tmp_path: Path) -> None:
    vol = np.zeros((2, 4, 4), np.float32)
    aff = _affine((1.0, 1.0, 1.0))
    a = _read(write_ct_series(vol, (1, 1, 1), aff, tmp_path / "a", seed=3))
    b = _read(write_ct_series(vol, (1, 1, 1), aff, tmp_path / "b", seed=3))
    c = _read(write_ct_series(vol, (1, 1, 1), aff, tmp_path / "c", seed=4))
    assert [d.SOPInstanceUID for d in a] == [d.SOPInstanceUID for d in b]
    assert a[0].StudyInstanceUID == b[0].StudyInstanceUID != c[0].StudyInstanceUID


def test_clear_errors(tmp_path: Path) -> None:
    aff = _affine((1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        write_ct_series(np.zeros((2, 4, 4)), (2.0, 1.0, 1.0), aff, tmp_path / "x")
    with pytest.raises(ValueError, match="3-D"):
        write_ct_series(np.zeros((4, 4)), (1.0, 1.0, 1.0), aff, tmp_path / "x")
    write_ct_series(np.zeros((2, 4, 4)), (1.0, 1.0, 1.0), aff, tmp_path / "y")
    with pytest.raises(FileExistsError):
        write_ct_series(np.zeros((2, 4, 4)), (1.0, 1.0, 1.0), aff, tmp_path / "y")
    files = write_ct_series(np.zeros((1, 4, 4)), (1.0, 1.0, 1.0), aff, tmp_path / "y", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "y").glob("*.dcm")) == [f.name for f in files]
    # No temporary folders left behind.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_extra_tags(tmp_path: Path) -> None:
    files = write_ct_series(np.zeros((1, 4, 4)), (1.0, 1.0, 1.0), _affine((1, 1, 1)), tmp_path / "e",
                            extra_tags={"ContrastBolusAgent": "IODINE"})
    assert pydicom.dcmread(files[0]).ContrastBolusAgent == "IODINE"
