#!/usr/bin/env python
"""How much of the radiograph AAC-24 truth rests on calcium a lateral view barely shows.

For each phantom seed (the recipe of ``eval_radiograph.py``), the AAC-24 truth is
recomputed counting only lesion slices whose calcium adds at least ``tau`` to the
detector's log-attenuation on its densest ray
(``calcdetect.phantoms.radiograph.aac24_by_visibility``; ``tau`` 0 is the truth itself;
about 0.01 is one noise SD of a 0.3 mm pixel at 1e4 detected quanta).

Reported per ``tau``:

* ``oracle``: the agreement of that visible-calcium score with the truth, i.e. what a
  detector reaches that finds exactly the calcium above ``tau`` and nothing else (a ceiling
  for detectors that cannot see below ``tau``);
* with ``--eval F.json`` (an ``eval_radiograph.py --out`` of the same seeds): the agreement
  of that evaluation's AAC-24 readings with the visible-calcium score, which says whether a
  detector's misses are calcium below ``tau``.

Usage::

    .venv/bin/python scripts/visibility_radiograph.py --seeds 400-539 --tau 0.02,0.05,0.1 \\
        --eval dev.json --out visibility.json

Each seed regenerates its CT phantom (~5 s); nothing is cached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_radiograph import _agreement, _seeds, phantom_recipe  # noqa: E402

from calcdetect.export.atomic import atomic_write_json  # noqa: E402
from calcdetect.phantoms.radiograph import aac24_by_visibility  # noqa: E402


def visible_truth(seed: int, taus: list[float]) -> dict[str, int]:
    """AAC-24 totals of one seed per ``tau`` (keys ``str(tau)``, ``"0.0"`` the truth)."""
    ct, settings = phantom_recipe(seed)
    by_tau = aac24_by_visibility(ct, settings, [0.0, *taus])
    return {str(t): int(v["total"]) for t, v in by_tau.items()}


def summarise(rows: list[dict], taus: list[float], readings: dict[int, float] | None) -> dict[str, dict]:
    """Per ``tau``: the oracle's agreement with the truth, and the readings' with the visible score."""
    out: dict[str, dict] = {}
    for tau in taus:
        key = str(float(tau))
        entry: dict[str, object] = {
            "mean_visible_aac24": float(np.mean([r["aac24"][key] for r in rows])),
            "oracle": _agreement([(r["aac24"]["0.0"], r["aac24"][key]) for r in rows]),
        }
        if readings is not None:
            entry["readings_vs_visible"] = _agreement([(r["aac24"][key], readings.get(r["seed"])) for r in rows])
        out[key] = entry
    if readings is not None:
        out["0.0"] = {"readings_vs_truth": _agreement([(r["aac24"]["0.0"], readings.get(r["seed"])) for r in rows])}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", required=True, help="e.g. 400-539 or 1,5,9")
    ap.add_argument("--tau", default="0.02,0.05,0.1", help="log-attenuation thresholds, comma-separated")
    ap.add_argument("--eval", type=Path, default=None, help="an eval_radiograph.py --out JSON of the same seeds")
    ap.add_argument("--out", type=Path, default=None, help="write the per-seed scores and the summary here")
    args = ap.parse_args(argv)
    try:
        taus = sorted({float(t) for t in args.tau.split(",") if t.strip()})
    except ValueError:
        raise SystemExit(f"--tau {args.tau!r}: give numbers, e.g. 0.02,0.05") from None
    if not taus or min(taus) <= 0:
        raise SystemExit(f"--tau {args.tau!r}: give thresholds above 0 (0 is the truth itself)")
    readings = None
    if args.eval is not None:
        cases = json.loads(args.eval.read_text()).get("cases")
        if not isinstance(cases, list):
            raise SystemExit(f"{args.eval}: no 'cases' list; give the JSON that eval_radiograph.py --out writes")
        readings = {int(c["seed"]): c.get("aac24_pred") for c in cases}
    rows = []
    for seed in _seeds(args.seeds):
        try:
            rows.append({"seed": seed, "aac24": visible_truth(seed, taus)})
        except ValueError as exc:  # no L1-L4 truth in this phantom
            print(f"seed {seed}: skipped ({exc})", flush=True)
            continue
        print(f"seed {seed}: {rows[-1]['aac24']}", flush=True)
    if not rows:
        raise SystemExit("no seed gave an AAC-24 truth")
    result = {"seeds": args.seeds, "tau": taus, "summary": summarise(rows, taus, readings), "cases": rows}
    for key, entry in result["summary"].items():
        print(key, json.dumps(entry, default=str))
    if args.out is not None:
        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
