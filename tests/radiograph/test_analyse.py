"""analyse_radiograph end to end on synthetic images, refusals, findings, report lines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calcdetect.errors import UnsupportedSeriesError
from calcdetect.radiograph.aac import AAC_LEVELS
from calcdetect.radiograph.analyse import analyse_radiograph, check_lateral_spine, radiograph_report_lines
from calcdetect.radiograph.synthetic import make_synthetic_lateral
from calcdetect.types import AcquisitionInfo, Kind, Radiograph



def test_ap_view_refused(lateral_left, to_radiograph):
    with pytest.raises(UnsupportedSeriesError, match="AP view.*LATERAL"):
        check_lateral_spine(to_radiograph(lateral_left, view="AP"))


@pytest.mark.parametrize("desc", ["CHEST LAT", "HIP", "Left hand PA"])
def test_non_spine_description_refused(lateral_left, desc):
    rg = Radiograph(lateral_left.image, (0.5, 0.5), AcquisitionInfo("CR", series_description=desc), view="unknown")
    with pytest.raises(UnsupportedSeriesError, match="not the lumbar spine"):
        check_lateral_spine(rg)


def test_missing_spacing_refused(lateral_left):
    rg = Radiograph(lateral_left.image, None, AcquisitionInfo("DX"), view="lateral")
    with pytest.raises(UnsupportedSeriesError, match="no pixel spacing.*--pixel-spacing"):
        analyse_radiograph(rg)


def test_small_field_refused(lateral_left):
    rg = Radiograph(lateral_left.image[:200, :200], (0.5, 0.5), AcquisitionInfo("DX"), view="lateral")
    with pytest.raises(UnsupportedSeriesError, match="field of view"):
        check_lateral_spine(rg)


def test_no_spine_content_refused():
    rng = np.random.default_rng(1)
    rg = Radiograph(rng.normal(0, 1, (700, 600)).astype(np.float32), (0.5, 0.5), AcquisitionInfo("DX"))
    with pytest.raises(UnsupportedSeriesError, match="spine"):
        analyse_radiograph(rg)


@pytest.mark.parametrize("which", ["lateral_left", "lateral_right"])
def test_scores_close_to_truth(which, request, to_radiograph):
    ph = request.getfixturevalue(which)
    a = analyse_radiograph(to_radiograph(ph))
    assert a.aac24 is not None, a.warnings
    assert abs(a.aac24["total"] - ph.aac24_total) <= 2, (a.aac24, ph.aac24_segments)
    per_wall = [
        abs(a.aac24["segments"][lv][w] - ph.aac24_segments[lv][w]) for lv in AAC_LEVELS for w in ("anterior", "posterior")
    ]
    # one image: a wall fraction near 1/3 or 2/3 flips a grade (lateral_right, v6: L3 anterior 0.67
    # against the drawing's 0.61-0.66); over 30 fresh drawings (seeds 2000-2029) v5 and v6 both miss
    # 0.83 wall grades per image on average
    assert sum(per_wall) <= 4
    # the calcium found overlaps the drawn deposits
    assert (a.calcification_mask & ph.calcification_mask).sum() >= 0.5 * ph.calcification_mask.sum()
    assert a.severity in ("low", "moderate", "high") and "three groups" in a.severity_grouping


def test_findings_one_per_calcified_segment(lateral_left, to_radiograph):
    a = analyse_radiograph(to_radiograph(lateral_left))
    calcified = [lv for lv in AAC_LEVELS if any(a.aac24["segments"][lv].values())]
    assert [f.level for f in a.findings] == calcified
    for f in a.findings:
        assert f.region == "aorta" and f.kind == Kind.ATHEROSCLEROTIC
        assert f.lesion.volume_mm3 == 0.0 and f.lesion.max_diameter_mm > 0
        assert all(math.isnan(v) for v in f.lesion.centroid_lps_mm)
        assert f.lesion.mask.shape[0] == 1 and f.lesion.mask.any()
        assert "wall" in (f.segment or "")


def test_no_plaque_scores_zero_and_says_so(to_radiograph):
    ph = make_synthetic_lateral(3, spacing_mm=0.5, plaque_burden=0.0)
    a = analyse_radiograph(to_radiograph(ph), calcium_model=None)  # the rule detector
    assert a.aac24["total"] == 0 and a.findings == () and a.severity == "low"
    findings, impression = radiograph_report_lines(a)
    assert findings[0].startswith("No calcification of the abdominal aorta")
    assert "AAC-24 score 0" in impression[0]


def test_report_lines_name_levels_and_score(lateral_left, to_radiograph):
    a = analyse_radiograph(to_radiograph(lateral_left))
    findings, impression = radiograph_report_lines(a)
    total = a.aac24["total"]
    assert total > 0
    assert f"AAC-24 score {total}" in findings[0] and "anterior to L" in findings[0]
    assert impression and f"AAC-24 score {total} ({a.severity}" in impression[0]
    assert any("lumbosacral" in line for line in findings)
    summary = a.summary()
    assert summary["aac24"]["total"] == total and summary["severity_grouping"] == a.severity_grouping


def test_no_plaque_with_the_shipped_net_stays_low(to_radiograph):
    # the net was trained on projected CT phantoms; on this 2-D drawing it marks one
    # rib tip at L1 (the rules do too at lower thresholds): at most one grade-1 wall
    ph = make_synthetic_lateral(3, spacing_mm=0.5, plaque_burden=0.0)
    a = analyse_radiograph(to_radiograph(ph))
    assert a.aac24["total"] <= 1 and a.severity == "low"


def test_the_summary_names_the_nets_that_made_the_reading(lateral_left, to_radiograph):
    """findings.json says which weights (file and SHA-256) found the vertebrae and the calcium,
    or that the rules did: a researcher pooling readings across releases must tell them apart."""
    import json

    from calcdetect.nets.weights import file_sha256
    from calcdetect.radiograph import aac_net, vertebra_net

    rg = to_radiograph(lateral_left)
    models = analyse_radiograph(rg).summary()["models"]
    assert models["calcium"] == {"file": aac_net.DEFAULT_MODEL_PATH.name,
                                 "sha256": file_sha256(aac_net.DEFAULT_MODEL_PATH)}
    assert models["vertebrae"]["file"] == vertebra_net.DEFAULT_MODEL_PATH.name
    assert models["vertebrae"]["sha256"] == file_sha256(vertebra_net.DEFAULT_MODEL_PATH)
    json.dumps(models)  # goes into findings.json as it is
    rules = analyse_radiograph(rg, calcium_model=None, vertebra_model=None).summary()["models"]
    assert rules == {"vertebrae": "rules", "calcium": "rules"}


def test_a_ready_spine_detection_gives_the_same_reading(lateral_left, to_radiograph):
    """Comparing calcium nets on one image reuses one vertebra detection (spine=): the reading
    must be the one analyse_radiograph makes on its own, and the given detection must be used."""
    from dataclasses import replace

    from calcdetect.radiograph.analyse import detect_spine
    from calcdetect.radiograph.vertebra_net import load_default_vertebra_model

    rg = to_radiograph(lateral_left)
    vmodel = load_default_vertebra_model()
    spine = detect_spine(np.asarray(rg.array, np.float32), tuple(rg.pixel_spacing), vmodel)
    alone = analyse_radiograph(rg)
    reused = analyse_radiograph(rg, vertebra_model=vmodel, spine=spine)
    assert reused.aac24 == alone.aac24
    assert [v.corners_rc for v in reused.vertebrae] == [v.corners_rc for v in alone.vertebrae]
    # a detection without L1-L4 named is not re-detected behind the caller's back: no score
    unnamed = replace(spine, vertebrae=tuple(replace(v, level=None) for v in spine.vertebrae))
    assert analyse_radiograph(rg, vertebra_model=vmodel, spine=unnamed).aac24 is None


def test_a_crossed_body_outline_is_not_scored_and_says_which(lateral_left, to_radiograph):
    """A body outline whose endplates cross (a rule fallback or the net gone wrong) puts the Kauppila
    segment boundaries anywhere: no AAC-24, and the warning names the level and what to check."""
    from dataclasses import replace

    from calcdetect.radiograph.analyse import detect_spine
    from calcdetect.radiograph.vertebra_net import load_default_vertebra_model

    rg = to_radiograph(lateral_left)
    vmodel = load_default_vertebra_model()
    spine = detect_spine(np.asarray(rg.array, np.float32), tuple(rg.pixel_spacing), vmodel)
    assert analyse_radiograph(rg, vertebra_model=vmodel, spine=spine).aac24 is not None

    def crossing(level):
        return replace(spine, vertebrae=tuple(
            replace(v, corners_rc=v.corners_rc[[0, 2, 1, 3]]) if v.level == level else v
            for v in spine.vertebrae))

    bad = analyse_radiograph(rg, vertebra_model=vmodel, spine=crossing("L3"))
    assert bad.aac24 is None and bad.findings == ()
    assert any("L3 is no vertebral body" in w and "AAC-24 not scored" in w for w in bad.warnings), bad.warnings
    # L5 bounds no Kauppila segment: the score stands, the warning still says to check it
    l5 = analyse_radiograph(rg, vertebra_model=vmodel, spine=crossing("L5"))
    assert l5.aac24 is not None
    assert any("L5 is no vertebral body" in w and "not scored" not in w for w in l5.warnings), l5.warnings


def test_the_reading_carries_the_nets_measured_range(lateral_left, to_radiograph):
    """A reader sees how far a total may lie from the truth: the shipped net's bound (its held-out
    phantom error) gives the range in findings.json, the findings and the impression."""
    from calcdetect.radiograph.aac_net import load_default_calcium_model

    model = load_default_calcium_model()
    bound = model.aac24_error_bound
    assert bound is not None and bound.coverage >= 0.8 and "held-out" in bound.measured_on
    a = analyse_radiograph(to_radiograph(lateral_left))
    total, interval = a.aac24["total"], a.aac24["interval"]
    assert (interval["low"], interval["high"]) == (max(0, total - bound.points), min(24, total + bound.points))
    assert interval["low"] <= total <= interval["high"]
    findings, impression = radiograph_report_lines(a)
    ranged = [ln for ln in findings if ln.startswith("Estimated AAC-24 range")]
    assert len(ranged) == 1 and f"{interval['low']}-{interval['high']}" in ranged[0]
    assert "patient radiographs has not been measured" in ranged[0]
    assert f"estimated range {interval['low']}-{interval['high']}" in impression[0]


def test_no_range_without_a_measured_bound(lateral_left, to_radiograph):
    """A net with no measured bound (the rules, or a user's own net) reports no range rather than
    borrowing the shipped net's."""
    from dataclasses import replace

    from calcdetect.radiograph.aac_net import load_default_calcium_model

    rg = to_radiograph(lateral_left)
    for model in (None, replace(load_default_calcium_model(), aac24_error_bound=None)):
        a = analyse_radiograph(rg, calcium_model=model)
        assert "interval" not in a.aac24
        findings, impression = radiograph_report_lines(a)
        assert not any("range" in ln for ln in findings + impression)


def test_grades_to_check_are_named_in_the_report_and_marked_on_the_overlay(lateral_left, to_radiograph, monkeypatch):
    """The reviewer is told which wall grades to look at first (near a grade boundary, or moved by
    the detection threshold): named in the findings and marked '?' in the overlay's table."""
    from dataclasses import replace

    from PIL import ImageDraw

    from calcdetect.radiograph.analyse import GRADE_CHECK_FRACTION
    from calcdetect.radiograph.overlay import render_overlay

    rg = to_radiograph(lateral_left)
    a = analyse_radiograph(rg)
    names = {f"{lv} {w}" for lv in AAC_LEVELS for w in ("anterior", "posterior")}
    assert set(a.aac24["grades_to_check"]) <= names
    # the rules have no threshold to move: only fractions near 1/3 or 2/3 are flagged
    rules = analyse_radiograph(rg, calcium_model=None)
    for name in rules.aac24["grades_to_check"]:
        lv, wall = name.split()
        f = rules.aac24["calcified_fraction"][lv][wall]
        assert min(abs(f - 1 / 3), abs(f - 2 / 3)) < GRADE_CHECK_FRACTION
    flagged = replace(a, aac24={**a.aac24, "grades_to_check": ["L2 posterior"]})
    findings, _ = radiograph_report_lines(flagged)
    assert any(ln.startswith("Wall grades to check first") and "L2 posterior" in ln for ln in findings)
    drawn: list[str] = []
    real = ImageDraw.ImageDraw.multiline_text

    def spy(self, xy, text, *args, **kw):
        drawn.extend(text.split("\n"))
        return real(self, xy, text, *args, **kw)

    monkeypatch.setattr(ImageDraw.ImageDraw, "multiline_text", spy)
    render_overlay(rg, flagged)
    l2 = next(ln for ln in drawn if ln.startswith("L2"))
    assert l2.rstrip().endswith("?") and "?" not in next(ln for ln in drawn if ln.startswith("L3"))
    assert "? grade to check first" in drawn
    clean = replace(a, aac24={**a.aac24, "grades_to_check": []})
    assert not any(ln.startswith("Wall grades to check") for ln in radiograph_report_lines(clean)[0])
