"""The calcium net's input scale: by the quantum noise (nets up to v6) or by the zone's
background spread (anatomy), so that one deposit keeps about one input value across doses."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calcdetect.radiograph.aac_net import (  # noqa: E402
    build_calcium_net,
    calcium_logits,
    load_calcium_model,
    predict_calcium,
    save_calcium_model,
    zone_input,
)

from mask_net import TINY_CONFIG  # noqa: E402

CONFIG = TINY_CONFIG


def _strip(noise_sd: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A strip with anatomy (smooth blobs of ~6 mm at 0.5 mm pixels, SD ~0.05), one
    calcified wall line of 0.03 and white noise of ``noise_sd``; its line and zone."""
    from scipy import ndimage

    rng = np.random.default_rng(1)
    anatomy = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (300, 200)), 6.0)
    strip = 0.05 * anatomy / anatomy.std()
    strip[100:160, 120:122] += 0.03  # a 30 mm wall line, 1 mm thick
    strip = strip + np.random.default_rng(2).normal(0.0, noise_sd, strip.shape)
    zone = np.zeros(strip.shape, bool)
    zone[40:260, 80:146] = True
    return strip.astype(np.float32), np.full(300, 150.0), zone


def _line_value(x: np.ndarray, win: tuple[slice, slice]) -> float:
    """The wall line's contrast on the input: its pixels over their neighbours 2-4 px either side."""
    r, c = slice(100 - win[0].start, 160 - win[0].start), 120 - win[1].start
    side = np.concatenate([x[0][r, c - 4:c - 1], x[0][r, c + 3:c + 6]], axis=1)
    return float(np.median(x[0][r, c:c + 2]) - np.median(side))


def test_background_scale_keeps_a_deposit_near_one_value_across_doses_where_noise_scale_does_not():
    low_dose, high_dose = _strip(0.006), _strip(0.0006)  # noise well under the anatomy, as in the phantoms
    by = {scale: [_line_value(*zone_input(s, t, z, 0.5, scale=scale)) for s, t, z in (low_dose, high_dose)]
          for scale in ("noise", "background")}
    assert by["noise"][1] > 3 * by["noise"][0] > 0  # the same calcium, several times apart in noise units
    assert 0.8 < by["background"][1] / by["background"][0] < 1.25
    # the distance channel does not depend on the scale
    a, _ = zone_input(*high_dose, 0.5, scale="noise")
    b, _ = zone_input(*high_dose, 0.5, scale="background")
    np.testing.assert_array_equal(a[1], b[1])


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="input scale"):
        zone_input(*_strip(0.01), 0.5, scale="dose")


def test_the_scale_travels_in_the_weights_and_is_used_at_prediction(tmp_path):
    torch.manual_seed(0)
    net = build_calcium_net(CONFIG)
    old = load_calcium_model(save_calcium_model(net, CONFIG, 0.5, tmp_path / "a.safetensors"))
    new = load_calcium_model(save_calcium_model(net, CONFIG, 0.5, tmp_path / "b.safetensors",
                                                {"input_scale": "background"}))
    assert old.input_scale == "noise" and new.input_scale == "background"  # nets without the key: as before
    strip, t_line, zone = _strip(0.01)
    x, _ = zone_input(strip, t_line, zone, 0.5, scale="background")
    assert not np.allclose(calcium_logits(new, x), calcium_logits(old, zone_input(strip, t_line, zone, 0.5)[0]))
    assert predict_calcium(new, strip, t_line, zone, 0.5).shape == zone.shape
    bad = save_calcium_model(net, CONFIG, 0.5, tmp_path / "c.safetensors", {"input_scale": "dose"})
    with pytest.raises(ValueError, match="input_scale 'dose'"):
        load_calcium_model(bad)
