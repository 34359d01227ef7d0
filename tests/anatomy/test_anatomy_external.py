"""TotalSegmentator import: RAS NIfTI -> our LPS [k, j, i] grid, resampling, errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from calcdetect.anatomy import build_anatomy, load_totalsegmentator
from calcdetect.anatomy.external import levels_from_vertebrae, split_iliac
from calcdetect.anatomy.regions import structure
from calcdetect.device import Device
from calcdetect.errors import InputError
from calcdetect.types import AcquisitionInfo, Volume

SHAPE = (20, 30, 40)  # k, j, i
SP = (2.0, 1.0, 1.0)


def _volume() -> Volume:
    aff = np.zeros((4, 4))
    aff[0, 2], aff[1, 1], aff[2, 0] = SP[2], SP[1], SP[0]  # i->x, j->y, k->z
    aff[:3, 3] = (-20.0, -15.0, 100.0)
    aff[3, 3] = 1.0
    hu = np.full(SHAPE, 40.0, dtype=np.float32)
    return Volume(hu, SP, aff, AcquisitionInfo("CT"))


def _write_ras(path: Path, mask_kji: np.ndarray, vol: Volume) -> None:
    """Write a mask the way TotalSegmentator does: NIfTI (x, y, z) voxels, RAS affine."""
    data = np.transpose(mask_kji, (2, 1, 0)).astype(np.uint8)  # -> [i, j, k]
    # our index -> LPS is vol.affine with columns (k, j, i); reorder to (i, j, k)
    lps = vol.affine[:, [2, 1, 0, 3]]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    nib.save(nib.Nifti1Image(data, ras), str(path))


def _box(k0, k1, j0, j1, i0, i1) -> np.ndarray:
    m = np.zeros(SHAPE, dtype=bool)
    m[k0:k1, j0:j1, i0:i1] = True
    return m


def test_same_grid_round_trip_is_exact(tmp_path):
    vol = _volume()
    aorta = _box(5, 15, 3, 8, 22, 27)
    _write_ras(tmp_path / "aorta.nii.gz", aorta, vol)
    _write_ras(tmp_path / "kidney_left.nii.gz", _box(8, 14, 10, 20, 30, 38), vol)
    (tmp_path / "notes.txt").write_text("ignored")
    masks = load_totalsegmentator(tmp_path, vol)
    assert set(masks) == {"aorta", "kidney_left"}
    assert np.array_equal(masks["aorta"], aorta)
    # patient left is larger i: the left kidney stays at i >= 30
    assert np.argwhere(masks["kidney_left"])[:, 2].min() == 30


def test_different_grid_is_resampled_nearest(tmp_path):
    vol = _volume()
    truth = _box(4, 16, 10, 20, 10, 30)
    # a NIfTI at half resolution, flipped along x, covering the same box
    fine = np.transpose(truth, (2, 1, 0))[::2, ::2, ::2].astype(np.uint8)  # (i, j, k) every 2nd
    lps = vol.affine[:, [2, 1, 0, 3]].copy()
    lps[:3, :3] *= 2.0
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, fine.shape[0] - 1
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps @ flip
    nib.save(nib.Nifti1Image(fine[::-1].copy(), ras), str(tmp_path / "aorta.nii.gz"))
    got = load_totalsegmentator(tmp_path, vol)["aorta"]
    dice = 2 * (got & truth).sum() / (got.sum() + truth.sum())
    assert dice > 0.8
    # half-resolution voxels shift edges by at most one fine voxel; the flipped
    # x axis must not mirror the box (i stays 10..29)
    lo, hi = np.argwhere(got).min(axis=0), np.argwhere(got).max(axis=0)
    assert np.all(np.abs(lo - (4, 10, 10)) <= 1) and np.all(np.abs(hi - (15, 19, 29)) <= 1)
    assert lo[2] == 10 and hi[2] == 29


def test_mask_outside_the_volume_is_an_error(tmp_path):
    vol = _volume()
    m = _box(5, 10, 5, 10, 5, 10)
    data = np.transpose(m, (2, 1, 0)).astype(np.uint8)
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine[:, [2, 1, 0, 3]]
    ras[:3, 3] += (0.0, 0.0, 500.0)  # 50 cm away in z
    nib.save(nib.Nifti1Image(data, ras), str(tmp_path / "aorta.nii.gz"))
    with pytest.raises(InputError, match="does not overlap"):
        load_totalsegmentator(tmp_path, vol)


def test_missing_folder_and_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        load_totalsegmentator(tmp_path / "nope", _volume())
    with pytest.raises(InputError, match="no TotalSegmentator masks"):
        load_totalsegmentator(tmp_path, _volume())


def test_levels_from_vertebra_masks():
    l1 = _box(12, 18, 10, 20, 15, 25)
    l2 = _box(3, 9, 10, 20, 15, 25)
    levels = levels_from_vertebrae({"vertebrae_L1": l1, "vertebrae_L2": l2}, SHAPE[0])
    assert levels[14] == "L1" and levels[5] == "L2"
    assert levels[10] == "L1-L2"
    assert levels[0] is None and levels[19] is None


def test_split_iliac_by_distance_from_bifurcation():
    sp = (5.0, 1.0, 1.0)
    m = np.zeros((20, 30, 30), dtype=bool)
    m[:19, 10:14, 10:14] = True  # one tube down from the bifurcation at k=19
    m[:8, 20:24, 12:16] = True  # a posterior branch in the lower part
    c, e, i = split_iliac(m, sp, bif_k=19, common_mm=40.0)
    assert c[11:19].any() and not e[11:19].any()
    assert e[:8, 10:14, 10:14].all() and i[:8, 20:24, 12:16].all()
    assert not (c & e).any() and not (e & i).any()


def test_build_anatomy_prefers_external_masks(tmp_path):
    vol = _volume()
    _write_ras(tmp_path / "aorta.nii.gz", _box(0, 20, 3, 8, 22, 27), vol)
    _write_ras(tmp_path / "vertebrae_L1.nii.gz", _box(12, 18, 12, 22, 15, 25), vol)
    _write_ras(tmp_path / "vertebrae_L2.nii.gz", _box(2, 9, 12, 22, 15, 25), vol)
    am = build_anatomy(vol, Device("cpu"), external_dir=tmp_path)
    assert am.source["aorta"] == "totalsegmentator"
    assert am.source["spine"] == "totalsegmentator"
    assert (am.labels == structure("aorta").label)[:, 5, 24].all()
    assert (am.labels == structure("vertebrae_L2").label).any()
    assert am.slice_levels[15] == "L1" and am.slice_levels[10] == "L1-L2"
