"""Work reused between stages must give exactly what computing it afresh gives.

* the final candidate pass takes the early pass's bone margin and recomputes it
  only around the bone voxels removed since (blood pool, released ligament);
* the aorta search measures a circle's distance from the vertebral column at
  its few peaks instead of transforming the whole window;
* a mask's bounding box comes from two passes over it, not one per axis.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcdetect.anatomy.vessels import _distance_to_mask_px
from calcdetect.candidates import find_candidates
from calcdetect.candidates._voxel import bbox_of, dilate
from calcdetect.candidates.core import _margin_without
from calcdetect.device import Device
from calcdetect.types import AcquisitionInfo, Volume


@pytest.mark.parametrize("spacing", [(1.0, 0.7, 0.7), (3.0, 0.8, 0.8), (0.625, 1.2, 1.0)])
def test_margin_without_removed_voxels_is_the_fresh_dilation(spacing) -> None:
    rng = np.random.default_rng(5)
    bone = ndi.binary_dilation(rng.random((14, 30, 26)) > 0.97, iterations=2)
    radius = max(1.0, spacing[1], spacing[2])
    margin = dilate(bone, spacing, radius)
    before = margin.copy()
    final = bone.copy()
    groups = []
    # one group in the middle, one touching the volume's edges (boxes clipped there)
    for box in ((slice(5, 8), slice(10, 16), slice(8, 14)), (slice(0, 2), slice(0, 5), slice(20, 26))):
        sub = np.zeros_like(bone)
        sub[box] = final[box]
        groups.append(np.flatnonzero(sub))
        final[box] = False
    assert all(g.size for g in groups)
    got = _margin_without(margin, final, groups, spacing, radius)
    np.testing.assert_array_equal(got, dilate(final, spacing, radius))
    np.testing.assert_array_equal(margin, before)  # the earlier margin is not written


def _vertebra_and_aorta() -> tuple[Volume, np.ndarray, np.ndarray]:
    hu = np.full((12, 48, 48), 40.0, np.float32)
    hu[2:10, 24:40, 14:30] = 700.0  # a vertebral body
    hu[2:10, 8:18, 26:36] = 45.0  # the aortic lumen in front of it ...
    hu[5, 16:18, 28:31] = 450.0  # ... with a plaque on its wall
    hu[4:7, 20:24, 18:21] = 180.0  # calcium on the body's anterior cortex
    hu[4, 18:20, 27:29] = 300.0  # bone-threshold voxels inside the blood pool
    bone = hu >= 200.0
    blood = np.zeros(hu.shape, bool)
    blood[2:10, 9:21, 25:37] = True
    return Volume(hu, (1.0, 0.8, 0.8), np.eye(4), AcquisitionInfo("CT", kvp=120.0)), bone, blood


def test_final_pass_with_the_early_margin_finds_what_it_finds_alone() -> None:
    vol, bone, blood = _vertebra_and_aorta()
    assert (bone & blood).any()  # the blood pool takes voxels out of the bone: a local recompute
    early = find_candidates(vol, Device("cpu"), bone_mask=bone, workers=1, keep_bone_margin=True)
    assert early.bone_margin is not None
    kept = early.bone_margin.copy()
    kwargs = dict(bone_mask=bone, blood_pool_mask=blood, workers=1)
    alone = find_candidates(vol, Device("cpu"), **kwargs)
    reused = find_candidates(vol, Device("cpu"), measured=early, **kwargs)
    np.testing.assert_array_equal(reused.labels, alone.labels)
    assert len(alone.lesions) >= 2 and repr(reused.lesions) == repr(alone.lesions)
    for r, a in zip(reused.lesions, alone.lesions):
        np.testing.assert_array_equal(r.mask, a.mask)
    np.testing.assert_array_equal(early.bone_margin, kept)  # the early result is not written
    assert alone.bone_margin is None  # kept only when asked: it is a volume-sized mask


def test_distance_to_mask_is_the_distance_transform_at_the_points() -> None:
    rng = np.random.default_rng(8)
    mask = rng.random((37, 41)) > 0.96
    cy, cx = rng.integers(0, 37, 25), rng.integers(0, 41, 25)
    expected = ndi.distance_transform_edt(~mask)[cy, cx]
    np.testing.assert_array_equal(_distance_to_mask_px(mask, cy, cx), expected)


@pytest.mark.parametrize("shape", [(7, 9, 11), (6, 8), (13,)])
def test_bbox_of_is_the_extent_along_every_axis(shape) -> None:
    rng = np.random.default_rng(3)
    for density in (0.5, 0.02, 0.0):
        mask = rng.random(shape) < density
        pad = (2, 0, 1)[: len(shape)]
        expected = None
        if mask.any():
            hits = [np.flatnonzero(mask.any(axis=tuple(b for b in range(mask.ndim) if b != a)))
                    for a in range(mask.ndim)]
            expected = tuple(slice(max(0, int(h[0]) - p), min(n, int(h[-1]) + 1 + p))
                             for h, p, n in zip(hits, pad, shape))
        assert bbox_of(mask, pad) == expected
