#!/usr/bin/env python
"""Benchmark: analyse one 2500 x 2000 lateral radiograph (after loading); report the median.

The image is the radiograph stage's synthetic lateral drawing at 0.15 mm spacing
(375 x 300 mm field), so the benchmark needs nothing but calcdetect. The target
(issue #6) is <= 3 s on 2 CPU cores.

Usage::

    .venv/bin/python scripts/bench_radiograph.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calcdetect.radiograph.analyse import analyse_radiograph  # noqa: E402
from calcdetect.radiograph.synthetic import make_synthetic_lateral  # noqa: E402
from calcdetect.types import AcquisitionInfo, Radiograph  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    ph = make_synthetic_lateral(args.seed, spacing_mm=0.15, size_mm=(375.0, 300.0))
    rg = Radiograph(ph.image, (0.15, 0.15), AcquisitionInfo("DX"), view="lateral")
    print(f"image {rg.array.shape[0]} x {rg.array.shape[1]} px, spacing 0.15 mm, "
          f"{os.cpu_count()} CPUs visible", flush=True)
    times = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        a = analyse_radiograph(rg)
        times.append(time.perf_counter() - t0)
        print(f"run {i + 1}: {times[-1]:.2f} s (AAC-24 {a.aac24['total'] if a.aac24 else None}, "
              f"truth {ph.aac24_total})", flush=True)
    print(f"median {float(np.median(times)):.2f} s over {len(times)} runs (target <= 3 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
