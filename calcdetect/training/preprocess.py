"""Preprocessing (resample once, cache), the dataset fingerprint and the split.

nnU-Net's plan in miniature: every case is resampled once to the target spacing
and cached as ``RUNDIR/preprocessed/<key>.npz`` (HU float16 + uint8 classes); the
fingerprint (original spacings and sizes, foreground intensity statistics) is
computed in the same pass and cached as ``RUNDIR/fingerprint.json``; the
validation split is a hash of the case id, so it never changes when cases are
added or the run is resumed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calcdetect.export.atomic import atomic_write_json, atomic_write_with
from calcdetect.nets.resample import resample_image, resample_labels, target_shape
from calcdetect.training.config import PhantomConfig
from calcdetect.training.datasets import Case, load_case

__all__ = ["Prepared", "case_key", "prepare_cases", "split_cases", "intensity_from_fingerprint"]

_SAMPLES_PER_CASE = 10_000


@dataclass(frozen=True)
class Prepared:
    """A cached, resampled case."""

    case_id: str
    path: Path
    shape: tuple[int, int, int]


def case_key(case_id: str) -> str:
    """File-system-safe stable key of a case id (no dataset names in file names)."""
    return hashlib.sha256(case_id.encode("utf-8")).hexdigest()[:20]


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write_with(path, write, suffix=".npz")


def prepare_cases(
    cases: Sequence[Case],
    rundir: Path,
    spacing_mm: Sequence[float],
    *,
    phantom: PhantomConfig | None = None,
    on_case: Callable[[str], None] | None = None,
) -> tuple[list[Prepared], dict[str, Any]]:
    """Resample and cache every case; compute (or reuse) the fingerprint.

    Returns
    -------
    prepared, fingerprint
        The cached cases (in input order) and the fingerprint dictionary.
    """
    rundir = Path(rundir)
    cache = rundir / "preprocessed"
    cache.mkdir(parents=True, exist_ok=True)
    fp_path = rundir / "fingerprint.json"
    ids = sorted(c.case_id for c in cases)
    spacing_key = [float(s) for s in spacing_mm]
    phantom_key = asdict(phantom) if phantom is not None else None
    fingerprint: dict[str, Any] | None = None
    if fp_path.is_file():
        old = json.loads(fp_path.read_text(encoding="utf-8"))
        if (old.get("case_ids"), old.get("target_spacing_mm"), old.get("phantom")) == (ids, spacing_key, phantom_key):
            fingerprint = old
    per_case: dict[str, Any] = {}
    samples: list[np.ndarray] = []
    prepared: list[Prepared] = []
    for case in cases:
        path = cache / f"{case_key(case.case_id)}.npz"
        if on_case:
            on_case(case.case_id)
        if path.is_file() and fingerprint is not None:
            with np.load(path) as z:
                prepared.append(Prepared(case.case_id, path, tuple(int(s) for s in z["labels"].shape)))
            continue
        data = load_case(case, phantom=phantom)
        shape = target_shape(data.image.shape, data.spacing, spacing_mm)
        image = resample_image(data.image, shape).numpy()
        labels = resample_labels(data.labels, shape)
        _save_npz(path, image=image.astype(np.float16), labels=labels, annotated=data.annotated)
        prepared.append(Prepared(case.case_id, path, shape))  # type: ignore[arg-type]
        fg = data.image[(data.labels > 0) & (data.labels != 255)]
        rng = np.random.default_rng(int(case_key(case.case_id)[:8], 16))
        if fg.size:
            samples.append(rng.choice(fg, size=min(_SAMPLES_PER_CASE, fg.size), replace=False))
        per_case[case.case_id] = {
            "spacing_mm": [float(s) for s in data.spacing],
            "shape": [int(s) for s in data.image.shape],
            "foreground_voxels": int(fg.size),
        }
    if fingerprint is None:
        values = np.concatenate(samples) if samples else np.zeros(1, np.float32)
        spacings = np.array([v["spacing_mm"] for v in per_case.values()]) if per_case else np.zeros((1, 3))
        fingerprint = {
            "schema": "calcdetect-fingerprint/1",
            "case_ids": ids,
            "target_spacing_mm": spacing_key,
            "phantom": phantom_key,
            "median_spacing_mm": np.median(spacings, axis=0).tolist(),
            "median_shape": np.median(np.array([v["shape"] for v in per_case.values()] or [[0, 0, 0]]), axis=0).tolist(),
            "cases": per_case,
            "foreground_intensity": {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "percentile_00_5": float(np.percentile(values, 0.5)),
                "percentile_50_0": float(np.percentile(values, 50)),
                "percentile_99_5": float(np.percentile(values, 99.5)),
                "n_samples": int(values.size),
            },
        }
        atomic_write_json(fp_path, fingerprint)
    return prepared, fingerprint


def intensity_from_fingerprint(fingerprint: dict[str, Any]) -> dict[str, float]:
    """nnU-Net CT normalisation parameters from the fingerprint."""
    fi = fingerprint["foreground_intensity"]
    return {
        "clip_low": float(fi["percentile_00_5"]),
        "clip_high": float(fi["percentile_99_5"]),
        "mean": float(fi["mean"]),
        "std": max(float(fi["std"]), 1.0),
    }


def _unit(case_id: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{case_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_cases(case_ids: Sequence[str], val_fraction: float, *, salt: str = "calcdetect-split/1") -> tuple[list[str], list[str]]:
    """Deterministic train / validation split by a hash of each case id.

    A case is in validation when its hash falls below ``val_fraction``; with at
    least two cases and ``val_fraction > 0`` one case (the lowest hash) is always
    held out, and at least one is always kept for training.
    """
    ids = list(case_ids)
    units = {c: _unit(c, salt) for c in ids}
    val = [c for c in ids if units[c] < val_fraction]
    if val_fraction > 0 and len(ids) >= 2 and not val:
        val = [min(ids, key=units.__getitem__)]
    if len(val) == len(ids) and ids:
        val.remove(max(val, key=units.__getitem__))
    train = [c for c in ids if c not in set(val)]
    return train, val
