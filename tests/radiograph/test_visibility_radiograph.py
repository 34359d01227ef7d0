"""The visibility ceiling (scripts/visibility_radiograph.py): how a detector that finds only
the calcium above a contrast threshold would agree with the AAC-24 truth, and how a real
detector's readings agree with that visible-calcium score."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from visibility_radiograph import main, summarise  # noqa: E402


def _rows() -> list[dict]:
    # truth, visible above 0.02, visible above 0.05
    scores = [(6, 6, 2), (0, 0, 0), (10, 9, 4), (3, 3, 1), (12, 12, 7)]
    return [{"seed": s, "aac24": {"0.0": t, "0.02": a, "0.05": b}} for s, (t, a, b) in enumerate(scores)]


def test_the_oracle_loses_agreement_as_the_threshold_hides_calcium():
    out = summarise(_rows(), [0.02, 0.05], None)
    assert out["0.02"]["oracle"]["mae"] == pytest.approx(0.2)
    assert out["0.05"]["oracle"]["mae"] == pytest.approx((4 + 0 + 6 + 2 + 5) / 5)
    assert out["0.02"]["oracle"]["icc21"] > 0.95 > out["0.05"]["oracle"]["icc21"]
    assert out["0.05"]["mean_visible_aac24"] == pytest.approx(14 / 5)
    assert "readings_vs_visible" not in out["0.02"]


def test_readings_that_see_only_the_dense_calcium_match_the_visible_score_not_the_truth():
    readings = {0: 2, 1: 0, 2: 4, 3: 1, 4: 7, 99: 5}  # a seed outside the rows is ignored
    out = summarise(_rows(), [0.02, 0.05], readings)
    assert out["0.05"]["readings_vs_visible"]["mae"] == 0.0
    assert out["0.0"]["readings_vs_truth"]["mae"] == pytest.approx(17 / 5)
    assert out["0.0"]["readings_vs_truth"]["n"] == 5


@pytest.mark.parametrize("tau", ["0,0.02", "x", "-0.1"])
def test_thresholds_must_be_positive_numbers(tau):
    with pytest.raises(SystemExit, match="--tau"):
        main(["--seeds", "1", "--tau", tau])
