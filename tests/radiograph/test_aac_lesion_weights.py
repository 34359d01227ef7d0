"""Lesion weighting of the calcium loss: short plaques weigh as much as they move a wall grade."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from train_radiograph_aac import (  # noqa: E402
    LESION_WEIGHT_MAX,
    LESION_WEIGHT_REF_PX,
    batches,
    lesion_weights,
    train_net,
)


def _target() -> np.ndarray:
    y = np.zeros((120, 80), np.float32)
    y[10:12, 10:12] = 1.0  # a 4-pixel speck of a short plaque
    y[40:50, 30:40] = 1.0  # a 100-pixel plate, larger than the reference deposit
    y[80:82, 50:55] = 1.0  # 10 pixels
    return y


def test_small_deposits_weigh_more_and_the_background_keeps_weight_one():
    y = _target()
    w = lesion_weights(y)
    assert np.all(w[y == 0] == 1.0)
    assert w[10, 10] == pytest.approx(min(np.sqrt(LESION_WEIGHT_REF_PX / 4), LESION_WEIGHT_MAX))
    assert w[45, 35] == 1.0  # large plates are not weighed down
    assert w[81, 52] == pytest.approx(np.sqrt(LESION_WEIGHT_REF_PX / 10))
    assert w[10, 10] > w[81, 52] > w[45, 35]


def test_empty_target_weighs_one_everywhere():
    assert np.all(lesion_weights(np.zeros((16, 16), np.float32)) == 1.0)


def test_weight_crops_follow_the_target_crops_through_flips():
    y = _target()
    x = np.stack([y * 5.0, np.zeros_like(y)]).astype(np.float32)
    w = lesion_weights(y)
    xb, yb, wb = batches([(x, y)], np.random.default_rng(3), 24, crop=(48, 32), weights=[w])
    assert wb.shape == yb.shape == (24, 1, 48, 32)
    # within each crop, a pixel is heavier than 1 exactly where a small deposit lies
    assert np.array_equal(wb > 1.0, (yb > 0.5) & (wb > 1.0))
    assert np.all(wb[yb == 0] == 1.0)
    assert (wb > 1.0).any()
    # the same generator state draws the same crops with and without weights
    xb2, yb2 = batches([(x, y)], np.random.default_rng(3), 24, crop=(48, 32))
    assert np.array_equal(xb, xb2) and np.array_equal(yb, yb2)


def test_training_with_lesion_weighting_runs_and_returns_a_net():
    import torch

    y = _target()
    x = np.stack([y * 5.0 + np.random.default_rng(0).normal(0, 1, y.shape), np.zeros_like(y)]).astype(np.float32)
    config = {"arch": "unet", "in_channels": 2, "out_channels": 1, "spatial_dims": 2, "channels": [4, 8, 16],
              "dropout": 0.0, "norm": "batch"}
    net = train_net([(x, y)], config, steps=3, batch=2, lesion_weighting=True).eval()
    with torch.no_grad():
        out = net(torch.from_numpy(x)[None])
    assert out.shape == (1, 1) + x.shape[1:]
