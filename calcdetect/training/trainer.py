"""The anatomy-net trainer: ``train(config, data, rundir, device)``.

RUNDIR layout::

    fingerprint.json      dataset fingerprint (cached; recomputed if the cases change)
    split.json            train / validation case ids (hash split)
    preprocessed/*.npz    cases resampled to the target spacing
    metrics.csv           one row per epoch: loss, validation Dice per class
    checkpoint.pt         resumable state (model, optimizer, scaler, epoch)
    model.safetensors     final weights + ModelSpec metadata  -> load_model()
    model.md              model card (data, recipe, metrics, sha256)

Multi-GPU: launch with ``torchrun --nproc_per_node=N -m calcdetect.cli train ...``;
when ``WORLD_SIZE > 1`` each process joins the process group (NCCL on CUDA, gloo
on CPU), the model is wrapped in DistributedDataParallel, each rank draws its own
patches, and rank 0 alone validates and writes files.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from calcdetect.device import Device
from calcdetect.errors import ConfigError, InputError
from calcdetect.export.atomic import atomic_write_json, atomic_write_text, atomic_write_with
from calcdetect.nets.builders import build_anatomy_net
from calcdetect.nets.classes import ANATOMY_CLASSES, class_remap_lut
from calcdetect.nets.inference import predict_classes
from calcdetect.nets.weights import ModelSpec, save_model, write_model_card
from calcdetect.training.config import TrainConfig
from calcdetect.training.datasets import IGNORE_INDEX, Case, discover_cases
from calcdetect.training.losses import marginal_dice_ce
from calcdetect.training.patches import CaseCache, PatchDataset
from calcdetect.training.preprocess import intensity_from_fingerprint, prepare_cases, split_cases

__all__ = ["TrainResult", "train", "dice_per_class"]

_CKPT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    rundir: Path
    model_path: Path
    card_path: Path
    epochs_completed: int
    last_train_loss: float
    val_mean_dice: float | None
    val_dice: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    n_val: int = 0


def dice_per_class(pred: np.ndarray, truth: np.ndarray, annotated: np.ndarray, n_classes: int) -> np.ndarray:
    """Hard Dice per class (NaN where the class is absent from both or not annotated)."""
    valid = truth != IGNORE_INDEX
    p = np.where(valid, pred, 0).ravel()
    t = np.where(valid, truth, 0).ravel()
    cp = np.bincount(p, minlength=n_classes)[:n_classes].astype(np.float64)
    ct = np.bincount(t, minlength=n_classes)[:n_classes].astype(np.float64)
    inter = np.bincount(t[p == t], minlength=n_classes)[:n_classes].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 2 * inter / (cp + ct)
    d[(cp + ct) == 0] = np.nan
    d[~annotated.astype(bool)] = np.nan
    return d


def _distributed(device: Device) -> tuple[int, int, Device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    if device.is_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = Device("cuda", local)
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.is_cuda else "gloo")
    return rank, world, device


def _gather_cases(data: Sequence[tuple[str, Path]]) -> list[Case]:
    if not data:
        raise ConfigError("no training data: pass at least one --data KIND=PATH")
    cases: list[Case] = []
    for kind, path in data:
        cases.extend(discover_cases(kind, path))
    dup = [c for c, n in Counter(c.case_id for c in cases).items() if n > 1]
    if dup:
        raise InputError(f"the same case appears twice in the training data: {dup[:3]}")
    return cases


def _poly_lr(base: float, fraction: float) -> float:
    """nnU-Net's poly schedule at a training fraction in [0, 1)."""
    return base * (1 - min(max(fraction, 0.0), 0.99)) ** 0.9


def _validate(model: torch.nn.Module, cache: CaseCache, config: TrainConfig, device: Device) -> np.ndarray:
    n = len(config.class_names)
    rows = []
    for i in range(len(cache)):
        image, labels, annotated = cache.get(i)
        pred = predict_classes(
            torch.from_numpy(image), model, device, roi_size=tuple(2 * p for p in config.patch_size),
            n_classes=n, divisor=config.net.divisor,
        )
        rows.append(dice_per_class(pred, labels, annotated, n))
    if not rows:
        return np.full(n, np.nan)
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.stack(rows), axis=0)


def _csv_header(classes: Sequence[str] = ANATOMY_CLASSES) -> list[str]:
    return ["epoch", "train_loss", "val_mean_dice", "lr", "seconds"] + [f"dice_{c}" for c in classes[1:]]


def _rewrite_csv(path: Path, keep_until_epoch: int) -> None:
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f)]
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= keep_until_epoch]
    buf = io.StringIO()
    csv.writer(buf).writerows(kept)
    atomic_write_text(path, buf.getvalue())


def _append_csv(path: Path, row: list[object], classes: Sequence[str] = ANATOMY_CLASSES) -> None:
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if new:
            w.writerow(_csv_header(classes))
        w.writerow(row)


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _output_layer(model: torch.nn.Module, n_classes: int) -> torch.nn.Module:
    """The last convolution producing the class logits (every anatomy architecture ends in one)."""
    convs = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.conv._ConvNd) and m.out_channels == n_classes]
    if not convs:
        raise ConfigError(f"no output convolution with {n_classes} channels in this network")
    return convs[-1]


def _initial_weights(path: Path, config: TrainConfig) -> dict[str, torch.Tensor]:
    """The state dict of a trained anatomy model, checked against the recipe it will continue under."""
    from calcdetect.nets.weights import load_model

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--init-from: no model file at {str(path)!r}; give a .safetensors written by calcdetect train")
    module = load_model(path, Device("cpu"), require_card=False)  # checks the card's sha256 where there is one
    spec = module.spec
    if spec.task != "anatomy":
        raise ConfigError(f"--init-from: {path.name!r} is a {spec.task!r} model; the trainer continues anatomy models")
    if spec.net.to_dict() != config.net.to_dict() or tuple(spec.classes) != tuple(config.class_names):
        raise ConfigError(
            f"--init-from: {path.name!r} has net {spec.net.to_dict()} and {len(spec.classes)} classes, the recipe "
            f"{config.net.to_dict()} and {len(config.class_names)}: use the recipe the model was trained with "
            "(its card's Recipe section)"
        )
    return module.state_dict()


def train(
    config: TrainConfig,
    data: Sequence[tuple[str, Path]],
    rundir: Path,
    device: Device,
    *,
    epochs: int | None = None,
    resume: bool = False,
    init_from: Path | None = None,
    new_head: bool = False,
    max_minutes: float | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train the anatomy net on one or more datasets and write RUNDIR/model.safetensors.

    Parameters
    ----------
    config
        The recipe (``TrainConfig.from_yaml("configs/train.yaml")``).
    data
        ``[(kind, path), ...]``; kinds: ``totalsegmentator``, ``nnunet``, ``msd``,
        ``phantom`` (path = seed list such as ``"0-39"``). Datasets are mixed.
    rundir
        Output folder (created).
    device
        Resolved once by the caller; CUDA trains with fp16 autocast + GradScaler
        when ``config.amp``.
    epochs
        Overrides ``config.epochs``.
    resume
        Continue from ``RUNDIR/checkpoint.pt`` (same config required).
    init_from
        Start from the weights of a trained model (``models/<name>.safetensors``
        or an earlier RUNDIR's ``model.safetensors``) instead of random ones:
        fine-tuning on new data, or more training of a shipped model. Its
        architecture and class set must equal the config's. A fresh optimizer
        and learning-rate schedule are used; the intensity normalisation is
        re-derived from this run's fingerprint. Not combined with ``resume``.
    new_head
        With ``init_from``: keep the features, learn the output layer anew. For a
        model whose output saturated against some classes (anatomy_phantom_v2's
        iliac logits sat ~16 below background at their own voxels, which Adam
        at 3e-3 per step moves by a fraction of a unit per hundred steps).
    max_minutes
        Wall-clock budget for this call: the poly learning-rate decay follows the
        larger of the epoch fraction and the time fraction, and training stops
        after the epoch that crosses the budget (the model is still written).
    log
        Called with one line per epoch (default: rich console when
        ``config.progress``).

    Returns
    -------
    TrainResult
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    total_epochs = int(epochs if epochs is not None else config.epochs)
    if total_epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {total_epochs}")
    rank, world, device = _distributed(device)
    main = rank == 0
    console = Console(stderr=True, quiet=not config.progress or not main)
    say = log or (lambda s: console.print(s))
    rundir = Path(rundir)
    rundir.mkdir(parents=True, exist_ok=True)
    ckpt_path = rundir / _CKPT
    if resume and not ckpt_path.is_file():
        raise InputError(f"--resume: no checkpoint at {str(ckpt_path)!r}")
    if resume and init_from is not None:
        raise ConfigError("--resume continues RUNDIR's own checkpoint; --init-from starts a new run from a model: "
                          "give one of them")
    initial = _initial_weights(init_from, config) if init_from is not None else None

    cases = _gather_cases(data)
    if world > 1 and not main:  # rank 0 preprocesses; the others then reuse its cache
        import torch.distributed as dist

        dist.barrier()
    prepared, fingerprint = prepare_cases(cases, rundir, config.spacing_mm, phantom=config.phantom)
    if world > 1 and main:
        import torch.distributed as dist

        dist.barrier()
    intensity = intensity_from_fingerprint(fingerprint)
    by_id = {p.case_id: p for p in prepared}
    train_ids, val_ids = split_cases(list(by_id), config.val_fraction, salt=f"calcdetect-split/{config.seed}")
    if main:
        atomic_write_json(rundir / "split.json", {"train": train_ids, "validation": val_ids})
    classes = config.class_names
    lut = None if classes == ANATOMY_CLASSES else class_remap_lut(ANATOMY_CLASSES, classes)
    train_cache = CaseCache([by_id[c].path for c in train_ids], intensity, class_lut=lut, n_classes=len(classes))
    val_cache = CaseCache([by_id[c].path for c in val_ids], intensity, class_lut=lut, n_classes=len(classes))

    torch.manual_seed(config.seed)
    model = build_anatomy_net(config.net)
    if initial is not None:
        model.load_state_dict(initial)
        say(f"initialised from {Path(init_from).name}")
        if new_head:
            _output_layer(model, config.net.out_channels).reset_parameters()
            say("output layer re-initialised")
    elif new_head:
        raise ConfigError("--new-head re-learns the output layer of an --init-from model; give --init-from too")
    model = model.to(device.torch)
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    use_amp = bool(config.amp and device.is_cuda)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch = 0
    history: list[dict[str, float]] = []
    if resume:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if state.get("net") != config.net.to_dict() or list(state.get("spacing_mm", [])) != list(config.spacing_mm):
            raise ConfigError("--resume: the checkpoint was made with a different net or spacing; use a new RUNDIR")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if use_amp and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"])
        history = list(state.get("history", []))
        if main:
            _rewrite_csv(rundir / "metrics.csv", start_epoch)
        say(f"resuming at epoch {start_epoch + 1}")
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.is_cuda else None)

    val_dice = np.full(len(classes), np.nan)
    last_loss = float("nan")
    t_start = time.perf_counter()
    budget_s = None if max_minutes is None else 60.0 * float(max_minutes)
    epochs_done = start_epoch
    for epoch in range(start_epoch, total_epochs):
        t0 = time.perf_counter()
        elapsed = (t0 - t_start) / budget_s if budget_s else 0.0
        if budget_s and elapsed >= 1.0:
            break
        lr = _poly_lr(config.learning_rate, max(epoch / total_epochs, elapsed))
        for g in opt.param_groups:
            g["lr"] = lr
        ds = PatchDataset(
            train_cache, config.patch_size, config.iterations_per_epoch * config.batch_size, seed=config.seed,
            epoch=epoch, rank=rank, foreground_prob=config.foreground_prob, augment=config.augment,
        )
        loader = torch.utils.data.DataLoader(
            ds, batch_size=config.batch_size, shuffle=False, num_workers=config.num_workers,
            pin_memory=device.is_cuda, persistent_workers=False,
        )
        net.train()
        losses: list[float] = []
        with Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(), console=console, transient=True, disable=not config.progress or not main,
        ) as progress:
            task = progress.add_task("train", total=len(loader), epoch=f"{epoch + 1}/{total_epochs}", loss="-")
            for batch in loader:
                x = batch["image"].to(device.torch, non_blocking=True)
                y = batch["label"].to(device.torch, non_blocking=True)
                ann = batch["annotated"].to(device.torch, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    logits = net(x)
                loss = marginal_dice_ce(logits.float(), y, ann, dice_over=config.dice_over)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss is {loss.item()} at epoch {epoch + 1}; lower learning_rate")
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                scaler.step(opt)
                scaler.update()
                losses.append(float(loss.detach()))
                progress.update(task, advance=1, loss=f"{np.mean(losses):.3f}")
        last_loss = float(np.mean(losses))
        epochs_done = epoch + 1
        out_of_time = budget_s is not None and time.perf_counter() - t_start >= budget_s
        if world > 1:  # rank 0 decides, everyone follows (no rank may wait alone at a collective)
            import torch.distributed as dist

            flag = torch.tensor([int(out_of_time)], device=device.torch)
            dist.broadcast(flag, src=0)
            out_of_time = bool(flag.item())
        if not main:
            if out_of_time:
                break
            continue
        is_val_epoch = (epoch + 1) % config.val_every == 0 or epoch + 1 == total_epochs or out_of_time
        if is_val_epoch and len(val_cache):
            val_dice = _validate(model, val_cache, config, device)
        fg = val_dice[1:]
        mean_dice = float(np.nanmean(fg)) if np.isfinite(fg).any() else float("nan")
        seconds = time.perf_counter() - t0
        _append_csv(rundir / "metrics.csv", [epoch + 1, _fmt(last_loss), _fmt(mean_dice), f"{lr:.3g}", f"{seconds:.1f}"]
                    + [_fmt(float(v)) for v in fg], classes)
        history.append({"epoch": epoch + 1, "train_loss": last_loss, "val_mean_dice": mean_dice})
        state = {
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if use_amp else {}, "epoch": epoch + 1,
            "net": config.net.to_dict(), "spacing_mm": list(config.spacing_mm), "history": history,
        }
        atomic_write_with(ckpt_path, lambda p: torch.save(state, p), suffix=".pt")
        say(f"epoch {epoch + 1}/{total_epochs}  loss {last_loss:.4f}  val mean Dice {_fmt(mean_dice) or 'n/a'}  "
            f"lr {lr:.2g}  {seconds:.1f} s")
        if out_of_time:
            say(f"stopping after epoch {epoch + 1}: the {max_minutes} min budget is spent")
            break

    model_path = rundir / "model.safetensors"
    card = rundir / "model.md"
    dice_named = {classes[c]: float(val_dice[c]) for c in range(1, len(classes)) if np.isfinite(val_dice[c])}
    mean = float(np.mean(list(dice_named.values()))) if dice_named else None
    if main:
        kinds = Counter(c.kind for c in cases)
        spec = ModelSpec(
            task="anatomy", net=config.net, classes=classes, spacing_mm=config.spacing_mm,
            intensity=intensity, patch_size=config.patch_size,
            extra={"name": rundir.name, "epochs": str(epochs_done),
                   "data": ", ".join(f"{k}: {n} cases" for k, n in sorted(kinds.items()))},
        )
        save_model(model, model_path, spec)
        dice_lines = "\n".join(f"| {k} | {v:.3f} |" for k, v in dice_named.items()) or "| (no validation cases) | |"
        write_model_card(
            model_path,
            title=f"calcdetect anatomy net ({rundir.name})",
            sections={
                "Training data": f"{len(train_ids)} training and {len(val_ids)} validation cases "
                                 f"(hash split); {spec.extra['data']}.",
                "Recipe": f"```yaml\n{config.to_yaml()}```\nepochs run: {epochs_done} of {total_epochs}; device: {device.type}; "
                          f"AMP: {use_amp}.",
                "Metrics": f"Validation Dice at the last validated epoch (coarse grid), mean {_fmt(mean) if mean is not None else 'n/a'}:\n\n"
                           f"| class | Dice |\n|---|---|\n{dice_lines}",
            },
        )
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return TrainResult(
        rundir=rundir, model_path=model_path, card_path=card, epochs_completed=epochs_done,
        last_train_loss=last_loss, val_mean_dice=mean, val_dice=dice_named,
        n_train=len(train_ids), n_val=len(val_ids),
    )
