"""Choose the compute device once per run; it is passed down explicitly.

The voxel core runs on numpy / connected-components-3d for ``cpu`` and on torch for
``cuda``. Nothing else in calcdetect inspects ``torch.cuda`` on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from calcdetect.errors import DeviceError

__all__ = ["Device", "resolve_device"]

_SPEC = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Device:
    """A resolved device: ``type`` is ``"cpu"`` or ``"cuda"``; ``index`` for CUDA."""

    type: str
    index: int | None = None

    @property
    def is_cuda(self) -> bool:
        return self.type == "cuda"

    @property
    def torch(self) -> str:
        """The string torch understands (``"cpu"``, ``"cuda:0"``)."""
        return "cpu" if self.type == "cpu" else f"cuda:{self.index or 0}"

    def __str__(self) -> str:
        return self.torch


def resolve_device(spec: str = "auto") -> Device:
    """Resolve ``"auto" | "cpu" | "cuda[:N]"`` to a usable :class:`Device`.

    ``auto`` picks the first CUDA device when one works and falls back to CPU;
    an explicit ``cuda`` without a usable GPU is an error, never a silent fallback.

    >>> resolve_device("cpu")
    Device(type='cpu', index=None)
    """
    spec = (spec or "auto").strip().lower()
    if not _SPEC.match(spec):
        raise DeviceError(f"unknown device {spec!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if spec == "cpu":
        return Device("cpu")
    try:
        import torch
    except ImportError:  # torch is a dependency, but the loader works without it
        torch = None  # type: ignore[assignment]
    available = bool(torch is not None and torch.cuda.is_available())
    if spec == "auto":
        return Device("cuda", 0) if available else Device("cpu")
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if not available:
        raise DeviceError(
            f"device {spec!r} was requested but CUDA is not available (no GPU, or torch is "
            "the CPU build); use --device cpu or --device auto"
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} requested but only {count} CUDA device(s) exist")
    return Device("cuda", index)
