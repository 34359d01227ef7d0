#!/usr/bin/env python
"""Benchmark the rule anatomy stage (``build_anatomy``) on a 512 x 512 x 400 CT phantom.

The phantom (0.78 mm pixels, 1 mm slices, T10 to the femoral heads, cut to 400
slices) and its bone mask (``segment_bone``, as the pipeline passes it) are made
once in a child process and cached as .npy files, so that this process's peak
RSS is the volume + bone mask + what the anatomy allocates, not the generator's.

Prints, as JSON: the median and all wall times of ``--repeats`` runs, the
anatomy's own peak allocation (tracemalloc, numpy reports its buffers to it, in
one more run: tracing slows the code down),
the process's peak RSS, the work grid, and the load average before and after
(the machine is shared: read timings against it; the CPU seconds of this
process are reported too, being less sensitive to the other processes).

Usage::

    .venv/bin/python scripts/bench_anatomy.py [--repeats 3] [--slices 400] [--cache DIR] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

_MAKE = """
import sys, numpy as np
from calcdetect.bone import segment_bone
from calcdetect.device import Device
from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom
out, nk, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ph = generate_ct_phantom(CTPhantomSettings(seed=seed, matrix=512, pixel_mm=0.78, slice_thickness_mm=1.0))
hu = np.ascontiguousarray(ph.hu[-nk:])  # keep the cranial end: T10 down to the pelvis
np.save(out + "/hu.npy", hu)
np.save(out + "/affine.npy", ph.affine)
np.save(out + "/spacing.npy", np.array(ph.spacing))
np.save(out + "/bone.npy", segment_bone(hu, tuple(ph.spacing), Device("cpu")))
"""


def _phantom(cache: Path, slices: int, seed: int) -> Path:
    """Folder with hu / bone / affine / spacing .npy files (made once)."""
    folder = cache / f"bench_anatomy_512x{slices}_seed{seed}"
    if not (folder / "bone.npy").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", _MAKE, str(folder), str(slices), str(seed)], check=True)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one extra run")
    args = ap.parse_args()

    from calcdetect.anatomy import build_anatomy
    from calcdetect.device import Device
    from calcdetect.types import AcquisitionInfo, Volume

    folder = _phantom(args.cache, args.slices, args.seed)
    load_before = os.getloadavg()
    hu = np.load(folder / "hu.npy")
    bone = np.load(folder / "bone.npy")
    spacing = tuple(float(v) for v in np.load(folder / "spacing.npy"))
    vol = Volume(hu, spacing, np.load(folder / "affine.npy"), AcquisitionInfo("CT", kvp=120.0))
    device = Device("cpu")

    times, cpu, peaks = [], [], []
    am = None
    for _ in range(args.repeats):
        del am
        t0, c0 = time.perf_counter(), time.process_time()
        am = build_anatomy(vol, device, bone_mask=bone)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # Memory in a separate run: tracemalloc doubles the run time of Python-heavy code.
    del am
    tracemalloc.start()
    am = build_anatomy(vol, device, bone_mask=bone)
    peaks.append(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    if args.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        build_anatomy(vol, device, bone_mask=bone)
        pr.disable()
        pstats.Stats(pr).sort_stats("cumulative").print_stats("anatomy", 30)
    try:
        from calcdetect.anatomy.grid import work_grid

        grid = work_grid(vol.shape, vol.spacing)
        factors, work_shape = list(grid.factors), list(grid.shape)
    except ImportError:  # a version of calcdetect from before the work grid
        factors, work_shape = [1, 1, 1], list(vol.shape)
    print(json.dumps({
        "shape": list(vol.shape), "spacing_mm": [round(v, 3) for v in spacing],
        "work_grid_factors": factors, "work_grid_shape": work_shape,
        "median_s": round(float(np.median(times)), 2), "times_s": [round(t, 2) for t in times],
        # CPU seconds of this process: less sensitive than wall time to other
        # processes sharing the cores (the rules are single-threaded)
        "median_cpu_s": round(float(np.median(cpu)), 2),
        "anatomy_peak_alloc_mib": round(max(peaks) / 2**20, 1),
        "process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "input_mib": round((hu.nbytes + bone.nbytes) / 2**20, 1),
        "levels_found": sorted({lv for lv in am.slice_levels if lv and "-" not in lv}),
        "sources": am.source,
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
