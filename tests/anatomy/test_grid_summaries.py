"""The anatomy map's per-structure boxes and per-slice counts, worked out on the
work grid, are what whole-map passes over the CT-sized map give: classification
reads them to place every lesion."""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.anatomy import build_anatomy
from calcdetect.anatomy.grid import fine_label_boxes, fine_slice_label_counts, to_fine_labels, work_grid
from calcdetect.device import Device
from calcdetect.types import AnatomyMap, Volume


def _fresh(labels: np.ndarray) -> AnatomyMap:
    """A map with nothing cached: its summaries come from whole-map passes."""
    return AnatomyMap(labels, np.eye(4), (None,) * labels.shape[0])


@pytest.mark.parametrize("fine_shape, spacing", [
    ((41, 37, 29), (1.0, 0.7, 0.9)),  # partial blocks at every far edge
    ((40, 36, 28), (0.625, 0.78, 0.78)),  # whole blocks
    ((64, 33, 35), (3.0, 1.0, 0.5)),  # slices already coarse
])
def test_work_grid_summaries_match_the_fine_map(fine_shape, spacing):
    grid = work_grid(fine_shape, spacing)
    assert not grid.identity
    rng = np.random.default_rng(3)
    coarse = np.zeros(grid.shape, np.uint8)
    coarse[2:5, 1:4, 3:] = 7
    coarse[-1, -1, -1] = 3  # a structure only in the far-edge blocks
    coarse[0, :, 0] = 12
    coarse[rng.random(grid.shape) > 0.97] = 5
    fine = _fresh(to_fine_labels(coarse, grid))
    assert fine_label_boxes(coarse, grid) == fine.structure_boxes
    counts = fine_slice_label_counts(coarse, grid)
    assert counts.dtype == fine.slice_label_counts.dtype
    np.testing.assert_array_equal(counts, fine.slice_label_counts)


def test_an_empty_map_has_no_boxes_and_zero_counts():
    grid = work_grid((16, 20, 20), (1.0, 0.5, 0.5))
    coarse = np.zeros(grid.shape, np.uint8)
    fine = _fresh(to_fine_labels(coarse, grid))
    assert fine_label_boxes(coarse, grid) == fine.structure_boxes == {}
    np.testing.assert_array_equal(fine_slice_label_counts(coarse, grid), fine.slice_label_counts)


def test_built_map_summaries_match_whole_map_passes(trunk):
    """On a CT finer than the work grid, the map build_anatomy returns already
    knows its boxes and counts, and they are the whole-map answers."""
    vol = trunk.volume
    # the synthetic trunk at half its pixel size: the rules run on a coarser grid
    fine = Volume(np.repeat(np.repeat(vol.array, 2, axis=1), 2, axis=2),
                  (vol.spacing[0], vol.spacing[1] / 2, vol.spacing[2] / 2), vol.affine, vol.info)
    assert not work_grid(fine.shape, fine.spacing).identity
    am = build_anatomy(fine, Device("cpu"))
    assert "structure_boxes" in am.__dict__ and "slice_label_counts" in am.__dict__
    assert len(am.structure_boxes) > 5  # spine, vessels, kidneys ...
    again = _fresh(am.labels)
    assert am.structure_boxes == again.structure_boxes
    np.testing.assert_array_equal(am.slice_label_counts, again.slice_label_counts)
