"""The kidney search's shortcuts give the voxels of the plain operations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcdetect.anatomy.kidneys import _box_dilation, _box_erosion, _grow_ball


def _blob(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    centre = [int(rng.integers(0, s)) for s in shape]
    mask[tuple(slice(max(c - int(rng.integers(0, 6)), 0), c + int(rng.integers(1, 6))) for c in centre)] = True
    return mask & (rng.random(shape) < 0.7)


def test_growth_in_the_masks_box_is_the_whole_array_growth():
    # Spacings that divide the radius put voxels at exactly r: they must stay in.
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        shape = tuple(int(v) for v in rng.integers(8, 40, 3))
        mask = _blob(rng, shape)
        if not mask.any():
            continue
        spacing = tuple(float(v) for v in rng.choice([0.78125, 1.0, 1.25, 1.5, 2.0, 3.0], 3))
        r = float(rng.choice([2.5, 4.0, 6.0, 8.0]))
        whole = ndi.distance_transform_edt(~mask, sampling=spacing) <= r
        assert np.array_equal(_grow_ball(mask, r, spacing), whole), (shape, spacing, r)
        checked += 1
    assert checked > 150


@pytest.mark.parametrize("size", [(1, 7, 7), (3, 3, 3), (1, 3, 5)])
def test_box_dilation_and_erosion_axis_by_axis_match_the_3d_box(size):
    rng = np.random.default_rng(1)
    box = np.ones(size, bool)
    for _ in range(60):
        shape = tuple(int(v) for v in rng.integers(1, 30, 3))
        mask = rng.random(shape) < rng.choice([0.05, 0.5, 0.95])
        assert np.array_equal(_box_dilation(mask, size), ndi.binary_dilation(mask, structure=box))
        assert np.array_equal(_box_erosion(mask, size), ndi.binary_erosion(mask, structure=box, border_value=0))
