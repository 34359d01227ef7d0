"""ureter_zone(): below the sacral promontory the zone keeps to the ureter's
course in front of the sacral ala; it does not follow the sacrum's front as
it sweeps back.

Dev phantoms 1704, 1719 and 1744: ureteral stones at S1, just above the
brim, lay 15-25 mm in front of a zone that followed the sacrum and were called
phleboliths (other), losing their side."""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.kidneys import ureter_zone

SPACING = (2.0, 1.0, 1.0)  # k, j, i (mm); k grows cranially, j posteriorly
SHAPE = (60, 120, 120)


def _column() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collecting system at k 55-59; vertebral front at row 40 down to the
    promontory (k 20), then sweeping back 1 row per slice (the sacrum)."""
    cs = np.zeros(SHAPE, bool)
    cs[55:60, 45:50, 95:100] = True
    centre = np.zeros((SHAPE[0], 2))
    centre[:, 0], centre[:, 1] = 55.0, 60.0
    front = np.where(np.arange(SHAPE[0]) >= 20, 40.0, 40.0 + (20 - np.arange(SHAPE[0])))
    return cs, centre, front


def _zone_row(zone: np.ndarray, k: int) -> float:
    return float(np.argwhere(zone[k])[:, 0].mean())


def test_the_zone_stays_in_front_of_the_sacral_promontory_down_to_the_brim():
    cs, centre, front = _column()
    zone = ureter_zone(cs, "left", centre, front, SPACING, k_stop=2)
    # above the promontory: 8 mm in front of the column, as before
    assert abs(_zone_row(zone, 30) - (40.0 - 8.0)) < 1.0
    # 15 slices (30 mm) below it the sacrum's front is 15 mm further back;
    # the ureter still crosses the iliac vessels in front of it
    assert abs(_zone_row(zone, 5) - (40.0 - 8.0)) < 1.0
    assert abs(float(np.argwhere(zone[5])[:, 1].mean()) - (60.0 + 40.0)) < 1.0  # 40 mm left of the midline


def test_following_the_sacrum_would_leave_the_ureter_behind():
    # The same column with the hold off: the zone recedes with the sacrum,
    # 15 mm behind the course it should cover (this is what the rule fixes).
    cs, centre, front = _column()
    zone = ureter_zone(cs, "left", centre, front, SPACING, k_stop=2, hold_front_at_promontory=False)
    assert _zone_row(zone, 5) - (40.0 - 8.0) > 10.0
