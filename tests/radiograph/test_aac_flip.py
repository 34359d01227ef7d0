"""Mirror averaging of the calcium net: the result does not depend on head-foot orientation."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calcdetect.radiograph.aac_net import (  # noqa: E402
    build_calcium_net,
    calcium_logits,
    load_calcium_model,
    save_calcium_model,
    zone_input,
)
from mask_net import TINY_CONFIG, strip_and_zone  # noqa: E402

CONFIG = TINY_CONFIG


def _model(tmp_path, flip: bool):
    torch.manual_seed(3)
    net = build_calcium_net(CONFIG)
    path = save_calcium_model(net, CONFIG, 0.5, tmp_path / "m.safetensors",
                              {"flip_average": "true" if flip else "false"})
    return load_calcium_model(path)


def test_flip_average_round_trips_and_makes_the_logits_mirror_consistent(tmp_path):
    model = _model(tmp_path, flip=True)
    assert model.flip_average
    strip, t_line, zone = strip_and_zone()
    x, _ = zone_input(strip, t_line, zone, 0.5)
    x_mirror = np.ascontiguousarray(x[:, ::-1])
    # the same patient imaged head-up or head-down gets the same calcium map
    np.testing.assert_allclose(calcium_logits(model, x_mirror)[::-1], calcium_logits(model, x), atol=1e-5)
    # a single pass of an untrained net is not mirror-symmetric: the check above can fail
    single = dataclasses.replace(model, flip_average=False)
    assert not np.allclose(calcium_logits(single, x_mirror)[::-1], calcium_logits(single, x), atol=1e-5)


def test_flip_average_is_off_unless_the_weights_ask_for_it(tmp_path):
    assert not _model(tmp_path, flip=False).flip_average


def test_restamp_sets_flip_average(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from train_radiograph_aac import restamp

    src = save_calcium_model(build_calcium_net(CONFIG), CONFIG, 0.5, tmp_path / "a.safetensors")
    out = restamp(src, tmp_path / "b.safetensors", 0.7, None, flip_average=True)
    model = load_calcium_model(out)
    assert model.flip_average and model.threshold == pytest.approx(0.7)
