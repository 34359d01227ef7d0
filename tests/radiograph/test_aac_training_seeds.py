"""The calcium-net trainer refuses the published reporting seeds and accepts the development ones."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from train_radiograph_aac import is_development_seed, main  # noqa: E402


@pytest.mark.parametrize("seed", [0, 99, 400, 439, 500, 539, 540, 639, 640, 759])
def test_development_seeds_may_train(seed):
    assert is_development_seed(seed)


@pytest.mark.parametrize("seed", [100, 120, 159, 200, 239, 760, 800])
def test_published_and_unseen_seeds_may_not_train(seed):
    assert not is_development_seed(seed)


def test_training_on_a_published_seed_stops_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match="seed 130"):
        main(["--train", "0,130", "--val", "1", "--cache", str(tmp_path), "--out", str(tmp_path / "m.safetensors")])
