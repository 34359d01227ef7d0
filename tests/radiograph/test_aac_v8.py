"""The shipped calcium net (models/radiograph_aac_v8): v7 fine-tuned on three renderings of the
phantoms, the default, described by its card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import safe_open

from calcdetect.nets.weights import file_sha256
from calcdetect.radiograph import aac_net

V7 = Path(__file__).resolve().parents[2] / "models" / "radiograph_aac_v7.safetensors"


def test_the_default_is_v7_fine_tuned_on_three_renderings():
    v8, v7 = aac_net.load_default_calcium_model(), aac_net.load_calcium_model(V7)
    assert aac_net.DEFAULT_MODEL_PATH.name == "radiograph_aac_v8.safetensors"
    # same net and inputs as v7, so either reads any radiograph the other reads, at v7's threshold
    assert v8.config == v7.config and tuple(v8.inputs) == tuple(v7.inputs) and v8.threshold == v7.threshold == 0.5
    with safe_open(str(aac_net.DEFAULT_MODEL_PATH), framework="pt") as f:
        meta = f.metadata()
    assert meta["ct_recipe"] == "standard,sharp,film"
    assert meta["init"] == f"radiograph_aac_v7.safetensors (sha256 {file_sha256(V7)})"
    # fine-tuned, not a copy: the weights differ
    a = dict(v8.net.state_dict())
    b = dict(v7.net.state_dict())
    assert any(not np.allclose(a[k].numpy(), b[k].numpy()) for k in a if a[k].dtype.is_floating_point)


def test_the_card_describes_these_bytes():
    card = aac_net.DEFAULT_MODEL_PATH.with_suffix(".md").read_text()
    assert f"sha256: {file_sha256(aac_net.DEFAULT_MODEL_PATH)}" in card
    assert "--ct standard,sharp,film" in card and "1260-1419" in card
