"""The calcium net's auxiliary head (``--aux-all-weight``): head 1 learns every aortic lesion, head 0
the walls in profile, and the analysis reads head 0 only."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from train_radiograph_aac import (  # noqa: E402
    EN_FACE_CODE,
    aortic_target,
    coded_target,
    lesion_weights,
    main,
    profile_target,
    train_net,
)

from calcdetect.radiograph.aac_net import CalciumModel, build_calcium_net, calcium_logits  # noqa: E402

CONFIG2 = {"arch": "unet", "in_channels": 2, "out_channels": 2, "spatial_dims": 2, "channels": [4, 8, 16],
           "dropout": 0.0, "norm": "batch"}


def _masks() -> tuple[np.ndarray, np.ndarray]:
    """A wall in profile (a thin line along the spine) and an en-face plaque over the lumen; the
    aortic mask holds both, as the phantom's lesion labels do."""
    profile = np.zeros((96, 64), bool)
    profile[10:80, 50:52] = True
    aortic = profile.copy()
    aortic[30:50, 20:34] = True
    return profile, aortic


def test_one_map_carries_both_targets_and_a_binary_map_reads_as_before():
    profile, aortic = _masks()
    y = coded_target(profile, aortic)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, EN_FACE_CODE, 1.0}
    assert np.array_equal(profile_target(y), profile)
    assert np.array_equal(aortic_target(y), aortic)
    # the plain profile target (no auxiliary head) keeps its meaning for head 0
    assert np.array_equal(profile_target(profile.astype(np.float32)), profile)
    # small-deposit weights are taken on the walls in profile, not on the en-face plate
    w = lesion_weights(profile_target(y).astype(np.float32))
    assert np.all(w[aortic & ~profile] == 1.0)


def test_head_one_learns_en_face_calcium_and_head_zero_learns_to_leave_it():
    profile, aortic = _masks()
    rng = np.random.default_rng(0)
    y = coded_target(profile, aortic)
    x = np.stack([5.0 * aortic + rng.normal(0, 0.5, aortic.shape), np.zeros(aortic.shape)]).astype(np.float32)
    net = train_net([(x, y)], CONFIG2, steps=150, batch=4, crop=(96, 64), aux_weight=1.0).eval()
    with torch.no_grad():
        p = torch.sigmoid(net(torch.from_numpy(x)[None]))[0].numpy()
    en_face = aortic & ~profile
    assert p[1][en_face].mean() > 0.5 > p[0][en_face].mean()
    assert p[0][profile].mean() > 0.5


def test_a_two_head_net_needs_the_auxiliary_weight_and_the_reverse():
    profile, aortic = _masks()
    x = np.zeros((2,) + profile.shape, np.float32)
    with pytest.raises(ValueError, match="output head"):
        train_net([(x, coded_target(profile, aortic))], CONFIG2, steps=1, batch=1, crop=(96, 64))
    with pytest.raises(ValueError, match="output head"):
        train_net([(x, coded_target(profile, aortic))], {**CONFIG2, "out_channels": 1}, steps=1, batch=1,
                  crop=(96, 64), aux_weight=0.5)


def test_the_analysis_reads_head_zero():
    net = build_calcium_net({**CONFIG2, "in_channels": 3}).eval()
    model = CalciumModel(net=net, config={**CONFIG2, "in_channels": 3}, threshold=0.5,
                         inputs=("contrast", "tophat", "depth"))
    x = np.random.default_rng(1).normal(size=(3, 32, 24)).astype(np.float32)
    with torch.no_grad():
        both = net(torch.from_numpy(x)[None])[0].numpy()
    assert not np.allclose(both[0], both[1])
    assert np.allclose(calcium_logits(model, x), both[0])


def test_the_trainer_refuses_the_auxiliary_head_without_the_profile_target(tmp_path):
    with pytest.raises(SystemExit, match="--target-walls profile"):
        main(["--train", "0-1", "--val", "2", "--target-walls", "all", "--aux-all-weight", "0.5",
              "--out", str(tmp_path / "m.safetensors")])
    assert not (tmp_path / "m.safetensors").exists()
