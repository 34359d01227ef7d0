"""The calcium net's top-hat input channel (v7): thin bright lines along the spine kept, no bright
rim around dark bowel gas (which the 8 mm Gaussian background of the contrast channel leaves),
and the channel list carried in the weights' metadata."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calcdetect.radiograph.aac_net import (  # noqa: E402
    DEFAULT_INPUTS,
    build_calcium_net,
    load_calcium_model,
    predict_calcium,
    save_calcium_model,
    zone_input,
)

from mask_net import TINY_CONFIG  # noqa: E402

V7_INPUTS = ("contrast", "tophat", "depth")


def _strip_with_gas_and_a_wall_line() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0.5 mm strip: a 1 mm wall line of 0.03 running along the spine (rows), a 12 mm gas
    bubble of -0.2 well away from it, white noise of 0.003."""
    rng = np.random.default_rng(3)
    strip = rng.normal(0.0, 0.003, (300, 200)).astype(np.float32)
    strip[60:140, 120:122] += 0.03
    rr, cc = np.mgrid[:300, :200]
    strip[(rr - 220) ** 2 + (cc - 110) ** 2 <= 12**2] -= 0.2
    zone = np.zeros(strip.shape, bool)
    zone[20:280, 70:146] = True
    return strip, np.full(300, 150.0), zone


def _channels(inputs=V7_INPUTS):
    strip, t_line, zone = _strip_with_gas_and_a_wall_line()
    x, win = zone_input(strip, t_line, zone, 0.5, inputs=inputs)
    return {k: x[i] for i, k in enumerate(inputs)}, win


def test_the_tophat_keeps_the_wall_line_and_leaves_no_rim_around_gas():
    ch, win = _channels()
    r0, c0 = win[0].start, win[1].start
    rr, cc = np.mgrid[win[0], win[1]]
    d = np.hypot(rr - 220, cc - 110)
    rim = (d > 13) & (d < 20)  # 0.5-4 mm outside the bubble's edge: no calcium there
    line = ch["tophat"][60 - r0:140 - r0, 120 - c0:122 - c0]
    # the line stands ~10 noise SDs up on both channels
    assert np.median(line) > 5 and np.median(ch["contrast"][60 - r0:140 - r0, 120 - c0:122 - c0]) > 5
    # the Gaussian background makes the bubble's surroundings look bright; the top-hat does not
    assert np.percentile(ch["contrast"][rim], 90) > 5
    assert np.percentile(ch["tophat"][rim], 90) < 3
    assert (ch["tophat"] >= 0).all()  # an image minus its opening: never below zero


def test_the_channels_come_in_the_order_asked_and_the_default_is_unchanged():
    v7, _ = _channels()
    old, _ = _channels(DEFAULT_INPUTS)
    assert set(old) == {"contrast", "depth"}
    np.testing.assert_array_equal(v7["contrast"], old["contrast"])
    np.testing.assert_array_equal(v7["depth"], old["depth"])
    with pytest.raises(ValueError, match="input channels"):
        _channels(("contrast", "edges"))


def test_the_channel_list_travels_in_the_weights_and_must_fit_the_net(tmp_path):
    config = {**TINY_CONFIG, "in_channels": 3}
    torch.manual_seed(0)
    net = build_calcium_net(config)
    meta = {"input_channels": '["contrast", "tophat", "depth"]'}
    model = load_calcium_model(save_calcium_model(net, config, 0.5, tmp_path / "v7.safetensors", meta))
    assert model.inputs == V7_INPUTS
    strip, t_line, zone = _strip_with_gas_and_a_wall_line()
    assert predict_calcium(model, strip, t_line, zone, 0.5).shape == zone.shape  # a 3-channel input fits
    # a 3-channel net without the key (read as the two v6 channels) is inconsistent: refused on load
    with pytest.raises(ValueError, match="2 input channels"):
        load_calcium_model(save_calcium_model(net, config, 0.5, tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match="newer calcdetect"):
        load_calcium_model(save_calcium_model(net, config, 0.5, tmp_path / "odd.safetensors",
                                              {"input_channels": '["contrast", "edges", "depth"]'}))


def test_the_gas_channel_marks_small_lucencies_and_not_the_wall_line():
    """``gas`` (the black top-hat, session 25's experiment): high inside a 5 mm gas lucency,
    near zero on a bright wall line, never negative."""
    strip, t_line, zone = _strip_with_gas_and_a_wall_line()
    rr, cc = np.mgrid[:300, :200]
    strip[(rr - 100) ** 2 + (cc - 90) ** 2 <= 5**2] -= 0.05  # 5 mm lucency between wall and spine
    x, win = zone_input(strip, t_line, zone, 0.5, inputs=("contrast", "gas"))
    gas = x[1]
    r0, c0 = win[0].start, win[1].start
    assert (gas >= 0).all()
    assert np.median(gas[100 - r0 - 2:100 - r0 + 3, 90 - c0 - 2:90 - c0 + 3]) > 10  # ~0.05 over noise 0.003
    assert np.median(gas[60 - r0:140 - r0, 120 - c0:122 - c0]) < 2


def test_the_model_card_names_each_input_channel_in_order(tmp_path):
    from calcdetect.radiograph.aac_net import write_calcium_card

    config = {**TINY_CONFIG, "in_channels": 3}
    meta = {"input_channels": '["contrast", "gas", "depth"]'}
    path = save_calcium_model(build_calcium_net(config), config, 0.5, tmp_path / "g.safetensors", meta)
    card = write_calcium_card(path, title="t", sections={}).read_text()
    line = next(ln for ln in card.splitlines() if ln.startswith("- input"))
    assert line.index("Gaussian background") < line.index("black top-hat") < line.index("anterior vertebral line")
    assert "grey opening" not in line  # no top-hat channel in this net
