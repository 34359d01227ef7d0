#!/usr/bin/env python
"""Train the radiograph vertebra net (``calcdetect.radiograph.vertebra_net``) on projected phantoms.

Cases come from ``scripts/eval_radiograph.py``'s phantom cache (CT phantom ->
lateral DRR with varied noise, magnification, obesity and plaque burden). The
target is each of L1-L5 filled between its four true corners. Training
phantom seeds must lie in the development ranges (0-99, 400-919, 5000-5999; 920-4999
and 6000 and up are held out, see ``train_radiograph_aac.DEVELOPMENT_SEED_RANGES``).

Augmentation, and why:

* the raw log image or the equalised one a DX system stores ("for presentation"),
  because ``calcdetect run`` reads the stored image and the evaluation the raw one;
* the top of the image cut by 0-70 mm and the bottom by what lies below the
  sacral promontory less 25 mm: every phantom starts at T11, and a net that saw
  only those would learn "the first body under the top edge is L1" instead of
  counting from the sacrum;
* the radiograph stage's own 2-D drawings (``--synthetic``), so the net has seen more
  than one way of drawing a spine;
* a scale of 0.85-1.15 (patient size and magnification) and contrast and noise
  changes.

Usage::

    # v0 (models/radiograph_vertebrae_v0.md)
    .venv/bin/python scripts/train_radiograph_vertebrae.py --train 0-99,540-679 --synthetic 1000-1029 \\
        --steps 2500 --threads 1 --cache CACHE --out models/radiograph_vertebrae_v0.safetensors
    # then score it on development seeds it did not train on
    .venv/bin/python scripts/eval_radiograph.py --seeds 400-539 --cache CACHE --vertebra-model V.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from calcdetect.radiograph.vertebra_net import (  # noqa: E402
    DIVISOR,
    NET_LEVELS,
    NET_MM,
    build_vertebra_net,
    net_input,
    save_vertebra_model,
)
from eval_radiograph import _seeds, phantom_case, presented, synthetic_case  # noqa: E402
from train_radiograph_aac import DEVELOPMENT_SEEDS_TEXT, HELD_OUT_SEEDS_TEXT, is_development_seed  # noqa: E402

CONFIG = {"arch": "basic_unet", "in_channels": 2, "out_channels": 1 + len(NET_LEVELS), "spatial_dims": 2,
          "channels": [8, 16, 32, 64, 64], "dropout": 0.0, "norm": "batch"}
CROP = (192, 160)  # net pixels (384 x 320 mm at 2 mm): a whole phantom image fits, scaled up too


def level_target(shape: tuple[int, int], corners: dict[str, list], spacing: tuple[float, float],
                 grid_mm: float) -> np.ndarray:
    """Label map on the net grid: each level's body filled between its four corners."""
    from skimage.draw import polygon

    out = np.zeros(shape, np.uint8)
    for k, lv in enumerate(NET_LEVELS, start=1):
        if lv not in corners:
            continue
        c = np.asarray(corners[lv], float)
        r = (c[:, 0] + 0.5) * float(spacing[0]) / grid_mm - 0.5
        q = (c[:, 1] + 0.5) * float(spacing[1]) / grid_mm - 0.5
        rr, cc = polygon(r, q, shape)
        out[rr, cc] = k
    return out


def augmented_sample(case: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One training pair (input (2, H, W), labels (H, W)) on the ``CROP`` grid."""
    image = presented(case) if rng.random() < 0.5 else np.asarray(case["image"], np.float32)
    sr, sc = (float(s) for s in case["spacing"])
    scale = float(rng.uniform(0.85, 1.15))
    sp = (sr * scale, sc * scale)  # the same pixels read as a larger / smaller patient
    corners = case["corners"]
    if (case.get("conditions") or {}).get("anterior_left") is False:  # the net sees the patient facing left
        image = image[:, ::-1]
        corners = {lv: [[r, image.shape[1] - 1 - c] for r, c in pts] for lv, pts in corners.items()}
    # cut the top (0-70 mm) and the bottom (keep 25 mm below L5's lower corners)
    l5_bottom = max(p[0] for p in corners["L5"]) if "L5" in corners else image.shape[0]
    top = int(rng.uniform(0, 70) / sp[0])
    room = max(0.0, (image.shape[0] - 1 - l5_bottom) * sp[0] - 25.0)
    bottom = image.shape[0] - int(rng.uniform(0, room) / sp[0])
    left = int(rng.uniform(0, 30) / sp[1])
    right = image.shape[1] - int(rng.uniform(0, 30) / sp[1])
    crop = image[top:bottom, left:right]
    shifted = {lv: [[r - top, c - left] for r, c in pts] for lv, pts in corners.items()}
    x = net_input(crop, sp, NET_MM)
    y = level_target(x.shape[1:], shifted, sp, NET_MM)
    x[0] = x[0] * rng.uniform(0.8, 1.25) + rng.normal(0, 0.1)
    x[1] = x[1] * rng.uniform(0.8, 1.25)
    x += rng.normal(0, rng.uniform(0, 0.05), x.shape).astype(np.float32)
    return _fit(x, y, rng)


def _fit(x: np.ndarray, y: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """Crop or pad (edge values, background labels) to ``CROP``; random placement when ``rng``."""
    out_x = np.empty((x.shape[0], *CROP), np.float32)
    out_y = np.zeros(CROP, np.int64)
    h, w = min(x.shape[1], CROP[0]), min(x.shape[2], CROP[1])
    r0 = int(rng.integers(0, x.shape[1] - h + 1)) if rng is not None else 0
    c0 = int(rng.integers(0, x.shape[2] - w + 1)) if rng is not None else 0
    xs, ys = x[:, r0:r0 + h, c0:c0 + w], y[r0:r0 + h, c0:c0 + w]
    pr = int(rng.integers(0, CROP[0] - h + 1)) if rng is not None else 0
    pc = int(rng.integers(0, CROP[1] - w + 1)) if rng is not None else 0
    pad = ((0, 0), (pr, CROP[0] - h - pr), (pc, CROP[1] - w - pc))
    out_x[:] = np.pad(xs, pad, mode="edge")
    out_y[pr:pr + h, pc:pc + w] = ys
    return out_x, out_y


def main(argv: list[str] | None = None) -> int:
    import torch
    from monai.losses import DiceCELoss

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", default="", help="phantom seeds, e.g. 0-99,540-679")
    ap.add_argument("--synthetic", default="", help="seeds of the radiograph stage's own 2-D drawings to add")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/calcdetect_eval_radiograph"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    train = _seeds(args.train)
    bad = [s for s in train if not is_development_seed(s)]
    if bad:
        ap.error(f"seeds {bad[:5]} are not development seeds ({DEVELOPMENT_SEEDS_TEXT}); "
                 f"{HELD_OUT_SEEDS_TEXT} are held out")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cases = [c for c in (phantom_case(s, args.cache) for s in train) if all(lv in c["corners"] for lv in NET_LEVELS)]
    cases += [synthetic_case(s) for s in _seeds(args.synthetic)]
    if not cases:
        ap.error("no training cases: give --train phantom seeds (with L1-L5 in view) and/or --synthetic seeds")
    print(f"{len(cases)} training cases", flush=True)

    net = build_vertebra_net(CONFIG)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    t0 = time.time()
    net.train()
    for step in range(1, args.steps + 1):
        batch = [augmented_sample(cases[int(rng.integers(len(cases)))], rng) for _ in range(args.batch)]
        x = torch.from_numpy(np.stack([b[0] for b in batch]))
        y = torch.from_numpy(np.stack([b[1] for b in batch]))[:, None]
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step} loss {float(loss.detach()):.4f} {time.time() - t0:.0f} s", flush=True)
    net.eval()
    meta = {"train_seeds": args.train, "synthetic_seeds": args.synthetic, "steps": str(args.steps), "seed": str(args.seed),
            "recipe": "scripts/train_radiograph_vertebrae.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    save_vertebra_model(net, CONFIG, args.out, grid_mm=NET_MM, metadata=meta)
    print(json.dumps({"out": str(args.out), "divisor": DIVISOR}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
