#!/usr/bin/env python
"""Train the anatomy CNN on synthetic CT phantoms (CPU, time-boxed), evaluate it on
held-out seeds, and publish ``models/<name>.safetensors`` + model card.

Usage::

    nohup .venv/bin/python scripts/train_phantoms.py --minutes 22 > runs/phantom_v0.log 2>&1 &
    .venv/bin/python scripts/train_phantoms.py --evaluate-only   # re-evaluate runs/phantom_v0

Phantoms are generated on the fly by seed (``calcdetect.phantoms.ct``) directly on
a coarse 3 mm grid, with acquisition parameters randomised per seed. Evaluation
generates the held-out seeds on a finer grid (1.5 mm in-plane, 2.5 mm slices),
runs ``segment_anatomy`` end to end and compares with the phantom's own anatomy
truth on that grid: Dice per class and the per-slice vertebral level agreement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from calcdetect.device import resolve_device
from calcdetect.nets import ANATOMY_CLASSES, load_model, segment_anatomy, write_model_card
from calcdetect.nets.classes import classes_to_labels, labels_to_classes
from calcdetect.nets.inference import slice_levels_from_labels
from calcdetect.training import TrainConfig, train
from calcdetect.training.trainer import dice_per_class
from calcdetect.types import AcquisitionInfo, Volume

ROOT = Path(__file__).resolve().parents[1]


def evaluate(model_path: Path, seeds: list[int], device_spec: str = "cpu") -> dict:
    """Dice per class (Structure classes) and level agreement on held-out phantoms."""
    from calcdetect.phantoms.ct import generate_ct_phantom, random_settings

    device = resolve_device(device_spec)
    model = load_model(model_path, device)
    per_case, level_acc, seconds = [], [], []
    for seed in seeds:
        ph = generate_ct_phantom(random_settings(seed, matrix=256, pixel_mm=1.5, slice_thickness_mm=2.5))
        vol = Volume(np.asarray(ph.hu, np.float32), tuple(ph.spacing), np.asarray(ph.affine), AcquisitionInfo("CT"))
        t = time.perf_counter()
        amap = segment_anatomy(vol, model, device)
        seconds.append(time.perf_counter() - t)
        truth_cls = labels_to_classes(ph.anatomy_labels)
        pred_cls = labels_to_classes(amap.labels)
        per_case.append(dice_per_class(pred_cls, truth_cls, np.ones(len(ANATOMY_CLASSES), bool), len(ANATOMY_CLASSES)))
        truth_levels = slice_levels_from_labels(classes_to_labels(truth_cls), vol.spacing[0])
        pairs = [(a, b) for a, b in zip(amap.slice_levels, truth_levels) if b is not None]
        level_acc.append(float(np.mean([a == b for a, b in pairs])) if pairs else float("nan"))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dice = np.nanmean(np.stack(per_case), axis=0)
    named = {ANATOMY_CLASSES[c]: round(float(dice[c]), 3) for c in range(1, len(ANATOMY_CLASSES)) if np.isfinite(dice[c])}
    return {
        "seeds": seeds,
        "dice": named,
        "mean_dice": round(float(np.mean(list(named.values()))), 3) if named else None,
        "slice_level_accuracy": [round(a, 3) for a in level_acc],
        "inference_seconds": [round(s, 1) for s in seconds],
        "volume_shape_example": list(vol.shape),
    }


def _card(name: str, weights: Path, result, metrics: dict, config: TrainConfig, args, bench: str) -> None:
    dice_rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in metrics["dice"].items())
    write_model_card(
        weights,
        title=f"{name}: anatomy CNN trained on synthetic phantoms only (weak baseline)",
        sections={
            "Intended use": "A smoke-test baseline that exercises the CNN path of calcdetect end to end. "
            "It has never seen a real CT. Use the rule-based anatomy (or TotalSegmentator masks) for real "
            "studies; retrain with `calcdetect train` on TotalSegmentator / nnU-Net data for real use.",
            "Training data": f"Synthetic CT phantoms from `calcdetect.phantoms.ct` (seeds {args.train_seeds}, "
            f"generated on the fly at {config.phantom.matrix}x{config.phantom.matrix} x {config.phantom.pixel_mm} mm, "
            f"{config.phantom.slice_thickness_mm} mm slices, acquisition randomised per seed; FOV T10 to femoral "
            f"heads). {result.n_train} training / {result.n_val} validation cases (hash split). "
            "No patient data.",
            "Recipe": f"`scripts/train_phantoms.py --minutes {args.minutes}` on CPU "
            f"(2 shared cores, torch.set_num_threads({args.threads})); {result.epochs_completed} epochs of "
            f"{config.iterations_per_epoch} iterations x batch {config.batch_size}, stopped by the time budget.\n\n"
            f"```yaml\n{config.to_yaml()}```",
            "Metrics": f"Held-out phantom seeds {metrics['seeds']} generated at 1.5 mm in-plane / 2.5 mm slices, "
            "`segment_anatomy` end to end, Dice against the phantom truth on the CT grid "
            f"(classes absent from both are omitted). Mean Dice {metrics['mean_dice']}; per-slice vertebral "
            f"level agreement {metrics['slice_level_accuracy']}; CPU inference {metrics['inference_seconds']} s "
            f"per volume of {metrics['volume_shape_example']} voxels.\n\n| class | Dice |\n|---|---|\n{dice_rows}\n\n"
            f"Last validation (coarse grid, training-split seeds): mean Dice {result.val_mean_dice}.",
            "Architecture choice": bench,
            "Limitations": "Trained for minutes on CPU, on phantoms made of simple geometric shapes: the numbers "
            "above are on the same synthetic distribution and say nothing about real CT. Small structures "
            "(internal/external iliacs, collecting systems, ligamentum flavum zone) are the weakest. "
            "No left-right flip augmentation (labels are sided).",
        },
        licence="Apache-2.0. Trained only on synthetic data generated by calcdetect; no third-party data.",
    )


def _with_validation(result, rundir: Path):
    """Fill the last validation Dice and split sizes from RUNDIR (for --card-only)."""
    import csv
    from dataclasses import replace

    rows = [r for r in csv.DictReader(open(rundir / "metrics.csv")) if r["val_mean_dice"]]
    split = json.loads((rundir / "split.json").read_text())
    return replace(result, val_mean_dice=float(rows[-1]["val_mean_dice"]) if rows else None,
                   last_train_loss=float(rows[-1]["train_loss"]) if rows else float("nan"),
                   n_train=len(split["train"]), n_val=len(split["validation"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "train.yaml")
    ap.add_argument("--rundir", type=Path, default=ROOT / "runs" / "phantom_v0")
    ap.add_argument("--name", default="anatomy_phantom_v0")
    ap.add_argument("--minutes", type=float, default=22.0)
    ap.add_argument("--train-seeds", default="0-39")
    ap.add_argument("--eval-seeds", default="1000,1001")
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--iterations", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--evaluate-only", action="store_true")
    ap.add_argument("--card-only", action="store_true", help="rewrite the card from RUNDIR/heldout_metrics.json")
    ap.add_argument("--bench-notes", type=Path, default=None, help="Markdown text for the 'Architecture choice' section")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig.from_yaml(args.config)
    d = config.to_dict()
    d.update(patch_size=[args.patch] * 3, iterations_per_epoch=args.iterations, epochs=1000, val_every=5,
             progress=False, val_fraction=0.1)
    config = TrainConfig.from_dict(d)
    device = resolve_device("cpu")
    t0 = time.time()
    if args.evaluate_only or args.card_only:
        from calcdetect.training.trainer import TrainResult

        rows = (args.rundir / "metrics.csv").read_text().strip().splitlines()
        result = _with_validation(TrainResult(args.rundir, args.rundir / "model.safetensors",
                                              args.rundir / "model.md", len(rows) - 1, float("nan"), None),
                                  args.rundir)
    else:
        result = train(config, [("phantom", args.train_seeds)], args.rundir, device,
                       resume=args.resume, max_minutes=args.minutes, log=lambda s: print(s, flush=True))
        print(f"trained {result.epochs_completed} epochs in {time.time() - t0:.0f} s; val {result.val_mean_dice}",
              flush=True)
    seeds = [int(s) for s in args.eval_seeds.split(",")]
    if args.card_only:
        metrics = json.loads((args.rundir / "heldout_metrics.json").read_text())
    else:
        metrics = evaluate(result.model_path, seeds)
        print(json.dumps(metrics, indent=1), flush=True)
        (args.rundir / "heldout_metrics.json").write_text(json.dumps(metrics, indent=1))
    out = ROOT / "models" / f"{args.name}.safetensors"
    out.parent.mkdir(exist_ok=True)
    shutil.copyfile(result.model_path, out)
    bench = args.bench_notes.read_text() if args.bench_notes else "See scripts/bench_cnn.py."
    _card(args.name, out, result, metrics, config, args, bench)
    size = out.stat().st_size
    assert size <= 20 * 2**20, f"{out} is {size} bytes (> 20 MB)"
    load_model(out, device)  # the published pair verifies
    print(f"wrote {out} ({size / 2**20:.1f} MB) and its card", flush=True)


if __name__ == "__main__":
    main()
