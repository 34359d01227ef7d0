#!/usr/bin/env python
"""Benchmark the whole CT analysis after loading (issue 4: <= 5 s and <= 2 GiB on 2 cores).

Runs :func:`calcdetect.pipeline.analyse_ct` -- bone, anatomy, candidates,
classification and the draft report, exactly as ``calcdetect run`` does after
decoding -- on a 512 x 512 x 400 CT phantom (0.78 mm pixels, 1 mm slices, T10
down to the pelvis). The phantom is made once and cached as .npy by
``scripts/bench_anatomy.py``'s helper.

Each repeat runs in a fresh child process, so its peak RSS is the input volume
plus what the analysis allocates (not a previous repeat's garbage). Prints, as
JSON: median wall and CPU seconds, every run, the peak RSS, a per-stage split of
one run (cProfile cumulative CPU time of the stage functions, all threads), the
worker threads used, and the load average (the machine may be shared: read wall
times against it; with other processes running, threads add little).

Usage::

    .venv/bin/python scripts/bench_pipeline.py [--repeats 3] [--slices 400] [--workers N] [--model models/X.safetensors]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_anatomy import _phantom  # noqa: E402

from calcdetect.workers import available_cpus  # noqa: E402

_RUN = """
import cProfile, json, pstats, resource, sys, time
import numpy as np
from pathlib import Path
from calcdetect.config import RunSettings
from calcdetect.pipeline import analyse_ct
from calcdetect.types import AcquisitionInfo, Volume
folder, model, profile = Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3] == "1"
workers = int(sys.argv[4]) if sys.argv[4] else None
vol = Volume(np.load(folder / "hu.npy"), tuple(float(v) for v in np.load(folder / "spacing.npy")),
             np.load(folder / "affine.npy"), AcquisitionInfo("CT", kvp=120.0))
settings = RunSettings(overlays=False, model_path=Path(model) if model else None, workers=workers)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# CPU time (all threads), not wall: on a shared machine wall-clock profiles
# charge other people's work to whichever stage was running.
pr = cProfile.Profile(time.process_time) if profile else None
t0, c0 = time.perf_counter(), time.process_time()
if pr: pr.enable()
a = analyse_ct(vol, settings)
if pr: pr.disable()
out = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
       "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
       "rss_after_load_mib": rss0 / 1024, "findings": len(a.findings),
       "reported": sum(f.region != "other" for f in a.findings)}
if pr:
    st = pstats.Stats(pr).stats
    stages = {}
    for (file, line, name), (cc, nc, tt, ct, callers) in st.items():
        if name in ("segment_bone", "build_anatomy", "find_candidates", "classify", "draft_report",
                    "_with_cnn_anatomy"):
            stages[name] = round(max(ct, stages.get(name, 0.0)), 2)
    out["stages_cpu_s_profiled"] = stages
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model", type=str, default="", help="anatomy network (as calcdetect run --model)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    ap.add_argument("--workers", type=int, default=None,
                    help="CPU threads (RunSettings.workers); default: every CPU this process may use")
    args = ap.parse_args()
    folder = _phantom(args.cache, args.slices, args.seed)
    load_before = os.getloadavg()
    runs = []
    for r in range(args.repeats + 1):
        profile = "1" if r == args.repeats else "0"  # the profiled run is extra: cProfile slows it
        done = subprocess.run([sys.executable, "-c", _RUN, str(folder), args.model, profile,
                               "" if args.workers is None else str(args.workers)],
                              check=True, capture_output=True, text=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    timed, profiled = runs[:-1], runs[-1]
    print(json.dumps({
        "shape": [args.slices, 512, 512], "model": args.model or None,
        "median_wall_s": round(statistics.median(r["wall_s"] for r in timed), 2),
        "median_cpu_s": round(statistics.median(r["cpu_s"] for r in timed), 2),
        "wall_s": [round(r["wall_s"], 2) for r in timed],
        "peak_rss_mib": round(max(r["peak_rss_mib"] for r in timed), 1),
        "rss_after_load_mib": round(timed[0]["rss_after_load_mib"], 1),
        "stages_cpu_s_profiled": profiled.get("stages_cpu_s_profiled"),
        "workers": args.workers if args.workers is not None else available_cpus(),
        "findings": timed[0]["findings"], "reported": timed[0]["reported"],
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
    }, indent=1))


if __name__ == "__main__":
    main()
