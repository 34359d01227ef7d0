"""AAC-24 / AAC-8 grading boundaries, wall split and the line detector."""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.radiograph.aac import (
    SEVERITY_GROUPING,
    aac8_grade,
    detect_calcification,
    estimate_midline,
    kauppila_grade,
    score_segments,
    severity_group,
)


@pytest.mark.parametrize(
    "fraction, grade",
    [(0.0, 0), (1e-12, 0), (0.01, 1), (1 / 3, 1), (0.334, 2), (0.5, 2), (2 / 3, 2), (0.67, 3), (1.0, 3)],
)
def test_kauppila_boundaries(fraction, grade):
    assert kauppila_grade(fraction) == grade


def test_kauppila_matches_phantom_truth_convention():
    radiograph_phantom = pytest.importorskip("calcdetect.phantoms.radiograph")
    for f in np.linspace(0, 1, 61):
        assert kauppila_grade(f) == radiograph_phantom.kauppila_grade(f), f


@pytest.mark.parametrize("x, g", [(0, 0), (0.2, 1), (1.0, 1), (1.01, 2), (2.0, 2), (3.0, 3), (3.5, 4), (9, 4)])
def test_aac8_grade(x, g):
    assert aac8_grade(x) == g


@pytest.mark.parametrize("total, group", [(0, "low"), (1, "low"), (2, "moderate"), (5, "moderate"), (6, "high"), (24, "high")])
def test_severity(total, group):
    assert severity_group(total) == group
    assert "low 0-1" in SEVERITY_GROUPING and "high >=6" in SEVERITY_GROUPING


def test_score_segments_exact_fractions():
    calc = np.zeros((300, 100), bool)
    # segment L1 rows 0-90 (length 90): anterior wall (cols < 50) calcified over 30 rows -> 1/3 -> 1
    calc[10:40, 20:22] = True
    # posterior wall calcified over 31 rows -> just above 1/3 -> 2
    calc[0:31, 70:72] = True
    # L2 rows 100-190: overlapping deposits count once: rows 100-170 (70/90 > 2/3) -> 3
    calc[100:150, 30:32] = True
    calc[120:170, 34:36] = True
    out = score_segments(calc, {"L1": (0.0, 90.0), "L2": (100.0, 190.0)}, midline_t=50, step_mm=0.5)
    got = {(w.level, w.wall): w.grade for w in out}
    assert got == {("L1", "anterior"): 1, ("L1", "posterior"): 2, ("L2", "anterior"): 3, ("L2", "posterior"): 0}
    l2a = next(w for w in out if w.level == "L2" and w.wall == "anterior")
    assert l2a.length_mm == pytest.approx(70 * 0.5)
    assert l2a.area_mm2 == pytest.approx((50 * 2 + 50 * 2) * 0.25)


def test_midline_from_two_walls_and_default():
    # deposits at columns 20-22 and 60-62, spine line at 100, depth 80 px
    t = np.r_[np.full(10, 21.0), np.full(10, 61.0)]
    assert 25 < estimate_midline(t, 100.0, 80.0) < 58
    # one wall only: the default mid-line in front of the spine
    assert estimate_midline(np.full(10, 90.0), 100.0, 80.0) == pytest.approx(100 - 0.38 * 80)


def test_detector_keeps_lines_drops_noise_and_oblique():
    rng = np.random.default_rng(3)
    strip = rng.normal(0, 0.02, (400, 200)).astype(np.float32)
    strip += np.linspace(0, 1, 200)[None, :]  # soft-tissue gradient: must not fire
    strip[100:160, 80:83] += 0.4  # a 30 mm wall deposit along the spine
    for k in range(40):  # an oblique band (rib edge) at 45 degrees
        strip[250 + k, 40 + k : 43 + k] += 0.4
    zone = np.zeros_like(strip, bool)
    zone[:, 20:180] = True
    calc = detect_calcification(strip, zone, 0.5)
    assert calc[100:160, 79:84].sum() > 0.6 * 60 * 3
    assert not calc[250:290].any()  # oblique: dropped
    assert calc.sum() < 60 * 3 * 2.5  # no widespread false positives


def _stacked_bodies(anterior_col: float = 100.0, depth: float = 60.0, height: float = 50.0, disc: float = 10.0):
    """L1-L4 as upright rectangles (rows head to foot, anterior = small columns)."""
    corners, top = {}, 20.0
    for lv in ("L1", "L2", "L3", "L4"):
        bottom = top + height
        corners[lv] = np.array([[top, anterior_col], [top, anterior_col + depth],
                                [bottom, anterior_col + depth], [bottom, anterior_col]])
        top = bottom + disc
    return corners


def test_score_image_mask_grades_each_wall_against_given_corners():
    from calcdetect.radiograph.aac import score_image_mask

    corners = _stacked_bodies()
    calc = np.zeros((300, 200), bool)
    calc[80:105, 50:53] = True  # anterior wall (far from the spine), half of L2 (rows 80-130)
    calc[140:190, 92:95] = True  # posterior wall (next to the spine), all of L3 (rows 140-190)
    grades = {(w.level, w.wall): w.grade for w in score_image_mask(calc, corners, 0.5)}
    assert grades[("L2", "anterior")] == 2 and grades[("L2", "posterior")] == 0
    assert grades[("L3", "posterior")] == 3 and grades[("L3", "anterior")] == 0
    assert sum(grades.values()) == 5


def test_score_image_mask_zone_ignores_calcium_over_the_vertebral_body():
    from calcdetect.radiograph.aac import score_image_mask

    corners = _stacked_bodies()
    calc = np.zeros((300, 200), bool)
    calc[140:190, 120:123] = True  # behind the anterior vertebral line: over the body, not the aorta
    assert sum(w.grade for w in score_image_mask(calc, corners, 0.5)) == 3
    assert sum(w.grade for w in score_image_mask(calc, corners, 0.5, zone_margin_mm=2.0)) == 0
