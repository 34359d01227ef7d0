"""Dataset layouts, class mapping, fingerprint cache, split, config parsing."""

import json

import numpy as np
import pytest

from calcdetect.errors import ConfigError, InputError
from calcdetect.nets import ANATOMY_CLASSES
from calcdetect.nets.classes import class_set
from calcdetect.nets.classes import class_index
from calcdetect.training import TrainConfig, class_for_name, discover_cases, load_case, weak_calcium_mask
from calcdetect.training.datasets import IGNORE_INDEX, parse_seeds
from calcdetect.training.nifti import read_nifti_kji, write_nifti_kji
from calcdetect.training.preprocess import prepare_cases, split_cases
from synthetic_layouts import SHAPE, affine, make_nnunet, make_totalsegmentator, synthetic_case


def test_totalsegmentator_names_map_to_our_classes():
    assert ANATOMY_CLASSES[class_for_name("iliac_artery_right")] == "common_iliac_artery_right"
    assert ANATOMY_CLASSES[class_for_name("vertebrae_S1")] == "sacrum"
    assert ANATOMY_CLASSES[class_for_name("spinal_cord")] == "spinal_canal"
    assert class_for_name("liver") is None


def test_totalsegmentator_layout(tmp_path):
    cases = discover_cases("totalsegmentator", make_totalsegmentator(tmp_path / "ts"))
    assert [c.case_id for c in cases] == ["totalsegmentator:s0000", "totalsegmentator:s0001"]
    data = load_case(cases[0])
    hu, masks = synthetic_case(0)
    assert np.allclose(data.image, hu)
    assert np.array_equal(data.labels == class_index("aorta"), masks["aorta"])
    assert np.array_equal(data.labels == class_index("kidney_left"), masks["kidney_left"])
    assert data.annotated[class_index("aorta")] and not data.annotated[class_index("kidney_right")]


def test_nnunet_layout_with_ignore(tmp_path):
    cases = discover_cases("nnunet", make_nnunet(tmp_path / "nn", with_ignore=True))
    assert len(cases) == 2
    data = load_case(cases[1])
    assert (data.labels[:2] == IGNORE_INDEX).all()
    assert (data.labels == class_index("vertebrae_L3")).any()


def test_msd_style_labels(tmp_path):
    root = make_nnunet(tmp_path / "msd")
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {str(v): k for k, v in meta["labels"].items()}
    (root / "dataset.json").write_text(json.dumps(meta))
    for p in (root / "imagesTr").iterdir():
        p.rename(p.with_name(p.name.replace("_0000", "")))
    data = load_case(discover_cases("msd", root)[0])
    assert (data.labels == class_index("aorta")).any()


def test_dataset_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset kind"):
        discover_cases("kaggle", tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        discover_cases("nnunet", tmp_path / "missing")
    with pytest.raises(InputError, match="dataset.json"):
        discover_cases("nnunet", tmp_path)
    with pytest.raises(InputError, match="TotalSegmentator"):
        discover_cases("totalsegmentator", tmp_path)
    with pytest.raises(InputError, match="no DICOM SEG"):
        discover_cases("dicomseg", tmp_path)
    root = make_nnunet(tmp_path / "nn")
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "tumour": 1}}))
    with pytest.raises(InputError, match="match our classes"):
        discover_cases("nnunet", root)


def test_seed_lists():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    with pytest.raises(ConfigError):
        parse_seeds("a-b")
    assert [c.case_id for c in discover_cases("phantom", "4-5")] == ["phantom:4", "phantom:5"]


def test_nifti_reader_reorients_ras_files(tmp_path):
    import nibabel as nib

    arr = np.zeros((4, 5, 6), np.float32)  # stored [x, y, z]; RAS+ affine: index 0 grows to the Right
    arr[0, 0, 0] = 7.0
    ras = np.diag([1.0, 1.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(arr, ras), str(tmp_path / "r.nii.gz"))
    out, spacing, aff = read_nifti_kji(tmp_path / "r.nii.gz")
    assert out.shape == (6, 5, 4) and spacing == (2.0, 1.0, 1.0)
    k, j, i = np.argwhere(out == 7.0)[0]
    # voxel (x=0,y=0,z=0) in RAS is LPS (0, 0, 0); our grid must agree
    assert np.allclose(aff @ [k, j, i, 1], [0, 0, 0, 1])
    # i increases to the patient's Left in LPS (x grows), j to Posterior
    assert aff[0, 2] > 0 and aff[1, 1] > 0 and aff[2, 0] > 0
    write_nifti_kji(out, aff, tmp_path / "back.nii.gz")
    again, _, aff2 = read_nifti_kji(tmp_path / "back.nii.gz")
    assert np.array_equal(again, out) and np.allclose(aff2, aff)


def test_fingerprint_is_cached_and_split_is_deterministic(tmp_path):
    cases = discover_cases("nnunet", make_nnunet(tmp_path / "nn", n=3))
    run = tmp_path / "run"
    prepared, fp = prepare_cases(cases, run, (4.0, 4.0, 4.0))
    assert [p.shape for p in prepared] == [(16, 16, 16)] * 3
    assert fp["target_spacing_mm"] == [4.0, 4.0, 4.0]
    assert fp["foreground_intensity"]["percentile_99_5"] > fp["foreground_intensity"]["percentile_00_5"]
    mtime = (run / "fingerprint.json").stat().st_mtime_ns
    _, fp2 = prepare_cases(cases, run, (4.0, 4.0, 4.0))
    assert fp2 == fp and (run / "fingerprint.json").stat().st_mtime_ns == mtime
    ids = [f"c{i}" for i in range(50)]
    tr, va = split_cases(ids, 0.2)
    tr2, va2 = split_cases(ids[::-1], 0.2)
    assert set(tr2) == set(tr) and set(va2) == set(va)  # order-independent
    assert set(tr).isdisjoint(va) and set(tr) | set(va) == set(ids) and 3 <= len(va) <= 20
    assert split_cases(["a", "b"], 0.01)[1]  # one case always held out
    assert split_cases(["a"], 0.5) == (["a"], [])


def test_weak_calcium_mask():
    labels = np.zeros((8, 8, 8), np.uint8)
    image = np.zeros((8, 8, 8), np.float32)
    labels[1:3, 1:3, 1:3] = class_index("aorta")
    labels[5:7, 5:7, 5:7] = class_index("vertebrae_L1")
    image[1, 1, 1] = 300  # calcium in the aorta
    image[5, 5, 5] = 800  # bone
    image[2, 2, 2] = 100  # below threshold
    m = weak_calcium_mask(image, labels)
    assert m.sum() == 1 and m[1, 1, 1]


def test_train_config_yaml(tmp_path):
    cfg = TrainConfig.from_yaml("configs/train.yaml")
    assert cfg.net.out_channels == len(cfg.class_names)
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    assert TrainConfig.from_yaml(p) == cfg
    p.write_text("epochs: 3\nlearning_rte: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rte"):
        TrainConfig.from_yaml(p)
    p.write_text("patch_size: [60, 64, 64]\n")
    with pytest.raises(ConfigError, match="multiples"):
        TrainConfig.from_yaml(p)
    coarse_recipe = TrainConfig.from_yaml("configs/train_coarse.yaml")
    assert coarse_recipe.net.arch == "slab_unet" and coarse_recipe.class_names == class_set("coarse")
    # class sets: the default net width follows the set; a mismatch or an unknown set is an error
    assert TrainConfig.from_dict({}).net.out_channels == len(ANATOMY_CLASSES)
    coarse = TrainConfig.from_dict({"classes": "coarse"})
    assert coarse.net.out_channels == 12 and coarse.class_names[1] == "vertebrae_unlabelled"
    assert TrainConfig.from_dict({"classes": "coarse", "net": {"arch": "unet"}}).net.out_channels == 12
    assert TrainConfig.from_dict({"classes": ["background", "aorta"]}).net.out_channels == 2
    with pytest.raises(ConfigError, match="out_channels=12"):
        TrainConfig.from_dict({"classes": "coarse", "net": {"out_channels": 40}})
    with pytest.raises(ConfigError, match="class set"):
        TrainConfig.from_dict({"classes": "everything"})
    with pytest.raises(ConfigError, match="liver_x"):
        TrainConfig.from_dict({"classes": ["background", "liver_x"]})
    p.write_text("augment: {affine_prob: 2}\n")
    with pytest.raises(ConfigError, match="affine_prob"):
        TrainConfig.from_yaml(p)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "none.yaml")


def test_parse_data_spec():
    from pathlib import Path

    from calcdetect.training import parse_data_spec

    assert parse_data_spec("nnUNet=/d/x=y") == ("nnunet", Path("/d/x=y"))
    with pytest.raises(ConfigError, match="KIND=PATH"):
        parse_data_spec("/data")
    with pytest.raises(ConfigError, match="unknown kind"):
        parse_data_spec("kaggle=/data")
