"""The shipped release candidate (models/radiograph_aac_v8rc): trained on three renderings of the
phantoms, loadable as a --net or calcium_model, described by its card, and not the default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import safe_open

from calcdetect.nets.weights import file_sha256
from calcdetect.radiograph import aac_net

CANDIDATE = Path(__file__).resolve().parents[2] / "models" / "radiograph_aac_v8rc.safetensors"


def test_the_candidate_is_v7_fine_tuned_on_three_renderings_and_not_the_default():
    rc, v7 = aac_net.load_calcium_model(CANDIDATE), aac_net.load_default_calcium_model()
    assert aac_net.DEFAULT_MODEL_PATH.name == "radiograph_aac_v7.safetensors"
    # same net and inputs as v7, so either reads any radiograph the other reads, at v7's threshold
    assert rc.config == v7.config and tuple(rc.inputs) == tuple(v7.inputs) and rc.threshold == v7.threshold == 0.5
    with safe_open(str(CANDIDATE), framework="pt") as f:
        meta = f.metadata()
    assert meta["ct_recipe"] == "standard,sharp,film" and meta["init"].startswith("radiograph_aac_v7.safetensors")
    # fine-tuned, not a copy: the weights differ
    a = dict(rc.net.state_dict())
    b = dict(v7.net.state_dict())
    assert any(not np.allclose(a[k].numpy(), b[k].numpy()) for k in a if a[k].dtype.is_floating_point)


def test_the_card_describes_these_bytes():
    card = CANDIDATE.with_suffix(".md").read_text()
    assert f"sha256: {file_sha256(CANDIDATE)}" in card
    assert "not the default" in card and "--ct standard,sharp,film" in card
