#!/usr/bin/env python
"""Ceiling of a training grid: the Dice a *perfect* coarse-grid net could reach.

For each held-out phantom the truth classes are brought to the net grid and back
to the CT grid with the inference path's own upsampling
(:func:`calcdetect.nets.inference.upsample_argmax`, linear logits), then scored
against the truth on the CT grid with the grouping of ``scripts/eval_anatomy.py``
(vertebrae = column + sacrum; kidney = parenchyma + medulla + collecting system).

Two down-sampling variants:

* ``nearest``: the labels the trainer learns from (``resample_labels``), as one-hot logits;
* ``area``: per-class voxel fractions (area average of the one-hot truth), i.e. a
  net that predicts calibrated partial-volume probabilities - the best any net on
  that grid can do through linear upsampling.

Usage::

    .venv/bin/python scripts/bench_cnn_grid_ceiling.py --seeds 200-203 --spacing 3 2.5 2
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from calcdetect.nets.classes import COARSE_ANATOMY_CLASSES, labels_to_classes
from calcdetect.nets.inference import upsample_argmax
from calcdetect.nets.resample import resample_labels, target_shape
from calcdetect.phantoms.ct import generate_ct_phantom
from calcdetect.training.datasets import parse_seeds

#: eval_anatomy.py's groups, in coarse class names
GROUPS: dict[str, tuple[str, ...]] = {
    "aorta": ("aorta",),
    "kidney_left": ("kidney_left", "collecting_system_left"),
    "kidney_right": ("kidney_right", "collecting_system_right"),
    "vertebrae": ("vertebrae_unlabelled", "sacrum"),
}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return float("nan") if s == 0 else 2.0 * float((a & b).sum()) / s


def grouped_dice(pred: np.ndarray, truth: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for name, members in GROUPS.items():
        ids = [classes.index(m) for m in members]
        out[name] = dice(np.isin(pred, ids), np.isin(truth, ids))
    return out


def round_trip(truth: np.ndarray, spacing: tuple[float, ...], grid_mm: float, mode: str, n: int) -> np.ndarray:
    """Truth classes -> net grid -> CT grid through ``upsample_argmax``."""
    net_shape = target_shape(truth.shape, spacing, (grid_mm,) * 3)
    if mode == "nearest":
        coarse = resample_labels(truth, net_shape)
        logits = F.one_hot(torch.from_numpy(coarse.astype(np.int64)), n).permute(3, 0, 1, 2).float()
    else:
        logits = torch.zeros((n, *net_shape))
        t = torch.from_numpy(truth.astype(np.int64))
        for c in range(n):  # one class at a time: a float one-hot of the CT grid would be n x larger
            logits[c] = F.interpolate((t == c).float()[None, None], size=net_shape, mode="area")[0, 0]
    return upsample_argmax(logits.to(torch.float16), truth.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="200-203")
    ap.add_argument("--spacing", type=float, nargs="+", default=[3.0, 2.5, 2.0])
    ap.add_argument("--matrix", type=int, default=512, help="eval_anatomy.py --random uses 512")
    args = ap.parse_args()
    import sys

    sys.path.insert(0, "scripts")
    from eval_anatomy import phantom_settings

    classes = COARSE_ANATOMY_CLASSES
    rows: dict[str, list[dict[str, float]]] = {}
    for seed in parse_seeds(args.seeds):
        ph = generate_ct_phantom(phantom_settings(seed, 1.0, 2.5, args.matrix, randomised=True))
        truth = labels_to_classes(ph.anatomy_labels, classes)
        for g in args.spacing:
            for mode in ("nearest", "area"):
                d = grouped_dice(round_trip(truth, tuple(ph.spacing), g, mode, len(classes)), truth, classes)
                rows.setdefault(f"{g:g}mm/{mode}", []).append(d)
                print(json.dumps({"seed": seed, "grid": f"{g:g}mm/{mode}", "spacing": [round(s, 2) for s in ph.spacing],
                                  **{k: round(v, 3) for k, v in d.items()}}), flush=True)
    for key, ds in rows.items():
        print("mean", key, json.dumps({k: round(float(np.nanmean([d[k] for d in ds])), 3) for k in GROUPS}))


if __name__ == "__main__":
    main()
