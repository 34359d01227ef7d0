"""Tests for calcdetect.evaluate: truth and findings built by hand in tmp_path."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from calcdetect.errors import InputError
from calcdetect.evaluate import aac24_group, evaluate, icc_2_1, level_distance
from calcdetect.ids import hash_uid

HASH = "ab" * 32

TRUTH_LESIONS = [
    # Targets: small aortic (5 mm3), medium iliac (50 mm3), large renal (500 mm3).
    {"id": 1, "region": "aorta", "side": None, "level": "L3", "kind": "atherosclerotic",
     "volume_mm3": 5.0, "mass_mg": 2.0, "agatston": 10.0, "centroid_lps_mm": [0.0, -20.0, 100.0],
     "max_diameter_mm": 2.0},
    {"id": 2, "region": "iliac", "side": "left", "level": "L5", "kind": "atherosclerotic",
     "volume_mm3": 50.0, "mass_mg": 20.0, "centroid_lps_mm": [30.0, -10.0, 40.0],
     "max_diameter_mm": 5.0},
    {"id": 3, "region": "renal", "side": "right", "level": "L2", "kind": "stone",
     "volume_mm3": 500.0, "mass_mg": 200.0, "centroid_lps_mm": [-60.0, 20.0, 120.0],
     "max_diameter_mm": 12.0},
    # Distractor: a phlebolith.
    {"id": 4, "region": "other", "side": "left", "level": None, "kind": "phlebolith",
     "volume_mm3": 20.0, "mass_mg": 8.0, "centroid_lps_mm": [50.0, 10.0, -20.0],
     "max_diameter_mm": 4.0},
]


def _finding(les: dict, **over) -> dict:
    f = {
        "id": f"F{les['id']:03d}", "region": les["region"], "side": les["side"],
        "level": les["level"], "kind": les["kind"], "morphology": "punctate",
        "centroid_lps_mm": list(les["centroid_lps_mm"]), "volume_mm3": les["volume_mm3"],
        "agatston": les.get("agatston"), "mass_mg": les["mass_mg"], "peak_hu": 600.0,
        "max_diameter_mm": les["max_diameter_mm"], "confidence": 0.9,
    }
    f.update(over)
    return f


def _write_truth(study: Path, lesions: list, *, kind: str = "ct", aac24: dict | None = None,
                 uid_hash: str | None = HASH) -> Path:
    (study / "truth").mkdir(parents=True, exist_ok=True)
    doc = {"schema": "calcdetect-truth/1", "kind": kind, "lesions": lesions}
    if uid_hash:
        doc["series_uid_hash"] = uid_hash
    if aac24 is not None:
        doc["aac24"] = aac24
    (study / "truth" / "truth.json").write_text(json.dumps(doc))
    return study


def _write_pred(run: Path, findings: list, *, key: str = "s0001", aac24: dict | None = None,
                uid_hash: str | None = HASH) -> Path:
    series = run / key
    series.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text("{}")
    doc = {
        "schema": "calcdetect-findings/1",
        "input": {"modality": "CT", "shape": [10, 10, 10], "spacing_mm": [1, 1, 1], "kvp": 120,
                  "series_uid_hash": uid_hash},
        "warnings": [], "findings": findings, "report": {"findings": "", "impression": ""},
    }
    if aac24 is not None:
        doc["aac24"] = aac24
    (series / "findings.json").write_text(json.dumps(doc))
    return series


def _study(tmp_path: Path, findings: list, lesions: list | None = None):
    truth = _write_truth(tmp_path / "truth" / "case1", copy.deepcopy(lesions or TRUTH_LESIONS))
    run = tmp_path / "run"
    _write_pred(run, findings)
    return evaluate(run, truth)


def _perfect() -> list:
    return [_finding(les) for les in TRUTH_LESIONS]


def test_perfect_predictions(tmp_path):
    rep = _study(tmp_path, _perfect())
    assert rep.sensitivity_overall == 1.0
    assert all(d["rate"] == 1.0 for d in rep.sensitivity_by_region.values())
    assert set(rep.sensitivity_by_region) == {"aorta", "iliac", "renal"}
    assert list(rep.sensitivity_by_size) == ["<10 mm3", "10-100 mm3", ">=100 mm3"]
    assert rep.false_positives == 0 and rep.false_positives_per_scan == 0.0
    assert rep.region_accuracy == rep.side_accuracy == 1.0
    assert rep.level_accuracy_exact == rep.level_accuracy_within_one == 1.0
    assert rep.distractors == 1 and rep.distractors_mislabelled == 0
    assert rep.measurement_error_pct["volume"] == {"n": 3, "mean_signed": 0.0, "mean_absolute": 0.0}
    assert rep.measurement_error_pct["agatston"]["n"] == 1  # only lesion 1 has truth Agatston
    assert rep.aac24 is None
    json.dumps(rep.to_dict())  # JSON-ready
    assert "sensitivity" in rep.table()


def test_missed_lesion_lowers_right_region_and_bin(tmp_path):
    findings = [f for f in _perfect() if f["id"] != "F002"]  # miss the 50 mm3 iliac lesion
    rep = _study(tmp_path, findings)
    assert rep.sensitivity_by_region["iliac"] == {"hits": 0, "total": 1, "rate": 0.0}
    assert rep.sensitivity_by_region["aorta"]["rate"] == 1.0
    assert rep.sensitivity_by_size["10-100 mm3"]["rate"] == 0.0
    assert rep.sensitivity_by_size["<10 mm3"]["rate"] == 1.0
    assert rep.sensitivity_by_kind["atherosclerotic"] == {"hits": 1, "total": 2, "rate": 0.5}
    assert rep.sensitivity_by_kind["stone"]["rate"] == 1.0
    assert rep.sensitivity_overall == pytest.approx(2 / 3)
    assert rep.false_positives == 0


def test_distractor_called_aorta_is_mislabelled_and_false_positive(tmp_path):
    findings = _perfect()
    findings[3] = _finding(TRUTH_LESIONS[3], region="aorta", side=None)
    rep = _study(tmp_path, findings)
    assert rep.distractors_mislabelled == 1 and rep.distractor_mislabel_rate == 1.0
    assert rep.false_positives == 1 and rep.false_positives_on_distractors == 1
    assert rep.false_positives_unmatched == 0
    assert rep.false_positives_by_region == {"aorta": 1}
    assert rep.sensitivity_overall == 1.0


def test_unmatched_prediction_is_false_positive_unless_other(tmp_path):
    far = {"centroid_lps_mm": [200.0, 200.0, 200.0]}
    extra_target = _finding(TRUTH_LESIONS[0], id="F010", **far)
    extra_other = _finding(TRUTH_LESIONS[3], id="F011", **{"centroid_lps_mm": [-200.0, 0.0, 0.0]})
    rep = _study(tmp_path, _perfect() + [extra_target, extra_other])
    assert rep.false_positives == 1 and rep.false_positives_unmatched == 1


def test_centroid_tolerance(tmp_path):
    # Lesion 3 has diameter 12 mm -> tolerance 6 mm; lesion 1 has 2 mm -> 5 mm floor.
    findings = _perfect()
    findings[2]["centroid_lps_mm"] = [-60.0, 20.0, 125.5]  # 5.5 mm away: inside 6 mm
    findings[0]["centroid_lps_mm"] = [0.0, -20.0, 105.5]  # 5.5 mm away: outside 5 mm
    rep = _study(tmp_path, findings)
    assert rep.sensitivity_by_region["renal"]["rate"] == 1.0
    assert rep.sensitivity_by_region["aorta"]["rate"] == 0.0
    assert rep.false_positives == 1


def test_side_and_level_errors(tmp_path):
    findings = _perfect()
    findings[1]["side"] = "right"  # iliac left called right
    findings[2]["level"] = "L3"  # renal L2 called L3: wrong, but within one
    findings[0]["level"] = "L5"  # aortic L3 called L5: two away
    rep = _study(tmp_path, findings)
    assert rep.side_errors == 1 and rep.side_accuracy == pytest.approx(2 / 3)
    assert rep.level_accuracy_exact == pytest.approx(1 / 3)
    assert rep.level_accuracy_within_one == pytest.approx(2 / 3)
    assert rep.region_accuracy == 1.0


def test_error_list_and_region_confusion_say_where_the_errors_are(tmp_path):
    findings = [f for f in _perfect() if f["id"] != "F003"]  # renal stone missed
    findings[1]["region"], findings[1]["side"] = "aorta", None  # left iliac called aorta
    findings.append(_finding(TRUTH_LESIONS[0], id="F010", centroid_lps_mm=[200.0, 200.0, 200.0]))
    rep = _study(tmp_path, findings)
    assert rep.region_confusion == {"aorta": {"aorta": 1}, "iliac": {"aorta": 1}, "renal": {"missed": 1}}
    kinds = sorted((c["error"], (c.get("truth") or c["predicted"])["region"]) for c in rep.errors)
    assert kinds == [("false_positive", "aorta"), ("missed", "renal"), ("region", "iliac"), ("side", "iliac")]
    region_error = next(c for c in rep.errors if c["error"] == "region")
    assert region_error["study"] == "case1"
    assert region_error["truth"]["id"] == 2 and region_error["predicted"]["id"] == "F002"
    table = rep.table()
    assert "iliac: aorta 1" in table and "missed (1): renal 1" in table
    json.dumps(rep.to_dict())


def test_volume_error_percentage(tmp_path):
    findings = _perfect()
    findings[0]["volume_mm3"] = 6.0  # +20 %
    findings[1]["volume_mm3"] = 40.0  # -20 %
    findings[2]["volume_mm3"] = 550.0  # +10 %
    findings[0]["mass_mg"] = 1.0  # -50 %
    rep = _study(tmp_path, findings)
    vol = rep.measurement_error_pct["volume"]
    assert vol["n"] == 3
    assert vol["mean_signed"] == pytest.approx((20 - 20 + 10) / 3)
    assert vol["mean_absolute"] == pytest.approx((20 + 20 + 10) / 3)
    assert rep.measurement_error_pct["mass"]["mean_signed"] == pytest.approx(-50 / 3)


def test_wrong_region_counts_in_region_accuracy(tmp_path):
    findings = _perfect()
    findings[1]["region"] = "aorta"  # iliac called aorta
    rep = _study(tmp_path, findings)
    assert rep.region_accuracy == pytest.approx(2 / 3)
    assert rep.sensitivity_overall == 1.0
    assert rep.sensitivity_right_region == pytest.approx(2 / 3)


def test_mask_overlap_matching(tmp_path):
    nib = pytest.importorskip("nibabel")
    truth = _write_truth(tmp_path / "t", copy.deepcopy(TRUTH_LESIONS[:2]))
    lab = np.zeros((8, 8, 8), np.int16)
    lab[1:3, 1:3, 1:3] = 1
    lab[5:7, 5:7, 5:7] = 2
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(truth / "truth" / "lesions.nii.gz"))
    # Centroids far away on purpose: only the masks can match them.
    far = [{"centroid_lps_mm": [500.0, 500.0, 500.0 + n]} for n in range(2)]
    findings = [_finding(TRUTH_LESIONS[0], mask_label=7, **far[0]),
                _finding(TRUTH_LESIONS[1], id="F009", **far[1])]
    series = _write_pred(tmp_path / "run", findings)
    pred = np.zeros_like(lab)
    pred[2, 2, 2] = 7
    pred[6, 6, 6] = 9
    nib.save(nib.Nifti1Image(pred, np.eye(4)), str(series / "lesions.nii.gz"))
    rep = evaluate(series, truth)  # a series folder directly
    assert rep.sensitivity_overall == 1.0 and rep.false_positives == 0
    assert rep.per_study[0]["match_method"] == "mask"


def test_pairing_by_series_hash_over_several_studies(tmp_path):
    root = tmp_path / "truth"
    _write_truth(root / "a", copy.deepcopy(TRUTH_LESIONS), uid_hash="a" * 64)
    _write_truth(root / "b", copy.deepcopy(TRUTH_LESIONS), uid_hash="b" * 64)
    run = tmp_path / "run"
    _write_pred(run, _perfect(), key="s_b", uid_hash="b" * 64)
    _write_pred(run, [f for f in _perfect() if f["region"] != "renal"], key="s_a", uid_hash="a" * 64)
    rep = evaluate(run, root)
    assert rep.n_studies == 2 and rep.n_scans_scored == 2
    assert rep.sensitivity_by_region["renal"] == {"hits": 1, "total": 2, "rate": 0.5}
    assert rep.sensitivity_by_region["aorta"]["rate"] == 1.0


def test_truth_without_prediction_counts_as_missed(tmp_path):
    root = tmp_path / "truth"
    _write_truth(root / "a", copy.deepcopy(TRUTH_LESIONS), uid_hash="a" * 64)
    _write_truth(root / "b", copy.deepcopy(TRUTH_LESIONS), uid_hash="b" * 64)
    run = tmp_path / "run"
    _write_pred(run, _perfect(), key="s_a", uid_hash="a" * 64)
    rep = evaluate(run, root)
    assert rep.sensitivity_overall == 0.5
    assert any("no predicted series" in w for w in rep.warnings)


# ------------------------------------------------------------------ AAC-24 and ICC


def _icc_reference(x: np.ndarray) -> float:
    """ICC(2,1) from variance components written out independently (two-way ANOVA)."""
    n, k = x.shape
    row_means, col_means, grand = x.mean(1), x.mean(0), x.mean()
    msr = k * np.sum((row_means - grand) ** 2) / (n - 1)
    msc = n * np.sum((col_means - grand) ** 2) / (k - 1)
    resid = x - row_means[:, None] - col_means[None, :] + grand
    mse = np.sum(resid**2) / ((n - 1) * (k - 1))
    var_subject = (msr - mse) / k
    var_rater = (msc - mse) / n
    return var_subject / (var_subject + var_rater + mse)


def test_icc_identical_scores_is_one():
    x = np.array([[0, 0], [3, 3], [7, 7], [12, 12]], float)
    assert icc_2_1(x) == pytest.approx(1.0)


def test_icc_shrout_fleiss_published_example():
    # Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; ICC(2,1) = 0.29.
    x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
    assert icc_2_1(x) == pytest.approx(0.29, abs=0.005)
    assert icc_2_1(x) == pytest.approx(_icc_reference(x))


def test_icc_small_two_rater_example_matches_reference():
    x = np.array([[2, 3], [5, 5], [8, 10], [1, 0], [12, 11]], float)
    assert icc_2_1(x) == pytest.approx(_icc_reference(x))
    assert icc_2_1(np.array([[4, 4], [4, 4]], float)) is None  # no variance: undefined


def test_aac24_groups_and_level_distance():
    assert [aac24_group(v) for v in (0, 1, 2, 5, 6, 24)] == ["low", "low", "moderate", "moderate", "high", "high"]
    assert level_distance("L2-L4", "L5") == 1
    assert level_distance("L3-L4", "L3") == 0
    assert level_distance("T12", "L2") == 2


def test_radiograph_aac24_metrics(tmp_path):
    truths, preds = [0, 3, 8, 15], [1, 3, 6, 14]
    root, run = tmp_path / "truth", tmp_path / "run"
    for n, (t, p) in enumerate(zip(truths, preds)):
        h = f"{n:064d}"
        _write_truth(root / f"r{n}", [], kind="radiograph", aac24={"total": t, "segments": {}}, uid_hash=h)
        _write_pred(run, [], key=f"s{n}", aac24={"total": p, "segments": {}}, uid_hash=h)
    rep = evaluate(run, root)
    assert rep.aac24 is not None and rep.aac24["n"] == 4
    assert rep.aac24["mae"] == pytest.approx((1 + 0 + 2 + 1) / 4)
    assert rep.aac24["group_agreement"] == pytest.approx(1.0)
    x = np.array([truths, preds], float).T
    assert rep.aac24["icc_2_1"] == pytest.approx(_icc_reference(x))
    assert rep.n_scans_scored == 0
    assert rep.aac24["wall_grades_n"] == 0  # no segments given
    # JSON-compliant (no infinities in the group bounds) and written atomically.
    doc = json.loads(rep.write_json(tmp_path / "m.json").read_text())
    assert doc["aac24"]["groups"] == {"low": [None, 2.0], "moderate": [2.0, 6.0], "high": [6.0, None]}
    table = rep.table()
    assert "AAC-24 ICC(2,1)" in table and "sensitivity" not in table  # no CT scored


def test_radiograph_wall_grade_agreement(tmp_path):
    t_seg = {"L1": {"anterior": 2, "posterior": 1}, "L2": {"anterior": 0, "posterior": 3}}
    p_seg = {"L1": {"anterior": 2, "posterior": 0}, "L2": {"anterior": 0, "posterior": 3}}
    _write_truth(tmp_path / "t", [], kind="radiograph", aac24={"total": 6, "segments": t_seg})
    _write_pred(tmp_path / "run", [], aac24={"total": 5, "segments": p_seg})
    rep = evaluate(tmp_path / "run", tmp_path / "t")
    assert rep.aac24["wall_grades_n"] == 4
    assert rep.aac24["wall_grade_exact_agreement"] == pytest.approx(0.75)
    assert rep.aac24["wall_grade_mae"] == pytest.approx(0.25)
    assert rep.aac24["icc_2_1"] is None  # one study: undefined
    assert rep.aac24["group_agreement"] == 0.0  # high (6) vs moderate (5)


# ------------------------------------------------------------------ malformed input


def test_missing_truth_raises(tmp_path):
    run = tmp_path / "run"
    _write_pred(run, [])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="truth.json"):
        evaluate(run, tmp_path / "empty")


def test_bad_schema_raises(tmp_path):
    study = _write_truth(tmp_path / "t", [])
    doc = json.loads((study / "truth" / "truth.json").read_text())
    doc["schema"] = "something-else/2"
    (study / "truth" / "truth.json").write_text(json.dumps(doc))
    _write_pred(tmp_path / "run", [])
    with pytest.raises(InputError, match=r"truth\.json.*schema"):
        evaluate(tmp_path / "run", study)


def test_findings_missing_keys_raise(tmp_path):
    study = _write_truth(tmp_path / "t", copy.deepcopy(TRUTH_LESIONS))
    bad = _finding(TRUTH_LESIONS[0])
    del bad["centroid_lps_mm"]
    _write_pred(tmp_path / "run", [bad])
    with pytest.raises(InputError, match=r"findings\.json.*findings\[0\].*centroid_lps_mm"):
        evaluate(tmp_path / "run", study)
    series = _write_pred(tmp_path / "run2", [])
    doc = json.loads((series / "findings.json").read_text())
    del doc["findings"]
    (series / "findings.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"findings\.json.*'findings'"):
        evaluate(tmp_path / "run2", study)


def test_bad_region_and_bad_json_raise(tmp_path):
    study = _write_truth(tmp_path / "t", [dict(TRUTH_LESIONS[0], region="heart")])
    _write_pred(tmp_path / "run", [])
    with pytest.raises(InputError, match="heart"):
        evaluate(tmp_path / "run", study)
    (study / "truth" / "truth.json").write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        evaluate(tmp_path / "run", study)


def test_write_json_is_complete(tmp_path):
    rep = _study(tmp_path, _perfect())
    out = rep.write_json(tmp_path / "out" / "eval.json")
    doc = json.loads(out.read_text())
    assert doc["schema"] == "calcdetect-evaluation/1"
    assert doc["sensitivity_overall"] == 1.0


def test_single_pair_with_different_hash_is_paired_with_warning(tmp_path):
    truth = _write_truth(tmp_path / "t", copy.deepcopy(TRUTH_LESIONS), uid_hash="c" * 64)
    _write_pred(tmp_path / "run", _perfect(), uid_hash="d" * 64)
    rep = evaluate(tmp_path / "run", truth)
    assert rep.sensitivity_overall == 1.0
    assert any("differs" in w for w in rep.warnings)


def test_eval_phantoms_script(tmp_path, capsys):
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "eval_phantoms.py"
    spec = importlib.util.spec_from_file_location("eval_phantoms", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    truth = _write_truth(tmp_path / "t", copy.deepcopy(TRUTH_LESIONS))
    _write_pred(tmp_path / "run", _perfect())
    assert mod.main([str(truth), str(tmp_path / "run"), "--json", str(tmp_path / "m.json")]) == 0
    assert "sensitivity" in capsys.readouterr().out
    assert json.loads((tmp_path / "m.json").read_text())["false_positives"] == 0
    assert mod.main([str(tmp_path / "nowhere"), str(tmp_path / "run")]) == 2


def test_real_ct_phantom_truth_with_perfect_predictions(tmp_path):
    ct_mod = pytest.importorskip("calcdetect.phantoms.ct")
    import shutil

    ph = ct_mod.generate_ct_phantom(ct_mod.CTPhantomSettings(
        seed=2, matrix=96, pixel_mm=3.0, slice_thickness_mm=5.0, fov=("L1", "L4"), noise_sigma_hu=0.0))
    study = ct_mod.write_ct_phantom(ph, tmp_path / "phantoms" / "ct2")
    truth = json.loads((study / "truth" / "truth.json").read_text())
    assert truth["lesions"], "the phantom should carry lesions"
    findings = []
    for n, les in enumerate(truth["lesions"]):
        findings.append({
            "id": f"F{n + 1:03d}", "mask_label": les["id"], "region": les["region"], "side": les["side"],
            "level": les["level"], "kind": les["kind"], "morphology": "punctate",
            "centroid_lps_mm": les["centroid_lps_mm"], "volume_mm3": les["volume_mm3"],
            "agatston": None, "mass_mg": les["mass_mg"], "peak_hu": 500.0, "max_diameter_mm": 3.0,
            "confidence": 0.9,
        })
    pydicom = pytest.importorskip("pydicom")
    first = sorted((study / "dicom").glob("*.dcm"))[0]
    uid_hash = hash_uid(str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID))
    assert truth.get("series_uid_hash") in (None, uid_hash)
    series = _write_pred(tmp_path / "run", findings, uid_hash=uid_hash)
    shutil.copy(study / "truth" / "lesions.nii.gz", series / "lesions.nii.gz")
    # A second study whose prediction is missing: pairing must go by the hash.
    _write_truth(tmp_path / "phantoms" / "zz", copy.deepcopy(TRUTH_LESIONS), uid_hash="e" * 64)
    rep = evaluate(tmp_path / "run", tmp_path / "phantoms")
    rep_ct = [row for row in rep.per_study if row["study"].endswith("ct2")][0]
    assert rep_ct["detected"] == rep_ct["targets"] and rep_ct["false_positives"] == 0
    assert rep_ct["match_method"] == "mask"
    rep = evaluate(tmp_path / "run", study)
    assert rep.per_study[0]["match_method"] == "mask"
    assert rep.sensitivity_overall == 1.0 and rep.false_positives == 0
    assert rep.region_accuracy == rep.side_accuracy == rep.level_accuracy_exact == 1.0
    assert rep.distractors_mislabelled == 0


def test_qrm_inserts_are_measured_not_distractors(tmp_path):
    inserts = [
        {"id": n + 1, "region": "other", "side": None, "level": None, "kind": "calibration_insert",
         "volume_mm3": v, "mass_mg": m, "agatston": a, "centroid_lps_mm": [20.0 * n, 0.0, 0.0],
         "diameter_mm": 5.0}
        for n, (v, m, a) in enumerate([(100.0, 20.0, 150.0), (50.0, 10.0, 80.0), (20.0, 4.0, 30.0)])
    ]
    _write_truth(tmp_path / "q", inserts, kind="qrm")
    findings = [_finding(dict(les, max_diameter_mm=5.0), volume_mm3=les["volume_mm3"] * 1.1,
                         agatston=les["agatston"]) for les in inserts[:2]]
    _write_pred(tmp_path / "run", findings)
    rep = evaluate(tmp_path / "run", tmp_path / "q")
    assert rep.calibration_inserts_detected == {"hits": 2, "total": 3, "rate": pytest.approx(2 / 3)}
    assert rep.distractors == 0 and rep.false_positives == 0
    assert rep.measurement_error_pct["volume"]["mean_signed"] == pytest.approx(10.0)
    assert rep.measurement_error_pct["agatston"]["mean_absolute"] == pytest.approx(0.0)
    assert rep.sensitivity_overall is None  # no targets
    assert "calibration inserts detected" in rep.table()


def test_radiograph_vertebral_corners(tmp_path):
    def corners(r0, c0):  # a 30 x 35 px body with its top-left (anterior-superior) corner at r0, c0
        return {"anterior_superior": [r0, c0], "posterior_superior": [r0, c0 + 35],
                "posterior_inferior": [r0 + 30, c0 + 35], "anterior_inferior": [r0 + 30, c0]}

    truth_v = {lv: {"corners_px": corners(100 + 40 * n, 200)} for n, lv in enumerate(["L1", "L2", "L3"])}
    (tmp_path / "t" / "truth").mkdir(parents=True)
    (tmp_path / "t" / "truth" / "truth.json").write_text(json.dumps({
        "schema": "calcdetect-truth/1", "kind": "radiograph", "lesions": [], "aac24": {"total": 0},
        "vertebrae": truth_v, "image": {"imager_pixel_spacing_mm": [0.2, 0.2], "magnification": 1.25}}))

    def as_rc(c):  # prediction order: SA, SP, IP, IA
        return [c["anterior_superior"], c["posterior_superior"], c["posterior_inferior"], c["anterior_inferior"]]

    pred_v = [
        {"level": "L1", "corners_rc": as_rc(corners(103, 204))},  # 5 px off = 0.8 mm in the patient plane
        {"level": "L3", "corners_rc": as_rc(corners(140, 200))},  # the L2 body called L3
    ]
    series = _write_pred(tmp_path / "run", [], aac24={"total": 0})
    doc = json.loads((series / "findings.json").read_text())
    doc["input"]["modality"] = "DX"
    doc["vertebrae"] = pred_v
    (series / "findings.json").write_text(json.dumps(doc))
    rep = evaluate(tmp_path / "run", tmp_path / "t")
    v = rep.vertebrae
    assert v["truth_bodies"] == 3 and v["found"] == 2
    assert v["level_accuracy"] == pytest.approx(0.5)
    assert v["corner_error_mm_mean"] == pytest.approx((5 * 0.16 + 0.0) / 2)
    assert "vertebral bodies found" in rep.table()


def test_pieces_of_a_cluster_are_fragments_not_false_positives(tmp_path):
    # Lesion 3 (renal) is a cluster: its bounding box holds two more findings.
    lesions = copy.deepcopy(TRUTH_LESIONS)
    lesions[2]["bbox"] = {"mm": [-66.0, 14.0, 114.0, -54.0, 26.0, 126.0]}
    lesions[3]["bbox"] = {"mm": [48.0, 8.0, -22.0, 52.0, 12.0, -18.0]}
    pieces = [_finding(lesions[2], id=f"F02{n}", centroid_lps_mm=[-65.0 + 3 * n, 25.0, 114.5])
              for n in range(2)]
    outside = _finding(lesions[2], id="F030", centroid_lps_mm=[-60.0, 20.0, 140.0])  # 20 mm away
    phlebolith_piece = _finding(lesions[3], id="F031", region="iliac",
                                centroid_lps_mm=[53.5, 10.0, -20.0])
    rep = _study(tmp_path, _perfect() + pieces + [outside, phlebolith_piece], lesions)
    assert rep.fragments == 3
    # The far finding is a false positive; so is a piece of a distractor called vascular.
    assert rep.false_positives == 2
    assert rep.false_positives_unmatched == 1 and rep.false_positives_on_distractors == 1


def test_two_truth_lesions_fused_into_one_finding_are_both_found(tmp_path):
    nib = pytest.importorskip("nibabel")
    truth = _write_truth(tmp_path / "t", copy.deepcopy(TRUTH_LESIONS[:2]))
    series = _write_pred(tmp_path / "run", [_finding(TRUTH_LESIONS[0], mask_label=5)])
    lab = np.zeros((8, 8, 8), np.int16)
    lab[1:3, 1:3, 1:3], lab[3:5, 1:3, 1:3] = 1, 2
    pred = np.where(lab > 0, 5, 0).astype(np.int16)
    for labels, path in ((lab, truth / "truth"), (pred, series)):
        nib.save(nib.Nifti1Image(labels, np.eye(4)), str(path / "lesions.nii.gz"))
    rep = evaluate(series, truth)
    assert rep.sensitivity_overall == 1.0
    # The fused finding carries the aortic lesion's region: wrong for the iliac one.
    assert rep.region_accuracy == 0.5
    assert rep.per_study[0]["merged"] == 1


def test_eval_ct_matrix_script_runs_a_case_end_to_end(tmp_path, capsys):
    """scripts/eval_ct.py: phantom -> DICOM -> calcdetect run -> evaluate, one small case."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "eval_ct.py"
    spec = importlib.util.spec_from_file_location("eval_ct", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # The design cycles kVp / noise / thickness with the case's position in the list.
    s = mod.case_settings(5, 505, 128, ("L3", "L4"))
    assert (s.kvp, s.noise_sigma_hu, s.slice_thickness_mm, s.contrast) == (100.0, 40.0, 1.25, False)
    assert mod.parse_seeds("500-502,510") == [500, 501, 502, 510]
    out_json = tmp_path / "m.json"
    argv = ["--seeds", "508", "--matrix", "128", "--fov", "L3-L4", "--cache", str(tmp_path / "c"),
            "--json", str(out_json)]
    assert mod.main(argv) == 0
    out = capsys.readouterr().out
    assert "s508_m128_kv80_n10_t0.625_L3-L4" in out and "sensitivity, targets >= 3 mm" in out
    metrics = json.loads(out_json.read_text())
    assert metrics["n_scans_scored"] == 1 and metrics["per_study"][0]["match_method"] == "mask"


def _fused_study(tmp_path: Path, gap: int) -> "object":
    """Two aortic plaques (L3, L4) reported as one finding at "L3-L4"; ``gap`` slices
    of background between them in the truth mask."""
    nib = pytest.importorskip("nibabel")
    lesions = copy.deepcopy(TRUTH_LESIONS[:2])
    lesions[1].update(region="aorta", side=None, level="L4")
    truth = _write_truth(tmp_path / "t", lesions)
    series = _write_pred(tmp_path / "run", [_finding(lesions[0], level="L3-L4", mask_label=5)])
    lab = np.zeros((10, 8, 8), np.int16)
    lab[1:3, 1:3, 1:3], lab[3 + gap : 5 + gap, 1:3, 1:3] = 1, 2
    pred = np.zeros_like(lab)
    pred[1 : 5 + gap, 1:3, 1:3] = 5  # the threshold bridges any gap
    for labels, path in ((lab, truth / "truth"), (pred, series)):
        nib.save(nib.Nifti1Image(labels, np.eye(4)), str(path / "lesions.nii.gz"))
    return evaluate(series, truth)


def test_fused_touching_plaques_are_scored_at_the_union_of_their_levels(tmp_path):
    rep = _fused_study(tmp_path, gap=0)
    # One connected calcification in the truth: "L3-L4" is the level a reader gives it.
    assert rep.level_accuracy_exact == 1.0
    assert rep.level_accuracy_exact_strict == 0.0
    assert not [e for e in rep.errors if e["error"] == "level"]
    assert "strict" in rep.table() and rep.to_dict()["level_accuracy_exact_strict"] == 0.0


def test_plaques_separate_in_the_truth_keep_their_own_level_when_fused(tmp_path):
    rep = _fused_study(tmp_path, gap=2)
    # Two separate plaques bridged by the threshold: a detection error, so each
    # is still scored against its own level.
    assert rep.level_accuracy_exact == rep.level_accuracy_exact_strict == 0.0
    levels = [e for e in rep.errors if e["error"] == "level"]
    assert len(levels) == 2 and all("level_fused" not in e["truth"] for e in levels)


def test_studies_sharing_a_series_hash_pair_by_study_folder_name(tmp_path):
    # Phantoms of one seed scanned with different settings share their UIDs: each
    # must be scored against its own run, not all against the last one found.
    root = tmp_path / "truth"
    _write_truth(root / "s300_kv80", copy.deepcopy(TRUTH_LESIONS), uid_hash="c" * 64)
    _write_truth(root / "s300_kv120", copy.deepcopy(TRUTH_LESIONS), uid_hash="c" * 64)
    run = tmp_path / "run"
    _write_pred(run / "s300_kv80", _perfect(), key="x", uid_hash="c" * 64)
    _write_pred(run / "s300_kv120", [f for f in _perfect() if f["region"] != "renal"], key="x",
                uid_hash="c" * 64)
    rep = evaluate(run, root)
    assert rep.n_scans_scored == 2
    assert rep.sensitivity_by_region["renal"] == {"hits": 1, "total": 2, "rate": 0.5}


def test_shared_series_hash_without_named_folders_is_not_guessed(tmp_path):
    root = tmp_path / "truth"
    _write_truth(root / "a", copy.deepcopy(TRUTH_LESIONS), uid_hash="c" * 64)
    _write_truth(root / "b", copy.deepcopy(TRUTH_LESIONS), uid_hash="c" * 64)
    run = tmp_path / "run"
    _write_pred(run, _perfect(), key="x1", uid_hash="c" * 64)
    _write_pred(run, _perfect(), key="x2", uid_hash="c" * 64)
    rep = evaluate(run, root)
    assert rep.sensitivity_overall == 0.0
    assert any("share its series_uid_hash" in w for w in rep.warnings)


def test_agreement_ci95_brackets_the_estimate_and_narrows_with_more_cases():
    from calcdetect.evaluate import agreement_ci95

    rng = np.random.default_rng(3)
    truth = rng.integers(0, 20, 400).astype(float)
    est = truth + rng.choice([-2.0, -1.0, 0.0, 1.0, 2.0], 400)
    small, large = agreement_ci95(np.column_stack([truth[:40], est[:40]])), agreement_ci95(np.column_stack([truth, est]))
    mae = np.abs(truth - est).mean()
    assert large["mae"][0] < mae < large["mae"][1]
    assert large["icc21"][0] < icc_2_1(np.column_stack([truth, est])) < large["icc21"][1]
    assert np.diff(large["mae"])[0] < np.diff(small["mae"])[0]
    assert np.diff(large["icc21"])[0] < np.diff(small["icc21"])[0]
    # the draw is seeded: a rerun reports the same interval
    assert agreement_ci95(np.column_stack([truth, est])) == large


def test_agreement_ci95_is_none_for_too_few_cases():
    from calcdetect.evaluate import agreement_ci95

    assert agreement_ci95(np.array([[1.0, 1.0], [2.0, 3.0]])) == {"icc21": None, "mae": None}
