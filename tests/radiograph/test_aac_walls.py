"""Wall assignment of detected deposits: two walls joined by a bridge still count on both walls."""

from __future__ import annotations

import numpy as np

from calcdetect.radiograph.aac import wall_of_pixels


def _two_walls_joined() -> np.ndarray:
    calc = np.zeros((60, 80), bool)
    calc[10:40, 20:23] = True  # anterior wall deposit, in front of the mid-line at 40
    calc[10:40, 55:58] = True  # posterior wall deposit behind it
    calc[38:40, 20:58] = True  # a bridge across the lumen joins them into one deposit
    return calc


def test_joined_walls_count_on_both_walls_when_rows_are_split_at_gaps():
    calc = _two_walls_joined()
    post = wall_of_pixels(calc, 40.0, split_gap_px=6.0)
    rows = slice(10, 38)
    assert post[rows, 55:58].all()  # posterior deposit on the posterior wall
    assert not post[rows, 20:23].any()  # anterior deposit on the anterior wall


def test_without_splitting_a_joined_deposit_counts_on_one_wall_per_row():
    """The behaviour the split fixes: the row's mean column (38.5) lies in front of the
    mid-line, so the posterior deposit is wrongly put on the anterior wall."""
    post = wall_of_pixels(_two_walls_joined(), 40.0)
    assert not post[10:38].any()


def test_a_broad_plaque_is_one_run_and_still_counts_on_one_wall():
    calc = np.zeros((50, 60), bool)
    calc[10:30, 18:34] = True  # straddles the mid-line at 30, mostly in front of it
    post = wall_of_pixels(calc, 30.0, split_gap_px=4.0)
    assert not post[10:30].any()
