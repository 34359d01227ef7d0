"""Released ligament calcification against a curved lamina at thick slices (issue #4):
kept when two pixels thick, while a one-pixel released rim is still dropped."""

from __future__ import annotations

import numpy as np

from calcdetect.candidates.core import _drop_lamina_edges

# A 3 mm slice with 0.94 mm pixels: the noisy thick-slice phantoms where the
# misses were (dev seeds 312 and 322).
SPACING = (3.0, 0.94, 0.94)
SHAPE = (3, 40, 40)


def _scene(layers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A lamina whose canal-facing edge runs diagonally (j + i <= 40 is bone) and,
    on the middle slice, a released calcification ``layers`` pixels thick on it.

    Returns labels, flat indices of the component, bone, zone, released.
    """
    j, i = np.indices(SHAPE[1:])
    bone = np.zeros(SHAPE, bool)
    bone[:] = (j + i <= 40) & (j >= 10) & (i >= 10)
    calc = np.zeros(SHAPE, bool)
    calc[1] = (j + i > 40) & (j + i <= 40 + layers) & (j >= 16) & (j < 22)
    zone = np.zeros(SHAPE, bool)
    zone[:, 10:35, 10:35] = True
    labels = np.zeros(SHAPE, np.int32)
    labels[calc] = 1
    return labels, np.flatnonzero(calc), bone, zone, calc.copy()


def _kept(layers: int) -> bool:
    labels, idx, bone, zone, released = _scene(layers)
    reg = np.zeros(idx.size, np.int64)
    _, n, _, _, _ = _drop_lamina_edges(labels, idx, reg, frozenset({1}), bone, zone, SPACING, None,
                                       released=released)
    return n == 1


def test_two_pixel_thick_released_calcification_on_a_curved_lamina_is_kept():
    # Regression: its farthest voxels lie one pixel diagonally off the lamina
    # (1.33 mm), short of the old 1.5 mm released reach; both such misses on dev
    # seeds 300-323 were true ligament calcifications of 4.4-5.1 mm.
    assert _kept(layers=2)


def test_one_pixel_released_rim_on_a_lamina_is_dropped():
    # A released rim one pixel deep is the lamina's partial-volume edge.
    assert not _kept(layers=1)
