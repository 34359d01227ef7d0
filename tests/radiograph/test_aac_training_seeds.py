"""The calcium-net trainer refuses the published reporting seeds and accepts the development ones."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from train_radiograph_aac import is_development_seed, main  # noqa: E402


@pytest.mark.parametrize("seed", [0, 99, 400, 439, 500, 539, 540, 639, 640, 759, 760, 919, 5000, 5999])
def test_development_seeds_may_train(seed):
    assert is_development_seed(seed)


@pytest.mark.parametrize("seed", [100, 120, 159, 200, 239, 920, 959, 999, 4999, 6000])
def test_published_and_unseen_seeds_may_not_train(seed):
    assert not is_development_seed(seed)


def test_training_on_a_published_seed_stops_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match="seed 130"):
        main(["--train", "0,130", "--val", "1", "--cache", str(tmp_path), "--out", str(tmp_path / "m.safetensors")])


def test_profile_targets_leave_out_plaque_on_the_lateral_walls(monkeypatch):
    import numpy as np

    import train_radiograph_aac as tra

    labels = np.zeros((8, 8), np.uint16)
    labels[1, 1], labels[2, 2], labels[3, 3], labels[4, 4] = 1, 2, 3, 4
    profile = np.zeros((8, 8), bool)  # the phantom's projection of the graded voxels
    profile[1, 1] = profile[3, 3] = True
    case = {"image": np.zeros((8, 8), np.float32), "spacing": (0.3, 0.3), "lesion_labels": labels,
            "aortic_profile_mask": profile, "conditions": {"photons_per_pixel": 3e4},
            "lesions": [{"id": 1, "region": "aorta", "aortic_wall": "anterior"},
                        {"id": 2, "region": "aorta", "aortic_wall": "lateral"},
                        {"id": 3, "region": "aorta", "aortic_wall": "posterior"},
                        {"id": 4, "region": "iliac"}]}
    seen = {}
    monkeypatch.setattr(tra, "phantom_case", lambda seed, cache, ct: seen.update(ct=ct) or case)
    monkeypatch.setattr(tra, "zone_samples", lambda image, spacing, truth, *a: seen.update(t=truth) or [])
    tra.case_samples(0, None, target_walls="profile")
    assert [tuple(p) for p in np.argwhere(seen.pop("t"))] == [(1, 1), (3, 3)]
    assert seen.pop("ct") == "standard"
    tra.case_samples(0, None)
    assert [tuple(p) for p in np.argwhere(seen.pop("t"))] == [(1, 1), (2, 2), (3, 3)]


def test_the_ct_recipe_reaches_the_phantom_cache(monkeypatch):
    """--ct sharp trains on the sharper-clutter phantoms, not on the standard ones of the same seed."""
    import train_radiograph_aac as tra

    asked = []
    monkeypatch.setattr(tra, "phantom_case", lambda seed, cache, ct: asked.append(ct) or {})
    with pytest.raises(KeyError):  # the empty case has no image: the recipe was asked for first
        tra.case_sample(5000, None, ct="sharp")
    assert asked == ["sharp"]
