"""The evaluation's error decomposition as agreement (scripts/eval_radiograph.py, issue #6
session 10): which part of the pipeline limits the AAC-24 ICC must be read off the same
cases for every estimate, or an unscored case moves one estimate and not the others."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from eval_radiograph import breakdown_agreement  # noqa: E402


def _row(truth: int, pred: int | None, tt: int | None, dt: int | None, td: int | None) -> dict:
    return {"aac24_truth": truth, "aac24_pred": pred,
            "breakdown": {"truth_on_truth": tt, "detected_on_truth": dt, "truth_on_detected": td}}


def test_the_calcium_part_is_named_when_detected_calcium_disagrees():
    # true calcium scores right on either corners; the detected calcium is off by 3 either way
    rows = [_row(t, t + (3 if k % 2 else -3), t, t + (3 if k % 2 else -3), t)
            for k, t in enumerate((0, 2, 4, 6, 8, 10, 12, 14))]
    out = breakdown_agreement(rows)
    assert out["n_cases"] == 8
    assert out["truth_on_truth"]["icc21"] == pytest.approx(1.0)
    assert out["truth_on_detected"]["mae"] == 0.0
    assert out["detected_on_truth"]["mae"] == 3.0 and out["pred"]["mae"] == 3.0
    assert out["detected_on_truth"]["icc21"] < 0.9 < out["truth_on_detected"]["icc21"]


def test_every_estimate_is_taken_on_the_same_cases():
    rows = [
        _row(0, 0, 0, 0, 0),
        _row(10, 10, 10, 10, 10),
        _row(5, 5, 5, 5, 5),
        # vertebrae not all found: truth_on_detected is missing; this case must drop out of
        # every estimate, not only of that one
        _row(20, 0, 20, 0, None),
        _row(8, None, 8, None, None),  # not scored at all
    ]
    out = breakdown_agreement(rows)
    assert out["n_cases"] == 3
    assert out["pred"]["mae"] == 0.0 and out["detected_on_truth"]["mae"] == 0.0


def test_too_few_cases_give_no_agreement():
    assert breakdown_agreement([_row(3, 3, 3, 3, 3)]) == {"n_cases": 1}
