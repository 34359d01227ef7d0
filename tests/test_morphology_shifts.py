"""Both exact numpy morphologies (shifted passes for small footprints, surface
scatter for large ones) equal scipy's, border rules included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from calcdetect.candidates._voxel import (
    _np_dilate,
    _np_erode,
    _np_morph_by_shifts,
    _shift_passes,
    ball_footprint,
    dilate,
    erode,
)


_IMPLEMENTATIONS = {
    "shifted passes": (lambda x, fp: _np_morph_by_shifts(x, fp, erode_=False),
                       lambda x, fp: _np_morph_by_shifts(x, fp, erode_=True)),
    "surface scatter": (_np_dilate, _np_erode),
}


@pytest.mark.parametrize("name", sorted(_IMPLEMENTATIONS))
@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), density=st.floats(0.05, 0.95),
       sk=st.sampled_from([0.5, 0.625, 1.0, 1.25, 3.0]), sj=st.sampled_from([0.6, 0.78, 0.94, 1.0]),
       radius=st.floats(0.4, 3.2))
def test_numpy_morphology_equals_scipy(name, seed, density, sk, sj, radius):
    dilate_, erode_ = _IMPLEMENTATIONS[name]
    fp = ball_footprint((sk, sj, sj), radius)
    x = np.random.default_rng(seed).random((7, 11, 12)) < density
    np.testing.assert_array_equal(dilate_(x, fp), ndi.binary_dilation(x, fp, border_value=0))
    np.testing.assert_array_equal(erode_(x, fp), ndi.binary_erosion(x, fp, border_value=1))


def test_the_pipeline_radii_take_the_shifted_path_at_1_mm_voxels():
    """1 mm closing: a 6-neighbour cross; 1.5 mm opening: a 3 x 3 x 3 box (separable)."""
    cross = ball_footprint((1.0, 0.78, 0.78), 1.0)
    box = ball_footprint((1.0, 0.78, 0.78), 1.5)
    assert cross.sum() == 7 and _shift_passes(cross) == 6
    assert box.all() and box.shape == (3, 3, 3) and _shift_passes(box) == 6


def test_public_dilate_erode_on_a_mask_filling_its_array():
    """The whole-array case (no crop margin) keeps scipy's border rules."""
    x = np.random.default_rng(1).random((8, 12, 12)) < 0.6
    sp = (1.0, 0.78, 0.78)
    for r in (1.0, 1.5):
        fp = ball_footprint(sp, r)
        np.testing.assert_array_equal(dilate(x, sp, r), ndi.binary_dilation(x, fp, border_value=0))
        np.testing.assert_array_equal(erode(x, sp, r), ndi.binary_erosion(x, fp, border_value=1))
