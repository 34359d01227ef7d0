"""Shortcuts taken for speed must give exactly what the plain computation gives.

* the pipeline's structure masks (label ranges compared slab by slab, or each
  read in its structures' box) are ``AnatomyMap.mask_of`` of the same labels;
* the femoral-head search (a distance transform on the pelvic bone's box) finds
  what the distance transform of the whole volume finds, also when the bone
  touches the edge of the field of view.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcdetect.anatomy.regions import structure
from calcdetect.anatomy.vessels import VesselSettings, _head_sphere_fit, find_femoral_heads
from calcdetect.candidates._voxel import fill_holes_per_slice
from calcdetect.pipeline import _PROTECTED, _structure_masks
from calcdetect.types import AcquisitionInfo, AnatomyMap, Volume, label_runs


def _map_and_volume(nk: int = 40) -> tuple[AnatomyMap, Volume]:
    rng = np.random.default_rng(4)
    labels = np.zeros((nk, 24, 20), dtype=np.uint8)
    for name, n in (("aorta", 30), ("common_iliac_artery_left", 12), ("internal_iliac_artery_right", 5),
                    ("ligamentum_flavum_zone", 9), ("kidney_left", 20)):
        k, j, i = (rng.integers(0, s, n) for s in labels.shape)
        labels[k, j, i] = structure(name).label
    vol = Volume(np.zeros(labels.shape, np.float32), (1.0, 1.0, 1.0), np.eye(4), AcquisitionInfo("CT", kvp=120.0))
    return AnatomyMap(labels=labels, affine=np.eye(4), slice_levels=(None,) * nk), vol


@pytest.mark.parametrize("boxes_known", [False, True])
@pytest.mark.parametrize("workers", [1, 3])
def test_structure_masks_are_mask_of_the_same_labels(workers: int, boxes_known: bool) -> None:
    amap, vol = _map_and_volume()
    groups = (("aorta",), _PROTECTED, ("ligamentum_flavum_zone",), ("kidney_left", "aorta"), ("femur",))
    if boxes_known:
        amap.structure_boxes  # noqa: B018 -- asked once, as the rules' map comes
    assert amap.knows_structure_boxes == boxes_known
    got = _structure_masks(amap, vol, groups, workers)
    for names, mask in zip(groups, got):
        expected = amap.mask_of([structure(n).label for n in names])
        if expected is None:
            assert mask is None, names
        else:
            np.testing.assert_array_equal(mask, expected)


def test_structure_masks_need_the_ct_grid() -> None:
    amap, _ = _map_and_volume()
    other = Volume(np.zeros((5, 5, 5), np.float32), (1.0, 1.0, 1.0), np.eye(4), AcquisitionInfo("CT"))
    assert _structure_masks(amap, other, (("aorta",),)) == [None]


def test_label_runs_group_consecutive_ids() -> None:
    assert label_runs([42, 40, 41, 50, 40]) == [(40, 42), (50, 50)]
    assert label_runs([]) == []


def _heads_on_whole_volume(bone, spacing, body_centre, spine_mask, below_k, s=VesselSettings()):
    """The femoral-head search with the distance transform of the whole volume (the reference)."""
    top = min(max(below_k, 0), bone.shape[0] - 1)
    sub = fill_holes_per_slice(np.ascontiguousarray(bone[: top + 1])) & ~spine_mask[: top + 1]
    dist = ndi.distance_transform_edt(np.pad(sub, ((1, 1), (0, 0), (0, 0))), sampling=spacing)[1:-1]
    off_mm = (np.arange(bone.shape[2]) - float(np.nanmedian(body_centre[: top + 1, 1]))) * spacing[2]
    out = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lateral = (sign * off_mm >= s.femoral_head_lateral_mm[0]) & (sign * off_mm <= s.femoral_head_lateral_mm[1])
        d = np.where(lateral[None, None, :], dist, 0.0)
        k, j, i = np.unravel_index(int(np.argmax(d)), d.shape)
        if s.femoral_head_radius_mm[0] <= d[k, j, i] <= s.femoral_head_radius_mm[1]:
            # the head's sphere fit, on the whole volume's mask too
            r = float(d[k, j, i])
            fit = _head_sphere_fit(sub, spacing, (int(k), int(j), int(i)), r, s.femoral_head_radius_mm)
            if fit is not None:
                (k, j, i), r = fit
            out[side] = (float(k), float(j), float(i), r)
    return out


@pytest.mark.parametrize("shift_i", [0, 50])
def test_femoral_heads_on_the_bone_box_match_the_whole_volume(shift_i: int) -> None:
    """Heads of 22 mm, cut flat in front, beside a column; with ``shift_i`` the
    left head runs into the edge of the field of view (no background beyond it:
    the box must not add any)."""
    spacing = (2.5, 2.0, 2.0)
    nk, nj, ni = 30, 110, 200
    k, j, i = np.meshgrid(np.arange(nk) * spacing[0], np.arange(nj) * spacing[1], np.arange(ni) * spacing[2],
                          indexing="ij")
    mid = 200.0 + shift_i * spacing[2]
    bone = np.zeros((nk, nj, ni), dtype=bool)
    for side in (-1, 1):
        bone |= (k - 30.0) ** 2 + (j - 120.0) ** 2 + (i - mid - side * 88.0) ** 2 <= 22.0**2
    # Cut flat in front: the heads' nearest background lies across the front of
    # the bone's box (the box needs its background margin).
    bone &= j >= 104.0
    bone |= (k > 50.0) & (np.abs(i - mid) <= 150.0) & (np.abs(j - 150.0) <= 3.0)  # a plate above the heads
    column = (j - 170.0) ** 2 + (i - mid) ** 2 <= 20.0**2
    bone |= column
    assert bone[:, :, -1].any() == (shift_i > 0)
    body_centre = np.tile([85.0, mid / spacing[2]], (nk, 1))
    got = find_femoral_heads(bone, spacing, body_centre, column, below_k=nk - 2)
    expected = _heads_on_whole_volume(bone, spacing, body_centre, column, nk - 2)
    assert set(got) == set(expected) and expected
    for side, (ek, ej, ei, er) in expected.items():
        h = got[side]
        assert (h.k, h.j, h.i, h.radius_mm) == (ek, ej, ei, er)


def test_bone_edits_never_write_the_callers_bone_mask() -> None:
    """The blood pool and then a second removal edit the bone mask: the first
    edit copies it, the second may edit that copy, the caller's mask stays."""
    from calcdetect.candidates.core import _without

    rng = np.random.default_rng(2)
    bone = rng.random((6, 10, 12)) > 0.5
    kept = bone.copy()
    blood = np.zeros_like(bone)
    blood[2, 3:6, 4:8] = True
    other = np.zeros_like(bone)
    other[4, 1:3, :] = True
    first = _without(bone, blood, in_place=False)
    assert first is not bone
    second = _without(first, other, in_place=True)
    assert second is first
    np.testing.assert_array_equal(bone, kept)
    np.testing.assert_array_equal(second, kept & ~blood & ~other)
    assert _without(bone, np.zeros_like(bone), in_place=True) is bone  # nothing to remove: no copy


def test_find_candidates_leaves_the_given_bone_mask_alone() -> None:
    from calcdetect.candidates import find_candidates
    from calcdetect.device import Device

    hu = np.zeros((12, 40, 40), np.float32)
    hu[3:9, 5:15, 5:15] = 700.0  # "bone"
    hu[3:9, 25:35, 20:24] = 40.0  # blood pool
    hu[5, 28:30, 21:23] = 400.0  # a plaque in it
    bone = hu >= 200.0
    bone[3:9, 25:35, 20:24] |= hu[3:9, 25:35, 20:24] >= 200.0
    given = bone.copy()
    blood = np.zeros(hu.shape, bool)
    blood[3:9, 25:35, 20:24] = True
    vol = Volume(hu, (1.0, 1.0, 1.0), np.eye(4), AcquisitionInfo("CT", kvp=120.0))
    c = find_candidates(vol, Device("cpu"), bone_mask=bone, blood_pool_mask=blood, workers=1)
    np.testing.assert_array_equal(bone, given)
    assert not (c.bone_mask & blood).any()


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_metal_found_by_its_maximum_as_by_its_mask(dtype) -> None:
    """The metal test reads the maximum first; a NaN maximum falls back to the mask."""
    from calcdetect.candidates import find_candidates
    from calcdetect.device import Device

    hu = np.zeros((10, 30, 30), dtype=dtype)
    hu[4:6, 10:13, 10:13] = 3500  # metal
    hu[4:6, 20:23, 20:23] = 400  # calcium
    vol = Volume(hu, (1.0, 1.0, 1.0), np.eye(4), AcquisitionInfo("CT", kvp=120.0))
    c = find_candidates(vol, Device("cpu"), workers=1)
    assert c.metal_mask[5, 11, 11] and any("Metal" in w for w in c.warnings)
    if dtype is np.float32:
        hu[0, 0, 0] = np.nan  # NaN wins the maximum; the metal is still found
        c = find_candidates(vol, Device("cpu"), workers=1)
        assert c.metal_mask[5, 11, 11]
    hu[4:6, 10:13, 10:13] = 0
    c = find_candidates(vol, Device("cpu"), workers=1)
    assert not c.metal_mask.any() and not any("Metal" in w for w in c.warnings)
