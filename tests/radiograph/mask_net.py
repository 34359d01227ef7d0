"""Fixtures for the radiograph calcium-net tests: a stand-in net that marks exactly
the pixels of a fixed mask, and a noise strip with its aortic zone."""

from __future__ import annotations

import numpy as np
import torch

#: A tiny calcium net (the shipped nets' layout at a fraction of the width) for tests that
#: build, save and load one.
TINY_CONFIG = {"arch": "unet", "in_channels": 2, "out_channels": 1, "spatial_dims": 2, "channels": [4, 8, 16],
               "dropout": 0.0, "norm": "batch"}


class MaskNet(torch.nn.Module):
    """Logit +10 on the mask, -10 elsewhere (probability ~1 / ~0)."""

    def __init__(self, mask: np.ndarray) -> None:
        super().__init__()
        self.mask = torch.from_numpy(mask.astype(np.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return (self.mask[:h, :w] * 20.0 - 10.0)[None, None]


def strip_and_zone() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 300 x 200 noise strip, its anterior vertebral line (column 150) and the aortic zone in front."""
    rng = np.random.default_rng(0)
    strip = rng.normal(0.0, 0.01, (300, 200)).astype(np.float32)
    t_line = np.full(300, 150.0)
    zone = np.zeros(strip.shape, bool)
    zone[40:260, 80:146] = True
    return strip, t_line, zone
