"""The aorta's path does not leave a calcified aorta because its fitted radius flips.

On a 3 mm / 120 kVp / 25 HU phantom (held-out seed 1534) a circumferential
calcified ring in the aortic wall gave three concentric circles per slice --
the ring's inner edge, the lumen and the ring's outer edge -- and the circle
search reported one or the other from slice to slice (6.5, 10.3 or 14 mm).
Each flip paid the path's radius-change cost (up to 0.44 for 6.5 <-> 14 mm),
so over L2-L4 the path left the aorta for the round, steady left psoas 32 mm
away (two cheap restarts through the absent state), the runs above and below
could not be joined across the 69 mm detour, the aorta ended at L1 and 33
aortoiliac plaques were called "other". A flip between concentric circles is
one vessel; the cost of a radius change is capped
(``VesselSettings.radius_change_cap_mm``).

The scene is that scan's per-slice circles (work grid, 3 mm slices): the
aorta's best circle on its centre with the fitted radius and score measured
there over L2-L4, and the psoas as a steady competitor.
"""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.vessels import VesselSettings, _join_aorta_runs, _viterbi

SPACING = (3.0, 1.876, 1.876)  # the work grid of a 3 mm, 0.94 mm-pixel CT
AORTA = (55.0, 96.0)  # (j, i) px
PSOAS = (68.0, 107.0)  # 32 mm posterior-left: against the vertebral body
# The aorta's circle over L2-L4 on seed 1534, cranial first: (score, radius mm).
CALCIFIED = [(0.48, 10.3), (0.20, 15.9), (0.31, 10.3), (0.51, 10.3), (0.58, 10.3), (0.39, 10.3),
             (0.45, 14.0), (0.52, 10.3), (0.39, 12.1), (0.48, 10.3), (0.45, 10.3), (0.29, 12.1),
             (0.48, 12.1), (0.39, 6.5), (0.59, 14.0), (0.55, 14.0), (0.53, 14.0), (0.54, 10.3),
             (0.65, 14.0), (0.50, 6.5), (0.73, 14.0), (0.50, 6.5), (0.51, 6.5), (0.55, 10.3)]
PSOAS_SCORE = 0.47  # its circles' mean score over the same slices
STEADY = 12  # slices of plain aorta above and below the calcified stretch


def _scene() -> list[list[tuple[float, float, float, float]]]:
    """Per slice (k grows cranially) the circles ``(score, j, i, r_px)``: the
    aorta and the psoas, best first."""
    px = SPACING[2]
    middle = [[(sc, *AORTA, r / px), (PSOAS_SCORE, *PSOAS, 10.3 / px)] for sc, r in reversed(CALCIFIED)]
    steady = [[(0.55, *AORTA, 12.1 / px), (0.35, *PSOAS, 10.3 / px)] for _ in range(STEADY)]
    return [sorted(c, reverse=True) for c in steady + middle + steady]


def _on_aorta(settings: VesselSettings) -> np.ndarray:
    """Per slice: whether the kept aorta (path, then the run joining) lies on the aorta."""
    tube = _viterbi(_scene(), SPACING, settings)
    tube, (k0, k1) = _join_aorta_runs(tube, SPACING)
    ks = np.arange(len(CALCIFIED) + 2 * STEADY)
    kept = (ks >= k0) & (ks <= k1) & tube.present
    off_mm = np.hypot((tube.centre[:, 0] - AORTA[0]) * SPACING[1], (tube.centre[:, 1] - AORTA[1]) * SPACING[2])
    return kept & (off_mm < 3.0)


def test_a_calcified_aorta_whose_radius_flips_is_kept_over_its_whole_length():
    assert _on_aorta(VesselSettings()).all()


def test_uncapped_radius_costs_lose_the_aorta_to_the_psoas():
    # the failure this guards against: without the cap the path takes the
    # psoas along the calcified stretch and the aorta is cut short
    on = _on_aorta(VesselSettings(radius_change_cap_mm=float("inf")))
    assert not on[STEADY : STEADY + len(CALCIFIED)].any()
    assert on.sum() <= STEADY + 1

