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


def _wall_blind_case():
    """L1-L4 bodies 50 rows high (anterior at column 100, as in test_eval_walls.py); an aortic
    plaque in profile on L1 (in the truth's profile mask), one seen en face over the lumen on L2
    (aortic, but on a left or right wall), and iliac calcium on L4."""
    import numpy as np

    corners, top = {}, 20.0
    for lv in ("L1", "L2", "L3", "L4", "L5"):
        corners[lv] = [[top, 100.0], [top, 160.0], [top + 50, 160.0], [top + 50, 100.0]]
        top += 60
    labels = np.zeros((340, 200), np.int32)
    labels[20:60, 90:93] = 3  # in profile: L1, 40 of 50 rows (grade 3)
    labels[90:120, 60:75] = 5  # en face: L2, 30 of 50 rows (grade 2 if counted)
    labels[200:230, 85:88] = 7  # iliac on L4: no aortic estimate counts it
    return {"aac24": 3, "lesion_labels": labels, "aortic_profile_mask": labels == 3, "spacing": (0.5, 0.5),
            "corners": corners, "lesions": [{"id": 3, "region": "aorta"}, {"id": 5, "region": "aorta"},
                                            {"id": 7, "region": "iliac"}]}


def test_the_wall_blind_ceiling_counts_en_face_aortic_plaque_and_no_iliac():
    from eval_radiograph import error_breakdown

    case = _wall_blind_case()
    labels_before = case["lesion_labels"].copy()
    out = error_breakdown(case, None)
    assert out["truth_on_truth"] == 3
    assert out["all_walls_on_truth"] == 3 + 2
    assert (case["lesion_labels"] == labels_before).all()


def test_the_wall_blind_ceiling_is_reported_only_where_every_case_has_it():
    rows = [_row(t, t, t, t, t) for t in (0, 4, 8)]
    assert "all_walls_on_truth" not in breakdown_agreement(rows)  # an evaluation from before session 23
    for r, extra in zip(rows, (1, 5, 8)):
        r["breakdown"]["all_walls_on_truth"] = extra
    out = breakdown_agreement(rows)
    assert out["all_walls_on_truth"]["mae"] == pytest.approx(2 / 3, abs=1e-3)  # rounded to 3 places
    assert out["all_walls_on_truth"]["bias"] == pytest.approx(2 / 3, abs=1e-3)
