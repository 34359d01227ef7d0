"""Faster ways of measuring a lesion must give exactly what the plain ways give.

* the partial-volume margin and the background shell round a lesion are
  scattered from its surface voxels, not found with distance transforms;
* small 2-D dilations are shifted ORs, not scipy calls;
* the final candidate pass may edit the pipeline's bone mask and the early
  pass's margin in place instead of copying them: same candidates.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcdetect.candidates import find_candidates
from calcdetect.candidates import measure as M
from calcdetect.device import Device
from test_speed_reuse import _vertebra_and_aorta


def _margin_by_distance(mask: np.ndarray, r_near: np.ndarray) -> np.ndarray:
    """The margin as measure.py found it before: an ellipsoid distance transform,
    plus the in-plane disc copied one slice up and down."""
    near = ndi.distance_transform_edt(~mask, sampling=1.0 / r_near) <= 1.0 + 1e-9
    in_plane = ndi.distance_transform_edt(~mask, sampling=(1e3, 1.0 / r_near[1], 1.0 / r_near[2])) <= 1.0 + 1e-9
    near[1:] |= in_plane[:-1]
    near[:-1] |= in_plane[1:]
    return near


def _lesion_crops(seed: int) -> list[np.ndarray]:
    """Random lesion-like masks in crops, some touching the crop's faces."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(6):
        shape = tuple(int(v) for v in rng.integers(6, 18, size=3))
        blob = ndi.binary_dilation(rng.random(shape) > 0.985, iterations=int(rng.integers(0, 3)))
        blob[tuple(int(v) // 2 for v in shape)] = True  # never empty
        out.append(blob)
    edge = np.zeros((7, 9, 9), bool)
    edge[0, 0, :3] = True  # in a corner: the footprint is cut by the crop
    out.append(edge)
    return out


@pytest.mark.parametrize("spacing", [(1.0, 0.78, 0.78), (3.0, 0.7, 0.7), (0.625, 0.5, 0.5), (2.5, 1.0, 1.0)])
@pytest.mark.parametrize("dense", [False, True])
def test_margin_and_shell_scattered_from_the_surface_are_the_distance_transforms(spacing, dense, monkeypatch) -> None:
    if dense:  # the path taken for very large lesions
        monkeypatch.setattr(M, "_SPARSE_DILATION_MAX_PAIRS", 0)
    r_near = M._ellipsoid_radii(spacing, M.PV_MARGIN_MM)
    r_outer = M._ellipsoid_radii(spacing, M.BG_SHELL_MM)
    near_fp, outer_fp = M._margin_footprints(tuple(int(r) for r in r_near), tuple(int(r) for r in r_outer))
    for mask in _lesion_crops(int(spacing[0] * 10)):
        near, outer = M._dilate_by_offsets(mask, near_fp, outer_fp)
        np.testing.assert_array_equal(near, _margin_by_distance(mask, r_near))
        np.testing.assert_array_equal(outer, ndi.distance_transform_edt(~mask, sampling=1.0 / r_outer) <= 1.0 + 1e-9)


def test_ellipsoid_offsets_keep_the_surface_points() -> None:
    off = M._ellipsoid_offsets((2, 3, 3))
    rows = {tuple(int(v) for v in o) for o in off}
    assert (2, 0, 0) in rows and (0, 3, 0) in rows and (0, 0, -3) in rows  # on the surface: inside
    assert (2, 1, 0) not in rows and (1, 3, 0) not in rows
    assert len(rows) == len(off) and (0, 0, 0) in rows


def test_surface_and_3x3_dilation_match_scipy() -> None:
    rng = np.random.default_rng(3)
    mask = ndi.binary_dilation(rng.random((9, 12, 11)) > 0.95, iterations=1)
    eroded = ndi.binary_erosion(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
    np.testing.assert_array_equal(M._surface(mask), mask & ~eroded)
    image = rng.random((13, 7)) > 0.8
    np.testing.assert_array_equal(M._dilate_3x3(image), ndi.binary_dilation(image, np.ones((3, 3), bool)))


def test_final_pass_editing_in_place_finds_what_a_copying_pass_finds() -> None:
    vol, bone, blood = _vertebra_and_aorta()
    protect = np.zeros_like(bone)
    protect[2:10, 18:25, 24:38] = True  # the aortic wall against the body: edits the margin
    kwargs = dict(blood_pool_mask=blood, protect_mask=protect, workers=1)
    alone = find_candidates(vol, Device("cpu"), bone_mask=bone.copy(), **kwargs)
    given = bone.copy()
    early = find_candidates(vol, Device("cpu"), bone_mask=given, workers=1, keep_bone_margin=True)
    edited = find_candidates(vol, Device("cpu"), bone_mask=given, measured=early, edit_in_place=True, **kwargs)
    np.testing.assert_array_equal(edited.labels, alone.labels)
    assert len(alone.lesions) >= 2 and repr(edited.lesions) == repr(alone.lesions)
    np.testing.assert_array_equal(edited.bone_mask, alone.bone_mask)
    # The given mask was edited, not copied: it is the result's bone mask, less the blood pool.
    assert edited.bone_mask is given and (bone & blood).any() and not (given & blood).any()


def test_farthest_pair_is_the_pdist_one_bit_for_bit() -> None:
    """Voxel centres on anisotropic lattices give many equal distances: the pair
    (the first farthest, as argmax of the pdist matrix) must be the same one."""
    from scipy.spatial.distance import pdist, squareform

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 90))
        pts = rng.integers(0, 12, (n, 3)).astype(np.float64) * rng.uniform(0.3, 3.0, 3)
        d = squareform(pdist(pts))
        assert M.farthest_pair(pts) == tuple(int(v) for v in np.unravel_index(int(np.argmax(d)), d.shape))
