"""The aorta ends at the bifurcation even where the tracked path slides on into
one common iliac artery: on dev phantoms it ran 47-80 mm down the left common
iliac, too gradually sideways for the lateral cut and too wide for the radius
cut, and that artery's plaque was reported as aortic."""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.anatomy.vessels import _bifurcation_cut, _lateral_departure_cut, _midline_departure_cut

SK, SJ, SI = SPACING = (3.0, 1.9, 1.9)  # 3 mm slices on the work grid
NK = 120
MIDLINE_I = 100.0
AORTA_LEFT_MM = 12.0  # the aorta's centre, left of the vertebral midline
BIF_K = 40  # k grows cranially: the aorta spans BIF_K..NK-1


def _aorta(slide: float | None, rng_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Centre line and radius of a tracked aorta; below ``BIF_K`` the path goes on
    into a common iliac leaving the midline at ``slide`` mm per mm (sign: side)."""
    rng = np.random.default_rng(rng_seed)
    centre = np.zeros((NK, 2))
    centre[:, 0] = 60.0
    lateral_mm = np.full(NK, AORTA_LEFT_MM) + rng.normal(0.0, 1.0, NK)  # the fit's jitter
    radius = np.full(NK, 10.3)
    if slide is not None:
        below = np.arange(BIF_K)
        lateral_mm[below] += slide * (BIF_K - below) * SK
        radius[below] = 8.4  # an iliac fitted one radius step narrower: not a halving
    # the circle search places centres on whole pixels of the work grid
    centre[:, 1] = np.round(MIDLINE_I + lateral_mm / SI)
    return centre, radius


@pytest.mark.parametrize("slide", [0.33, -0.33, 0.25])
def test_a_path_sliding_into_a_common_iliac_ends_at_the_bifurcation(slide):
    centre, radius = _aorta(slide)
    midline = np.full(NK, MIDLINE_I)
    end = _midline_departure_cut(centre, midline, 0, NK - 1, SPACING)
    # the drift's onset is where it is 3 mm off the course (onset_mm), plus
    # a slice or two of the fit's pixel steps
    assert abs(end - BIF_K) * SK <= 3.0 / abs(slide) + 2 * SK
    # the cuts that were there before miss this slide by centimetres
    old = max(_bifurcation_cut(radius, 0, NK - 1, centre=centre, spacing=SPACING),
              _lateral_departure_cut(centre, 0, NK - 1, SPACING))
    assert (BIF_K - old) * SK >= 30.0


def test_an_aorta_that_keeps_its_course_is_not_cut():
    centre, _ = _aorta(None)
    assert _midline_departure_cut(centre, np.full(NK, MIDLINE_I), 0, NK - 1, SPACING) == 0


def test_the_midline_not_the_image_axis_is_the_reference():
    # a spine that curves sideways (scoliosis, a tilted patient) takes the aorta
    # with it: both drift by 15 mm over the lower 120 mm, and that is no bifurcation
    centre, _ = _aorta(None)
    shift_px = np.clip((NK // 2 - np.arange(NK)) * SK, 0.0, None) * 0.125 / SI
    centre[:, 1] += shift_px
    assert _midline_departure_cut(centre, MIDLINE_I + shift_px, 0, NK - 1, SPACING) == 0
