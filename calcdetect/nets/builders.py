"""Network definitions: a typed config and one builder per task.

The architectures are MONAI's (BasicUNet, UNet with residual units, SegResNet,
DynUNet) plus a small 3-D patch classifier for candidate refinement. The config is
plain data (it is stored as JSON in the safetensors metadata and rebuilt from it
on load), so a weight file always says which module it belongs to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from calcdetect.errors import ConfigError
from calcdetect.nets.classes import ANATOMY_CLASSES, RADIOGRAPH_CLASSES, REFINER_CLASSES

__all__ = [
    "NetConfig",
    "ARCHITECTURES",
    "build_net",
    "build_anatomy_net",
    "build_calcium_refiner",
    "build_radiograph_net",
    "CalciumRefiner",
    "SlabUNet",
    "count_parameters",
]

ARCHITECTURES = ("basic_unet", "unet", "segresnet", "dynunet", "refiner_cnn", "slab_unet")

#: Neighbouring slices on each side that a ``slab_unet`` sees as input channels.
SLAB_CONTEXT = 2


@dataclass(frozen=True)
class NetConfig:
    """Architecture of one network.

    Parameters
    ----------
    arch
        One of :data:`ARCHITECTURES`.
    in_channels, out_channels
        Input channels (1 for CT HU; 2 for the refiner: HU patch + candidate mask)
        and output channels (number of classes).
    spatial_dims
        3 for CT, 2 for radiographs.
    channels
        Feature widths per resolution level, shallow to deep. ``basic_unet`` takes
        exactly 5 (its decoder output width equals the first); ``segresnet`` uses
        ``channels[0]`` as ``init_filters`` and ``len(channels)`` levels.
    dropout
        Dropout probability.
    norm
        ``"instance"`` or ``"batch"``.
    """

    arch: str = "basic_unet"
    in_channels: int = 1
    out_channels: int = len(ANATOMY_CLASSES)
    spatial_dims: int = 3
    channels: tuple[int, ...] = (16, 16, 32, 64, 128)
    dropout: float = 0.0
    norm: str = "instance"

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"net.arch={self.arch!r} is unknown; use one of {', '.join(ARCHITECTURES)}")
        if self.spatial_dims not in (2, 3):
            raise ConfigError(f"net.spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.norm not in ("instance", "batch"):
            raise ConfigError(f"net.norm must be 'instance' or 'batch', got {self.norm!r}")
        if not self.channels or any(int(c) <= 0 for c in self.channels):
            raise ConfigError(f"net.channels must be positive integers, got {self.channels}")
        if self.arch in ("basic_unet", "slab_unet") and len(self.channels) != 5:
            raise ConfigError(f"basic_unet needs 5 channel widths, got {len(self.channels)}")
        if self.in_channels < 1 or self.out_channels < 1:
            raise ConfigError("net.in_channels and net.out_channels must be >= 1")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    @property
    def divisor(self) -> int:
        """Input sizes must be multiples of this (total down-sampling factor)."""
        levels = {"basic_unet": 4, "slab_unet": 4, "refiner_cnn": 0}.get(self.arch, len(self.channels) - 1)
        return 2**levels

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown net config keys {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)


class CalciumRefiner(nn.Module):
    """Small 3-D CNN that classifies a candidate patch (true calcium vs look-alike).

    Input ``[B, 2, D, H, W]``: normalised HU patch and the candidate's binary mask.
    Output ``[B, n_classes]`` logits (see ``REFINER_CLASSES``).
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        dims = config.spatial_dims
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        norm = (nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d) if config.norm == "instance" else (
            nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
        )
        pool = nn.MaxPool3d if dims == 3 else nn.MaxPool2d
        layers: list[nn.Module] = []
        cin = config.in_channels
        for i, c in enumerate(config.channels):
            layers += [conv(cin, c, 3, padding=1), norm(c, affine=True), nn.LeakyReLU(0.01, inplace=True)]
            layers += [conv(c, c, 3, padding=1), norm(c, affine=True), nn.LeakyReLU(0.01, inplace=True)]
            if i < len(config.channels) - 1:
                layers.append(pool(2))
            cin = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1) if dims == 3 else nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(cin, config.out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class SlabUNet(nn.Module):
    """2.5-D segmenter: a 2-D BasicUNet applied to every axial slice, seeing the
    ``SLAB_CONTEXT`` slices above and below as extra input channels.

    Takes and returns 3-D tensors (``[B, 1, K, J, I]`` -> ``[B, C, K, J, I]``), so
    patches, sliding windows and weights work exactly as for the 3-D nets. Slices
    beyond the input repeat the edge slice. In eval mode the slices go through the
    2-D net in chunks of ``chunk`` (bounded memory on whole volumes).

    Why: on 2 CPU cores a 2-D net sees far more anatomy per second of training
    than a 3-D one (measured in ``models/anatomy_phantom_v1.md``), and the
    structures the classifier needs are recognisable in a 5-slice axial slab.
    """

    def __init__(self, config: NetConfig, chunk: int = 32) -> None:
        super().__init__()
        from monai.networks import nets

        self.context = SLAB_CONTEXT
        self.chunk = chunk
        self.net2d = nets.BasicUNet(
            spatial_dims=2, in_channels=config.in_channels * (2 * SLAB_CONTEXT + 1), out_channels=config.out_channels,
            features=(*config.channels, config.channels[0]), norm=_norm(config), dropout=config.dropout,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, k, j, i = x.shape
        r = self.context
        idx = torch.arange(-r, k + r, device=x.device).clamp(0, k - 1)
        padded = x.index_select(2, idx)  # [B, C, K + 2r, J, I]
        slabs = padded.unfold(2, 2 * r + 1, 1)  # [B, C, K, J, I, 2r+1]
        slabs = slabs.permute(0, 2, 1, 5, 3, 4).reshape(b * k, c * (2 * r + 1), j, i)
        if self.training or slabs.shape[0] <= self.chunk:
            out = self.net2d(slabs)
        else:
            out = torch.cat([self.net2d(slabs[s : s + self.chunk]) for s in range(0, slabs.shape[0], self.chunk)])
        return out.reshape(b, k, -1, j, i).permute(0, 2, 1, 3, 4)


def _norm(config: NetConfig) -> Any:
    return ("instance", {"affine": True}) if config.norm == "instance" else "batch"


def build_net(config: NetConfig) -> nn.Module:
    """Build the module a :class:`NetConfig` describes (deterministic given the seed).

    >>> net = build_net(NetConfig(arch="unet", channels=(8, 16, 32), out_channels=3))
    >>> net(torch.zeros(1, 1, 16, 16, 16)).shape
    torch.Size([1, 3, 16, 16, 16])
    """
    from monai.networks import nets

    c = config
    if c.arch == "basic_unet":
        return nets.BasicUNet(
            spatial_dims=c.spatial_dims, in_channels=c.in_channels, out_channels=c.out_channels,
            features=(*c.channels, c.channels[0]), norm=_norm(c), dropout=c.dropout,
        )
    if c.arch == "unet":
        return nets.UNet(
            spatial_dims=c.spatial_dims, in_channels=c.in_channels, out_channels=c.out_channels,
            channels=c.channels, strides=(2,) * (len(c.channels) - 1), num_res_units=2,
            norm=_norm(c), dropout=c.dropout,
        )
    if c.arch == "segresnet":
        levels = len(c.channels)
        return nets.SegResNet(
            spatial_dims=c.spatial_dims, init_filters=c.channels[0], in_channels=c.in_channels,
            out_channels=c.out_channels, dropout_prob=c.dropout or None,
            blocks_down=tuple(min(2 ** max(i - 1, 0), 4) for i in range(levels)),
            blocks_up=(1,) * (levels - 1), norm=_norm(c),
        )
    if c.arch == "dynunet":
        n = len(c.channels)
        return nets.DynUNet(
            spatial_dims=c.spatial_dims, in_channels=c.in_channels, out_channels=c.out_channels,
            kernel_size=[3] * n, strides=[1] + [2] * (n - 1), upsample_kernel_size=[2] * (n - 1),
            filters=list(c.channels), norm_name=_norm(c), res_block=True, dropout=c.dropout or None,
        )
    if c.arch == "refiner_cnn":
        return CalciumRefiner(c)
    if c.arch == "slab_unet":
        if c.spatial_dims != 3:
            raise ConfigError("slab_unet is a 2.5-D net for 3-D volumes (spatial_dims=3)")
        return SlabUNet(c)
    raise ConfigError(f"unknown arch {c.arch!r}")  # unreachable: validated in NetConfig


def build_anatomy_net(config: NetConfig | None = None) -> nn.Module:
    """3-D anatomy segmentation net; ``out_channels`` must match ``ANATOMY_CLASSES``.

    The default (``NetConfig()``) is the small BasicUNet chosen by
    ``scripts/bench_cnn.py`` (see ``models/*.md`` for the measurements).
    """
    config = config or NetConfig()
    if config.spatial_dims != 3 or config.arch == "refiner_cnn":
        raise ConfigError(f"the anatomy net is a 3-D segmenter; got {config.arch} in {config.spatial_dims}-D")
    return build_net(config)


def build_calcium_refiner(config: NetConfig | None = None) -> nn.Module:
    """3-D patch classifier of calcium candidates (2 input channels, 2 classes)."""
    config = config or NetConfig(
        arch="refiner_cnn", in_channels=2, out_channels=len(REFINER_CLASSES), channels=(16, 32, 64), dropout=0.2
    )
    if config.arch != "refiner_cnn" or config.spatial_dims != 3:
        raise ConfigError("the calcium refiner must be arch='refiner_cnn' with spatial_dims=3")
    return build_net(config)


def build_radiograph_net(config: NetConfig | None = None) -> nn.Module:
    """2-D segmentation net for lateral radiographs (classes: ``RADIOGRAPH_CLASSES``)."""
    config = config or NetConfig(
        arch="basic_unet", spatial_dims=2, out_channels=len(RADIOGRAPH_CLASSES), channels=(16, 32, 64, 128, 256)
    )
    if config.spatial_dims != 2 or config.arch == "refiner_cnn":
        raise ConfigError("the radiograph net is a 2-D segmenter (spatial_dims=2)")
    return build_net(config)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
