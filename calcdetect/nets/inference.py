"""CNN inference: a Volume in, an AnatomyMap (Structure label ids) out.

The volume is resampled to the net's grid, normalised exactly as in training,
segmented by sliding windows (MONAI: windows run on ``sw_device``, the stitched
logits live on ``device``), and brought back to the Volume grid in one of two ways:

* ``upsample="linear"`` (default): the coarse-grid logits (float16) are
  interpolated to the Volume grid slab by slab (bilinear in-plane, linear
  between slices, only inside the foreground's bounding box) and reduced to a
  uint8 class map there, so boundaries are not 3 mm staircases; float
  per-class values never exist on the Volume grid for more than one slab;
* ``upsample="nearest"``: argmax on the coarse grid, then nearest neighbour
  (cheapest; the behaviour of the first shipped model).

Models trained on the coarse class set (``vertebrae_unlabelled`` + ``sacrum`` +
discs) get their levels counted from the sacrum (:mod:`calcdetect.nets.levels`)
and the column voxels relabelled per vertebra.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from calcdetect.anatomy.regions import level_index, level_of_label, structure
from calcdetect.device import Device
from calcdetect.errors import ConfigError
from calcdetect.nets.classes import classes_to_labels
from calcdetect.nets.levels import count_levels, label_vertebrae_by_level
from calcdetect.nets.resample import nearest_indices, resample_image, resample_labels, target_shape
from calcdetect.nets.weights import ModelSpec
from calcdetect.types import AnatomyMap, Volume

__all__ = ["normalise", "predict_classes", "predict_logits", "upsample_argmax", "segment_anatomy",
           "slice_levels_from_labels"]


def normalise(hu: torch.Tensor, intensity: dict[str, float]) -> torch.Tensor:
    """nnU-Net CT normalisation: clip to the foreground percentiles, z-score."""
    lo, hi = intensity.get("clip_low", -1000.0), intensity.get("clip_high", 1500.0)
    mean, std = intensity.get("mean", 0.0), intensity.get("std", 1000.0)
    return (hu.clamp(lo, hi) - mean) / max(std, 1e-6)


def _spec(model: nn.Module) -> ModelSpec:
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise ConfigError("the model has no .spec; load it with calcdetect.nets.load_model")
    return spec


def _roi(shape: Sequence[int], roi: Sequence[int], divisor: int) -> tuple[int, ...]:
    """Shrink the window to the image (rounded up to the net's divisor)."""
    return tuple(min(int(r), -(-int(n) // divisor) * divisor) for n, r in zip(shape, roi))


def _pad_value(image: torch.Tensor) -> float:
    """What windows that reach past the image are filled with: the image minimum (air after the
    normalisation's clip), as the training patches are padded (``crop_patch``). MONAI's default of 0
    is the foreground mean: a bright soft-tissue frame around every image smaller than the window."""
    return float(image.min()) if image.numel() else 0.0


def _autocast(device: Device, enabled: bool | None):
    if enabled is False:
        return nullcontext()
    if device.is_cuda:
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()


@torch.no_grad()
def predict_classes(
    image: torch.Tensor,
    model: nn.Module,
    device: Device,
    *,
    roi_size: Sequence[int],
    n_classes: int,
    divisor: int = 16,
    overlap: float = 0.25,
    sw_batch_size: int = 1,
    autocast: bool | None = None,
    memory_budget_bytes: int = 512 * 2**20,
) -> np.ndarray:
    """Argmax class map (uint8) of a normalised 3-D image on the net grid.

    Parameters
    ----------
    image
        Normalised float32 ``[k, j, i]`` (any device).
    model
        Segmentation net returning ``[B, C, k, j, i]`` logits.
    device
        Where windows run; the stitched logits live on the same device.
    roi_size
        Window size (shrunk to the image where the image is smaller).
    n_classes
        Output channels (sizes the memory budget).
    memory_budget_bytes
        Budget for the stitched float logits; larger images are split into
        overlapping slabs along ``k``.
    """
    from monai.inferers import sliding_window_inference

    shape = tuple(int(s) for s in image.shape)
    roi = _roi(shape, roi_size, divisor)
    k_total = shape[0]
    per_slice = shape[1] * shape[2] * 4 * n_classes
    slab = max(roi[0], int(memory_budget_bytes // max(per_slice, 1)))
    margin = roi[0] // 2
    out = np.zeros(shape, dtype=np.uint8)
    dev = torch.device(device.torch)
    model.eval()
    for start in range(0, k_total, slab):
        lo, hi = max(0, start - margin), min(k_total, start + slab + margin)
        x = image[lo:hi].to(dev)[None, None]
        with _autocast(device, autocast):
            logits = sliding_window_inference(
                x, roi, sw_batch_size, model, overlap=overlap, mode="gaussian", sw_device=dev, device=dev,
                cval=_pad_value(image),
            )
        labels = torch.argmax(logits[0], dim=0).to(torch.uint8).cpu().numpy()
        stop = min(k_total, start + slab)
        out[start:stop] = labels[start - lo : stop - lo]
        del logits
    return out


@torch.no_grad()
def predict_logits(
    image: torch.Tensor,
    model: nn.Module,
    device: Device,
    *,
    roi_size: Sequence[int],
    divisor: int = 16,
    overlap: float = 0.25,
    sw_batch_size: int = 1,
    autocast: bool | None = None,
) -> torch.Tensor:
    """Float16 logits ``[C, k, j, i]`` (on the CPU) of a normalised 3-D image on the net grid."""
    from monai.inferers import sliding_window_inference

    shape = tuple(int(s) for s in image.shape)
    roi = _roi(shape, roi_size, divisor)
    dev = torch.device(device.torch)
    model.eval()
    x = image.to(dev)[None, None]
    with _autocast(device, autocast):
        logits = sliding_window_inference(
            x, roi, sw_batch_size, model, overlap=overlap, mode="gaussian", sw_device=dev, device=dev,
            cval=_pad_value(image),
        )
    return logits[0].to(torch.float16).cpu()


def _linear_index(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of linear interpolation (``align_corners=False``)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(np.float32)


@torch.no_grad()
def upsample_argmax(logits: torch.Tensor, out_shape: Sequence[int], *, chunk: int = 16) -> np.ndarray:
    """Argmax (uint8) of ``logits [C, k, j, i]`` linearly interpolated to ``out_shape``
    (``align_corners=False``, as ``F.interpolate(mode="trilinear")``).

    Exact and cheap: where the 8 coarse voxels around an output voxel share one
    argmax, every convex blend of their logits has that argmax too, so only
    output voxels in cells on a class boundary are interpolated. Peak extra
    memory is the float32 logits on the coarse grid plus one chunk of output
    slices.
    """
    c, nk, nj, ni = (int(v) for v in logits.shape)
    ok, oj, oi = (int(v) for v in out_shape)
    lg = logits.float().numpy()
    coarse = np.argmax(lg, axis=0).astype(np.uint8)
    pad = np.pad(coarse, ((0, 1), (0, 1), (0, 1)), mode="edge")
    uniform = np.ones(coarse.shape, bool)
    for dk in (0, 1):
        for dj in (0, 1):
            for di in (0, 1):
                if dk or dj or di:
                    uniform &= pad[dk : dk + nk, dj : dj + nj, di : di + ni] == coarse
    klo, khi, kw = _linear_index(nk, ok)
    jlo, jhi, jw = _linear_index(nj, oj)
    ilo, ihi, iw = _linear_index(ni, oi)
    out = np.empty((ok, oj, oi), dtype=np.uint8)
    for start in range(0, ok, chunk):
        stop = min(ok, start + chunk)
        kl = klo[start:stop]
        out[start:stop] = coarse[np.ix_(kl, jlo, ilo)]
        kk, jj, ii = np.nonzero(~uniform[np.ix_(kl, jlo, ilo)])
        if kk.size == 0:
            continue
        kg = kk + start
        k0, k1, wk = klo[kg], khi[kg], kw[kg]
        j0, j1, wj = jlo[jj], jhi[jj], jw[jj]
        i0, i1, wi = ilo[ii], ihi[ii], iw[ii]
        acc = np.zeros((c, kk.size), np.float32)
        for ka, wa in ((k0, 1 - wk), (k1, wk)):
            for ja, wb in ((j0, 1 - wj), (j1, wj)):
                for ia, wc in ((i0, 1 - wi), (i1, wi)):
                    acc += lg[:, ka, ja, ia] * (wa * wb * wc)
        out[kg, jj, ii] = np.argmax(acc, axis=0)
    return out


def slice_levels_from_labels(
    labels: np.ndarray, spacing_k_mm: float, *, min_voxels: int = 3, max_disc_gap_mm: float = 25.0
) -> tuple[str | None, ...]:
    """Vertebral level of each slice from a Structure label map ``[k, j, i]``.

    Each slice takes the majority vertebra label among its vertebra voxels (at
    least ``min_voxels``), unless intervertebral-disc voxels outnumber them. Slices
    between two different levels (a disc, or a gap of at most ``max_disc_gap_mm``)
    are named ``"L3-L4"`` (cranial level first); slices beyond the spine are
    ``None``.
    """
    from calcdetect.anatomy.regions import VERTEBRA_LEVELS

    n_vert = len(VERTEBRA_LEVELS)
    disc = structure("intervertebral_disc").label
    levels: list[str | None] = []
    for k in range(labels.shape[0]):
        counts = np.bincount(labels[k].ravel(), minlength=256)
        vert = counts[1 : n_vert + 1]
        if vert.sum() < min_voxels or counts[disc] > vert.sum():
            levels.append(None)
        else:
            levels.append(level_of_label(int(np.argmax(vert)) + 1))
    filled = list(levels)
    known = [k for k, lv in enumerate(levels) if lv is not None]
    for a, b in zip(known, known[1:]):
        gap = b - a - 1
        if gap <= 0 or gap * spacing_k_mm > max_disc_gap_mm:
            continue
        la, lb = levels[a], levels[b]
        assert la is not None and lb is not None
        if la == lb:
            name = la
        else:
            cranial, caudal = sorted((la, lb), key=level_index)
            name = f"{cranial}-{caudal}"
        for k in range(a + 1, b):
            filled[k] = name
    return tuple(filled)


def _levels(labels: np.ndarray, spec: ModelSpec, spacing: Sequence[float], *,
            is_classes: bool = False) -> tuple[str | None, ...]:
    """Per-slice levels: counted from the sacrum for coarse models, read off per-vertebra labels otherwise.

    ``labels`` are Structure label ids, or class ids of ``spec.classes`` when ``is_classes``.
    """
    from calcdetect.nets.classes import classes_to_labels, labels_to_classes

    if "vertebrae_unlabelled" in spec.classes:
        cls = labels if is_classes else labels_to_classes(labels, spec.classes)
        counted = count_levels(cls, spec.classes, spacing)
        return counted if counted is not None else (None,) * labels.shape[0]
    return slice_levels_from_labels(classes_to_labels(labels, spec.classes) if is_classes else labels, spacing[0])


def segment_anatomy(
    volume: Volume,
    model: nn.Module,
    device: Device,
    *,
    roi_size: Sequence[int] | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 1,
    autocast: bool | None = None,
    max_tile: int = 144,
    upsample: str = "linear",
) -> AnatomyMap:
    """Segment the anatomy of a CT volume with a loaded anatomy net.

    Parameters
    ----------
    volume
        CT in HU on its canonical grid.
    model
        From :func:`calcdetect.nets.load_model` (carries ``.spec``).
    device
        Where the network runs (resolved once by the caller).
    roi_size
        Sliding-window size on the net grid. By default each axis is the whole
        image (rounded up to the net's divisor) up to ``max_tile`` voxels: the
        nets are fully convolutional and one large tile beats many small ones.
    autocast
        ``None``: fp16 autocast on CUDA, full fp32 on CPU (bf16 autocast measured
        slower on CPU without AMX, see ``scripts/bench_cnn.py``). ``True`` on CPU
        uses bf16 autocast.
    max_tile
        Largest window edge (voxels of the net grid) for the default ``roi_size``.
    upsample
        ``"linear"`` (interpolate the logits to the Volume grid, smooth
        boundaries) or ``"nearest"`` (argmax on the net grid; cheapest).

    Returns
    -------
    AnatomyMap
        uint8 Structure label ids on the Volume grid, with ``slice_levels``.
    """
    spec = _spec(model)
    if spec.task != "anatomy" or len(spec.spacing_mm) != 3:
        raise ConfigError(f"segment_anatomy needs an anatomy model, got task {spec.task!r}")
    net_shape = target_shape(volume.shape, volume.spacing, spec.spacing_mm)
    image = resample_image(volume.array, net_shape)
    image = normalise(image, spec.intensity)
    div = spec.net.divisor
    if roi_size is None:  # one large tile per axis where it fits (fewer, larger windows are faster)
        cap = max(div, (max_tile // div) * div)
        roi = tuple(min(cap, -(-n // div) * div) for n in net_shape)
    else:
        roi = tuple(roi_size)
    if upsample not in ("linear", "nearest"):
        raise ConfigError(f"upsample must be 'linear' or 'nearest', got {upsample!r}")
    if upsample == "linear":
        logits = predict_logits(image, model, device, roi_size=roi, divisor=div, overlap=overlap,
                                sw_batch_size=sw_batch_size, autocast=autocast)
        del image
        classes = upsample_argmax(logits, volume.shape)
        del logits
        levels = _levels(classes, spec, volume.spacing, is_classes=True)
        labels = classes_to_labels(classes, spec.classes)
        del classes
    else:
        classes = predict_classes(
            image, model, device, roi_size=roi, n_classes=spec.net.out_channels, divisor=div, overlap=overlap,
            sw_batch_size=sw_batch_size, autocast=autocast,
        )
        del image
        net_labels = classes_to_labels(classes, spec.classes)
        net_spacing = (volume.spacing[0] * volume.shape[0] / net_shape[0],
                       volume.spacing[1] * volume.shape[1] / net_shape[1],
                       volume.spacing[2] * volume.shape[2] / net_shape[2])
        net_levels = _levels(net_labels, spec, net_spacing)
        labels = resample_labels(net_labels, volume.shape)
        k_idx = nearest_indices(net_shape[0], volume.shape[0])
        levels = tuple(net_levels[k] for k in k_idx)
    if "vertebrae_unlabelled" in spec.classes and any(lv is not None for lv in levels):
        labels = label_vertebrae_by_level(labels, levels)
    return AnatomyMap(
        labels=labels.astype(np.uint8, copy=False),
        affine=np.asarray(volume.affine, dtype=np.float64).copy(),
        slice_levels=levels,
        source={name: "cnn" for name in spec.classes[1:]},
        notes=(f"CNN anatomy ({spec.net.arch}, {spec.extra.get('name', 'unnamed model')}) on a "
               f"{'x'.join(f'{s:g}' for s in spec.spacing_mm)} mm grid",),
    )
