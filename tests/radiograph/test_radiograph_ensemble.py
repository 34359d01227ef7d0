"""The calcium-net ensemble: one file holds all members, the loader rebuilds them, and the
output the detector thresholds is the mean of the members' logits."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calcdetect.radiograph.aac_net import (  # noqa: E402
    MeanLogitEnsemble,
    build_calcium_net,
    load_calcium_model,
    predict_calcium,
    save_calcium_model,
    zone_input,
)
from mask_net import TINY_CONFIG, MaskNet, strip_and_zone  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

CONFIG = TINY_CONFIG


def _members(n: int) -> list:
    nets = []
    for seed in range(n):
        torch.manual_seed(seed)
        nets.append(build_calcium_net(CONFIG).eval())
    return nets


def test_ensemble_file_loads_all_members_and_outputs_their_mean_logit(tmp_path):
    members = _members(3)
    path = save_calcium_model(MeanLogitEnsemble(members), CONFIG, 0.8, tmp_path / "e.safetensors")
    model = load_calcium_model(path)
    assert isinstance(model.net, MeanLogitEnsemble) and len(model.net.members) == 3
    assert model.threshold == pytest.approx(0.8)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1, 2, 32, 24)).astype(np.float32))
    with torch.no_grad():
        each = [m(x) for m in members]
        got = model.net(x)
    assert torch.allclose(got, sum(each) / 3, atol=1e-6)
    assert not torch.allclose(got, each[0], atol=1e-3)  # the members really differ


def test_a_deposit_one_member_alone_marks_is_not_reported(tmp_path):
    """Averaging is a vote weighted by confidence: at threshold 0.6 a deposit that both
    members mark is kept, one that only one of two marks (mean logit 0, p = 0.5) is not."""


    strip, t_line, zone = strip_and_zone()
    x, win = zone_input(strip, t_line, zone, 0.5)
    both = np.zeros(x.shape[1:], bool)
    r, c = 60 - win[0].start, 120 - win[1].start
    both[r: r + 20, c: c + 3] = True
    one = both.copy()
    one[r + 80: r + 100, c: c + 3] = True  # a second deposit, seen by one member only
    torch.manual_seed(0)
    base = load_calcium_model(save_calcium_model(build_calcium_net(CONFIG), CONFIG, 0.6, tmp_path / "m.safetensors"))
    model = dataclasses.replace(base, net=MeanLogitEnsemble([MaskNet(both), MaskNet(one)]))
    calc = predict_calcium(model, strip, t_line, zone, 0.5)
    assert calc[60:80].any()
    assert not calc[140:160].any()


def test_file_claiming_more_members_than_it_holds_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    path = save_calcium_model(MeanLogitEnsemble(_members(2)), CONFIG, 0.5, tmp_path / "e.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    meta["ensemble_members"] = "3"
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata=meta)
    with pytest.raises(RuntimeError, match="members.2"):
        load_calcium_model(bad)


def test_assemble_ensemble_keeps_member_facts_and_refuses_mixed_architectures(tmp_path):
    import json

    from safetensors import safe_open
    from train_radiograph_aac import assemble_ensemble

    paths = []
    for i, net in enumerate(_members(2)):
        paths.append(save_calcium_model(net, CONFIG, 0.55, tmp_path / f"m{i}.safetensors",
                                        {"train_seeds": "40-79", "init_seed": str(i)}))
    out = assemble_ensemble(paths, tmp_path / "e.safetensors", 0.85, {"operating_point_seeds": "80-99"})
    model = load_calcium_model(out)
    assert len(model.net.members) == 2 and model.threshold == pytest.approx(0.85)
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert [m["init_seed"] for m in json.loads(meta["members"])] == ["0", "1"]
    assert meta["operating_point_seeds"] == "80-99"

    torch.manual_seed(0)
    wider = {**CONFIG, "channels": [8, 16, 32]}
    odd = save_calcium_model(build_calcium_net(wider), wider, 0.5, tmp_path / "w.safetensors")
    with pytest.raises(SystemExit, match="architecture"):
        assemble_ensemble([paths[0], odd], tmp_path / "x.safetensors", 0.85)


def test_trainer_members_are_the_single_nets_of_consecutive_seeds():
    """``--members K`` trains K nets on the same cases with init seeds seed .. seed+K-1 and
    returns their logit mean: each member is the net one run with that seed gives alone, so
    the ensemble is reproducible member by member."""
    from train_radiograph_aac import train_members, train_net

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 96, 64)).astype(np.float32)
    y = np.zeros((96, 64), np.float32)
    y[40:60, 30:33] = 1.0
    torch.set_num_threads(1)
    ensemble = train_members([(x, y)], CONFIG, steps=2, batch=2, seed=3, members=2)
    assert isinstance(ensemble, MeanLogitEnsemble) and len(ensemble.members) == 2
    alone = train_net([(x, y)], CONFIG, steps=2, batch=2, seed=4).eval()
    for key, value in alone.state_dict().items():
        assert torch.equal(value, ensemble.members[1].state_dict()[key])
    first = ensemble.members[0].state_dict()
    assert any(not torch.equal(v, first[k]) for k, v in alone.state_dict().items())  # seeds really differ
    single = train_members([(x, y)], CONFIG, steps=2, batch=2, seed=4, members=1)
    assert not isinstance(single, MeanLogitEnsemble)


def test_an_ensemble_keeps_its_members_input_and_refuses_members_that_read_different_inputs(tmp_path):
    from train_radiograph_aac import assemble_ensemble

    a, b = _members(2)
    bg = {"input_scale": "background"}
    paths = [save_calcium_model(n, CONFIG, 0.5, tmp_path / f"b{i}.safetensors", bg) for i, n in enumerate((a, b))]
    assert load_calcium_model(assemble_ensemble(paths, tmp_path / "e.safetensors", 0.6)).input_scale == "background"
    noise = save_calcium_model(b, CONFIG, 0.5, tmp_path / "n.safetensors")
    with pytest.raises(SystemExit, match="same input"):
        assemble_ensemble([paths[0], noise], tmp_path / "x.safetensors", 0.6)
