"""The radiograph aortic-calcium net: input, save / load round trip, prediction stays in the zone."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calcdetect.radiograph.aac_net import (  # noqa: E402
    DIVISOR,
    build_calcium_net,
    input_divisor,
    load_calcium_model,
    predict_calcium,
    save_calcium_model,
    zone_input,
)
from mask_net import TINY_CONFIG, MaskNet, strip_and_zone  # noqa: E402

CONFIG = TINY_CONFIG


def test_zone_input_is_noise_scaled_and_carries_the_distance_to_the_spine():
    strip, t_line, zone = strip_and_zone()
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
    strip, t_line, zone = strip_and_zone()
    calc = predict_calcium(model, strip, t_line, zone, 0.5)
    assert calc.shape == zone.shape and not (calc & ~zone).any()


def test_a_deeper_net_gets_inputs_it_can_halve_four_times(tmp_path):
    deep = {**CONFIG, "channels": [4, 8, 8, 16, 16]}
    assert input_divisor(CONFIG) == DIVISOR and input_divisor(deep) == 16
    strip, t_line, zone = strip_and_zone()
    x, _ = zone_input(strip, t_line, zone, 0.5, 16)
    assert x.shape[1] % 16 == 0 and x.shape[2] % 16 == 0
    path = save_calcium_model(build_calcium_net(deep), deep, 0.5, tmp_path / "d.safetensors")
    calc = predict_calcium(load_calcium_model(path), strip, t_line, zone, 0.5)  # would fail on a size of 8k
    assert calc.shape == zone.shape and not (calc & ~zone).any()


def test_weights_without_config_are_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="config"):
        load_calcium_model(path)


def test_operating_point_round_trips_and_short_deposits_are_dropped(tmp_path):
    """min_length_mm in the metadata reaches predict_calcium: a deposit shorter than it
    along the spine is not reported, a longer one is."""
    import dataclasses

    torch.manual_seed(0)
    net = build_calcium_net(CONFIG)
    path = save_calcium_model(net, CONFIG, 0.5, tmp_path / "m.safetensors", {"min_length_mm": "3.0"})
    model = load_calcium_model(path)
    assert model.min_length_mm == pytest.approx(3.0)


    strip, t_line, zone = strip_and_zone()
    x, win = zone_input(strip, t_line, zone, 0.5)
    mask = np.zeros(x.shape[1:], bool)
    r, c = 100 - win[0].start, 120 - win[1].start
    mask[r: r + 4, c: c + 3] = True  # 2 mm along the spine, 3 mm2
    mask[r + 40: r + 60, c: c + 3] = True  # 10 mm along the spine
    fixed = dataclasses.replace(model, net=MaskNet(mask))
    calc = predict_calcium(fixed, strip, t_line, zone, 0.5)
    assert not calc[100:104].any()
    assert calc[140:160].any()


def test_model_card_describes_the_bytes_next_to_it(tmp_path):
    from calcdetect.nets.weights import card_path, card_sha256, file_sha256
    from calcdetect.radiograph.aac_net import write_calcium_card

    torch.manual_seed(0)
    path = save_calcium_model(build_calcium_net(CONFIG), CONFIG, 0.7, tmp_path / "m.safetensors")
    card = write_calcium_card(path, title="test net", sections={"Metrics": "none"})
    assert card == card_path(path)
    text = card.read_text()
    assert card_sha256(card) == file_sha256(path)
    assert "threshold 0.7" in text and "## Metrics" in text


def test_shipped_calcium_model_matches_its_card():
    from calcdetect.nets.weights import card_path, card_sha256, file_sha256
    from calcdetect.radiograph.aac_net import DEFAULT_MODEL_PATH

    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("no shipped calcium model")
    card = card_path(DEFAULT_MODEL_PATH)
    assert card.is_file(), f"{DEFAULT_MODEL_PATH.name} ships without its model card"
    assert card_sha256(card) == file_sha256(DEFAULT_MODEL_PATH)


def test_noise_aware_threshold_is_stricter_on_quieter_images_and_round_trips(tmp_path):
    """A high-dose (quiet) image is read at a higher probability threshold than a noisy
    one, so the same faint texture is not marked on it; the operating point is stored in
    the metadata, bounded, and a model without it keeps one fixed threshold."""
    torch.manual_seed(0)
    net = build_calcium_net(CONFIG)
    path = save_calcium_model(net, CONFIG, 0.6, tmp_path / "m.safetensors",
                              {"noise_slope": "-2.0", "noise_ref": "0.0005"})
    model = load_calcium_model(path)
    assert model.threshold_at(0.0005) == pytest.approx(0.6)
    assert model.threshold_at(0.00025) > 0.75 > 0.6 > 0.4 > model.threshold_at(0.001)
    assert 0.1 < model.threshold_at(1.0) and model.threshold_at(1e-9) < 0.96  # bounded far outside

    fixed = load_calcium_model(save_calcium_model(net, CONFIG, 0.6, tmp_path / "f.safetensors"))
    assert fixed.threshold_at(0.00025) == pytest.approx(0.6) == fixed.threshold_at(0.001)

    class Ramp(torch.nn.Module):  # logit 0.8 everywhere: probability 0.69
        def forward(self, x):
            return torch.full((1, 1, *x.shape[-2:]), 0.8)

    import dataclasses

    from calcdetect.radiograph.aac_net import _noise_sd

    strip, t_line, zone = strip_and_zone()
    sd = _noise_sd(strip, zone)
    ramp = dataclasses.replace(model, net=Ramp(), noise_ref=sd)
    assert predict_calcium(ramp, strip, t_line, zone, 0.5).any()  # 0.69 > 0.6 at the reference noise
    quiet = dataclasses.replace(ramp, noise_ref=2 * sd)  # this image is twice as quiet as the reference
    assert not predict_calcium(quiet, strip, t_line, zone, 0.5).any()
