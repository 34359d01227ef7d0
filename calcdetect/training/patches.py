"""Random training patches from cached cases, with MONAI augmentation.

Sampling is deterministic given ``(seed, epoch, rank, index)``, so a resumed run
draws the same patches as an uninterrupted one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from calcdetect.training.config import AugmentConfig

__all__ = ["CaseCache", "PatchDataset", "crop_patch", "build_augmentation"]


class CaseCache:
    """Small LRU cache of preprocessed cases (normalised image, labels, annotated).

    ``class_lut`` (from :func:`calcdetect.nets.classes.class_remap_lut`) maps the
    cached class ids (``ANATOMY_CLASSES``) to a training class set; a target
    class counts as annotated when any class folded into it is.
    """

    def __init__(self, paths: Sequence[Path], intensity: dict[str, float], max_items: int = 64,
                 class_lut: np.ndarray | None = None, n_classes: int | None = None) -> None:
        self.paths = list(paths)
        self.intensity = intensity
        self.max_items = max_items
        self.class_lut = class_lut
        self.n_classes = n_classes
        self._items: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if index in self._items:
            self._items.move_to_end(index)
            return self._items[index]
        with np.load(self.paths[index]) as z:
            image = z["image"].astype(np.float32)
            labels = z["labels"]
            annotated = z["annotated"]
        if self.class_lut is not None:
            labels = self.class_lut[labels]
            remapped = np.zeros(int(self.n_classes or self.class_lut[:len(annotated)].max() + 1), bool)
            remapped[0] = True
            for c in np.flatnonzero(annotated):
                remapped[self.class_lut[c]] |= True
            annotated = remapped
        it = self.intensity
        image = (np.clip(image, it["clip_low"], it["clip_high"]) - it["mean"]) / it["std"]
        item = (image.astype(np.float32), labels, annotated)
        self._items[index] = item
        if len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return item


def crop_patch(
    image: np.ndarray, labels: np.ndarray, centre: Sequence[int], size: Sequence[int], pad_value: float
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``size`` around ``centre``, padding outside the volume (labels pad 0)."""
    out_img = np.full(tuple(size), pad_value, np.float32)
    out_lab = np.zeros(tuple(size), np.uint8)
    src, dst = [], []
    for c, s, n in zip(centre, size, image.shape):
        lo = int(c) - s // 2
        a, b = max(lo, 0), min(lo + s, n)
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    out_img[tuple(dst)] = image[tuple(src)]
    out_lab[tuple(dst)] = labels[tuple(src)]
    return out_img, out_lab


def build_augmentation(aug: AugmentConfig):
    """MONAI dictionary transforms (no flips: left and right labels differ)."""
    import math

    from monai.transforms import (
        Compose,
        RandAffined,
        RandGaussianNoised,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )

    rot = math.radians(aug.rotate_deg)
    return Compose(
        [
            RandAffined(
                keys=("image", "label"), prob=aug.affine_prob, rotate_range=(rot, rot, rot),
                scale_range=(aug.scale,) * 3, mode=("bilinear", "nearest"), padding_mode="border",
            ),
            RandScaleIntensityd(keys="image", factors=aug.intensity_scale, prob=aug.intensity_prob),
            RandShiftIntensityd(keys="image", offsets=aug.intensity_shift, prob=aug.intensity_prob),
            RandGaussianNoised(keys="image", std=aug.noise_std, prob=aug.noise_prob),
        ]
    )


def _plain(x: object) -> torch.Tensor:
    """A plain tensor from a numpy array or MONAI MetaTensor."""
    if hasattr(x, "as_tensor"):
        return x.as_tensor()  # type: ignore[attr-defined, no-any-return]
    return torch.as_tensor(x)


class PatchDataset(Dataset):
    """``length`` random patches for one epoch.

    With probability ``foreground_prob`` a patch is centred on a voxel of a
    randomly chosen foreground class present in the case (classes weighted
    equally, as nnU-Net's foreground oversampling), otherwise anywhere.
    """

    def __init__(
        self,
        cache: CaseCache,
        patch_size: Sequence[int],
        length: int,
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        foreground_prob: float = 0.67,
        augment: AugmentConfig | None = None,
    ) -> None:
        self.cache = cache
        self.patch_size = tuple(patch_size)
        self.length = length
        self.seed, self.epoch, self.rank = seed, epoch, rank
        self.foreground_prob = foreground_prob
        self.transform = build_augmentation(augment) if augment is not None else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, index])
        image, labels, annotated = self.cache.get(int(rng.integers(len(self.cache))))
        centre = [int(rng.integers(n)) for n in labels.shape]
        if rng.random() < self.foreground_prob:
            present = [c for c in np.unique(labels) if c not in (0, 255)]
            if present:
                cls = present[int(rng.integers(len(present)))]
                where = np.flatnonzero(labels.ravel() == cls)
                centre = list(np.unravel_index(int(where[rng.integers(where.size)]), labels.shape))
        img, lab = crop_patch(image, labels, centre, self.patch_size, pad_value=float(image.min()))
        sample = {"image": img[None], "label": lab[None].astype(np.float32)}
        if self.transform is not None:
            self.transform.set_random_state(seed=int(rng.integers(2**31 - 1)))
            sample = self.transform(sample)
        return {
            "image": _plain(sample["image"]).to(torch.float32),
            "label": _plain(sample["label"])[0].round().to(torch.long),
            "annotated": torch.as_tensor(annotated, dtype=torch.bool),
        }
