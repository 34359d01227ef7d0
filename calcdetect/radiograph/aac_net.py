"""A small 2-D net that marks aortic calcium in the aortic zone of the straightened strip.

Why a net: on lateral projections the aortic wall calcium (local contrast 2-9 times
the quantum noise) lies on bowel gas and content whose texture is stronger still;
no intensity threshold separates the two, but their shapes differ (calcium: lines
and plates along the aorta; bowel: round lucencies and mottle). The rule detector
(:func:`calcdetect.radiograph.aac.detect_calcification`) stays the fallback when no
weights are shipped.

Input (on the strip grid of :mod:`calcdetect.radiograph.vertebrae`, 0.5 mm; the
channels ``INPUT_CHANNELS`` a net's metadata names): the strip minus its 8 mm
Gaussian background, divided by the quantum noise (robust SD of the fine-scale
residual in the zone); from v7, the strip's white top-hat across the wall over the
same noise (thin lines along the spine, without the bright rims the Gaussian leaves
around gas); and the distance in front of the anterior vertebral line
(``u / 40 mm``), because the walls lie at typical distances from the spine. Output: one logit per pixel (calcified
aortic wall). Architecture: MONAI ``UNet`` built by :func:`calcdetect.nets.builders.build_net`.

Weights: ``models/radiograph_aac_v8.safetensors`` with its model card
(``.md``): taught the aortic calcium of the walls a lateral view sees in profile, which
the AAC-24 truth grades (``--target-walls profile``), channels 32-64-128, with
small deposits weighed up in the loss (``--lesion-weighting``) and the top-hat channel
(``--inputs contrast,tophat,depth``); v7 (630 phantoms) fine-tuned on 300 phantoms each rendered three
ways (``--ct standard,sharp,film``), so that it does not lean on how the phantoms draw the clutter; the network
configuration, threshold and training facts are in the safetensors metadata. Loaded offline with ``safetensors`` (no pickle). A weights
file may also hold several nets of one architecture (:class:`MeanLogitEnsemble`,
metadata ``ensemble_members``); the loader rebuilds them and the detector thresholds
the mean of their logits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from calcdetect.nets.weights import weights_source
from calcdetect.radiograph.aac import Aac24ErrorBound, across_spine

__all__ = [
    "CalciumModel",
    "DEFAULT_MODEL_PATH",
    "MeanLogitEnsemble",
    "U_SCALE_MM",
    "input_divisor",
    "zone_input",
    "INPUT_CHANNELS",
    "DEFAULT_INPUTS",
    "check_input_channels",
    "TOPHAT_MM",
    "GAS_MM",
    "predict_calcium",
    "calcium_zone_logits",
    "calcium_mask",
    "ZoneLogits",
    "calcium_logits",
    "load_calcium_model",
    "load_default_calcium_model",
    "save_calcium_model",
    "write_calcium_card",
]

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "radiograph_aac_v8.safetensors"
U_SCALE_MM = 40.0  # the position channel is the distance in front of the spine over this
BACKGROUND_MM = 8.0
DIVISOR = 8  # input sizes are padded to a multiple of this (the UNet downsamples by 2 twice; 8 leaves room)
MIN_AREA_MM2 = 1.0
#: The noise-aware threshold stays within these logits (probability ~0.12-0.95), so an
#: image far outside the phantoms' noise range cannot switch the detector off or on.
_LOGIT_RANGE = (-2.0, 3.0)

#: The input channels a calcium net may take, in its order (metadata ``input_channels``):
#: ``contrast``, the strip minus its 8 mm Gaussian background over ``input_scale``;
#: ``tophat``, the strip minus its grey opening with a ``TOPHAT_MM`` line across the wall, over
#: the noise SD: the thin bright lines that run along the spine, without the bright rims the
#: Gaussian background leaves around dark bowel gas; ``depth``, the distance in front of the
#: anterior vertebral line / ``U_SCALE_MM``; ``gas``, the strip's black top-hat (grey closing
#: with a ``GAS_MM`` square, minus the strip) over the noise SD: a map of the dark bowel gas and
#: the gaps between bones, which leave bright ridges that mimic calcium.
INPUT_CHANNELS = ("contrast", "tophat", "depth", "gas")
#: What every net up to v6 takes.
DEFAULT_INPUTS = ("contrast", "depth")
#: Wider than an aortic wall seen in profile (1-3 mm), narrower than the gas and bone around it.
TOPHAT_MM = 5.0
#: Wider than most bowel-gas lucencies on the phantoms (2-6 mm).
GAS_MM = 8.0


@dataclass(frozen=True)
class CalciumModel:
    """A loaded calcium net: the module (eval mode, CPU), its config, its threshold and
    the smallest deposit it reports (area, and length along the spine: a speck of a
    pixel or two in a row counts that row as calcified, so specks move AAC-24 grades)."""

    net: Any
    config: dict[str, Any]
    threshold: float
    min_area_mm2: float = MIN_AREA_MM2
    min_length_mm: float = 0.0
    #: Noise-aware operating point: the logit threshold moves by ``noise_slope`` per
    #: e-fold of the zone's quantum-noise SD (strip units) away from ``noise_ref``,
    #: where ``threshold`` applies. The input is divided by that SD, so a high-dose image
    #: shows bowel texture at several times the contrast-to-noise of a low-dose one and
    #: the net marks more of it; one fixed threshold under-calls at low dose and
    #: over-calls at high dose. ``noise_ref`` 0 keeps the threshold fixed. The shipped
    #: v1 and v2 keep it fixed (for v1: a slope fitted on development seeds levelled the per-dose
    #: bias there but did not lower the AAC-24 error on held-out seeds (issue #6 notes)).
    noise_slope: float = 0.0
    noise_ref: float = 0.0
    #: Average the logits of the strip and of its head-foot mirror image (the net was
    #: trained with head-foot flips, so both views are equally valid): a deposit found in
    #: one view only is damped, which trims isolated false specks and steadies the
    #: deposit ends that decide the Kauppila length fraction. Metadata ``flip_average``.
    #: Measured for v3 on development seeds 80-99 + 500-539: AAC-24 MAE 1.63 with and
    #: without it (threshold 0.85), at twice the net time, so v3 leaves it off.
    flip_average: bool = False
    #: Per-level shift of the logit threshold, ``(("L1", -0.5), ...)`` (levels not named: 0),
    #: interpolated between the levels' centre rows. Why: the phantoms' detection error is
    #: not level-neutral at one threshold: calcium at L1-L2 lies on denser, busier overlying
    #: tissue (liver, crura, lower ribs) and is under-called, while at L4 the bifurcation and
    #: the common iliacs (calcium that is not aortic) project into the zone and are over-called.
    #: Metadata ``level_logit_offsets`` (JSON object). v3 shipped L4 +1 (chosen on 54 cases); on the
    #: 137-case selection block 540-679 it cost AAC-24 ICC 0.812 -> 0.793, so v4 has none.
    level_logit_offsets: tuple[tuple[str, float], ...] = ()
    #: ``INPUT_SCALES``: what the contrast channel is divided by (metadata ``input_scale``).
    input_scale: str = "noise"
    #: ``INPUT_CHANNELS`` the net takes, in order (metadata ``input_channels``).
    inputs: tuple[str, ...] = DEFAULT_INPUTS
    #: Where the weights came from (file name and SHA-256), so that a reading in findings.json
    #: says which net made it; empty for a net built in memory.
    source: dict[str, str] = field(default_factory=dict)
    #: How far this net's AAC-24 readings lay from the truth on held-out phantoms (metadata
    #: ``aac24_error_bound``); ``None``: not measured, no range is reported.
    aac24_error_bound: Aac24ErrorBound | None = None

    def row_logit_offsets(self, level_centre_rows: dict[str, float], n_rows: int) -> np.ndarray:
        """The logit-threshold shift per strip row for levels centred at these rows."""
        offsets = dict(self.level_logit_offsets)
        if not offsets or not level_centre_rows:
            return np.zeros(n_rows)
        items = sorted(level_centre_rows.items(), key=lambda kv: kv[1])
        return np.interp(np.arange(n_rows), [r for _, r in items], [offsets.get(lv, 0.0) for lv, _ in items])

    def threshold_at(self, noise_sd: float) -> float:
        """The probability threshold for an image whose zone has this noise SD."""
        t = min(max(self.threshold, 1e-6), 1 - 1e-6)
        logit = math.log(t / (1 - t))
        if self.noise_ref > 0 and self.noise_slope and noise_sd > 0:
            logit += self.noise_slope * math.log(noise_sd / self.noise_ref)
            logit = min(max(logit, _LOGIT_RANGE[0]), _LOGIT_RANGE[1])
        return 1.0 / (1.0 + math.exp(-logit))


def _robust_sd(field: np.ndarray, zone: np.ndarray) -> float:
    """Robust SD (1.4826 x MAD) of ``field`` in the zone (everywhere when the zone is empty)."""
    vals = field[zone] if zone.any() else field.ravel()
    return 1.4826 * float(np.median(np.abs(vals - np.median(vals)))) or 1e-6


def _noise_sd(strip: np.ndarray, zone: np.ndarray) -> float:
    return _robust_sd(strip - ndimage.gaussian_filter(strip, 1.0), zone)


#: How ``zone_input`` scales the strip's contrast channel: ``"noise"`` divides by the zone's
#: quantum-noise SD (every shipped net), ``"background"`` by the robust spread of the zone's
#: background-subtracted strip (anatomy: bowel gas, bone edges), so that one deposit keeps
#: about one value across doses. Metadata ``input_scale``. Measured in session 21 on v6's
#: recipe: AAC-24 MAE -0.09 on development 400-539, -0.06 and -0.09 on held-out 1260-1419
#: and 1100-1259, but +0.25 on 920-999; -0.03 (SE 0.04) over the 539 paired cases, so not shipped.
INPUT_SCALES = ("noise", "background")


def input_divisor(config: dict[str, Any]) -> int:
    """What a net's input sides must be a multiple of: ``DIVISOR``, or more for a net
    that halves the grid more often (a UNet with ``n`` channel levels halves it ``n - 1`` times)."""
    return max(DIVISOR, 2 ** (len(config.get("channels", ())) - 1))


def check_input_channels(inputs: tuple[str, ...]) -> tuple[str, ...]:
    """``inputs`` when it names distinct ``INPUT_CHANNELS``, at least one; else ``ValueError``."""
    if not inputs or len(set(inputs)) != len(inputs) or any(k not in INPUT_CHANNELS for k in inputs):
        raise ValueError(f"input channels {list(inputs)}: give distinct names from {INPUT_CHANNELS}")
    return inputs


def zone_input(
    strip: np.ndarray, t_line: np.ndarray, zone: np.ndarray, step_mm: float, divisor: int = DIVISOR,
    scale: str = "noise", inputs: tuple[str, ...] = DEFAULT_INPUTS,
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The net's input over the zone's bounding box (padded to ``divisor``): the channels
    ``inputs`` (``INPUT_CHANNELS``) in that order.

    Returns the ``(len(inputs), H, W)`` float32 array and the strip window it covers.
    """
    rows = np.flatnonzero(zone.any(axis=1))
    cols = np.flatnonzero(zone.any(axis=0))
    pad = int(round(4.0 / step_mm))
    r0, r1 = max(0, rows[0] - pad), min(strip.shape[0], rows[-1] + pad + 1)
    c0, c1 = max(0, cols[0] - pad), min(strip.shape[1], cols[-1] + pad + 1)
    # grow to a multiple of the divisor, inside the strip where possible
    r1 = min(strip.shape[0], r0 + -(-(r1 - r0) // divisor) * divisor)
    c1 = min(strip.shape[1], c0 + -(-(c1 - c0) // divisor) * divisor)
    r0 = max(0, r1 - -(-(r1 - r0) // divisor) * divisor)
    c0 = max(0, c1 - -(-(c1 - c0) // divisor) * divisor)
    win = (slice(r0, r1), slice(c0, c1))
    if scale not in INPUT_SCALES:
        raise ValueError(f"input scale {scale!r}: use one of {INPUT_SCALES}")
    check_input_channels(inputs)
    flt = strip.astype(np.float32)
    noise_sd = _noise_sd(strip, zone) if {"tophat", "gas"} & set(inputs) or scale == "noise" else None

    def contrast() -> np.ndarray:
        detail = flt - ndimage.gaussian_filter(flt, BACKGROUND_MM / step_mm)
        return detail[win] / np.float32(noise_sd if scale == "noise" else _robust_sd(detail, zone))

    def tophat() -> np.ndarray:
        line = int(round(TOPHAT_MM / step_mm)) | 1  # odd: centred on the pixel
        return (flt - ndimage.grey_opening(flt, size=(1, line)))[win] / np.float32(noise_sd)

    def depth() -> np.ndarray:
        return (t_line[r0:r1, None] - np.arange(c0, c1)[None, :]) * step_mm / U_SCALE_MM

    def gas() -> np.ndarray:
        side = int(round(GAS_MM / step_mm)) | 1
        return (ndimage.grey_closing(flt, size=(side, side)) - flt)[win] / np.float32(noise_sd)

    channel = {"contrast": contrast, "tophat": tophat, "depth": depth, "gas": gas}
    x = np.stack([channel[k]().astype(np.float32) for k in inputs])
    h, w = x.shape[1:]
    ph, pw = (-h) % divisor, (-w) % divisor  # the strip itself may be smaller than a multiple
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="edge")
    return x, win


def calcium_logits(model: CalciumModel, x: np.ndarray) -> np.ndarray:
    """The net's logit map ``(H, W)`` for a ``zone_input`` array (mirror-averaged when
    ``model.flip_average``)."""
    with torch.no_grad():
        xt = torch.from_numpy(x)[None]
        logit = model.net(xt)[0, 0]
        if model.flip_average:
            logit = 0.5 * (logit + torch.flip(model.net(torch.flip(xt, dims=(2,)))[0, 0], dims=(0,)))
    return logit.numpy()


def predict_calcium(
    model: CalciumModel, strip: np.ndarray, t_line: np.ndarray, zone: np.ndarray, step_mm: float,
    level_centre_rows: dict[str, float] | None = None,
) -> np.ndarray:
    """Calcified pixels of the strip inside ``zone`` (bool, strip shape).

    ``level_centre_rows``: strip row of each vertebral level's centre, for the model's
    per-level threshold shifts (``CalciumModel.level_logit_offsets``); ``None``: no shift.
    """
    zl = calcium_zone_logits(model, strip, t_line, zone, step_mm, level_centre_rows)
    return np.zeros(zone.shape, bool) if zl is None else calcium_mask(model, zl)


@dataclass(frozen=True)
class ZoneLogits:
    """The net's logits over the zone's window of the strip, and the logit threshold that
    applies on each of its rows (the operating point, with its noise and level shifts)."""

    logit: np.ndarray  # window rows x columns
    window: tuple[slice, slice]
    zone: np.ndarray  # the whole strip's zone (bool)
    row_threshold: np.ndarray  # per window row
    step_mm: float


def calcium_zone_logits(
    model: CalciumModel, strip: np.ndarray, t_line: np.ndarray, zone: np.ndarray, step_mm: float,
    level_centre_rows: dict[str, float] | None = None,
) -> ZoneLogits | None:
    """One pass of the net over the zone (``None``: empty zone); :func:`calcium_mask` thresholds it."""
    if not zone.any():
        return None
    x, win = zone_input(strip, t_line, zone, step_mm, input_divisor(model.config), model.input_scale, model.inputs)
    logit = calcium_logits(model, x)
    h, w = win[0].stop - win[0].start, win[1].stop - win[1].start
    # the noise SD only moves a noise-aware threshold; skip its filter pass otherwise
    thr = model.threshold_at(_noise_sd(strip, zone) if model.noise_ref > 0 else 0.0)
    shift = model.row_logit_offsets(level_centre_rows or {}, strip.shape[0])[win[0]]
    return ZoneLogits(logit[:h, :w], win, zone, np.log(thr / (1 - thr)) + shift, step_mm)


def calcium_mask(model: CalciumModel, zl: ZoneLogits, logit_offset: float = 0.0) -> np.ndarray:
    """Calcified strip pixels from the zone logits at the operating point moved by ``logit_offset``
    (positive: stricter), keeping deposits of the model's least area and length that do not
    cross the spine obliquely."""
    step_mm = zl.step_mm
    out = np.zeros(zl.zone.shape, bool)
    mask = (zl.logit > zl.row_threshold[:, None] + logit_offset) & zl.zone[zl.window]
    lab, n = ndimage.label(mask)
    if n:
        area = np.bincount(lab.ravel(), minlength=n + 1) * step_mm**2
        keep = area >= model.min_area_mm2
        keep[0] = False
        for i, sl in enumerate(ndimage.find_objects(lab), start=1):
            if not keep[i] or sl is None:
                continue
            if (sl[0].stop - sl[0].start) * step_mm < model.min_length_mm:
                keep[i] = False  # shorter along the spine than a deposit the scorer should count
            elif across_spine(*np.nonzero(lab[sl] == i)):
                keep[i] = False  # a rib edge crossing the zone, not a wall seen edge-on
        mask = keep[lab]
    out[zl.window] = mask
    return out


def build_calcium_net(config: dict[str, Any]) -> Any:
    from calcdetect.nets.builders import NetConfig, build_net

    return build_net(NetConfig.from_dict(config))


class MeanLogitEnsemble(torch.nn.Module):
    """Nets of one architecture trained from different initial seeds; the output is the
    mean of their logits.

    Why: one training run of the calcium net depends on its draw (init and batch order):
    the same recipe gave a net that beat the previous one on some unused seeds and lost on
    others. Averaging the members' logits flattens the AAC-24 error against the threshold,
    but in the issue #6 trial (5 members, threshold chosen on seeds 80-99) it did not beat
    the shipped single v2 on unused seeds 0-39; nor, in the session-12 trial (2-3 members on
    174 phantoms, threshold chosen on the 137-case selection block 540-679), did it beat the
    single v3 (ICC 0.79-0.80 against 0.81), so none is shipped yet. The operating
    threshold is chosen for the averaged output, not taken from a member. The state dict
    keys are ``members.<i>.<member key>``.
    """

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member net")
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # head 0 only: a member may carry an auxiliary head (``--aux-all-weight``) the analysis never reads
        return torch.stack([m(x)[:, :1] for m in self.members]).mean(dim=0)


def _member_count(meta: dict[str, str], path: Path) -> int:
    """Members stored in a calcium-net file (0: a single net, keys without prefix)."""
    try:
        n = int(meta.get("ensemble_members", "0"))
    except ValueError:
        raise ValueError(f"{path}: 'ensemble_members' metadata {meta['ensemble_members']!r} is not a count; "
                         "rewrite the file with save_calcium_model") from None
    if n < 0:
        raise ValueError(f"{path}: 'ensemble_members' is {n}; rewrite the file with save_calcium_model")
    return n


def save_calcium_model(net: Any, config: dict[str, Any], threshold: float, path: Path,
                       metadata: dict[str, str] | None = None) -> Path:
    """Write the weights as safetensors with the config and threshold in the metadata."""
    from safetensors.torch import save_file

    meta = {"config": json.dumps(config), "threshold": repr(float(threshold)), **(metadata or {})}
    if isinstance(net, MeanLogitEnsemble):
        meta["ensemble_members"] = str(len(net.members))
        meta["ensemble_combine"] = "mean of the members' logits"
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)
    return path


def load_calcium_model(path: Path) -> CalciumModel:
    """Load a calcium net written by :func:`save_calcium_model` (CPU, eval mode)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise ValueError(f"{path} has no 'config' metadata; it was not written by save_calcium_model")
    config = json.loads(meta["config"])
    n_members = _member_count(meta, path)
    if n_members:
        net = MeanLogitEnsemble([build_calcium_net(config) for _ in range(n_members)])
    else:
        net = build_calcium_net(config)
    input_scale = meta.get("input_scale", "noise")
    if input_scale not in INPUT_SCALES:
        raise ValueError(f"{path}: input_scale {input_scale!r} is not one of {INPUT_SCALES}; "
                         "it was written by a newer calcdetect: update calcdetect or pick another model")
    inputs = _input_channels(meta, config, path)
    net.load_state_dict(load_file(str(path)))  # strict: a missing or extra member fails here
    net.eval()
    return CalciumModel(net, config, float(meta.get("threshold", 0.5)),
                        min_area_mm2=float(meta.get("min_area_mm2", MIN_AREA_MM2)),
                        min_length_mm=float(meta.get("min_length_mm", 0.0)),
                        noise_slope=float(meta.get("noise_slope", 0.0)),
                        noise_ref=float(meta.get("noise_ref", 0.0)),
                        flip_average=meta.get("flip_average", "false").lower() == "true",
                        level_logit_offsets=_level_offsets(meta, path),
                        input_scale=input_scale, inputs=inputs, source=weights_source(path),
                        aac24_error_bound=_error_bound(meta, path))


def _input_channels(meta: dict[str, str], config: dict[str, Any], path: Path) -> tuple[str, ...]:
    """The ``input_channels`` metadata (JSON list; absent: ``DEFAULT_INPUTS``), checked
    against ``INPUT_CHANNELS`` and the net's ``in_channels``."""
    text = meta.get("input_channels")
    try:
        inputs = tuple(str(k) for k in json.loads(text)) if text else DEFAULT_INPUTS
    except (ValueError, TypeError):
        raise ValueError(f"{path}: 'input_channels' metadata {text!r} is not a JSON list of channel names; "
                         "restamp the file with scripts/train_radiograph_aac.py") from None
    try:
        check_input_channels(inputs)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}; it was written by a newer calcdetect: update calcdetect or pick "
                         "another model") from None
    if len(inputs) != int(config.get("in_channels", len(inputs))):
        raise ValueError(f"{path}: {len(inputs)} input channels {list(inputs)} for a net with "
                         f"{config.get('in_channels')} input channels; the file is inconsistent: retrain or restamp it")
    return inputs


def _error_bound(meta: dict[str, str], path: Path) -> Aac24ErrorBound | None:
    """The ``aac24_error_bound`` metadata (JSON ``{"coverage", "points", "measured_on"}``)."""
    text = meta.get("aac24_error_bound")
    if not text:
        return None
    try:
        raw = json.loads(text)
        return Aac24ErrorBound(float(raw["coverage"]), int(raw["points"]), str(raw["measured_on"]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path}: 'aac24_error_bound' metadata {text!r} is not a JSON object with coverage "
                         f"(0-1), points and measured_on ({exc}); restamp the file with "
                         "scripts/train_radiograph_aac.py --error-bound") from None


def _level_offsets(meta: dict[str, str], path: Path) -> tuple[tuple[str, float], ...]:
    """The ``level_logit_offsets`` metadata as sorted (level, shift) pairs."""
    text = meta.get("level_logit_offsets")
    if not text:
        return ()
    try:
        raw = json.loads(text)
        return tuple(sorted((str(k), float(v)) for k, v in raw.items()))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{path}: 'level_logit_offsets' metadata {text!r} is not a JSON object of level -> "
                         "logit shift; restamp the file with scripts/train_radiograph_aac.py") from None


@lru_cache(maxsize=1)
def load_default_calcium_model() -> CalciumModel | None:
    """The shipped model, or ``None`` when ``models/radiograph_aac_v8.safetensors`` is absent."""
    return load_calcium_model(DEFAULT_MODEL_PATH) if DEFAULT_MODEL_PATH.exists() else None


def _channel_note(channel: str, scale: str) -> str:
    """What one input channel is, in the words of a model card."""
    return {
        "contrast": f"the strip (0.5 mm) minus its {BACKGROUND_MM:g} mm Gaussian background over "
        + ("the quantum-noise SD" if scale == "noise" else
           "the robust SD of that background-subtracted strip in the zone (`input_scale` background)"),
        "tophat": f"the strip minus its grey opening with a {TOPHAT_MM:g} mm line across the wall, over the "
        "quantum-noise SD (top-hat)",
        "gas": f"the strip's grey closing with a {GAS_MM:g} mm square minus the strip, over the quantum-noise SD "
        "(black top-hat: bowel gas and the gaps between bones)",
        "depth": f"the distance in front of the anterior vertebral line / {U_SCALE_MM:.0f} mm",
    }[channel]


def write_calcium_card(weights: Path, *, title: str, sections: dict[str, str]) -> Path:
    """Write the model card ``<name>.md`` next to a calcium net's weights.

    The layout of :func:`calcdetect.nets.weights.write_model_card` (which needs a
    ``ModelSpec``; the calcium net carries its own ``config`` metadata instead):
    architecture and operating point read from the file, the given sections
    (training data, recipe, metrics, limits ...), licence, and the file's size and
    ``sha256:`` line, so a card always describes the bytes next to it.
    """
    from calcdetect.nets.builders import count_parameters
    from calcdetect.nets.weights import write_card_sections

    weights = Path(weights)
    model = load_calcium_model(weights)
    cfg = model.config
    lines = [
        f"# {title}",
        "",
        "## Architecture",
        "",
        f"- MONAI {cfg['arch']} via `calcdetect.nets.builders.build_net`: {cfg['spatial_dims']}-D, channels "
        f"{list(cfg['channels'])}, norm {cfg.get('norm')}, {cfg['in_channels']} input channels, "
        f"{cfg['out_channels']} output logit; {count_parameters(model.net):,} parameters",
        f"- input (`zone_input`), channels {', '.join(model.inputs)}: "
        + "; ".join(_channel_note(k, model.input_scale) for k in model.inputs),
        f"- operating point (safetensors metadata): threshold {model.threshold:g} on the sigmoid; deposits "
        f">= {model.min_area_mm2:g} mm2 and >= {model.min_length_mm:g} mm along the spine that do not cross it "
        "obliquely (rib edges)",
    ]
    if model.noise_ref > 0 and model.noise_slope:
        lines.append(
            f"- noise-aware threshold (`CalciumModel.threshold_at`): the logit threshold moves by "
            f"{model.noise_slope:g} per e-fold of the zone's quantum-noise SD away from {model.noise_ref:g} (strip "
            f"units), within logits {_LOGIT_RANGE[0]:g} to {_LOGIT_RANGE[1]:g}: e.g. "
            f"{model.threshold_at(0.5 * model.noise_ref):.2f} at half, {model.threshold_at(2 * model.noise_ref):.2f} "
            "at twice the reference noise"
        )
    if model.level_logit_offsets:
        shifts = ", ".join(f"{lv} {v:+g}" for lv, v in model.level_logit_offsets)
        lines.append(f"- per-level threshold shift (`CalciumModel.level_logit_offsets`, logits, interpolated between "
                     f"the level centres): {shifts}")
    if model.flip_average:
        lines.append("- mirror averaging (`CalciumModel.flip_average`): the logits of the strip and of its head-foot "
                     "mirror image are averaged before the threshold")
    if model.aac24_error_bound is not None:
        b = model.aac24_error_bound
        lines.append(f"- AAC-24 range reported with each reading (`CalciumModel.aac24_error_bound`): the total "
                     f"+/- {b.points}, since {b.coverage:.0%} of its readings lay that near the truth on "
                     f"{b.measured_on}")
    lines.append("")
    return write_card_sections(weights, lines, sections,
                               "As calcdetect; trained only on synthetic phantoms (no patient data).")
