"""The evaluation's image-space scorer (``score_image_mask``) walls deposits by the
pipeline's rule: a detected mask that bridges the posterior and the anterior wall must
still count both walls, or "detected calcium on true corners" misreports the detector."""

from __future__ import annotations

import numpy as np

from calcdetect.radiograph import analyse
from calcdetect.radiograph.aac import WALL_SPLIT_GAP_MM, score_image_mask
from test_aac import _stacked_bodies


def _bridged_walls() -> np.ndarray:
    """Both walls calcified along all of L3 (rows 140-190), joined by one bridging row."""
    calc = np.zeros((300, 200), bool)
    calc[140:190, 92:95] = True  # posterior wall, next to the spine (anterior line at column 100)
    calc[140:190, 60:63] = True  # anterior wall, 20 mm in front of it
    calc[165, 60:95] = True  # a bridge: one connected deposit
    return calc


def _grades(walls) -> dict:
    return {(w.level, w.wall): w.grade for w in walls}


def test_bridged_walls_count_on_both_walls_with_the_pipeline_rule():
    g = _grades(score_image_mask(_bridged_walls(), _stacked_bodies(), 0.5))
    assert g[("L3", "anterior")] == 3 and g[("L3", "posterior")] == 3
    # the old rule (one wall per deposit and row) loses one wall: what the split fixes
    old = _grades(score_image_mask(_bridged_walls(), _stacked_bodies(), 0.5, split_gap_mm=float("inf")))
    assert old[("L3", "anterior")] + old[("L3", "posterior")] == 3


def test_mirrored_image_gives_the_same_walls():
    corners = {lv: np.column_stack([c[:, 0], 199 - c[:, 1]]) for lv, c in _stacked_bodies().items()}
    g = _grades(score_image_mask(_bridged_walls()[:, ::-1], corners, 0.5))
    assert g[("L3", "anterior")] == 3 and g[("L3", "posterior")] == 3
    assert sum(g.values()) == 6


def test_pipeline_and_evaluation_share_the_split_gap():
    assert analyse.WALL_SPLIT_GAP_MM == WALL_SPLIT_GAP_MM
