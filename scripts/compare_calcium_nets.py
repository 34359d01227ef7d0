"""Compare radiograph calcium nets on the same phantom cases, paired against the first one.

Why: blocks of phantom seeds differ in AAC-24 error by more than nets do (issue #6 notes,
sessions 19-24), so a new net is only judged by its per-case difference from the shipped
one on shared cases, pooled over hundreds of them. This scores every named setting on
each case of ``scripts/eval_radiograph.py``'s phantom cache, through the full pipeline
(``analyse_radiograph``: vertebrae, zone, net, Kauppila rules), and reports per setting
AAC-24 ICC(2,1), MAE and bias with bootstrap 95% intervals, the share of cases in the truth's
severity group (low / moderate / high), and the paired MAE
difference from the first setting with its SE and the cases won and lost.

Settings::

    --net NAME=PATH[@THRESHOLD]     a calcium net file (PATH ``default``: the shipped net); without
                                    @THRESHOLD the file's own (the trainer stamps the one its
                                    validation cases chose, which is not the development block's)
    --ensemble NAME=A+B[+...]@THR   the mean of the logits of nets named by --net, at THR

Usage::

    .venv/bin/python scripts/compare_calcium_nets.py --seeds 1500-1819 --cache CACHE \\
        --net v8=default --net gas=/tmp/aac_gas.safetensors --out /tmp/cmp_1500.json
    # blocks run apart (one per core) are pooled afterwards; settings are matched by name:
    .venv/bin/python scripts/compare_calcium_nets.py --pool /tmp/cmp_1500.json /tmp/cmp_920.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_radiograph import CT_RECIPES, _agreement, _seeds, phantom_case  # noqa: E402

from calcdetect.errors import CalcdetectError  # noqa: E402
from calcdetect.evaluate import paired_error_difference, severity_agreement  # noqa: E402
from calcdetect.export.atomic import atomic_write_json  # noqa: E402
from calcdetect.radiograph.aac_net import (  # noqa: E402
    CalciumModel,
    MeanLogitEnsemble,
    load_calcium_model,
    load_default_calcium_model,
)
from calcdetect.radiograph.analyse import analyse_radiograph, detect_spine  # noqa: E402
from calcdetect.radiograph.vertebra_net import load_default_vertebra_model  # noqa: E402
from calcdetect.types import AcquisitionInfo, Radiograph  # noqa: E402


def _split_threshold(text: str, what: str) -> tuple[str, float | None]:
    body, sep, thr = text.rpartition("@")
    if not sep:
        return text, None
    try:
        value = float(thr)
    except ValueError:
        raise SystemExit(f"{what} {text!r}: the part after '@' must be a threshold such as 0.5") from None
    if not 0.0 < value < 1.0:
        raise SystemExit(f"{what} {text!r}: the threshold must lie strictly between 0 and 1")
    return body, value


def _name_value(text: str, what: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise SystemExit(f"{what} {text!r}: write NAME=VALUE, e.g. v8=default")
    return name, value


def load_settings(nets: list[str], ensembles: list[str]) -> dict[str, CalciumModel]:
    """The calcium models to compare, in the order given (nets first, then ensembles)."""
    out: dict[str, CalciumModel] = {}
    for text in nets:
        name, value = _name_value(text, "--net")
        path, thr = _split_threshold(value, "--net")
        model = load_default_calcium_model() if path == "default" else load_calcium_model(Path(path))
        if model is None:
            raise SystemExit("--net NAME=default: no calcium net is shipped; give a weights file")
        out[name] = model if thr is None else dataclasses.replace(model, threshold=thr)
    for text in ensembles:
        name, value = _name_value(text, "--ensemble")
        members_text, thr = _split_threshold(value, "--ensemble")
        if thr is None:
            raise SystemExit(f"--ensemble {text!r}: give the threshold of the mean logit, e.g. {value}@0.5")
        members = [out.get(m) for m in members_text.split("+")]
        if len(members) < 2 or any(m is None for m in members):
            raise SystemExit(f"--ensemble {text!r}: name two or more nets given by --net ({sorted(out)})")
        first = members[0]
        if any((m.inputs, m.input_scale) != (first.inputs, first.input_scale) for m in members):
            raise SystemExit(f"--ensemble {text!r}: its nets take different input channels or scales; "
                             "a logit mean needs one input")
        net = MeanLogitEnsemble([m.net for m in members]).eval()
        files = "+".join(m.source.get("file", "built in memory") for m in members)
        # the first member's measured AAC-24 bound is not the mean's
        out[name] = dataclasses.replace(first, net=net, threshold=thr, flip_average=False,
                                        source={"file": f"logit mean of {files}"}, aac24_error_bound=None)
    if not out:
        raise SystemExit("name at least one --net")
    if len(set(out)) != len(nets) + len(ensembles):
        raise SystemExit("setting names must differ")
    return out


def score_cases(seeds: list[int], cache: Path, settings: dict[str, CalciumModel], ct: str = "standard") -> dict:
    """AAC-24 readings of every setting on every phantom case with a truth (``None``: refused);
    ``ct``: the phantoms' CT recipe (``eval_radiograph.CT_RECIPES``)."""
    result: dict = {"seeds": [], "truth": [], "readings": {name: [] for name in settings}, "ct": ct}
    vertebra_model = load_default_vertebra_model()
    for seed in seeds:
        case = phantom_case(seed, cache, ct)
        if case.get("aac24") is None:
            continue
        rg = Radiograph(np.asarray(case["image"], np.float32), tuple(case["spacing"]), AcquisitionInfo("DX"),
                        view="lateral")
        result["seeds"].append(seed)
        result["truth"].append(case["aac24"])
        # one vertebra detection serves every calcium net (the nets see the same strip)
        try:
            spine = detect_spine(rg.array, tuple(rg.pixel_spacing), vertebra_model)
        except CalcdetectError:
            spine = None
        line = []
        for name, model in settings.items():
            try:
                a = analyse_radiograph(rg, calcium_model=model, vertebra_model=vertebra_model, spine=spine)
                value = a.aac24["total"] if a.aac24 is not None else None
            except CalcdetectError:
                value = None
            result["readings"][name].append(value)
            line.append(f"{name} {value}")
        print(f"seed {seed}: truth {case['aac24']}; " + ", ".join(line), flush=True)
    return result


def within_points(scored: list[tuple[int, int]], most: int = 4) -> dict[str, float]:
    """Share of (truth, reading) pairs whose reading lies within k points of the truth, k = 0..most.

    >>> within_points([(3, 3), (5, 7), (0, 4)], most=2)
    {'0': 0.333, '1': 0.333, '2': 0.667}
    """
    if not scored:
        return {}
    err = np.abs([p - t for t, p in scored])
    return {str(k): round(float(np.mean(err <= k)), 3) for k in range(most + 1)}


def summarise(result: dict) -> dict:
    """Per setting agreement with the truth and the paired difference from the first setting."""
    truth = result["truth"]
    names = list(result["readings"])
    summary: dict = {"n_cases": len(truth), "baseline": names[0], "settings": {}}
    for name in names:
        readings = result["readings"][name]
        agreement = _agreement(list(zip(truth, readings)))
        scored = [(t, p) for t, p in zip(truth, readings) if p is not None]
        entry = {**agreement, "bias": float(np.mean([p - t for t, p in scored])) if scored else None,
                 # what a reader acts on: the published group (low / moderate / high), not the total
                 "severity_agreement": severity_agreement(scored),
                 # the shares behind a net's AAC-24 range (train_radiograph_aac.py --error-bound)
                 "within_points": within_points(scored)}
        if name != names[0]:
            entry["paired_vs_baseline"] = paired_error_difference(truth, result["readings"][names[0]], readings)
        summary["settings"][name] = entry
    return summary


def pool(paths: list[Path]) -> dict:
    """One result from several: the cases of all, for the settings every file holds."""
    parts = [json.loads(p.read_text()) for p in paths]
    names = [n for n in parts[0]["readings"] if all(n in p["readings"] for p in parts)]
    if not names:
        raise SystemExit("the files share no setting name; pool runs of the same --net names")
    seeds = [s for p in parts for s in p["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise SystemExit("the files share seeds; pool disjoint blocks only")
    cts = sorted({p.get("ct", "standard") for p in parts})
    if len(cts) > 1:
        raise SystemExit(f"the files were scored on different CT recipes ({', '.join(cts)}); pool one recipe at a time")
    return {"seeds": seeds, "ct": cts[0], "truth": [t for p in parts for t in p["truth"]],
            "readings": {n: [v for p in parts for v in p["readings"][n]] for n in names}}


def _print_summary(summary: dict) -> None:
    print(f"{summary['n_cases']} cases; paired against {summary['baseline']}")
    for name, s in summary["settings"].items():
        if not s["n"]:
            print(f"{name}: nothing scored")
            continue
        ci = s["ci95"] or {}
        icc_ci = ci.get("icc21") or [float("nan")] * 2
        mae_ci = ci.get("mae") or [float("nan")] * 2
        line = (f"{name}: n {s['n']} ICC {s['icc21']:.3f} ({icc_ci[0]:.3f}-{icc_ci[1]:.3f}) "
                f"MAE {s['mae']:.3f} ({mae_ci[0]:.2f}-{mae_ci[1]:.2f}) bias {s['bias']:+.2f} "
                f"group {100 * s['severity_agreement']:.1f}%; within 1 / 2 / 3 points "
                + " / ".join(f"{100 * s['within_points'][k]:.0f}%" for k in ("1", "2", "3")))
        paired = s.get("paired_vs_baseline")
        if paired and paired["n"]:
            se = f"{paired['se']:.3f}" if paired["se"] is not None else "-"
            line += (f"; MAE minus {summary['baseline']} {paired['mean']:+.3f} (SE {se}), "
                     f"{paired['better']} better / {paired['worse']} worse")
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", help="phantom seeds, e.g. 1500-1819 or 920-999,1100-1259")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/calcdetect_eval_radiograph"))
    ap.add_argument("--ct", choices=tuple(CT_RECIPES), default="standard",
                    help="the phantoms' CT recipe (eval_radiograph.CT_RECIPES; 'sharp', 'film': the realism checks)")
    ap.add_argument("--net", action="append", default=[], help="NAME=PATH[@THRESHOLD]; the first is the baseline")
    ap.add_argument("--ensemble", action="append", default=[], help="NAME=A+B@THRESHOLD (nets named by --net)")
    ap.add_argument("--pool", type=Path, nargs="+", help="pool earlier --out files instead of scoring")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: run one block per core)")
    ap.add_argument("--out", type=Path, help="write readings and summary as JSON here")
    args = ap.parse_args(argv)
    if args.pool:
        if args.seeds or args.net or args.ensemble:
            ap.error("--pool reads earlier results; it takes no --seeds, --net or --ensemble")
        result = pool(args.pool)
    else:
        if not args.seeds or not args.net:
            ap.error("give --seeds and at least one --net (or --pool FILES)")
        import torch

        torch.set_num_threads(args.threads)
        result = score_cases(_seeds(args.seeds), args.cache, load_settings(args.net, args.ensemble), args.ct)
        result["settings"] = {"nets": args.net, "ensembles": args.ensemble}
    result["summary"] = summarise(result)
    _print_summary(result["summary"])
    if args.out:
        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
