"""Hard-negative crops for the calcium net: bright spots without calcium are found and sampled."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from train_radiograph_aac import CROP, batches, hard_negative_centres, train_net  # noqa: E402


def _zone(shape=(240, 160)) -> tuple[np.ndarray, np.ndarray]:
    """A noisy zone input with one calcified plaque (truth 1) and one gas rim (bright, truth 0)."""
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(0, 1, shape), np.zeros(shape)]).astype(np.float32)
    y = np.zeros(shape, np.float32)
    x[0, 30:36, 20:26] += 8.0
    y[30:36, 20:26] = 1.0
    x[0, 200:204, 120:140] += 8.0  # the rim: as bright as the plaque, no calcium
    return x, y


def test_hard_negatives_are_the_bright_spots_without_calcium():
    x, y = _zone()
    centres = hard_negative_centres(x, y)
    assert len(centres) > 0
    assert np.all((centres[:, 0] >= 195) & (centres[:, 0] <= 209) & (centres[:, 1] >= 115) & (centres[:, 1] <= 145))


def test_hard_crops_contain_the_negative_and_random_crops_mostly_do_not():
    x, y = _zone()
    hard = [hard_negative_centres(x, y)]
    xb, yb = batches([(x, y)], np.random.default_rng(1), 32, hard, hard_fraction=1.0)
    assert xb.shape == (32, 2) + CROP
    assert np.all(xb[:, 0].max(axis=(1, 2)) > 5.0)  # every crop holds the rim (the plaque lies too far away)
    assert np.all(yb.sum(axis=(1, 2, 3)) == 0)
    xr, _ = batches([(x, y)], np.random.default_rng(1), 32)
    assert (xr[:, 0].max(axis=(1, 2)) > 5.0).mean() < 1.0


def test_training_with_hard_negatives_runs_and_returns_a_net():
    import torch

    x, y = _zone()
    config = {"arch": "unet", "in_channels": 2, "out_channels": 1, "spatial_dims": 2, "channels": [4, 8, 16],
              "dropout": 0.0, "norm": "batch"}
    net = train_net([(x, y)], config, steps=3, batch=2, hard_fraction=0.5).eval()
    with torch.no_grad():
        out = net(torch.from_numpy(x)[None])
    assert out.shape == (1, 1) + x.shape[1:]


def test_en_face_calcium_of_a_coded_target_is_no_hard_negative():
    """With --aux-all-weight the target map codes en-face aortic calcium as EN_FACE_CODE: it is
    calcium the auxiliary head learns, so crops must not be centred on it as a look-alike."""
    from train_radiograph_aac import EN_FACE_CODE

    x, y = _zone()
    y[200:204, 120:140] = EN_FACE_CODE  # the bright band is now en-face plaque, not a gas rim
    assert len(hard_negative_centres(x, y)) == 0
