"""Benchmark: time to generate a full-size CT phantom (512 x 512, T10 to femoral heads).

Usage::

    .venv/bin/python scripts/bench_phantom.py [--repeats 3] [--spacing 1.25] [--matrix 512]

Prints each run and the median wall time; the target is <= 20 s on 2 CPU cores
for a 512 x 512 x ~300 volume (float32 throughout).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--spacing", type=float, default=1.25, help="slice thickness = spacing (mm)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    times: list[float] = []
    cpus: list[float] = []
    for r in range(args.repeats):
        settings = CTPhantomSettings(seed=args.seed + r, matrix=args.matrix, pixel_mm=0.78,
                                     slice_thickness_mm=args.spacing, plaque_burden=0.7,
                                     metal=False, contrast=False)
        t0, c0 = time.perf_counter(), time.process_time()
        ph = generate_ct_phantom(settings)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        times.append(dt)
        cpus.append(cpu)
        nvox = ph.hu.size / 1e6
        # CPU time is the contention-independent figure on a shared machine.
        print(f"run {r + 1}: shape {ph.hu.shape} ({nvox:.1f} Mvoxel), {len(ph.lesions)} lesions, "
              f"wall {dt:.2f} s, cpu {cpu:.2f} s")
        del ph
    print(f"median wall {statistics.median(times):.2f} s, median cpu {statistics.median(cpus):.2f} s "
          f"over {len(times)} runs (load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
