"""The loader on small DICOM series built with pydicom (see iofactory.py)."""

from __future__ import annotations

import hashlib
import itertools
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calcdetect.errors import (
    DecoderMissingError,
    InputError,
    MemoryBudgetError,
    MissingSlicesError,
    NonUniformSpacingError,
    UnsupportedSeriesError,
)
from calcdetect.io import discover, is_nifti, load_ct, load_nifti, write_nifti
from calcdetect.io import decode as decode_module
from iofactory import (
    write_acquisition,
    write_axial_series,
    write_memory_bomb,
    write_secondary_capture,
)

SHAPE = (6, 8, 10)


def _volume() -> np.ndarray:
    # Every voxel distinct, so any wrong flip or transpose changes the array.
    return (np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE) * 3 - 200).astype(np.int16)


def _canonical_affine(spacing=(2.0, 0.8, 0.7), origin=(-100.0, -120.0, -50.0)) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = np.array([[0, 0, spacing[2]], [0, spacing[1], 0], [spacing[0], 0, 0]])
    a[:3, 3] = origin
    return a


def _acquire(volume: np.ndarray, affine: np.ndarray, perm, flips):
    """Re-express a canonical volume as another acquisition (axis order and signs)."""
    acq, acq_affine = volume, affine.copy()
    for axis in range(3):
        if flips[axis]:
            acq = np.flip(acq, axis)
            acq_affine[:3, 3] += acq_affine[:3, axis] * (volume.shape[axis] - 1)
            acq_affine[:3, axis] *= -1
    acq = np.transpose(acq, perm)
    new = np.eye(4)
    new[:3, :3] = acq_affine[:3, :3][:, list(perm)]
    new[:3, 3] = acq_affine[:3, 3]
    return np.ascontiguousarray(acq), new


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    perm=st.sampled_from(list(itertools.permutations(range(3)))),
    flips=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    seed=st.integers(0, 2**16),
)
def test_any_acquisition_order_reloads_to_the_same_canonical_volume(perm, flips, seed):
    volume, affine = _volume(), _canonical_affine()
    acq, acq_affine = _acquire(volume, affine, perm, flips)
    if acq.shape[0] < 3:
        return
    rng = random.Random(seed)
    n = acq.shape[0]
    names = [f"{rng.getrandbits(40):010x}.dcm" for _ in range(n)]  # shuffled names
    numbers = rng.sample(range(1, 100), n)  # InstanceNumber in a wrong order
    with tempfile.TemporaryDirectory() as tmp:
        write_acquisition(acq, acq_affine, Path(tmp), names=names, instance_numbers=numbers)
        (group,) = discover(Path(tmp)).groups
        vol = load_ct(group)
    np.testing.assert_array_equal(vol.array, volume.astype(np.float32))
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    np.testing.assert_allclose(vol.spacing, (2.0, 0.8, 0.7), atol=1e-6)


def test_instance_numbers_and_file_order_do_not_change_the_result(tmp_path):
    volume = _volume()
    write_axial_series(volume, tmp_path / "a")
    n = volume.shape[0]
    write_axial_series(
        volume,
        tmp_path / "b",
        names=[f"z{n - k}.dcm" for k in range(n)],  # reversed names
        instance_numbers=[7, 3, 5, 1, 9, 2],
    )
    a = load_ct(discover(tmp_path / "a").groups[0])
    b = load_ct(discover(tmp_path / "b").groups[0])
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine)


def test_mixed_folder_classifies_and_counts_everything(tmp_path):
    write_axial_series(_volume(), tmp_path / "ct")
    scout = np.zeros((1, 8, 10), np.int16)
    coronal = np.eye(4)
    coronal[:3, :3] = np.array([[0, 0, 1.0], [1.0, 0, 0], [0, -1.0, 0]])  # rows go inferior
    write_acquisition(scout, coronal, tmp_path / "scout", image_type="ORIGINAL\\PRIMARY\\LOCALIZER")
    write_secondary_capture(tmp_path / "misc" / "dose_screen.dcm")
    (tmp_path / "misc" / "empty.dcm").write_bytes(b"")
    (tmp_path / "misc" / "notes.txt").write_text("not an image\n")
    whole = (tmp_path / "ct" / "slice000.dcm").read_bytes()
    (tmp_path / "misc" / "cut_in_pixels.dcm").write_bytes(whole[: len(whole) - 40])
    (tmp_path / "misc" / "cut_in_meta.dcm").write_bytes(whole[:150])
    found = discover(tmp_path)
    kinds = sorted(g.kind for g in found.groups)
    assert kinds == ["ct_volume", "localizer", "secondary_capture"]
    ct = found.loadable()
    assert len(ct) == 1 and ct[0].kind == "ct_volume" and ct[0].n_images == SHAPE[0]
    assert all(g.reason for g in found.groups if g.kind != "ct_volume")
    assert found.skipped_files == {"empty file": 1, "not DICOM": 1, "truncated": 2}
    assert found.n_files == SHAPE[0] + 1 + 5
    with pytest.raises(UnsupportedSeriesError, match="localizer"):
        load_ct(next(g for g in found.groups if g.kind == "localizer"))


def test_series_uid_split_by_image_size(tmp_path):
    uid = pydicom.uid.generate_uid()
    write_axial_series(_volume(), tmp_path / "a", series_uid=uid)
    write_axial_series(np.zeros((4, 5, 5), np.int16), tmp_path / "b", series_uid=uid, origin=(0.0, 0.0, 200.0))
    found = discover(tmp_path)
    assert sorted(g.n_images for g in found.groups) == [4, 6]
    assert len({g.key for g in found.groups}) == 2
    assert all(g.notes for g in found.groups)


def test_memory_bomb_is_refused_before_allocation(tmp_path):
    path = write_memory_bomb(tmp_path / "bomb.dcm")
    assert path.stat().st_size < 2048
    (group,) = discover(tmp_path).groups
    assert group.n_images == 10000
    with pytest.raises(MemoryBudgetError, match=r"65535 x 65535.*memory budget"):
        load_ct(group)


def test_memory_budget_is_configurable(tmp_path):
    write_axial_series(_volume(), tmp_path)
    group = discover(tmp_path).groups[0]
    with pytest.raises(MemoryBudgetError):
        load_ct(group, memory_budget_bytes=100)
    assert load_ct(group, memory_budget_bytes=10_000).shape == SHAPE


def test_missing_slice_and_uneven_spacing_are_named(tmp_path):
    paths = write_axial_series(_volume(), tmp_path / "gap")
    paths[2].unlink()
    with pytest.raises(MissingSlicesError, match=r"gap of 4\.0 mm .* spacing is 2\.0 mm: 1 slice missing"):
        load_ct(discover(tmp_path / "gap").groups[0])
    paths = write_axial_series(_volume(), tmp_path / "uneven")
    ds = pydicom.dcmread(paths[3])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.7
    ds.save_as(paths[3])
    with pytest.raises(NonUniformSpacingError, match="not uniform"):
        load_ct(discover(tmp_path / "uneven").groups[0])


def test_rescale_is_float_without_int16_overflow_and_padding_becomes_air(tmp_path):
    volume = np.full(SHAPE, 30000, np.int16)
    volume[:, 0, 0] = -32768
    paths = write_axial_series(volume, tmp_path, slope=2.0, intercept=-1024.0)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.add_new(0x00280120, "SS", -32768)  # Pixel Padding Value
        ds.save_as(p)
    vol = load_ct(discover(tmp_path).groups[0])
    assert vol.array.max() == pytest.approx(30000 * 2.0 - 1024.0)
    assert np.all(vol.array[:, 0, 0] == -1000.0)
    assert any("air does not measure near -1000" in w for w in vol.warnings)


def test_gantry_tilt_correction_puts_a_vertical_rod_back_in_place(tmp_path):
    # Slices tilted 15 degrees about x, stacked along z; a rod along z at y = 6 mm.
    t = np.radians(15.0)
    n, rows, cols, dr, dz = 12, 40, 8, 1.0, 2.0
    affine = np.eye(4)
    affine[:3, 0] = [0, 0, dz]
    affine[:3, 1] = [0, dr * np.cos(t), -dr * np.sin(t)]
    affine[:3, 2] = [1.0, 0, 0]
    acq = np.zeros((n, rows, cols), np.int16)
    for k in range(n):
        # The rod's row in slice k: where y = 6 mm (rows step y by dr*cos t).
        acq[k, int(round(6.0 / (dr * np.cos(t)))), :] = 1000
    write_acquisition(acq, affine, tmp_path)
    vol = load_ct(discover(tmp_path).groups[0])
    assert any("gantry tilt of 15.0 degrees" in w for w in vol.warnings)
    for k in range(1, n - 1):
        j = int(np.argmax(vol.array[k, :, 3]))
        y = vol.index_to_lps(np.array([k, j, 3]))[1]
        assert abs(y - 6.0) <= 1.0, (k, y)


def test_missing_decoder_names_the_package(tmp_path, monkeypatch):
    class _Unavailable:
        is_available = False

    monkeypatch.setattr(decode_module, "get_decoder", lambda uid: _Unavailable())
    with pytest.raises(DecoderMissingError, match="pip install pylibjpeg-openjpeg"):
        decode_module.check_decoder(pydicom.uid.JPEG2000Lossless)


def test_inputs_are_not_modified(tmp_path):
    paths = write_axial_series(_volume(), tmp_path)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    load_ct(discover(tmp_path).groups[0])
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_errors_and_groups_carry_no_patient_identifiers(tmp_path):
    paths = write_axial_series(_volume(), tmp_path / "Doe^John")
    paths[2].unlink()
    found = discover(tmp_path)
    with pytest.raises(MissingSlicesError) as info:
        load_ct(found.groups[0])
    ds = pydicom.dcmread(paths[0])
    text = str(info.value) + repr(found.groups[0])
    for secret in (str(ds.PatientName), ds.PatientID, ds.SeriesInstanceUID, ds.StudyInstanceUID, "Doe"):
        assert secret not in text


def test_single_file_and_missing_path(tmp_path):
    paths = write_axial_series(_volume(), tmp_path)
    found = discover(paths[0])
    assert found.n_files == 1 and found.groups[0].n_images == 1
    with pytest.raises(InputError, match="does not exist"):
        discover(tmp_path / "nope")


def test_nifti_detection_and_orientation_from_foreign_files(tmp_path):
    import nibabel as nib

    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)  # (i, j, k) in RAS
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 2.0, 3.0, 1.0])), tmp_path / "ras.nii.gz")
    assert is_nifti(tmp_path / "ras.nii.gz")
    fake = tmp_path / "fake.nii"
    shutil.copy(write_secondary_capture(tmp_path / "sc.dcm"), fake)
    assert not is_nifti(fake)
    vol = load_nifti(tmp_path / "ras.nii.gz")
    # i along +R in the file -> flipped to +L; j along +A -> flipped to +P.
    assert vol.shape == (4, 3, 2)
    np.testing.assert_array_equal(vol.array, np.transpose(data, (2, 1, 0))[:, ::-1, ::-1])
    # (k, j, i) -> (x, y, z): k steps +3 mm in z, j +2 mm in y (P), i +1 mm in x (L).
    np.testing.assert_allclose([vol.affine[2, 0], vol.affine[1, 1], vol.affine[0, 2]], (3.0, 2.0, 1.0))
    with pytest.raises(InputError, match="not a NIfTI"):
        load_nifti(fake)


def test_write_nifti_is_atomic_and_rejects_bad_input(tmp_path):
    affine = _canonical_affine()
    with pytest.raises(InputError, match="3-D"):
        write_nifti(np.zeros((2, 2)), affine, tmp_path / "x.nii.gz")
    out = write_nifti(np.ones(SHAPE, bool), affine, tmp_path / "sub" / "m.nii.gz")
    assert [p.name for p in out.parent.iterdir()] == ["m.nii.gz"]  # no temp file left


def test_enhanced_ct_multiframe_loads_from_functional_groups(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    from iofactory import _base

    volume = _volume()
    ds = _base("1.2.840.10008.5.1.4.1.1.2.1", generate_uid(), generate_uid(), generate_uid())
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.NumberOfFrames = SHAPE[0]
    ds.Rows, ds.Columns = SHAPE[1], SHAPE[2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.8, 0.7]
    shared.PixelMeasuresSequence[0].SliceThickness = 2.0
    shared.PixelValueTransformationSequence = Sequence([Dataset()])
    shared.PixelValueTransformationSequence[0].RescaleSlope = 1
    shared.PixelValueTransformationSequence[0].RescaleIntercept = -1024
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    order = [3, 0, 5, 1, 4, 2]  # frames stored out of z order
    for k in order:
        item = Dataset()
        item.PlanePositionSequence = Sequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = [-50.0, -120.0, -100.0 + 2.0 * k]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.ascontiguousarray(volume[order]).tobytes()
    ds.save_as(tmp_path / "enhanced.dcm", enforce_file_format=True)
    (group,) = discover(tmp_path).groups
    assert group.kind == "enhanced_ct" and group.n_images == SHAPE[0]
    vol = load_ct(group)
    np.testing.assert_array_equal(vol.array, volume.astype(np.float32) - 1024.0)
    np.testing.assert_allclose(vol.spacing, (2.0, 0.8, 0.7))
    assert vol.info.slice_thickness_mm == 2.0


def test_native_fast_path_matches_pydicom_on_real_files():
    from calcdetect.io.decode import read_native_frame

    roots = [Path(pydicom.__file__).parent / "data" / "test_files"]
    corpus = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "dicom_corpus"
    if corpus.is_dir():
        roots.append(corpus / "pydicom-data")
    checked = 0
    for root in roots:
        for group in discover(root).groups:
            for h in group.headers:
                if h.native_dtype is None:
                    continue
                fast = read_native_frame(h.path, h.pixel_offset, (h.rows, h.columns), h.native_dtype, h.bits_stored)
                np.testing.assert_array_equal(fast, pydicom.dcmread(h.path, force=True).pixel_array)
                checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("tags", "spacing", "source", "view"),
    [
        (
            {"ImagerPixelSpacing": [0.15, 0.15], "EstimatedRadiographicMagnificationFactor": 1.2, "ViewPosition": "LL"},
            (0.125, 0.125),
            "EstimatedRadiographicMagnificationFactor",
            "lateral",
        ),
        ({"ImagerPixelSpacing": [0.2, 0.1], "PatientOrientation": ["P", "F"]}, (0.2, 0.1), "ImagerPixelSpacing", "lateral"),
        ({"PixelSpacing": [0.14, 0.14], "ImagerPixelSpacing": [0.15, 0.15], "ViewPosition": "AP"}, (0.14, 0.14), "PixelSpacing", "AP"),
    ],
)
def test_radiograph_spacing_view_and_inversion(tmp_path, tags, spacing, source, view):
    from calcdetect.io import load_radiograph
    from iofactory import write_radiograph

    raw = (np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 20) % 4096
    write_radiograph(tmp_path / "dx.dcm", raw, tags=tags)
    (group,) = discover(tmp_path).groups
    assert group.kind == "radiograph" and group.reason is None
    rg = load_radiograph(group)
    np.testing.assert_allclose(rg.pixel_spacing, spacing)
    assert rg.spacing_source == source and rg.view == view
    np.testing.assert_array_equal(rg.array, 4095.0 - raw)  # MONOCHROME1: dense is bright
    assert (source == "ImagerPixelSpacing") == any("magnification" in w for w in rg.warnings)


def test_dose_screen_secondary_capture_is_a_dose_report(tmp_path):
    path = write_secondary_capture(tmp_path / "dose.dcm")
    ds = pydicom.dcmread(path)
    ds.SeriesDescription = "Dose Report"
    ds.save_as(path)
    (group,) = discover(tmp_path).groups
    assert group.kind == "dose_report" and "dose" in group.reason


def test_gantry_tilt_beyond_the_limit_is_refused(tmp_path):
    from calcdetect.errors import GantryTiltError

    t = np.radians(40.0)
    affine = np.eye(4)
    affine[:3, 0] = [0, 0, 2.0]
    affine[:3, 1] = [0, np.cos(t), -np.sin(t)]
    affine[:3, 2] = [1.0, 0, 0]
    write_acquisition(np.zeros((4, 6, 6), np.int16), affine, tmp_path)
    with pytest.raises(GantryTiltError, match="40.0 degrees exceeds"):
        load_ct(discover(tmp_path).groups[0])


@pytest.mark.parametrize(
    ("image_type", "kind"),
    [
        ("DERIVED\\PRIMARY\\AXIAL", "ct_volume"),  # re-reconstructions say DERIVED too
        ("DERIVED\\SECONDARY\\AXIAL", "ct_volume"),
        ("DERIVED\\SECONDARY\\MPR", "derived"),
        ("DERIVED\\SECONDARY\\REFORMATTED\\AVERAGE", "derived"),
        ("ORIGINAL\\PRIMARY\\LOCALIZER", "localizer"),
    ],
)
def test_image_type_rules(tmp_path, image_type, kind):
    write_axial_series(_volume(), tmp_path, image_type=image_type)
    (group,) = discover(tmp_path).groups
    assert group.kind == kind
    if kind == "derived":
        vol = load_ct(group)  # loadable on request, with a warning
        assert any("derived reformat" in w for w in vol.warnings)


def test_single_coronal_ct_image_is_a_scout(tmp_path):
    coronal = np.eye(4)
    # Columns: slice step along y, rows go inferior (-z), columns go left (+x).
    coronal[:3, :3] = np.array([[0, 0, 1.0], [1.0, 0, 0], [0, -1.0, 0]])
    write_acquisition(np.zeros((1, 8, 10), np.int16), coronal, tmp_path)  # ImageType AXIAL
    (group,) = discover(tmp_path).groups
    assert group.kind == "localizer" and "scout" in group.reason
