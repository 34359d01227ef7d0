#!/usr/bin/env python
"""Compare candidate anatomy-net architectures on CPU (speed and size), and time
CPU inference in fp32 vs bf16 autocast.

Usage::

    .venv/bin/python scripts/bench_cnn.py [--patch 64] [--reps 3] [--threads 2]
    .venv/bin/python scripts/bench_cnn.py --model models/anatomy_phantom_v1.safetensors --reps 1

Prints one line per architecture: parameters, weight MB, median train step
(forward + backward, batch 2) and median inference time on a 2x patch volume.
Accuracy is compared by training on phantoms (``scripts/train_phantoms.py``);
timings on a shared machine are noisy, take them as relative. ``slab_unet``
(2.5-D) is timed on a 16 x (2p) x (2p) slab, the shape it trains on.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from calcdetect.nets.builders import NetConfig, build_anatomy_net, count_parameters
from calcdetect.nets.classes import COARSE_ANATOMY_CLASSES
from calcdetect.training.losses import marginal_dice_ce

_C = len(COARSE_ANATOMY_CLASSES)
CANDIDATES: dict[str, NetConfig] = {
    "basic_unet_16": NetConfig(arch="basic_unet", channels=(16, 16, 32, 64, 128)),
    "unet_res_16": NetConfig(arch="unet", channels=(16, 32, 64, 128, 256)),
    "segresnet_8": NetConfig(arch="segresnet", channels=(8, 16, 32, 64)),
    "dynunet_16": NetConfig(arch="dynunet", channels=(16, 32, 64, 128, 256)),
    # coarse class set (12 channels), as shipped in models/anatomy_phantom_v1
    "basic_unet_8_coarse": NetConfig(arch="basic_unet", out_channels=_C, channels=(8, 8, 16, 32, 64)),
    "segresnet_8_coarse": NetConfig(arch="segresnet", out_channels=_C, channels=(8, 16, 32, 64)),
    "slab_unet_8_coarse": NetConfig(arch="slab_unet", out_channels=_C, channels=(8, 16, 32, 64, 128)),
}


def _time(fn, reps: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bench_model(model_path: str, shape: tuple[int, int, int], reps: int) -> None:
    """Time the shipped model's whole CNN anatomy path on a CT-sized volume: resample, net,
    logits upsampled to the CT grid, level count, and the fusion with a rules map.

    The volume is a 256-matrix phantom scaled (nearest) to ``shape`` with a 360 mm
    field of view and 400 mm of z, so the foreground box is realistic. Prints
    median wall and CPU seconds per step and the peak RSS of the process.
    """
    import resource

    import numpy as np

    from calcdetect.device import resolve_device
    from calcdetect.nets import load_model, segment_anatomy
    from calcdetect.nets.fusion import fuse_anatomy, trusted_classes
    from calcdetect.nets.resample import nearest_indices
    from calcdetect.phantoms.ct import generate_ct_phantom, random_settings
    from calcdetect.types import AcquisitionInfo, AnatomyMap, Volume

    dev = resolve_device("cpu")
    model = load_model(model_path, dev)
    ph = generate_ct_phantom(random_settings(300, matrix=256, pixel_mm=1.5, slice_thickness_mm=2.5))
    idx = [nearest_indices(n, m) for n, m in zip(ph.hu.shape, shape)]
    hu = np.asarray(ph.hu, np.float32)[np.ix_(*idx)]
    lab = np.asarray(ph.anatomy_labels)[np.ix_(*idx)]
    spacing = (400.0 / shape[0], 360.0 / shape[1], 360.0 / shape[2])
    aff = np.zeros((4, 4))
    aff[0, 2], aff[1, 1], aff[2, 0], aff[3, 3] = spacing[2], spacing[1], spacing[0], 1.0  # i->x, j->y, k->z
    vol = Volume(hu, spacing, aff, AcquisitionInfo("CT"))
    rules = AnatomyMap(lab, aff, (None,) * shape[0], {}, ())
    for upsample in ("linear", "nearest"):
        walls, cpus = [], []
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time()
            cnn = segment_anatomy(vol, model, dev, upsample=upsample)
            fuse_anatomy(rules, cnn, model.spec.classes, trusted=trusted_classes(model.spec.classes, model.spec.extra))
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"{model_path} on {shape} ({upsample}): wall {statistics.median(walls):.1f} s, "
              f"cpu {statistics.median(cpus):.1f} s (all threads), peak RSS so far {peak:.2f} GiB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="time this model's anatomy path on --shape instead")
    ap.add_argument("--shape", type=int, nargs=3, default=(400, 512, 512))
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model:
        bench_model(args.model, tuple(args.shape), args.reps)
        return
    p = args.patch
    print(f"torch {torch.__version__}, {args.threads} threads, patch {p}^3, batch 2, reps {args.reps}")
    for name, cfg in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        torch.manual_seed(0)
        net = build_anatomy_net(cfg)
        n = count_parameters(net)
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        # the 2.5-D net trains on thin slabs of whole slices: 16 x (2p)^2 voxels, about the same count
        shape = (16, 2 * p, 2 * p) if cfg.arch == "slab_unet" else (p, p, p)
        x = torch.randn(2, 1, *shape)
        y = torch.randint(0, cfg.out_channels, (2, *shape))
        ann = torch.ones(2, cfg.out_channels, dtype=torch.bool)

        def step() -> None:
            opt.zero_grad()
            marginal_dice_ce(net(x), y, ann).backward()
            opt.step()

        t_train = _time(step, args.reps)
        net.eval()
        big = torch.randn(1, 1, 2 * p, 2 * p, 2 * p)

        def infer(bf16: bool) -> None:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                net(big)

        t_fp32 = _time(lambda: infer(False), args.reps)
        t_bf16 = _time(lambda: infer(True), args.reps)
        print(f"{name:15s} params {n / 1e6:6.2f} M  weights {n * 4 / 2**20:6.1f} MB  "
              f"train step {t_train:6.2f} s  infer {2 * p}^3 fp32 {t_fp32:6.2f} s  bf16 {t_bf16:6.2f} s", flush=True)


if __name__ == "__main__":
    main()
