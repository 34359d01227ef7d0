"""Fine-tuning a calcium net (train_radiograph_aac --init): it starts from the given weights,
and a net of another shape is refused before any phantom is loaded."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import train_radiograph_aac as tra  # noqa: E402

from mask_net import TINY_CONFIG  # noqa: E402

from calcdetect.radiograph.aac_net import build_calcium_net, save_calcium_model  # noqa: E402


def _samples(n: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        x = rng.normal(0, 1, (2, 96, 64)).astype(np.float32)
        y = np.zeros((96, 64), np.float32)
        y[40:60, 30:33] = 1.0
        out.append((x, y))
    return out


def _flat(net) -> np.ndarray:
    return np.concatenate([p.detach().numpy().ravel() for p in net.parameters()])


def test_fine_tuning_starts_from_the_given_weights():
    torch.manual_seed(123)
    start = build_calcium_net(TINY_CONFIG)
    state = {k: v.clone() for k, v in start.state_dict().items()}
    # a learning rate too small to move anything: what comes out is where training began
    tuned = tra.train_net(_samples(), TINY_CONFIG, steps=2, batch=2, seed=0, init=state, max_lr=1e-12)
    fresh = tra.train_net(_samples(), TINY_CONFIG, steps=2, batch=2, seed=0, max_lr=1e-12)
    assert np.allclose(_flat(tuned), _flat(start), atol=1e-6)
    assert not np.allclose(_flat(fresh), _flat(start), atol=1e-3)  # the seed-0 draw is another net


def test_a_start_net_of_another_shape_is_refused_before_loading_phantoms(tmp_path):
    small = save_calcium_model(build_calcium_net(TINY_CONFIG), TINY_CONFIG, 0.5, tmp_path / "tiny.safetensors",
                               {"input_channels": '["contrast", "depth"]'})
    # the asked-for net is 32-64-128 on contrast, top-hat and depth; the cache is empty, so
    # reaching the phantoms would fail otherwise
    with pytest.raises(SystemExit, match="differs from the one asked for"):
        tra.main(["--train", "0", "--val", "1", "--channels", "32,64,128", "--init", str(small),
                  "--cache", str(tmp_path / "empty"), "--out", str(tmp_path / "out.safetensors")])
    assert not (tmp_path / "out.safetensors").exists()


def test_an_unknown_ct_recipe_stops_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match="standard, sharp"):
        tra.main(["--train", "0", "--val", "1", "--ct", "standard,soft", "--cache", str(tmp_path / "empty"),
                  "--out", str(tmp_path / "out.safetensors")])
    assert not (tmp_path / "out.safetensors").exists()


def test_two_recipes_train_every_seed_in_both(tmp_path, monkeypatch):
    asked = []

    class Stop(Exception):
        pass

    def record(seed, cache, *args, **kwargs):
        asked.append((seed, kwargs["ct"] if "ct" in kwargs else args[-1]))
        return []

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(tra, "case_samples", record)
    monkeypatch.setattr(tra, "synthetic_sample", lambda *a: None)
    monkeypatch.setattr(tra, "train_members", stop)
    with pytest.raises(Stop):
        tra.main(["--train", "0,1", "--val", "2", "--ct", "standard,sharp", "--cache", str(tmp_path),
                  "--out", str(tmp_path / "out.safetensors")])
    assert asked[:4] == [(0, "standard"), (0, "sharp"), (1, "standard"), (1, "sharp")]
    assert sorted(asked[4:]) == [(2, "sharp"), (2, "standard")]  # validation in both too
