"""Paired comparison of calcium nets (scripts/compare_calcium_nets.py): the readings are the
full pipeline's, a logit mean of a net with itself reads as the net, and pooled blocks
give the pooled paired difference."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import compare_calcium_nets as cmp  # noqa: E402
import eval_radiograph  # noqa: E402

from mask_net import TINY_CONFIG  # noqa: E402

from calcdetect.evaluate import paired_error_difference, severity_agreement  # noqa: E402
from calcdetect.radiograph.aac_net import DEFAULT_MODEL_PATH, build_calcium_net, save_calcium_model  # noqa: E402

SEEDS = [1000, 1001, 1002]


def test_paired_difference_counts_only_cases_all_sides_scored():
    truth = [10, 4, 6, None, 8]
    base = [8, 4, 9, 5, None]
    other = [10, 5, 7, 5, 8]
    d = paired_error_difference(truth, base, other)
    # case 0: 0 - 2, case 1: 1 - 0, case 2: 1 - 3; cases 3-4 lack a truth or a base reading
    assert d["n"] == 3 and d["mean"] == pytest.approx(-1.0)
    assert d["better"] == 2 and d["worse"] == 1
    assert d["se"] == pytest.approx(1.0)  # SD of (-2, 1, -2) is sqrt(3), over sqrt(3)
    with pytest.raises(ValueError, match="one value per case"):
        paired_error_difference(truth, base, other[:2])


def test_severity_agreement_compares_groups_not_totals():
    # 1 and 0 are both low, 5 / 6 straddle moderate / high, 12 and 20 are both high; None is left out
    assert severity_agreement([(1, 0), (5, 6), (12, 20), (None, 3), (4, None)]) == pytest.approx(2 / 3)
    assert severity_agreement([(None, 1)]) is None


@pytest.fixture(scope="module")
def synthetic_scores(tmp_path_factory):
    """The shipped net, the same file at a stricter threshold, and the net's logit mean with
    itself, on synthetic drawings (the evaluator's --source synthetic cases)."""
    settings = cmp.load_settings(
        ["v8=default", f"strict={DEFAULT_MODEL_PATH}@0.97"], ["self=v8+v8@0.5"])
    original = cmp.phantom_case
    cmp.phantom_case = lambda seed, cache, ct: eval_radiograph.synthetic_case(seed)
    try:
        return cmp.score_cases(SEEDS, tmp_path_factory.mktemp("cache"), settings)
    finally:
        cmp.phantom_case = original


def test_readings_are_the_evaluators(synthetic_scores):
    cases = [(s, eval_radiograph.synthetic_case(s)) for s in SEEDS]
    official = eval_radiograph.evaluate(cases)
    assert synthetic_scores["readings"]["v8"] == [r["aac24_pred"] for r in official["cases"]]
    assert synthetic_scores["truth"] == [r["aac24_truth"] for r in official["cases"]]


def test_a_mean_of_a_net_with_itself_reads_as_the_net(synthetic_scores):
    assert synthetic_scores["readings"]["self"] == synthetic_scores["readings"]["v8"]


def test_an_ensemble_names_its_members_not_its_first_file():
    settings = cmp.load_settings(["v8=default"], ["self=v8+v8@0.5"])
    name = DEFAULT_MODEL_PATH.name
    assert settings["self"].source == {"file": f"logit mean of {name}+{name}"}
    assert settings["v8"].source["file"] == name


def test_a_stricter_threshold_never_reads_more_and_the_summary_pairs_it(synthetic_scores):
    v8, strict = synthetic_scores["readings"]["v8"], synthetic_scores["readings"]["strict"]
    assert all(s <= v for s, v in zip(strict, v8))
    assert strict != v8  # 0.97 drops some wall the shipped 0.5 keeps
    summary = cmp.summarise(synthetic_scores)
    paired = summary["settings"]["strict"]["paired_vs_baseline"]
    truth = synthetic_scores["truth"]
    expected = sum(abs(s - t) - abs(v - t) for s, v, t in zip(strict, v8, truth)) / len(truth)
    assert summary["baseline"] == "v8" and paired["mean"] == pytest.approx(expected)
    assert "paired_vs_baseline" not in summary["settings"]["v8"]
    from calcdetect.radiograph.aac import severity_group

    groups = [severity_group(t) == severity_group(v) for t, v in zip(truth, v8)]
    assert summary["settings"]["v8"]["severity_agreement"] == pytest.approx(sum(groups) / len(groups))


def test_pooling_disjoint_blocks_equals_scoring_them_together(tmp_path, synthetic_scores):
    whole = synthetic_scores
    parts = []
    for k, sl in enumerate((slice(0, 1), slice(1, 3))):
        part = {"seeds": whole["seeds"][sl], "truth": whole["truth"][sl],
                "readings": {n: v[sl] for n, v in whole["readings"].items()}}
        parts.append(tmp_path / f"part{k}.json")
        parts[-1].write_text(json.dumps(part))
    pooled = cmp.pool(parts)
    assert pooled["readings"] == whole["readings"] and pooled["seeds"] == whole["seeds"]
    with pytest.raises(SystemExit, match="share seeds"):
        cmp.pool([parts[0], parts[0]])
    # a realism-check block (sharper CT clutter) is not pooled with the standard phantoms
    sharp = json.loads(parts[1].read_text()) | {"ct": "sharp"}
    parts[1].write_text(json.dumps(sharp))
    with pytest.raises(SystemExit, match="different CT recipes"):
        cmp.pool(parts)


def test_an_ensemble_of_nets_with_different_inputs_is_refused(tmp_path):
    config = TINY_CONFIG  # contrast and depth, where the shipped net takes contrast, top-hat and depth
    small = save_calcium_model(build_calcium_net(config), config, 0.5, tmp_path / "two.safetensors")
    with pytest.raises(SystemExit, match="different input channels"):
        cmp.load_settings(["v8=default", f"two={small}"], ["mix=v8+two@0.5"])
    with pytest.raises(SystemExit, match="threshold of the mean logit"):
        cmp.load_settings(["v8=default"], ["mix=v8+v8"])
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        cmp.load_settings(["default"], [])
