"""A 2-D net that outlines and names the lumbar vertebral bodies L1-L5 on a lateral spine image.

Why a net: the rules (:mod:`calcdetect.radiograph.vertebrae`) find the bodies
well, but they name them by counting up from the lumbosacral disc, and every
missed or extra disc on the way shifts every name above it (a tilted L5, a
sacrum with a disc-like dip, ribs over T12-L1); a chain on the posterior
elements names none. The net sees the whole column at once, at ``NET_MM``, and
marks each body with its own level, so one unclear disc does not rename the
others. :func:`calcdetect.radiograph.analyse.apply_vertebra_net` uses it first
and the rules as fallback: its names for the rules' chain (:func:`name_levels`),
its L1-L5 in place of the rules' (:func:`put_net_bodies`), or a detection from
its bodies alone (:func:`detection_from_net`).

Input (two channels on a ``NET_MM`` grid, the patient facing left): the image
over its robust spread (median, 5th-95th percentile) and the image minus its
``BACKGROUND_MM`` Gaussian background over the robust SD of that residual (what
an unsharp-masked "for presentation" image shows, so the raw log image and the
equalised one look alike to the net). Output: softmax over background and
``NET_LEVELS``. Architecture: MONAI ``BasicUNet`` via
:func:`calcdetect.nets.builders.build_net`.

Post-processing (:func:`predict_bodies`): per level the largest connected part
of its argmax mask; levels whose centres do not run head to foot in order, or
whose area is not a vertebral body's, are dropped; corners are the mask's
extreme points along the body's own axes (see :func:`body_corners`).

Weights: ``models/radiograph_vertebrae_v0.safetensors`` with its card; the
network configuration and grid are in the safetensors metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from calcdetect.nets.weights import weights_source
from calcdetect.radiograph.vertebrae import SpineDetection, SpineStrip, Vertebra

__all__ = [
    "DEFAULT_MODEL_PATH",
    "NET_LEVELS",
    "MIN_STRIP_HEIGHT_RATIO",
    "NetBody",
    "VertebraModel",
    "body_corners",
    "bodies_facing",
    "body_masks",
    "complete",
    "detection_from_net",
    "load_default_vertebra_model",
    "load_vertebra_model",
    "name_levels",
    "on_strip",
    "put_net_bodies",
    "net_input",
    "predict_bodies",
    "strip_shortens_bodies",
    "save_vertebra_model",
]

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "radiograph_vertebrae_v0.safetensors"
NET_LEVELS = ("L1", "L2", "L3", "L4", "L5")
NET_MM = 2.0
BACKGROUND_MM = 20.0
DIVISOR = 16  # BasicUNet halves the grid four times
#: A lumbar body seen from the side is 25-45 mm high and 28-45 mm deep (~700-2000 mm2);
#: parts far smaller are a body cut by the image edge or noise, far larger two bodies merged.
BODY_AREA_MM2 = (250.0, 3000.0)
#: A rule body and a net body are the same vertebra when their centres lie this close
#: (half a lumbar body's height: neighbours are 30-40 mm apart).
MATCH_MM = 12.0
NAMED_BY_NET = ("vertebral levels named by the vertebra net, not by the count up from the sacrum, which "
                "differed or was not made; check the level labels on the overlay")
FOUND_BY_NET = ("vertebral bodies L1-L5 found and named by the vertebra net (the rules' search along the spine "
                "column did not find them or could not name them); check their outlines on the overlay")
_NAMES = ("T9", "T10", "T11", "T12", *NET_LEVELS)  # chain names, L1 at index 4


@dataclass(frozen=True)
class VertebraModel:
    """A loaded vertebra net (eval mode, CPU) with its config and grid (mm per pixel)."""

    net: Any
    config: dict[str, Any]
    grid_mm: float = NET_MM
    #: File name and SHA-256 of the weights (``nets.weights.weights_source``); empty when built in memory.
    source: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetBody:
    """One body the net named: corners in image pixels (rows superior-anterior,
    superior-posterior, inferior-posterior, inferior-anterior, as
    :class:`calcdetect.radiograph.vertebrae.Vertebra`), centre and mean probability."""

    level: str
    corners_rc: np.ndarray
    centre_rc: np.ndarray
    probability: float


def _robust_scale(a: np.ndarray) -> np.ndarray:
    lo, med, hi = np.percentile(a, (5, 50, 95))
    return (a - med) / max(float(hi - lo), 1e-6)


def net_input(image: np.ndarray, spacing: tuple[float, float], grid_mm: float = NET_MM) -> np.ndarray:
    """The net's ``(2, H, W)`` float32 input: ``image`` (bright = dense, patient facing
    left) resampled to ``grid_mm`` (area-averaged first, so the quantum noise does
    not alias), padded at the bottom and right to a multiple of ``DIVISOR``."""
    img = np.asarray(image, np.float32)
    sr, sc = (float(s) for s in spacing)
    smooth = ndimage.gaussian_filter(img, (0.4 * grid_mm / sr, 0.4 * grid_mm / sc))
    h = max(int(round(img.shape[0] * sr / grid_mm)), 1)
    w = max(int(round(img.shape[1] * sc / grid_mm)), 1)
    rows = (np.arange(h) + 0.5) * grid_mm / sr - 0.5
    cols = (np.arange(w) + 0.5) * grid_mm / sc - 0.5
    coarse = ndimage.map_coordinates(smooth, np.meshgrid(rows, cols, indexing="ij"), order=1, mode="nearest")
    c0 = _robust_scale(coarse)
    detail = coarse - ndimage.gaussian_filter(coarse, BACKGROUND_MM / grid_mm)
    mad = 1.4826 * float(np.median(np.abs(detail - np.median(detail))))
    c1 = detail / max(mad, 1e-6) / 4.0
    x = np.stack([c0, c1]).astype(np.float32)
    ph, pw = (-h) % DIVISOR, (-w) % DIVISOR
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="edge")
    return x


def body_masks(model: VertebraModel, image: np.ndarray, spacing: tuple[float, float]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Argmax label map (0 background, ``k`` = ``NET_LEVELS[k - 1]``) and its softmax
    probability, on the net grid, cropped to the image."""
    x = net_input(image, spacing, model.grid_mm)
    h = int(round(image.shape[0] * float(spacing[0]) / model.grid_mm))
    w = int(round(image.shape[1] * float(spacing[1]) / model.grid_mm))
    with torch.no_grad():
        prob = torch.softmax(model.net(torch.from_numpy(x)[None]), dim=1)[0].numpy()[:, :h, :w]
    return prob.argmax(axis=0).astype(np.uint8), prob


def body_corners(mask: np.ndarray, axis_rc: np.ndarray) -> np.ndarray:
    """The four corners of a body mask: its extreme points along the body's axes.

    ``axis_rc``: unit vector down the spine (caudal) at the body. With ``s`` the
    position along it and ``t`` across it (posterior = to the right of a patient
    facing left), each scaled by the body's half height / half depth, the
    superior-anterior corner is the pixel with the largest ``-s - t``, and so on.
    """
    rr, cc = np.nonzero(mask)
    pts = np.stack([rr, cc], axis=1).astype(float)
    centre = pts.mean(axis=0)
    down = np.asarray(axis_rc, float) / np.linalg.norm(axis_rc)
    back = np.array([-down[1], down[0]])  # caudal (1, 0) -> posterior (0, 1): to the right
    if back[1] < 0:
        back = -back
    s = (pts - centre) @ down
    t = (pts - centre) @ back
    s = s / max(float(np.abs(s).max()), 1e-6)
    t = t / max(float(np.abs(t).max()), 1e-6)
    out = [pts[np.argmax(-s - t)], pts[np.argmax(-s + t)], pts[np.argmax(s + t)], pts[np.argmax(s - t)]]
    return np.array(out)


def predict_bodies(model: VertebraModel, image: np.ndarray, spacing: tuple[float, float]) -> list[NetBody]:
    """The bodies the net names, head to foot, in image pixels (patient facing left).

    A level is kept when its largest connected part has a body's area; the chain
    kept is the longest run of consecutive levels whose centres go head to foot.
    """
    labels, prob = body_masks(model, image, spacing)
    g = model.grid_mm
    px_mm2 = g * g
    found: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    for k in range(1, len(NET_LEVELS) + 1):
        lab, n = ndimage.label(labels == k)
        if not n:
            continue
        sizes = np.bincount(lab.ravel())[1:]
        part = lab == (int(np.argmax(sizes)) + 1)
        area = float(part.sum()) * px_mm2
        if not BODY_AREA_MM2[0] <= area <= BODY_AREA_MM2[1]:
            continue
        found[k] = (part, np.argwhere(part).mean(axis=0), float(prob[k][part].mean()))
    run = _ordered_run(found)
    centres = [found[k][1] for k in run]
    scale = np.array([g / float(spacing[0]), g / float(spacing[1])])
    out = []
    for i, k in enumerate(run):
        part, centre, p = found[k]
        # down the spine at this body: from the body above to the one below (centres run caudally)
        axis = centres[min(i + 1, len(run) - 1)] - centres[max(i - 1, 0)] if len(run) > 1 else np.array([1.0, 0.0])
        corners = (body_corners(part, axis) + 0.5) * scale - 0.5
        out.append(NetBody(NET_LEVELS[k - 1], corners, (centre + 0.5) * scale - 0.5, p))
    return out


def _ordered_run(found: dict[int, tuple[np.ndarray, np.ndarray, float]]) -> list[int]:
    """The longest run of consecutive levels whose centres step caudally (a level
    missing, or a step upwards, ends a run: the labels around it are not to be trusted)."""
    best: list[int] = []
    cur: list[int] = []
    for k in range(1, len(NET_LEVELS) + 1):
        if k in found and (not cur or (cur[-1] == k - 1 and found[k][1][0] > found[cur[-1]][1][0])):
            cur.append(k)
        else:
            cur = [k] if k in found else []
        if len(cur) > len(best):
            best = list(cur)
    return best


def build_vertebra_net(config: dict[str, Any]) -> Any:
    from calcdetect.nets.builders import NetConfig, build_net

    return build_net(NetConfig.from_dict(config))


def save_vertebra_model(net: Any, config: dict[str, Any], path: Path, *, grid_mm: float = NET_MM,
                        metadata: dict[str, str] | None = None) -> Path:
    """Write the weights as safetensors with the config and grid in the metadata."""
    from safetensors.torch import save_file

    meta = {"config": json.dumps(config), "grid_mm": repr(float(grid_mm)), "task": "radiograph_vertebrae",
            **(metadata or {})}
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_vertebra_model(path: Path) -> VertebraModel:
    """Load a vertebra net written by :func:`save_vertebra_model` (CPU, eval mode)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("task") != "radiograph_vertebrae" or "config" not in meta:
        raise ValueError(f"{path} is not a radiograph vertebra net (metadata task "
                         f"{meta.get('task')!r}); pass a file written by save_vertebra_model")
    config = json.loads(meta["config"])
    net = build_vertebra_net(config)
    net.load_state_dict(load_file(str(path)))
    net.eval()
    return VertebraModel(net, config, float(meta.get("grid_mm", NET_MM)), source=weights_source(path))


@lru_cache(maxsize=1)
def load_default_vertebra_model() -> VertebraModel | None:
    """The shipped vertebra net, or ``None`` when its file is absent (rules only)."""
    return load_vertebra_model(DEFAULT_MODEL_PATH) if DEFAULT_MODEL_PATH.exists() else None


def name_levels(det: SpineDetection, bodies: list[NetBody], spacing: tuple[float, float]) -> SpineDetection:
    """The rules' bodies named by the net (their corners kept).

    Each rule body is matched to the net body whose centre is within ``MATCH_MM``;
    every match says how far the rules' chain is shifted against the net's levels.
    When at least two matches agree on one shift and none disagrees, the whole
    chain is named by it, top to bottom (bodies below L5 are the sacrum's and are
    dropped), and the detection counts as anchored. Otherwise, or with fewer than
    two matches, the rules' own naming stands.
    """
    verts = list(det.vertebrae)
    if len(bodies) < 2 or len(verts) < 2:
        return det
    mm = np.asarray(spacing, float)
    net_centres = np.array([b.centre_rc for b in bodies])
    shifts = []
    for i, v in enumerate(verts):
        d = np.linalg.norm((net_centres - np.mean(v.corners_rc, axis=0)) * mm, axis=1)
        j = int(np.argmin(d))
        if d[j] < MATCH_MM:
            shifts.append(_NAMES.index(bodies[j].level) - i)
    if len(shifts) < 2 or len(set(shifts)) != 1:
        return det
    shift = shifts[0]
    named = []
    for i, v in enumerate(verts):
        k = i + shift
        if k >= len(_NAMES):
            continue  # below L5: a sacral segment the rules took for a body
        named.append(replace(v, level=_NAMES[k] if k >= 0 else None))
    if [v.level for v in named] == [v.level for v in verts]:
        return det
    # the rules' reasons for naming no level, or for a doubtful count, no longer hold
    kept = [w for w in det.warnings if "levels are not named" not in w and "levels assume" not in w]
    kept.append(NAMED_BY_NET)
    return replace(det, vertebrae=tuple(named), anchored=True, warnings=tuple(kept))


def on_strip(bodies: list[NetBody], strip: SpineStrip, spacing: tuple[float, float], tol_mm: float = 2.0
             ) -> list[Vertebra | None]:
    """The net's bodies as :class:`Vertebra` on the rules' straightened strip (their
    endplates' strip rows and their front and back strip columns); ``None`` for a body
    with a corner more than ``tol_mm`` off the strip."""
    if not bodies:
        return []
    s = np.arange(len(strip.path_rc), dtype=float)
    t = np.arange(strip.image.shape[1], dtype=float)
    mm = np.asarray(spacing, float)
    tree = cKDTree(strip.to_image(np.repeat(s, len(t)), np.tile(t, len(s))) * mm)
    out: list[Vertebra | None] = []
    for body in bodies:
        dist, idx = tree.query(np.asarray(body.corners_rc, float) * mm)
        if float(np.max(dist)) > tol_mm:
            out.append(None)
            continue
        cs, ct = np.divmod(idx, len(t))
        out.append(Vertebra(body.level, np.asarray(body.corners_rc, float), body.probability,
                            float(cs[:2].mean()), float(cs[2:].mean()), float(ct[[0, 3]].mean()),
                            float(ct[[1, 2]].mean())))
    return out


#: A body the strip shows shorter than this fraction of its height in the image means the
#: strip's path has left the column there, so its rows no longer follow the bodies. On
#: development phantoms 400-459 the smallest ratio of any body was 0.86; on 1357 it was 0.52.
MIN_STRIP_HEIGHT_RATIO = 0.7


def strip_shortens_bodies(det: SpineDetection, spacing: tuple[float, float],
                          min_ratio: float = MIN_STRIP_HEIGHT_RATIO) -> bool:
    """Whether the strip shows one of the bodies much shorter than the image does.

    Why: the aortic segments are cut at the bodies' strip rows. On phantom 1357 (100 mm
    of fat, 1e4 quanta) the rules' path ran 70 mm off the column below L3, so the
    net's correct L4 (22 mm high) spanned 11.5 mm of strip and the case was refused as
    "bodies 18 mm high". The height in the image is the mean of the anterior and
    posterior edges (corner order as :class:`NetBody`).
    """
    if det.strip is None:
        return False
    mm = np.asarray(spacing, float)
    for v in det.vertebrae:
        k = np.asarray(v.corners_rc, float) * mm
        in_image = 0.5 * (np.linalg.norm(k[3] - k[0]) + np.linalg.norm(k[2] - k[1]))
        if in_image > 0 and (v.s_inf - v.s_sup) * det.strip.step_mm < min_ratio * in_image:
            return True
    return False


def put_net_bodies(det: SpineDetection, bodies: list[NetBody], spacing: tuple[float, float]) -> SpineDetection:
    """The net's L1-L5 in place of the rules' bodies of those levels, on the rules' strip.

    Why the net's corners: on development phantoms 400-539 they lie closer to the
    truth (median 2.0 mm against the rules' 3.0 mm), and with them AAC-24 agrees
    better (ICC 0.81 / MAE 1.69 against 0.80 / 1.88). Rule bodies within ``MATCH_MM``
    of a net body give way too (a body the rules named otherwise); the others (T12
    and above) keep their corners. Unchanged when the rules' chain is not anchored
    or the net named fewer than three bodies.
    """
    if not det.anchored or det.strip is None or len(bodies) < 3:
        return det
    mm = np.asarray(spacing, float)
    placed = [v for v in on_strip(bodies, det.strip, spacing) if v is not None]
    if not placed:
        return det
    names = {v.level for v in placed}
    keep = [v for v in det.vertebrae if v.level not in names and all(
        np.linalg.norm((np.mean(v.corners_rc, axis=0) - np.mean(p.corners_rc, axis=0)) * mm) >= MATCH_MM
        for p in placed)]
    chain = sorted(keep + placed, key=lambda v: v.s_sup)
    return replace(det, vertebrae=tuple(chain), bodies_by="net")


def bodies_facing(model: VertebraModel, image: np.ndarray, spacing: tuple[float, float], anterior: str
                  ) -> list[NetBody]:
    """The net's bodies in image pixels for a patient facing ``anterior`` ("left" / "right"):
    the net sees the image mirrored when the patient faces right."""
    if anterior != "right":
        return predict_bodies(model, image, spacing)
    w = image.shape[1] - 1.0
    mirror = lambda rc: np.asarray(rc, float) * [1.0, -1.0] + [0.0, w]  # noqa: E731
    return [replace(b, corners_rc=mirror(b.corners_rc), centre_rc=mirror(b.centre_rc))
            for b in predict_bodies(model, np.ascontiguousarray(image[:, ::-1]), spacing)]


def complete(bodies: list[NetBody]) -> bool:
    """Whether the net named L1-L4 (what AAC-24 needs), in order."""
    return [b.level for b in bodies][:4] == list(NET_LEVELS[:4])


def detection_from_net(image: np.ndarray, spacing: tuple[float, float], bodies: list[NetBody], anterior: str
                       ) -> SpineDetection | None:
    """A detection built from the net's bodies alone: the straightened strip runs
    through their centres (straight on beyond the end bodies), as the rules' strip
    runs along the column. ``None`` when the net did not name L1-L4 or a body
    falls off that strip."""
    from calcdetect.radiograph.vertebrae import COARSE_MM, _build_strip, _normalise

    if not complete(bodies):
        return None
    flipped = anterior == "right"
    img = _normalise(np.asarray(image, np.float32))
    w = img.shape[1] - 1.0
    if flipped:
        img = np.ascontiguousarray(img[:, ::-1])
    centres = np.array([b.centre_rc for b in bodies], float)
    if flipped:
        centres[:, 1] = w - centres[:, 1]
    rows_c = np.arange(int(img.shape[0] * spacing[0] / COARSE_MM), dtype=float)
    r_mm, c_c = centres[:, 0] * spacing[0], centres[:, 1] * spacing[1] / COARSE_MM
    slope = np.polyfit(r_mm, c_c, 1)
    cols_c = np.interp(rows_c * COARSE_MM, r_mm, c_c)
    outside = (rows_c * COARSE_MM < r_mm[0]) | (rows_c * COARSE_MM > r_mm[-1])
    cols_c[outside] = np.polyval(slope, rows_c[outside] * COARSE_MM)
    strip = _build_strip(img, spacing, cols_c, rows_c, flipped)
    verts = on_strip(bodies, strip, spacing)
    if any(v is None for v in verts):
        return None
    depth = float(np.median([(v.t_post - v.t_ant) * strip.step_mm for v in verts]))
    return SpineDetection(strip, tuple(verts), depth, True, anterior, (FOUND_BY_NET,), True, bodies_by="net")
