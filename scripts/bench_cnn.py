#!/usr/bin/env python
"""Compare candidate anatomy-net architectures on CPU (speed and size), and time
CPU inference in fp32 vs bf16 autocast.

Usage::

    .venv/bin/python scripts/bench_cnn.py [--patch 64] [--reps 3] [--threads 2]

Prints one line per architecture: parameters, weight MB, median train step
(forward + backward, batch 2) and median inference time on a 2x patch volume.
Accuracy is compared by ``scripts/train_phantoms.py --compare`` (short runs on
phantoms); timings on a shared machine are noisy, take them as relative.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from calcdetect.nets.builders import NetConfig, build_anatomy_net, count_parameters
from calcdetect.training.losses import marginal_dice_ce

CANDIDATES: dict[str, NetConfig] = {
    "basic_unet_16": NetConfig(arch="basic_unet", channels=(16, 16, 32, 64, 128)),
    "unet_res_16": NetConfig(arch="unet", channels=(16, 32, 64, 128, 256)),
    "segresnet_8": NetConfig(arch="segresnet", channels=(8, 16, 32, 64)),
    "dynunet_16": NetConfig(arch="dynunet", channels=(16, 32, 64, 128, 256)),
}


def _time(fn, reps: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    p = args.patch
    print(f"torch {torch.__version__}, {args.threads} threads, patch {p}^3, batch 2, reps {args.reps}")
    for name, cfg in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        torch.manual_seed(0)
        net = build_anatomy_net(cfg)
        n = count_parameters(net)
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        x = torch.randn(2, 1, p, p, p)
        y = torch.randint(0, cfg.out_channels, (2, p, p, p))
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
