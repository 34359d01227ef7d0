"""The coarse work grid: the rules run on ~2 x 2 x 2.5 mm and the labels come back
to the CT grid exactly (same shape, nearest neighbour), so a thin-slice CT gets
the same anatomy as the coarse one at a fraction of the cost."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_synth import SPACING, affine_for

from calcdetect.anatomy import build_anatomy
from calcdetect.anatomy.grid import (
    WorkGrid,
    block_majority,
    block_mean,
    to_fine_labels,
    to_fine_levels,
    work_grid,
)
from calcdetect.anatomy.regions import structure
from calcdetect.device import Device
from calcdetect.types import Volume


def test_work_grid_coarsens_thin_slices_and_leaves_coarse_scans_alone():
    # 512 x 512 x 400 at 0.78 mm / 1 mm: 2 x 2 x 2 blocks
    assert work_grid((400, 512, 512), (1.0, 0.78, 0.78)).factors == (2, 2, 2)
    # 0.625 mm slices at 0.6 mm pixels: 4 slices, 3 x 3 pixels
    assert work_grid((600, 512, 512), (0.625, 0.6, 0.6)).factors == (4, 3, 3)
    # already coarse (the synthetic trunk, 3 mm slices): untouched
    assert work_grid((100, 200, 200), SPACING).identity
    assert work_grid((80, 512, 512), (3.0, 0.98, 0.98)).factors == (1, 2, 2)
    # never fewer than 8 voxels along an axis
    assert work_grid((9, 512, 512), (0.625, 0.78, 0.78)).factors[0] == 1


def test_block_mean_and_majority_on_a_constructed_volume():
    grid = WorkGrid((2, 2, 2), (4, 4, 4))
    hu = np.zeros((4, 4, 4), np.float32)
    hu[1, :2, :2] = [[0, 40], [80, 120]]  # the middle slice of the first block of slices
    coarse = block_mean(hu, grid)
    assert coarse.shape == (2, 2, 2)
    assert coarse[0, 0, 0] == pytest.approx(60.0)  # in-plane mean of that slice's 2 x 2 block
    mask = np.zeros((4, 4, 4), bool)
    mask[:2, :2, :2] = True
    mask[2, 2, 2] = True  # 1 of 8: not a majority
    maj = block_majority(mask, grid)
    assert maj[0, 0, 0] and not maj[1, 1, 1]


def test_fine_labels_are_exact_nearest_neighbour_including_partial_blocks():
    grid = work_grid((101, 77, 65), (0.625, 0.6, 0.7))
    assert grid.factors == (4, 3, 2)
    coarse = np.random.default_rng(0).integers(0, 60, grid.shape).astype(np.uint8)
    fine = to_fine_labels(coarse, grid)
    assert fine.shape == (101, 77, 65)
    k, j, i = np.meshgrid(*(np.arange(n) for n in (101, 77, 65)), indexing="ij")
    idx = [np.minimum(a // f, n - 1) for a, f, n in zip((k, j, i), grid.factors, grid.shape)]
    assert np.array_equal(fine, coarse[tuple(idx)])
    levels = to_fine_levels(tuple(f"L{n}" for n in range(grid.shape[0])), grid)
    assert len(levels) == 101 and levels[0] == levels[3] == "L0" and levels[4] == "L1" and levels[-1] == "L24"


def _refined(volume: Volume) -> Volume:
    """The same CT on a grid twice as fine along every axis (each voxel repeated)."""
    arr = volume.array
    for axis in range(3):
        arr = np.repeat(arr, 2, axis=axis)
    sk, sj, si = volume.spacing
    return Volume(arr, (sk / 2, sj / 2, si / 2), affine_for(arr.shape, (sk / 2, sj / 2, si / 2)), volume.info)


def test_thin_slice_ct_gets_the_coarse_anatomy_on_its_own_grid(trunk, trunk_anatomy):
    """A 1.25 x 0.75 x 0.75 mm copy of the trunk is worked on at 2.5 x 1.5 x 1.5 mm,
    i.e. exactly the original: its labels must be the original ones, block for block."""
    fine = _refined(trunk.volume)
    am = build_anatomy(fine, Device("cpu"))
    assert am.labels.shape == fine.shape
    assert np.allclose(am.affine, fine.affine)
    expected = trunk_anatomy.labels
    for axis in range(3):
        expected = np.repeat(expected, 2, axis=axis)
    assert np.array_equal(am.labels, expected)
    assert am.slice_levels == tuple(lv for lv in trunk_anatomy.slice_levels for _ in range(2))
    assert (am.labels == structure("aorta").label).any()


def test_bone_mask_on_the_fine_grid_is_used(trunk):
    fine = _refined(trunk.volume)
    no_bone = np.zeros(fine.shape, bool)
    am = build_anatomy(fine, Device("cpu"), bone_mask=no_bone)
    # without bone there is no column, so no vertebra and no levels
    assert not np.isin(am.labels, [structure("vertebrae_L3").label, structure("sacrum").label]).any()
    assert all(lv is None for lv in am.slice_levels)
