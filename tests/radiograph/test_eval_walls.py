"""The evaluation's wall-by-wall breakdown (scripts/eval_radiograph.py): false and missed
walls are what a reader of the AAC-24 error needs to know, so they must be counted right."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from eval_radiograph import wall_breakdown  # noqa: E402

LEVELS = ("L1", "L2", "L3", "L4")


def _segments(grades: dict[str, tuple[int, int]]) -> dict:
    return {lv: {"anterior": grades.get(lv, (0, 0))[0], "posterior": grades.get(lv, (0, 0))[1]} for lv in LEVELS}


def _row(photons: float, truth: dict, pred: dict | None) -> dict:
    t = _segments(truth)
    p = _segments(pred) if pred is not None else None
    return {"aac24_truth": sum(sum(g) for g in truth.values()),
            "aac24_pred": sum(sum(g) for g in pred.values()) if pred is not None else None,
            "conditions": {"photons_per_pixel": photons}, "segments_truth": t, "segments_pred": p}


def test_false_and_missed_walls_are_counted_per_dose_and_per_level():
    rows = [
        # high dose: a clean L4 anterior wall called grade 1 (false), L1 posterior exact
        _row(1e5, {"L1": (0, 2)}, {"L1": (0, 2), "L4": (1, 0)}),
        # low dose: L2 anterior grade 1 missed, L3 posterior 3 under-called as 1
        _row(1e4, {"L2": (1, 0), "L3": (0, 3)}, {"L3": (0, 1)}),
        _row(1e4, {"L1": (3, 3)}, None),  # not scored: left out
    ]
    out = wall_breakdown(rows)
    assert out["n_cases"] == 2
    assert out["false_walls"] == 1 and out["missed_walls"] == 1
    assert out["confusion_truth_by_pred"][0][1] == 1  # the false L4 wall
    assert out["confusion_truth_by_pred"][3][1] == 1  # the under-called L3 wall
    assert out["truth_calcified_walls"] == 3 and out["truth_clean_walls"] == 13
    assert out["over"]["L4 anterior"] == 1 and out["under"]["L3 posterior"] == 2
    assert out["by_dose"]["1e+05"]["false_walls"] == 1 and out["by_dose"]["1e+05"]["missed_walls"] == 0
    assert out["by_dose"]["1e+04"]["missed_walls"] == 1 and out["by_dose"]["1e+04"]["n_cases"] == 1
    # truth 2 (moderate) vs pred 3 (moderate); truth 4 (moderate) vs pred 1 (low)
    assert out["severity_agreement"] == 0.5


def test_false_walls_are_attributed_to_the_lesion_under_the_detected_pixels():
    """An L4 false wall made of iliac calcium and an L2 one on no lesion at all (a bowel-gas
    rim, say) are told apart; a correctly called wall is not a false wall."""
    from types import SimpleNamespace

    import numpy as np

    from eval_radiograph import false_wall_causes

    corners, top = {}, 20.0
    for lv in ("L1", "L2", "L3", "L4"):
        corners[lv] = [[top, 100.0], [top, 160.0], [top + 50, 160.0], [top + 50, 100.0]]
        top += 60
    labels = np.zeros((300, 200), np.int32)
    labels[200:230, 85:88] = 7  # iliac calcium projecting on L4 (rows 200-250)
    labels[20:60, 90:93] = 3  # aortic calcium on L1, posterior wall (truth grade 3)
    detected = np.zeros((300, 200), bool)
    detected[200:228, 85:88] = True  # the iliac deposit, called L4 posterior
    detected[90:120, 40:43] = True  # nothing there in the phantom, called L2 anterior
    detected[20:60, 90:93] = True  # the true L1 deposit
    case = {"lesion_labels": labels, "spacing": (0.5, 0.5), "corners": corners,
            "lesions": [{"id": 7, "region": "iliac"}, {"id": 3, "region": "aorta"}],
            "aac24_segments": _segments({"L1": (0, 3)})}
    analysis = SimpleNamespace(aac24={"segments": _segments({"L1": (0, 3), "L2": (1, 0), "L4": (0, 2)})},
                               calcification_mask=detected)
    assert sorted(false_wall_causes(case, analysis)) == ["L2 none", "L4 iliac"]
    rows = [{**_row(1e5, {"L1": (0, 3)}, {"L1": (0, 3), "L2": (1, 0), "L4": (0, 2)}),
             "false_wall_causes": false_wall_causes(case, analysis)}]
    assert wall_breakdown(rows)["false_wall_causes"] == {"L2 none": 1, "L4 iliac": 1}


def test_aortic_lesions_found_are_counted_per_wall_quadrant():
    from types import SimpleNamespace

    import numpy as np

    from eval_radiograph import _found_by_wall, aortic_lesions_found

    labels = np.zeros((20, 20), np.uint16)
    labels[2:6, 2:4] = 1  # anterior wall, 8 px, found (4 of 8)
    labels[10:14, 2:4] = 2  # lateral wall, 8 px, 1 px found: under 20%
    labels[15:18, 10:12] = 3  # posterior wall, not found
    labels[0, 19] = 4  # an iliac lesion: not counted
    detected = np.zeros((20, 20), bool)
    detected[2:4, 2:4] = True
    detected[10, 2] = True
    case = {"lesion_labels": labels, "lesions": [
        {"id": 1, "region": "aorta", "aortic_wall": "anterior"},
        {"id": 2, "region": "aorta", "aortic_wall": "lateral"},
        {"id": 3, "region": "aorta", "aortic_wall": "posterior"},
        {"id": 4, "region": "iliac", "aortic_wall": None},
    ]}
    found = aortic_lesions_found(case, SimpleNamespace(calcification_mask=detected))
    assert found == {"anterior": [1, 1], "lateral": [0, 1], "posterior": [0, 1]}
    total = _found_by_wall([{"aortic_lesions_found": found}, {"aortic_lesions_found": {"lateral": [1, 1]}}])
    assert total["lateral"] == {"found": 1, "n": 2, "fraction": 0.5}


def test_agreement_with_the_all_walls_truth_leaves_out_unscored_cases():
    # The evaluation reports AAC-24 against both truth definitions; a case with no
    # prediction (or no truth) must not count as agreement or as error.
    from eval_radiograph import _agreement

    out = _agreement([(4, 4), (0, 2), (6, None), (None, 3), (10, 9)])
    assert out["n"] == 3
    assert abs(out["mae"] - 1.0) < 1e-9
    assert 0.8 < out["icc21"] < 1.0
    assert _agreement([(3, None)]) == {"n": 0, "icc21": None, "mae": None, "ci95": None}


def test_the_evaluation_output_names_the_weights_behind_default(tmp_path):
    """A table row must be traceable to the nets that made it: 'default' is resolved to a
    file name and SHA-256, 'rules' stays rules."""
    import json

    import eval_radiograph

    from calcdetect.nets.weights import file_sha256
    from calcdetect.radiograph.aac_net import DEFAULT_MODEL_PATH

    out = tmp_path / "ev.json"
    eval_radiograph.main(["--source", "synthetic", "--seeds", "1000", "--vertebra-model", "rules", "--out", str(out)])
    models = json.loads(out.read_text())["models"]
    assert models == {"vertebrae": "rules",
                      "calcium": {"file": DEFAULT_MODEL_PATH.name, "sha256": file_sha256(DEFAULT_MODEL_PATH)}}
