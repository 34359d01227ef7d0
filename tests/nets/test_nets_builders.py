"""Network builders, class maps and config validation."""

import numpy as np
import pytest
import torch

from calcdetect.anatomy.regions import STRUCTURES, structure
from calcdetect.errors import ConfigError
from calcdetect.nets import (
    ANATOMY_CLASSES,
    RADIOGRAPH_CLASSES,
    REFINER_CLASSES,
    NetConfig,
    build_anatomy_net,
    build_calcium_refiner,
    build_radiograph_net,
    classes_to_labels,
    count_parameters,
    labels_to_classes,
)


def test_anatomy_classes_come_from_the_registry():
    assert ANATOMY_CLASSES[0] == "background"
    assert len(set(ANATOMY_CLASSES)) == len(ANATOMY_CLASSES)
    for name in ANATOMY_CLASSES[1:]:
        assert structure(name).name == name


def test_label_class_round_trip_for_every_class():
    labels = np.array([structure(n).label for n in ANATOMY_CLASSES[1:]], dtype=np.uint8)
    classes = labels_to_classes(labels)
    assert list(classes) == list(range(1, len(ANATOMY_CLASSES)))
    assert np.array_equal(classes_to_labels(classes), labels)


def test_merged_and_unsegmented_structures():
    medulla = structure("kidney_medulla_left").label
    liver = structure("liver").label
    out = labels_to_classes(np.array([medulla, liver, 0]))
    assert ANATOMY_CLASSES[out[0]] == "kidney_left"
    assert out[1] == 0 and out[2] == 0
    # every registry label maps somewhere in range
    all_labels = np.array([s.label for s in STRUCTURES])
    assert labels_to_classes(all_labels).max() < len(ANATOMY_CLASSES)


def test_labels_out_of_range_are_an_error():
    with pytest.raises(ValueError, match="0..255"):
        labels_to_classes(np.array([300]))
    with pytest.raises(ValueError, match="out of range"):
        classes_to_labels(np.array([len(ANATOMY_CLASSES)]))


@pytest.mark.parametrize(
    "arch,channels",
    [("basic_unet", (4, 4, 8, 8, 16)), ("unet", (4, 8, 16)), ("segresnet", (4, 8, 16)), ("dynunet", (4, 8, 16))],
)
def test_anatomy_net_shapes(arch, channels):
    cfg = NetConfig(arch=arch, channels=channels)
    net = build_anatomy_net(cfg).eval()
    n = cfg.divisor * 2  # the deepest level must keep more than one voxel
    with torch.no_grad():
        y = net(torch.zeros(1, 1, n, n, n))
    assert y.shape == (1, len(ANATOMY_CLASSES), n, n, n)


def test_default_anatomy_net_is_small():
    net = build_anatomy_net()
    assert count_parameters(net) * 4 <= 20 * 2**20  # <= 20 MB as float32


def test_refiner_and_radiograph_shapes():
    ref = build_calcium_refiner().eval()
    with torch.no_grad():
        assert ref(torch.zeros(3, 2, 32, 32, 32)).shape == (3, len(REFINER_CLASSES))
        rad = build_radiograph_net().eval()
        assert rad(torch.zeros(2, 1, 64, 48)).shape == (2, len(RADIOGRAPH_CLASSES), 64, 48)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"arch": "resnet9000"}, "unknown"),
        ({"arch": "basic_unet", "channels": (4, 8)}, "5 channel widths"),
        ({"spatial_dims": 4}, "spatial_dims"),
        ({"norm": "group"}, "norm"),
        ({"channels": (4, 0, 8, 8, 8)}, "positive"),
    ],
)
def test_bad_net_configs(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        NetConfig(**kwargs)


def test_builders_reject_wrong_family():
    with pytest.raises(ConfigError):
        build_anatomy_net(NetConfig(spatial_dims=2))
    with pytest.raises(ConfigError):
        build_radiograph_net(NetConfig(spatial_dims=3))
    with pytest.raises(ConfigError):
        build_calcium_refiner(NetConfig())
    with pytest.raises(ConfigError, match="unknown net config keys"):
        NetConfig.from_dict({"arch": "unet", "width": 3})


def test_refiner_patches_and_scores():
    from calcdetect.device import Device
    from calcdetect.nets.refiner import extract_candidate_patches, score_candidates
    from calcdetect.types import AcquisitionInfo, Lesion, Volume

    hu = np.full((20, 30, 30), -50.0, np.float32)
    comp = np.zeros(hu.shape, np.int32)
    hu[9:12, 14:17, 14:17] = 600.0
    comp[9:12, 14:17, 14:17] = 3
    vol = Volume(hu, (2.0, 0.5, 0.5), np.diag([2.0, 0.5, 0.5, 1.0]), AcquisitionInfo("CT"))

    def lesion(label, c):
        return Lesion(label, (0, 0, 0, 1, 1, 1), np.ones((1, 1, 1), bool), 1, 1.0, 0.0, 0.0, 600.0, 600.0,
                      (0.0, 0.0, 0.0), c, 1.0)

    patches = extract_candidate_patches(vol, comp, [lesion(3, (10.0, 15.0, 15.0)), lesion(9, (0.0, 0.0, 0.0))], size=8)
    assert patches.shape == (2, 2, 8, 8, 8)
    assert patches[0, 1].sum() > 0 and patches[1, 1].sum() == 0  # mask only of its own component
    assert patches[0, 0].max() == pytest.approx(0.6)  # 600 HU / 1000
    assert patches[1, 0].min() == pytest.approx(-1.0)  # outside the volume reads as air
    ref = build_calcium_refiner(NetConfig(arch="refiner_cnn", in_channels=2, out_channels=2, channels=(4, 8)))
    p = score_candidates(patches, ref, Device("cpu"))
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))
