"""Training settings: YAML parsed into typed, validated dataclasses (no eval)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from calcdetect.errors import ConfigError
from calcdetect.nets.builders import NetConfig
from calcdetect.nets.classes import class_set

__all__ = ["AugmentConfig", "PhantomConfig", "TrainConfig"]


def _tuple(value: Any, n: int, name: str, cast: type = float) -> tuple:
    if isinstance(value, (int, float)):
        value = [value] * n
    try:
        out = tuple(cast(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number or a list of {n} numbers, got {value!r}") from None
    if len(out) != n:
        raise ConfigError(f"{name} must have {n} values, got {len(out)}: {value!r}")
    return out


def _build(cls: type, d: Any, where: str) -> Any:
    if d is None:
        return cls()
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known keys: {sorted(known)}")
    return cls(**d)


@dataclass(frozen=True)
class AugmentConfig:
    """Data augmentation (no left-right flips: our labels are sided).

    Rotations are in degrees about each axis; probabilities are per sample.
    """

    rotate_deg: float = 10.0
    scale: float = 0.1
    affine_prob: float = 0.3
    intensity_shift: float = 0.1
    intensity_scale: float = 0.1
    intensity_prob: float = 0.3
    noise_std: float = 0.05
    noise_prob: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            v = float(getattr(self, f.name))
            if v < 0 or (f.name.endswith("prob") and v > 1):
                raise ConfigError(f"augment.{f.name}={v} out of range")
            object.__setattr__(self, f.name, v)


@dataclass(frozen=True)
class PhantomConfig:
    """How ``--data phantom=SEEDS`` cases are generated (coarse, for fast training).

    With ``randomise_acquisition`` the kVp, noise, kernel, contrast, metal and
    lesion load are drawn per seed (``calcdetect.phantoms.ct.random_settings``);
    the grid is always ``matrix`` x ``pixel_mm`` in-plane and
    ``slice_thickness_mm`` between slices.
    """

    matrix: int = 128
    pixel_mm: float = 3.0
    slice_thickness_mm: float = 3.0
    randomise_acquisition: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """Recipe for training the anatomy net (see ``configs/train.yaml``).

    Epochs are a fixed number of iterations (nnU-Net style), each iteration a
    batch of random patches centred on a labelled class with probability
    ``foreground_prob``. ``classes`` names the output class set (``"anatomy"``:
    one class per vertebra, 40 channels; ``"coarse"``: 12 channels, levels
    counted; or an explicit list starting with ``background``); ``net.out_channels``
    defaults to its length. ``dice_over`` says which classes enter each patch's
    soft Dice (:func:`calcdetect.training.losses.marginal_dice_ce`): ``"present"``
    lets small classes be learnt; ``"annotated"`` (the default) is how the
    shipped v0-v2 models were trained.
    """

    net: NetConfig = field(default_factory=NetConfig)
    classes: Any = "anatomy"
    spacing_mm: tuple[float, float, float] = (3.0, 3.0, 3.0)
    patch_size: tuple[int, int, int] = (64, 64, 64)
    batch_size: int = 2
    epochs: int = 50
    iterations_per_epoch: int = 50
    learning_rate: float = 3e-3
    weight_decay: float = 3e-5
    grad_clip: float = 12.0
    foreground_prob: float = 0.67
    dice_over: str = "annotated"
    val_fraction: float = 0.2
    val_every: int = 1
    seed: int = 0
    num_workers: int = 0
    amp: bool = True
    progress: bool = True
    phantom: PhantomConfig = field(default_factory=PhantomConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing_mm", _tuple(self.spacing_mm, 3, "spacing_mm"))
        object.__setattr__(self, "patch_size", _tuple(self.patch_size, 3, "patch_size", int))
        if any(s <= 0 for s in self.spacing_mm):
            raise ConfigError(f"spacing_mm must be positive, got {self.spacing_mm}")
        div = self.net.divisor
        if any(p <= 0 or p % div for p in self.patch_size):
            raise ConfigError(f"patch_size {self.patch_size} must be positive multiples of {div} for {self.net.arch}")
        try:
            names = class_set(self.classes if isinstance(self.classes, str) else tuple(self.classes))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"classes: {exc.args[0]}") from None
        if not isinstance(self.classes, str):
            object.__setattr__(self, "classes", list(names))
        if self.net.out_channels != len(names) or self.net.in_channels != 1 or self.net.spatial_dims != 3:
            raise ConfigError(
                f"the anatomy net needs in_channels=1, spatial_dims=3 and out_channels={len(names)} "
                f"(classes {self.classes if isinstance(self.classes, str) else 'list'}); got "
                f"{self.net.in_channels}, {self.net.spatial_dims}, {self.net.out_channels}"
            )
        for name in ("batch_size", "epochs", "iterations_per_epoch", "val_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.foreground_prob <= 1:
            raise ConfigError(f"foreground_prob must be in [0, 1], got {self.foreground_prob}")
        if self.dice_over not in ("annotated", "present"):
            raise ConfigError(f"dice_over must be 'annotated' or 'present', got {self.dice_over!r}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")

    @property
    def class_names(self) -> tuple[str, ...]:
        """The output channel names (background first)."""
        return class_set(self.classes if isinstance(self.classes, str) else tuple(self.classes))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "TrainConfig":
        d = dict(d or {})
        try:
            n_classes = len(class_set(d.get("classes", "anatomy")))
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"classes: {exc}") from None
        net = d.pop("net", None)
        if net is None and n_classes != NetConfig().out_channels:
            net = {}
        aug = d.pop("augment", None)
        d["phantom"] = _build(PhantomConfig, d.pop("phantom", None), "phantom")
        if net is not None:
            if not isinstance(net, dict):
                raise ConfigError("net must be a mapping")
            net = dict(net)
            net.setdefault("out_channels", n_classes)
            d["net"] = NetConfig.from_dict(net)
        d["augment"] = _build(AugmentConfig, aug, "augment")
        return _build(cls, d, "the training config")

    @classmethod
    def from_yaml(cls, path: Path) -> "TrainConfig":
        """Read a YAML recipe; unknown keys and bad values are errors that name them."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"training config {str(path)!r} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"training config {str(path)!r} is not valid YAML: {exc}") from None
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise ConfigError(f"training config {str(path)!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["net"] = self.net.to_dict()
        d["spacing_mm"] = list(self.spacing_mm)
        d["patch_size"] = list(self.patch_size)
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
