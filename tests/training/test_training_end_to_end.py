"""Train one short epoch on tiny TotalSegmentator + nnU-Net folders, then infer."""

import csv

import numpy as np
import pytest
import torch

from calcdetect.anatomy.regions import STRUCTURES
from calcdetect.device import Device
from calcdetect.errors import ConfigError, InputError
from calcdetect.nets import load_model, read_spec, segment_anatomy
from calcdetect.training import TrainConfig, train
from calcdetect.types import AcquisitionInfo, Volume
from synthetic_layouts import SHAPE, affine, make_nnunet, make_totalsegmentator, synthetic_case

TINY = {
    "net": {"arch": "unet", "channels": [4, 8, 16]},
    "spacing_mm": 4.0,
    "patch_size": 16,
    "batch_size": 2,
    "iterations_per_epoch": 2,
    "epochs": 1,
    "val_fraction": 0.3,
    "progress": False,
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return [("totalsegmentator", make_totalsegmentator(root / "ts")), ("nnunet", make_nnunet(root / "nn"))]


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory):
    torch.set_num_threads(2)
    run = tmp_path_factory.mktemp("run")
    return train(TrainConfig.from_dict(TINY), datasets, run, Device("cpu"))


def test_training_writes_a_usable_run(trained):
    run = trained.rundir
    for name in ("fingerprint.json", "split.json", "metrics.csv", "checkpoint.pt", "model.safetensors", "model.md"):
        assert (run / name).is_file(), name
    assert trained.n_train + trained.n_val == 4 and trained.n_val >= 1
    assert np.isfinite(trained.last_train_loss)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1"]
    spec = read_spec(trained.model_path)
    assert spec.spacing_mm == (4.0, 4.0, 4.0) and spec.task == "anatomy"
    assert "sha256:" in (run / "model.md").read_text()


def test_inference_with_the_trained_model(trained):
    model = load_model(trained.model_path, Device("cpu"))
    hu, _ = synthetic_case(7)
    vol = Volume(hu[:, :, :30], (2.0, 2.0, 2.0), affine(), AcquisitionInfo("CT"))
    amap = segment_anatomy(vol, model, Device("cpu"))
    assert amap.labels.shape == vol.shape and amap.labels.dtype == np.uint8
    assert set(np.unique(amap.labels)) <= {0} | {s.label for s in STRUCTURES}
    assert len(amap.slice_levels) == vol.shape[0]
    assert np.allclose(amap.affine, vol.affine)


def test_resume_continues_and_keeps_one_row_per_epoch(trained, datasets, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained.rundir, run)
    result = train(TrainConfig.from_dict(TINY), datasets, run, Device("cpu"), epochs=2, resume=True)
    assert result.epochs_completed == 2
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    other = dict(TINY, net={"arch": "unet", "channels": [4, 8, 32]})
    with pytest.raises(ConfigError, match="different net"):
        train(TrainConfig.from_dict(other), datasets, run, Device("cpu"), epochs=3, resume=True)


def _distance(a: dict, b: dict) -> float:
    return float(sum(torch.sum((a[k].float() - b[k].float()) ** 2) for k in a)) ** 0.5


def test_init_from_continues_a_trained_model(trained, datasets, tmp_path):
    """Fine-tuning starts from the given weights, not from random ones."""
    from safetensors.torch import load_file

    start = load_file(str(trained.model_path))
    slow = dict(TINY, learning_rate=1e-5, seed=1)  # another seed: a random start would land elsewhere
    tuned = train(TrainConfig.from_dict(slow), datasets, tmp_path / "tuned", Device("cpu"), init_from=trained.model_path)
    fresh = train(TrainConfig.from_dict(slow), datasets, tmp_path / "fresh", Device("cpu"))
    after = load_file(str(tuned.model_path))
    assert _distance(after, start) < 0.05 * _distance(load_file(str(fresh.model_path)), start)


def test_new_head_keeps_the_features_and_relearns_the_output_layer(trained, datasets, tmp_path):
    from safetensors.torch import load_file

    start = load_file(str(trained.model_path))
    frozen = dict(TINY, learning_rate=1e-6)
    out = train(TrainConfig.from_dict(frozen), datasets, tmp_path / "head", Device("cpu"), init_from=trained.model_path,
                new_head=True)
    after = load_file(str(out.model_path))
    n_classes = TrainConfig.from_dict(TINY).net.out_channels
    head = [k for k in after if after[k].ndim >= 2 and after[k].shape[1] == n_classes] or \
        [k for k in after if after[k].ndim >= 2 and after[k].shape[0] == n_classes]
    assert head, "the output layer's weights"
    assert any(not torch.allclose(after[k], start[k], atol=1e-4) for k in head)  # re-initialised
    body = [k for k in after if k not in head and after[k].ndim >= 2]
    assert all(torch.allclose(after[k], start[k], atol=1e-3) for k in body)  # the features kept
    with pytest.raises(ConfigError, match="give --init-from too"):
        train(TrainConfig.from_dict(TINY), datasets, tmp_path / "x", Device("cpu"), new_head=True)


def test_init_from_refuses_another_recipe_or_resume(trained, datasets, tmp_path):
    other = dict(TINY, net={"arch": "unet", "channels": [4, 8, 32]})
    with pytest.raises(ConfigError, match="use the recipe the model was trained with"):
        train(TrainConfig.from_dict(other), datasets, tmp_path / "a", Device("cpu"), init_from=trained.model_path)
    with pytest.raises(InputError, match="no model file"):
        train(TrainConfig.from_dict(TINY), datasets, tmp_path / "b", Device("cpu"), init_from=tmp_path / "none.safetensors")
    with pytest.raises(ConfigError, match="give one of them"):
        train(TrainConfig.from_dict(TINY), datasets, trained.rundir, Device("cpu"), resume=True,
              init_from=trained.model_path)


def test_time_budget_stops_after_one_epoch(datasets, tmp_path):
    result = train(TrainConfig.from_dict(TINY), datasets, tmp_path, Device("cpu"), epochs=50, max_minutes=1e-6)
    assert result.epochs_completed == 1
    assert "epochs run: 1 of 50" in (tmp_path / "model.md").read_text()


def test_resume_without_checkpoint_and_no_data(tmp_path, datasets):
    with pytest.raises(InputError, match="no checkpoint"):
        train(TrainConfig.from_dict(TINY), datasets, tmp_path, Device("cpu"), resume=True)
    with pytest.raises(ConfigError, match="no training data"):
        train(TrainConfig.from_dict(TINY), [], tmp_path, Device("cpu"))


@pytest.mark.cuda
def test_cpu_cuda_parity(trained):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    hu, _ = synthetic_case(9)
    vol = Volume(hu, (2.0, 2.0, 2.0), affine(), AcquisitionInfo("CT"))
    cpu = segment_anatomy(vol, load_model(trained.model_path, Device("cpu")), Device("cpu"), autocast=False)
    gpu = segment_anatomy(vol, load_model(trained.model_path, Device("cuda", 0)), Device("cuda", 0), autocast=False)
    assert np.mean(cpu.labels == gpu.labels) > 0.99


def test_coarse_slab_recipe_trains_and_infers(datasets, tmp_path):
    """The shipped recipe's shape (coarse classes, 2.5-D slab net) end to end, one tiny epoch."""
    cfg = {**TINY, "net": {"arch": "slab_unet", "channels": [4, 4, 8, 8, 16]}, "classes": "coarse",
           "spacing_mm": 2.0, "patch_size": [16, 32, 32], "iterations_per_epoch": 1}
    result = train(TrainConfig.from_dict(cfg), datasets, tmp_path, Device("cpu"))
    spec = read_spec(result.model_path)
    assert spec.classes[1:3] == ("vertebrae_unlabelled", "sacrum") and spec.net.out_channels == 12
    header = open(tmp_path / "metrics.csv").readline()
    assert "dice_vertebrae_unlabelled" in header and "dice_vertebrae_L3" not in header
    model = load_model(result.model_path, Device("cpu"))
    hu, _ = synthetic_case(7)
    vol = Volume(hu, (2.0, 2.0, 2.0), affine(), AcquisitionInfo("CT"))
    for upsample in ("linear", "nearest"):
        amap = segment_anatomy(vol, model, Device("cpu"), upsample=upsample)
        assert amap.labels.shape == vol.shape and amap.labels.dtype == np.uint8
        assert set(np.unique(amap.labels)) <= {0} | {s.label for s in STRUCTURES}
    with pytest.raises(ConfigError, match="upsample"):
        segment_anatomy(vol, model, Device("cpu"), upsample="cubic")
