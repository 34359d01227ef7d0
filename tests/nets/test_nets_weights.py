"""safetensors round trip, sha256 verification against the model card."""

import pytest
import torch

from calcdetect.device import Device
from calcdetect.errors import InputError
from calcdetect.nets import ANATOMY_CLASSES, ModelSpec, NetConfig, build_anatomy_net, load_model, read_spec, save_model
from calcdetect.nets import write_model_card
from calcdetect.nets.weights import card_path, card_sha256, file_sha256

CFG = NetConfig(arch="unet", channels=(4, 8, 16))


def _spec():
    return ModelSpec(task="anatomy", net=CFG, classes=ANATOMY_CLASSES, spacing_mm=(3.0, 3.0, 3.0),
                     intensity={"clip_low": -1000.0, "clip_high": 1500.0, "mean": 0.0, "std": 500.0},
                     patch_size=(16, 16, 16), extra={"name": "test"})


def _saved(tmp_path):
    torch.manual_seed(1)
    net = build_anatomy_net(CFG).eval()
    path = tmp_path / "m.safetensors"
    sha = save_model(net, path, _spec(), {"note": "unit test"})
    return net, path, sha


def test_round_trip_gives_identical_outputs(tmp_path):
    net, path, sha = _saved(tmp_path)
    write_model_card(path, title="t", sections={"Metrics": "none"})
    assert card_sha256(card_path(path)) == sha == file_sha256(path)
    loaded = load_model(path, Device("cpu"))
    assert loaded.spec == _spec()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))


def test_spec_json_round_trip(tmp_path):
    _, path, _ = _saved(tmp_path)
    assert read_spec(path) == _spec()


def test_tampered_file_is_rejected(tmp_path):
    _, path, _ = _saved(tmp_path)
    write_model_card(path, title="t", sections={})
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256"):
        load_model(path, Device("cpu"))


def test_missing_card_needs_explicit_opt_out(tmp_path):
    _, path, sha = _saved(tmp_path)
    with pytest.raises(InputError, match="model card"):
        load_model(path, Device("cpu"))
    assert load_model(path, Device("cpu"), sha256=sha) is not None
    assert load_model(path, Device("cpu"), require_card=False) is not None


def test_architecture_mismatch_is_an_error(tmp_path):
    from safetensors.torch import save_file

    other = build_anatomy_net(NetConfig(arch="unet", channels=(4, 8, 32)))
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path),
              metadata={"calcdetect": _spec().to_json()})
    with pytest.raises((InputError, RuntimeError)):
        load_model(path, Device("cpu"), require_card=False)


def test_non_calcdetect_file_is_rejected(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(InputError, match="calcdetect metadata"):
        read_spec(path)
    with pytest.raises(InputError, match="does not exist"):
        read_spec(tmp_path / "nope.safetensors")
