"""Benchmark find_candidates on a synthetic 512 x 512 x 300 abdomen-like CT.

The volume has soft tissue with noise, a lumbar-like spine (vertebral bodies with
cortex and marrow, neural arches round the canal, discs), rib and iliac-wing
arcs near the body wall (so the skeleton spans the field of view as in a real
scan), an aorta, and ~200 calcifications (aortic plaques, stones, ligament
calcifications). Prints the median of ``--repeats`` runs per device.

With ``--phantom SEEDS`` it instead runs ``find_candidates`` on phantoms from
:mod:`calcdetect.phantoms` and prints, per truth kind, how many truth lesions
overlap a candidate, and the candidate voxels that fall in bone structures
(the bone-exclusion false positives).

Usage::

    .venv/bin/python scripts/bench_candidates.py            # CPU, and CUDA if present
    .venv/bin/python scripts/bench_candidates.py --device cpu --repeats 3
    .venv/bin/python scripts/bench_candidates.py --phantom 0,1,2 --pixel-mm 1.0 --matrix 384
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from calcdetect.candidates import find_candidates
from calcdetect.device import Device
from calcdetect.types import AcquisitionInfo, Volume


def make_benchmark_volume(shape=(300, 512, 512), spacing=(1.0, 0.7, 0.7), n_calc=200,
                          seed=0) -> tuple[Volume, np.ndarray]:
    """Synthetic CT (HU) and the ``[k, j, i]`` centre of every calcification placed."""
    rng = np.random.default_rng(seed)
    K, J, I = shape
    sk, sj, si = spacing
    arr = np.full(shape, -1000.0, np.float32)
    jj, ii = np.meshgrid(np.arange(J) * sj, np.arange(I) * si, indexing="ij")
    cj, ci = J * sj / 2, I * si / 2
    body = ((jj - cj) / 150) ** 2 + ((ii - ci) / 170) ** 2 <= 1
    spine_j = cj + 40  # vertebral body centre (posterior of centre)
    r_body = np.hypot(jj - spine_j, ii - ci)
    r_canal = np.hypot(jj - (spine_j + 30), ii - ci)
    aorta_j, aorta_i = spine_j - 30, ci - 15
    r_aorta = np.hypot(jj - aorta_j, ii - aorta_i)
    theta = np.arctan2(jj - cj, ii - ci)
    rim = ((jj - cj) / 140) ** 2 + ((ii - ci) / 160) ** 2
    for k in range(K):
        z = k * sk
        sl = arr[k]
        sl[body] = 40.0
        in_disc = (z % 35) < 8
        if in_disc:
            sl[r_body <= 20] = 80.0
        else:
            sl[r_body <= 20] = 900.0
            sl[r_body <= 18.5] = 200.0
        arch = (r_canal <= 15) & (r_canal > 10)
        sl[arch] = 850.0
        sl[r_canal <= 10] = 10.0
        sl[r_aorta <= 11] = 45.0
        if k >= 0.6 * K and ((k - int(0.6 * K)) % 25) < 10:  # ribs: arcs near the body wall
            ribs = (rim > 0.8) & (rim < 0.9) & (np.cos(6 * theta) > 0.6)
            sl[ribs] = 600.0
        if k < 0.25 * K:  # iliac wings
            wing = (rim > 0.55) & (rim < 0.62) & (np.abs(np.sin(theta)) < 0.5)
            sl[wing] = 700.0
    arr += rng.normal(0.0, 12.0, shape).astype(np.float32)

    centres = []
    for n in range(n_calc):
        k = int(rng.integers(5, K - 5))
        kind = n % 10
        if kind < 7:  # aortic wall plaque
            a = rng.uniform(0, 2 * np.pi)
            j = int((aorta_j + 11 * np.sin(a)) / sj)
            i = int((aorta_i + 11 * np.cos(a)) / si)
        elif kind < 9:  # renal stone
            j = int((cj + rng.uniform(-10, 30)) / sj)
            i = int((ci + rng.choice([-1, 1]) * rng.uniform(60, 80)) / si)
        else:  # ligamentum flavum calcification, in the ligament ~1 mm off the lamina
            j = int((spine_j + 30 + 6) / sj)
            i = int(ci / si) + int(rng.integers(-4, 5))
        h = rng.integers(1, 4, size=3) if kind < 9 else np.array([1, 1, 2])
        arr[k:k + h[0], j - h[1]:j + h[1] + 1, i - h[2]:i + h[2] + 1] = rng.uniform(250, 1200)
        centres.append((k, j, i))
    affine = np.diag([sk, sj, si, 1.0])
    vol = Volume(arr, spacing, affine, AcquisitionInfo("CT", kvp=120.0))
    return vol, np.array(centres)


def phantom_recall(seeds: list[int], matrix: int, pixel_mm: float) -> None:
    """Truth recall per kind and bone false positives on CT phantoms."""
    from collections import Counter

    from calcdetect.anatomy.regions import STRUCTURES
    from calcdetect.phantoms import CTPhantomSettings, generate_ct_phantom

    bone_labels = [s.label for s in STRUCTURES if s.is_bone]
    aorta_label = next(s.label for s in STRUCTURES if s.name == "aorta")
    for seed in seeds:
        ph = generate_ct_phantom(CTPhantomSettings(seed=seed, matrix=matrix, pixel_mm=pixel_mm))
        vol = Volume(ph.hu, ph.spacing, ph.affine, AcquisitionInfo("CT", kvp=ph.settings.kvp))
        t = time.perf_counter()
        c = find_candidates(vol, Device("cpu"), blood_pool_mask=ph.anatomy_labels == aorta_label)
        dt = time.perf_counter() - t
        total, hit = Counter(), Counter()
        for tl in ph.lesions:
            total[tl.kind] += 1
            hit[tl.kind] += bool((c.labels[ph.lesion_labels == tl.id] > 0).any())
        in_bone = (c.labels > 0) & np.isin(ph.anatomy_labels, bone_labels) & (ph.lesion_labels == 0)
        print(f"phantom seed {seed} {vol.shape} spacing {tuple(round(s, 2) for s in vol.spacing)}: "
              f"{dt:.1f} s, {len(c.lesions)} candidates")
        print("   truth found: " + ", ".join(f"{k} {hit[k]}/{n}" for k, n in sorted(total.items())))
        print(f"   candidate voxels in bone structures (not truth): "
              f"{in_bone.sum() * vol.voxel_volume_mm3:.0f} mm3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--phantom", help="comma-separated phantom seeds: recall mode")
    parser.add_argument("--matrix", type=int, default=384)
    parser.add_argument("--pixel-mm", type=float, default=1.0)
    args = parser.parse_args()
    if args.phantom:
        phantom_recall([int(x) for x in args.phantom.split(",")], args.matrix, args.pixel_mm)
        return

    t0 = time.perf_counter()
    vol, centres = make_benchmark_volume()
    print(f"volume {vol.shape} spacing {vol.spacing}, {len(centres)} calcifications placed "
          f"(built in {time.perf_counter() - t0:.1f} s)")
    devices = []
    if args.device in ("cpu", "both"):
        devices.append(Device("cpu"))
    if args.device in ("cuda", "both"):
        import torch

        if torch.cuda.is_available():
            devices.append(Device("cuda", 0))
        elif args.device == "cuda":
            raise SystemExit("CUDA requested but not available")
    for dev in devices:
        times, cpu_times = [], []
        for _ in range(args.repeats):
            if dev.is_cuda:
                import torch

                torch.cuda.synchronize()
            t, tc = time.perf_counter(), time.process_time()
            c = find_candidates(vol, dev)
            times.append(time.perf_counter() - t)
            cpu_times.append(time.process_time() - tc)
        print(f"{dev}: median {statistics.median(times):.2f} s over {args.repeats} runs "
              f"(all: {', '.join(f'{x:.2f}' for x in times)}; process CPU time median "
              f"{statistics.median(cpu_times):.2f} s, which a busy machine inflates less); "
              f"{len(c.lesions)} candidates, "
              f"bone {c.bone_mask.mean() * 100:.1f}% of voxels, warnings {len(c.warnings)}")
        found = c.labels[tuple(centres.T)] > 0
        print(f"   placed calcifications found: {found.sum()}/{len(centres)} (centre voxel "
              f"labelled; the rest touch bone or merged), distinct labels "
              f"{len(np.unique(c.labels[tuple(centres.T)][found]))}")


if __name__ == "__main__":
    main()
