"""The loader on real public data (../shared/data/real); skipped when it is absent."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest

from calcdetect.errors import (
    DecodeError,
    DuplicateSlicesError,
    MissingSlicesError,
    MixedOrientationError,
    TooFewSlicesError,
    UnsupportedSeriesError,
)
from calcdetect.io import discover, load_ct, load_nifti, load_radiograph, write_nifti
from calcdetect.io.decode import decode_frames

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
CORPUS = REAL / "dicom_corpus"
D2N = CORPUS / "dicom2nifti" / "failing"

needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")
pytestmark = needs_real


def _only_ct(path: Path):
    found = discover(path)
    groups = [g for g in found.groups if g.kind == "ct_volume"]
    assert len(groups) == 1, [(g.kind, g.reason) for g in found.groups]
    return groups[0]


@pytest.fixture(scope="module")
def siemens():
    return load_ct(_only_ct(REAL / "ct_abdomen_petct_siemens"))


def test_siemens_jpeg2000_series_loads_with_spacing_and_air(siemens):
    assert siemens.shape == (20, 512, 512)
    np.testing.assert_allclose(siemens.spacing, (2.0, 0.977, 0.977), atol=0.01)
    assert siemens.array.dtype == np.float32
    # Air outside the body reads near -1000 HU; no air warning was needed.
    corner = siemens.array[:, :20, :20]
    assert -1030 <= float(np.median(corner)) <= -970
    assert not any("air" in w for w in siemens.warnings)
    # Canonical: k increases to Superior, j to Posterior, i to Left.
    assert siemens.affine[2, 0] > 0 and siemens.affine[1, 1] > 0 and siemens.affine[0, 2] > 0
    assert siemens.info.kvp == 120.0 and siemens.info.manufacturer == "SIEMENS"


def test_siemens_slices_are_sorted_by_position_not_file_name(siemens):
    # Files are named in *descending* z order; slice k must map to ascending z.
    z = [siemens.index_to_lps(np.array([k, 0, 0]))[2] for k in range(siemens.shape[0])]
    assert np.all(np.diff(z) > 0)
    found = discover(REAL / "ct_abdomen_petct_siemens")
    first_file_z = float(pydicom.dcmread(sorted(found.groups[0].files)[0], stop_before_pixels=True).ImagePositionPatient[2])
    assert abs(z[-1] - first_file_z) < 1e-3  # the first file name is the top slice


def test_philips_with_malformed_private_tag_loads_and_leaves_pydicom_config_alone():
    before = pydicom.config.convert_wrong_length_to_UN
    vol = load_ct(_only_ct(REAL / "ct_thorax_philips"))
    assert vol.shape == (141, 512, 512)
    np.testing.assert_allclose(vol.spacing, (2.0, 0.977, 0.977), atol=0.01)
    assert pydicom.config.convert_wrong_length_to_UN == before


def test_acquisition_info_holds_no_patient_identifiers(siemens):
    values = [str(v) for v in dataclasses.asdict(siemens.info).values() if v is not None]
    ds = pydicom.dcmread(sorted((REAL / "ct_abdomen_petct_siemens").iterdir())[0], stop_before_pixels=True)
    for attr in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID"):
        secret = str(ds.get(attr) or "").strip()
        if len(secret) > 2:
            assert all(secret not in v for v in values), attr


def test_nifti_round_trip_overlays_the_dicom(siemens, tmp_path):
    out = write_nifti(siemens.array, siemens.affine, tmp_path / "ct.nii.gz")
    back = load_nifti(out)
    np.testing.assert_array_equal(back.array, siemens.array)
    np.testing.assert_allclose(back.affine, siemens.affine, atol=1e-4)
    labels = (siemens.array > 300).astype(np.uint8)
    back_labels = load_nifti(write_nifti(labels, siemens.affine, tmp_path / "bone.nii"))
    np.testing.assert_array_equal(back_labels.array.astype(np.uint8), labels)


def test_nifti_is_ras_for_other_tools(siemens, tmp_path):
    import nibabel as nib

    img = nib.load(str(write_nifti(siemens.array, siemens.affine, tmp_path / "ct.nii.gz")))
    # The voxel at NIfTI (i, j, k) is the Volume voxel [k, j, i], at the same point in space.
    k, j, i = 7, 100, 300
    ras = img.affine @ np.array([i, j, k, 1.0])
    lps = siemens.index_to_lps(np.array([k, j, i]))
    np.testing.assert_allclose(ras[:3], lps * np.array([-1, -1, 1]), atol=1e-3)
    assert np.asarray(img.dataobj)[i, j, k] == siemens.array[k, j, i]


# --- dicom2nifti failing cases: each gives its specific answer -------------------


def test_gantry_tilt_is_repaired_with_a_warning():
    vol = load_ct(_only_ct(D2N / "gantrytilting"))
    assert any("gantry tilt of 14.0 degrees" in w for w in vol.warnings)
    # The corrected grid is orthogonal; the slice step shrinks to 5 mm x cos(14 deg).
    cols = vol.affine[:3, :3] / np.linalg.norm(vol.affine[:3, :3], axis=0)
    np.testing.assert_allclose(cols.T @ cols, np.eye(3), atol=1e-6)
    assert vol.spacing[0] == pytest.approx(5 * np.cos(np.radians(14.0)), abs=0.02)


@pytest.mark.parametrize("case", ["001", "002"])
def test_slice_increment_reports_the_missing_slice(case):
    with pytest.raises(MissingSlicesError, match=r"1 slice missing"):
        load_ct(_only_ct(D2N / "sliceincrement" / case))


def test_slice_increment_message_says_where():
    with pytest.raises(MissingSlicesError) as info:
        load_ct(_only_ct(D2N / "sliceincrement" / "001"))
    assert "gap of 10.0 mm between 28.1 and 38.1 mm" in str(info.value)
    assert "spacing is 5.0 mm" in str(info.value)


def test_not_a_volume_reports_duplicate_positions():
    with pytest.raises(DuplicateSlicesError, match=r"61\.5 mm holds 4 slices"):
        load_ct(_only_ct(D2N / "notavolume"))


def test_slice_orientation_mixed_series_is_split_or_refused():
    # Default: the series is split into one group per orientation (MR, so not loaded).
    found = discover(D2N / "sliceorientation")
    assert len(found.groups) == 2
    assert all(g.kind == "other" and "MR" in g.reason for g in found.groups)
    assert all(g.notes for g in found.groups)
    with pytest.raises(UnsupportedSeriesError, match="not a CT volume"):
        load_ct(found.groups[0])
    # Unsplit, the geometry check names the problem (kind forced: the rule, not MR).
    (whole,) = discover(D2N / "sliceorientation", split=False).groups
    forced = dataclasses.replace(whole, kind="ct_volume", reason=None)
    with pytest.raises(MixedOrientationError, match="mixes 2 slice orientations"):
        load_ct(forced)


def test_slice_count_two_slices_are_too_few():
    (group,) = discover(D2N / "slicecount").groups
    assert group.kind == "other"  # MR
    with pytest.raises(TooFewSlicesError, match="has 2 slice"):
        load_ct(dataclasses.replace(group, kind="ct_volume", reason=None))


# --- WG-04: every transfer syntax decodes to the reference pixels ------------------

WG04 = CORPUS / "wg04"
LOSSLESS = ["J2KR", "JLSL", "JPLL", "RLE"]
# Measured (max / mean absolute difference in stored values, CT1 and CT2):
# J2KI 352 / 25.9 and 402 / 17.6; JLSN (near-lossless, NEAR=4) 4 / 2.15.
LOSSY_TOLERANCE = {"J2KI": (410, 30.0), "JLSN": (4, 2.5)}


@pytest.fixture(scope="module")
def wg04_reference():
    zstandard = pytest.importorskip("zstandard")
    out = {}
    for name in ("CT1", "CT2"):
        data = zstandard.ZstdDecompressor().decompress(
            (WG04 / "REF" / f"{name}_UNC.zst").read_bytes(), max_output_size=64 * 1024**2
        )
        out[name] = pydicom.dcmread(io.BytesIO(data)).pixel_array.astype(np.int32)
    return out


@pytest.mark.parametrize("image", ["CT1", "CT2"])
@pytest.mark.parametrize("syntax", LOSSLESS + list(LOSSY_TOLERANCE))
def test_wg04_decodes_to_reference(wg04_reference, image, syntax):
    (frame,) = decode_frames([(WG04 / syntax / f"{image}_{syntax}", None)], compressed=False)
    diff = np.abs(frame.astype(np.int32) - wg04_reference[image])
    if syntax in LOSSLESS:
        assert diff.max() == 0
    else:
        max_tol, mean_tol = LOSSY_TOLERANCE[syntax]
        assert diff.max() <= max_tol and diff.mean() <= mean_tol
        assert diff.max() > 0  # it really is lossy: the check compares real pixels


def test_wg04_identical_images_in_one_series_are_duplicates():
    # The WG-04 set stores the same CT1 slice once per transfer syntax under one UID.
    found = discover(WG04)
    ct = [g for g in found.groups if g.kind == "ct_volume" and g.n_images > 1]
    assert ct
    with pytest.raises(DuplicateSlicesError):
        load_ct(ct[0])


def test_radiographs_load_dense_bright_with_spacing():
    found = discover(WG04 / "RLE")
    rg = {g.files[0].name: g for g in found.groups if g.kind == "radiograph"}
    assert set(rg) == {"RG2_RLE", "RG3_RLE"}
    rg2 = load_radiograph(rg["RG2_RLE"])
    assert rg2.array.shape == (2140, 1760) and rg2.pixel_spacing == (0.2, 0.2)
    assert rg2.spacing_source == "PixelSpacing"
    rg3 = load_radiograph(rg["RG3_RLE"])  # MONOCHROME1: inverted so dense is bright
    raw = pydicom.dcmread(rg["RG3_RLE"].files[0]).pixel_array.astype(np.float32)
    np.testing.assert_allclose(rg3.array, 1023.0 - raw)  # BitsStored 10
    assert rg3.pixel_spacing is None and any("pixel spacing" in w for w in rg3.warnings)


def test_corrupt_jpeg_lossy_radiograph_is_a_decode_error():
    (group,) = [g for g in discover(WG04 / "JPLY").groups if g.files[0].name == "RG2_JPLY"]
    with pytest.raises(DecodeError, match="could not decode radiograph"):
        load_radiograph(group)


def test_ct_scout_is_a_localizer():
    found = discover(CORPUS / "pylibjpeg" / "JPEG2000" / "MAROTECH_CT_JP2Lossy.dcm")
    (group,) = found.groups
    assert group.kind == "localizer" and group.reason


def test_missing_jpeg2000_decoder_is_named_before_any_decoding(monkeypatch):
    from calcdetect.errors import DecoderMissingError
    from calcdetect.io import decode as decode_module

    class _Unavailable:
        is_available = False

    monkeypatch.setattr(decode_module, "get_decoder", lambda uid: _Unavailable())
    monkeypatch.setattr(decode_module, "decode_frames", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(DecoderMissingError, match="JPEG 2000.*pip install pylibjpeg-openjpeg"):
        load_ct(_only_ct(REAL / "ct_abdomen_petct_siemens"))
