"""The aorta's tracked path is kept as one run even where it left the aorta for a
detour: on a noisy thick-slice scan the run above the detour ended at L1, the
iliac arteries were then dropped, and all their plaque was reported as "other"."""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.vessels import Tube, _join_aorta_runs

SPACING = (3.0, 1.9, 1.9)  # 3 mm slices on the work grid


def _tube(nk: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((nk, 2), np.nan), np.full(nk, np.nan)


def test_the_aorta_continues_past_a_detour_onto_a_neighbour():
    # k grows cranially. Aorta at (55, 96) over k 96-133; from k 80 to 94 the
    # path sat on a neighbour 33 mm away (posterior and left); from k 78 down it
    # is back on the aorta, and below k 66 it slides into the left common iliac.
    centre, radius = _tube(134)
    centre[96:134], radius[96:134] = (55.0, 96.0), 10.3
    centre[80:95], radius[80:95] = (70.0, 107.0), 8.4
    centre[49:79], radius[49:79] = (53.0, 98.0), 8.4
    centre[49:66, 1] = np.linspace(108.0, 101.0, 17)  # the iliac leaves the course
    tube, (k0, k1) = _join_aorta_runs(Tube(centre, radius, np.zeros(134)), SPACING)
    assert k1 == 133
    # the aorta reaches below L2 again (the old rule stopped at k 96), and not
    # far into the iliac: the run ends where it is 12 mm off the course (k 63;
    # the iliac's lowest slices lie 17-23 mm off)
    assert 60 <= k0 <= 66
    # the detour is replaced by the aorta's course between the two runs
    assert np.all(np.abs(tube.centre[80:95, 1] - 97.0) < 1.5)
    assert np.all(np.isfinite(tube.radius_mm[k0 : k1 + 1]))


def test_a_run_off_the_aortas_course_is_not_joined():
    # Below the aorta's run a round structure 30 mm to the side (a bowel loop, a
    # vein): not the aorta, however long.
    centre, radius = _tube(100)
    centre[50:100], radius[50:100] = (55.0, 96.0), 10.3
    centre[10:45], radius[10:45] = (55.0, 112.0), 8.4
    tube, run = _join_aorta_runs(Tube(centre, radius, np.zeros(100)), SPACING)
    assert run == (50, 99)
    assert not np.isfinite(tube.radius_mm[45:50]).any()


def test_a_blip_or_a_run_beyond_the_gap_limit_is_not_joined():
    centre, radius = _tube(120)
    centre[60:120], radius[60:120] = (55.0, 96.0), 10.3
    centre[50:52], radius[50:52] = (55.0, 96.0), 10.3  # two slices: 6 mm, noise
    centre[0:30], radius[0:30] = (55.0, 96.0), 10.3  # 90 mm below: too far to bridge
    _, run = _join_aorta_runs(Tube(centre, radius, np.zeros(120)), SPACING)
    assert run == (60, 119)
