"""Where the aorta ends decides whether plaque at L3-S1 is reported as aortic or
iliac (and whether it gets a side). Two ways it went wrong on phantoms:

* a calcified ring's inner edge fitted two radius steps small over 45 mm of the
  infrarenal aorta ended the aorta 78 mm above the bifurcation (80 kV, 40 HU
  noise, 3 mm slices): eight aortic plaques at L3-L5 were called iliac;
* a tracked path that stopped 2-3 slices into a common iliac kept that stretch
  as aorta (12-25 mm too low on 0.625-1.25 mm scans), its plaque called aortic.
"""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.vessels import _bifurcation_cut, _midline_departure_cut

AORTA_I = 97.0  # the aortic line (work-grid column); k grows cranially


def _ringed_aorta() -> tuple[np.ndarray, np.ndarray, int, tuple[float, float, float]]:
    """A tracked path on a 3 mm work grid, bottom slice first: two iliacs side by
    side fitted as one wide circle on the aortic line, the path in the left
    common iliac (narrow, 7-11 mm off the line) for four slices, the aorta at
    its true width, 45 mm of the ring's inner edge (10.3 mm, wobbling by up to
    8 mm), then the aorta fitted on the ring's outer edge (14 mm)."""
    spacing = (3.0, 1.876, 1.876)
    radius = np.array([14.0] * 9 + [12.6, 11.2, 9.8] + [8.4] * 4 + [12.1] * 11 + [10.3] * 15 + [14.0] * 65)
    centre = np.tile([53.0, AORTA_I], (radius.size, 1))
    centre[12:16, 1] = [103.0, 103.0, 102.0, 101.0]  # the left common iliac
    centre[32:35] += [[-4.0, 2.0], [-3.0, 3.0], [-1.0, 3.0]]  # the ring's wobble
    bifurcation = 16
    return radius, centre, bifurcation, spacing


def test_an_aorta_fitted_narrow_on_its_course_is_still_the_aorta():
    radius, centre, bifurcation, spacing = _ringed_aorta()
    end = _bifurcation_cut(radius, 0, radius.size - 1, centre=centre, spacing=spacing)
    assert abs(end - bifurcation) <= 1


def test_the_path_leaving_the_course_ends_the_aorta_whatever_comes_back_below():
    # the same path without the narrow stretch: the wide circle on the aortic
    # line below the iliac is two iliacs, not the aorta coming back
    radius, centre, bifurcation, spacing = _ringed_aorta()
    radius[27:42] = 12.1
    centre[32:35] = [53.0, AORTA_I]
    end = _bifurcation_cut(radius, 0, radius.size - 1, centre=centre, spacing=spacing)
    assert abs(end - bifurcation) <= 1


def test_a_narrow_aorta_that_leaves_its_course_is_cut_where_it_narrows():
    # a common iliac fitted at the same narrow radius as the ring: 3 slices off
    # the course inside the reach are the iliac
    spacing = (3.0, 1.876, 1.876)
    radius = np.array([10.3] * 10 + [14.0] * 40)
    centre = np.tile([53.0, AORTA_I], (radius.size, 1))
    centre[:7, 1] += np.arange(7, 0, -1) * 1.5  # 13-3 mm to the left, walking up
    assert _bifurcation_cut(radius, 0, radius.size - 1, centre=centre, spacing=spacing) == 10


def _path_stopping_in_an_iliac(tail_offsets_mm: list[float]) -> tuple[np.ndarray, np.ndarray, tuple]:
    """2.5 mm slices; the aorta 14 mm left of the midline, the bottom slices
    (bottom first) at ``tail_offsets_mm``; the path ends there."""
    spacing = (2.5, 1.876, 1.876)
    nk = 100
    offsets = np.full(nk, 14.1)
    offsets[: len(tail_offsets_mm)] = tail_offsets_mm
    midline = np.full(nk, 90.0)
    centre = np.column_stack([np.full(nk, 75.0), midline + offsets / spacing[2]])
    return centre, midline, spacing


def test_a_drift_into_an_iliac_that_runs_off_the_path_end_is_cut():
    centre, midline, spacing = _path_stopping_in_an_iliac([26.3, 23.9, 23.4, 21.7, 19.7, 15.9])
    end = _midline_departure_cut(centre, midline, 0, centre.shape[0] - 1, spacing)
    assert end == 5  # the first slice back within 3 mm of the course
    # without accepting a drift that reaches the end, the iliac stays aorta
    assert _midline_departure_cut(centre, midline, 0, centre.shape[0] - 1, spacing, tail_mm=1e9) == 0


def test_a_jittering_aortic_end_is_not_cut():
    # the fit's pixel steps at the lowest slices (up to 6 mm) are no departure
    centre, midline, spacing = _path_stopping_in_an_iliac([19.7, 8.4, 19.7, 14.1])
    assert _midline_departure_cut(centre, midline, 0, centre.shape[0] - 1, spacing) == 0
