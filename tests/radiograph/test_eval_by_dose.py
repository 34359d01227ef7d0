"""The evaluation's per-dose breakdown (scripts/eval_radiograph.py): the calcium net's
error depends on the quantum noise, so its sign per photon count must be reported right."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from eval_radiograph import by_dose  # noqa: E402


def _row(photons: float, truth: int, pred: int | None, detected: int | None, levels_ok: int) -> dict:
    return {"aac24_truth": truth, "aac24_pred": pred, "conditions": {"photons_per_pixel": photons},
            "breakdown": {"truth_on_truth": truth, "detected_on_truth": detected, "truth_on_detected": pred},
            "levels_ok": {lv: i < levels_ok for i, lv in enumerate(("L1", "L2", "L3", "L4", "L5"))}}


def test_under_calling_at_low_dose_and_over_calling_at_high_dose_show_as_opposite_signs():
    rows = [_row(1e4, 6, 4, 3, 5), _row(1e4, 2, 1, 1, 5), _row(1e5, 3, 6, 7, 5), _row(1e5, 0, 2, 2, 0),
            _row(1e5, 5, None, None, 0)]  # an unscored case counts for levels only
    out = by_dose(rows)
    assert set(out) == {"1e+04", "1e+05"}
    assert out["1e+04"]["pred"] == {"n": 2, "bias": -1.5, "mae": 1.5}
    assert out["1e+04"]["detected_on_truth"]["bias"] == pytest.approx(-2.0)
    assert out["1e+05"]["pred"] == {"n": 2, "bias": 2.5, "mae": 2.5}
    assert out["1e+05"]["n_cases"] == 3 and out["1e+05"]["level_accuracy"] == pytest.approx(5 / 15, abs=1e-3)
    assert out["1e+05"]["truth_on_truth"]["bias"] == 0.0
