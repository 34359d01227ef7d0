"""The radiograph aortic-calcium net: input, save / load round trip, prediction stays in the zone."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calcdetect.radiograph.aac_net import (  # noqa: E402
    DIVISOR,
    build_calcium_net,
    load_calcium_model,
    predict_calcium,
    save_calcium_model,
    zone_input,
)

CONFIG = {"arch": "unet", "in_channels": 2, "out_channels": 1, "spatial_dims": 2, "channels": [4, 8, 16],
          "dropout": 0.0, "norm": "batch"}


def _strip_and_zone():
    rng = np.random.default_rng(0)
    strip = rng.normal(0.0, 0.01, (300, 200)).astype(np.float32)
    t_line = np.full(300, 150.0)
    zone = np.zeros(strip.shape, bool)
    zone[40:260, 80:146] = True
    return strip, t_line, zone


def test_zone_input_is_noise_scaled_and_carries_the_distance_to_the_spine():
    strip, t_line, zone = _strip_and_zone()
    x, win = zone_input(strip, t_line, zone, 0.5)
    assert x.shape[0] == 2 and x.shape[1] % DIVISOR == 0 and x.shape[2] % DIVISOR == 0
    # unit quantum noise in channel 0 (the net sees the same scale at any exposure)
    assert 0.7 < float(np.std(x[0])) < 1.6
    # channel 1: distance in front of the spine line, growing anteriorly (to the left)
    row = x[1, 10]
    assert row[0] > row[-1]
    col_of_line = 150 - win[1].start
    assert row[col_of_line] == pytest.approx(0.0, abs=1e-6)


def test_saved_model_loads_and_predicts_only_inside_the_zone(tmp_path):
    torch.manual_seed(0)
    net = build_calcium_net(CONFIG)
    path = save_calcium_model(net, CONFIG, 0.01, tmp_path / "m.safetensors", {"data": "test"})
    model = load_calcium_model(path)
    assert model.threshold == pytest.approx(0.01) and model.config["channels"] == [4, 8, 16]
    for key, value in net.state_dict().items():
        assert torch.equal(value, model.net.state_dict()[key])
    strip, t_line, zone = _strip_and_zone()
    calc = predict_calcium(model, strip, t_line, zone, 0.5)
    assert calc.shape == zone.shape and not (calc & ~zone).any()


def test_weights_without_config_are_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="config"):
        load_calcium_model(path)
