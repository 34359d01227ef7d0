"""The coarse class set, the 2.5-D slab net, counted levels, smooth upsampling and the fusion."""

import numpy as np
import pytest
import torch

from calcdetect.anatomy.regions import structure, vertebra_label
from calcdetect.nets.builders import NetConfig, SlabUNet, build_net
from calcdetect.nets.classes import (
    ANATOMY_CLASSES,
    COARSE_ANATOMY_CLASSES,
    class_remap_lut,
    class_set,
    classes_to_labels,
    labels_to_classes,
)
from calcdetect.nets.fusion import fuse_anatomy, trusted_classes
from calcdetect.nets.inference import upsample_argmax
from calcdetect.nets.levels import count_levels, label_vertebrae_by_level
from calcdetect.types import AnatomyMap

C = COARSE_ANATOMY_CLASSES


def test_coarse_classes_fold_children_into_parents():
    lab = np.array([vertebra_label("L3"), vertebra_label("S1"), structure("kidney_medulla_left").label,
                    structure("external_iliac_artery_right").label, structure("ureter_left").label,
                    structure("vertebrae_unlabelled").label], np.uint8)
    names = [C[c] for c in labels_to_classes(lab, C)]
    assert names == ["vertebrae_unlabelled", "sacrum", "kidney_left", "common_iliac_artery_right", "background",
                     "vertebrae_unlabelled"]
    # the full set is unchanged: per-vertebra classes, the unlabelled column is not a class there
    full = labels_to_classes(lab, ANATOMY_CLASSES)
    assert ANATOMY_CLASSES[full[0]] == "vertebrae_L3" and full[5] == 0
    lut = class_remap_lut(ANATOMY_CLASSES, C)
    assert C[lut[ANATOMY_CLASSES.index("internal_iliac_artery_left")]] == "common_iliac_artery_left"
    assert lut[255] == 255 and lut[0] == 0
    assert class_set("coarse") == C
    with pytest.raises(KeyError, match="coarse"):
        class_set("fine")
    with pytest.raises(ValueError):
        class_set(["aorta"])  # background must come first


def test_slab_unet_is_a_3d_net_of_2d_slices():
    torch.manual_seed(0)
    cfg = NetConfig(arch="slab_unet", out_channels=3, channels=(4, 4, 8, 8, 16))
    net = build_net(cfg)
    assert isinstance(net, SlabUNet) and cfg.divisor == 16
    x = torch.randn(2, 1, 5, 32, 32)
    y = net(x)
    assert y.shape == (2, 3, 5, 32, 32)
    # each output slice depends only on its +-2 neighbours
    x2 = x.clone()
    x2[:, :, 0] += 10.0
    net.eval()
    with torch.no_grad():
        a, b = net(x), net(x2)
    assert torch.allclose(a[:, :, 3:], b[:, :, 3:], atol=1e-5)
    assert not torch.allclose(a[:, :, :3], b[:, :, :3])
    net.chunk = 2  # chunked evaluation gives the same answer
    with torch.no_grad():
        assert torch.allclose(net(x), a, atol=1e-5)


def test_upsample_argmax_matches_trilinear_interpolation():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 5, 6, 7, generator=g)
    logits[0, :, :2, :] += 5  # some background for the bounding box to trim
    out_shape = (11, 13, 15)
    ref = torch.nn.functional.interpolate(logits[None], size=out_shape, mode="trilinear", align_corners=False)[0]
    want = torch.argmax(ref, dim=0).numpy()
    got = upsample_argmax(logits, out_shape, chunk=3)
    assert got.dtype == np.uint8 and got.shape == out_shape
    assert np.mean(got == want) > 0.999  # exact up to float rounding at ties
    assert not upsample_argmax(torch.zeros(3, 4, 4, 4) + torch.tensor([5.0, 0, 0])[:, None, None, None],
                               (8, 8, 8)).any()


def _column(nk: int = 60, top_level: int = 20) -> np.ndarray:
    """Coarse class map, k superior: sacrum 0-7, then disc 2 / body 6 alternating, canal behind."""
    m = np.zeros((nk, 20, 20), np.uint8)
    m[:, 12:15, 8:12] = C.index("spinal_canal")
    m[0:8, 4:11, 5:15] = C.index("sacrum")
    k = 8
    while k < nk:
        m[k:k + 2, 4:11, 6:14] = C.index("intervertebral_disc")
        m[k + 2:k + 8, 4:11, 6:14] = C.index("vertebrae_unlabelled")
        m[k:k + 8, 15:18, 9:11] = C.index("vertebrae_unlabelled")  # posterior elements span the disc
        k += 8
    return m


def test_levels_are_counted_from_the_sacrum():
    m = _column()
    levels = count_levels(m, C, (3.0, 1.0, 1.0), min_area_mm2=5.0)
    assert levels is not None
    assert levels[:8] == ("S1",) * 8
    assert levels[8:10] == ("L5-S1",) * 2
    assert levels[10:16] == ("L5",) * 6
    assert levels[16:18] == ("L4-L5",) * 2
    assert levels[18:24] == ("L4",) * 6
    assert levels[52] == "T12" and levels[58] is None  # a 2-slice sliver at the top is not counted
    # no sacrum: no count (the caller keeps the rules' levels)
    no_sac = m.copy()
    no_sac[no_sac == C.index("sacrum")] = 0
    assert count_levels(no_sac, C, (3.0, 1.0, 1.0), min_area_mm2=5.0) is None
    assert count_levels(m, ANATOMY_CLASSES[:3], (3.0, 1.0, 1.0)) is None
    lab = label_vertebrae_by_level(classes_to_labels(m, C), levels)
    assert (lab[12] == vertebra_label("L5")).sum() > 0
    assert (lab[9] == vertebra_label("L5")).sum() > 0  # disc slice: posterior elements go to the cranial level
    assert not (lab[:56] == structure("vertebrae_unlabelled").label).any()  # counted slices
    assert (lab[58] == structure("vertebrae_unlabelled").label).any()  # uncounted: stays unlabelled


def _amap(labels, levels, src):
    return AnatomyMap(labels, np.eye(4), tuple(levels), {"x": src}, ())


def test_the_cnn_aorta_does_not_take_the_rules_iliac_origins():
    aorta, cia = structure("aorta").label, structure("common_iliac_artery_right").label
    rules = np.full((1, 2, 2), cia, np.uint8)
    cnn = np.full((1, 2, 2), aorta, np.uint8)  # a coarse net without iliac classes calls their origins aorta
    r, c = _amap(rules, ["L4"], "rules"), _amap(cnn, ["L4"], "cnn")
    assert (fuse_anatomy(r, c, C, trusted=("aorta",), levels="rules").labels == cia).all()
    # a model trusted for the iliac arteries decides the bifurcation itself
    assert (fuse_anatomy(r, c, C, trusted=("aorta", "common_iliac_artery_right"), levels="rules").labels == aorta).all()


def test_fusion_trusts_the_cnn_but_keeps_rule_substructures():
    aorta, kid, med = structure("aorta").label, structure("kidney_left").label, structure("kidney_medulla_left").label
    lf, bowel, body = structure("ligamentum_flavum_zone").label, structure("bowel").label, structure("body").label
    rules = np.zeros((2, 4, 4), np.uint8)
    cnn = np.zeros((2, 4, 4), np.uint8)
    rules[0, 0, 0] = aorta  # the CNN says no aorta here -> body
    rules[0, 1, 1], cnn[0, 1, 1] = bowel, aorta  # the CNN wins over context organs
    rules[0, 2, 2], cnn[0, 2, 2] = med, kid  # the rules' medulla inside the CNN kidney is kept
    rules[0, 3, 3], cnn[0, 3, 3] = lf, structure("spinal_canal").label  # rules-only structure kept
    rules[1, 0, 0], cnn[1, 0, 0] = vertebra_label("L2"), vertebra_label("L3")
    r, c = _amap(rules, ["L1", "L2"], "rules"), _amap(cnn, ["L1", "L3"], "cnn")
    f = fuse_anatomy(r, c, C)
    assert f.labels[0, 0, 0] == body and f.labels[0, 1, 1] == aorta
    assert f.labels[0, 2, 2] == med and f.labels[0, 3, 3] == lf
    assert f.labels[1, 0, 0] == vertebra_label("L3") and f.slice_levels == ("L1", "L3")
    g = fuse_anatomy(r, c, C, levels="rules")
    assert g.labels[1, 0, 0] == vertebra_label("L2") and g.slice_levels == ("L1", "L2")
    # untrusted classes stay with the rules
    h = fuse_anatomy(r, c, C, trusted=("kidney_left",))
    assert h.labels[0, 0, 0] == aorta and h.labels[0, 1, 1] == bowel
    assert trusted_classes(C, {"fuse_classes": "aorta, kidney_left"}) == ("aorta", "kidney_left")
    assert trusted_classes(C, {"fuse_classes": "none"}) == () and trusted_classes(C, {}) == C[1:]
    assert np.array_equal(fuse_anatomy(r, c, C, trusted=(), levels="rules").labels, rules)
    with pytest.raises(ValueError, match="liver"):
        trusted_classes(C, {"fuse_classes": "liver"})
    with pytest.raises(ValueError):
        fuse_anatomy(r, c, C, levels="both")


@pytest.mark.parametrize("name", ["anatomy_phantom_v0", "anatomy_phantom_v1", "anatomy_phantom_v2", "anatomy_phantom_v3"])
def test_shipped_models_fuse_with_rules(name):
    """What ``calcdetect run --model`` does with a shipped model: segment, then fuse with the rules' map."""
    from pathlib import Path

    from calcdetect.device import Device
    from calcdetect.nets import anatomy_with_model, load_model
    from calcdetect.types import AcquisitionInfo, Volume

    path = Path(__file__).resolve().parents[2] / "models" / f"{name}.safetensors"
    if not path.is_file():
        pytest.skip(f"{path.name} is not shipped")
    model = load_model(path, Device("cpu"))
    rng = np.random.default_rng(0)
    hu = rng.normal(40, 20, (24, 40, 40)).astype(np.float32)
    hu[:, 25:35, 15:25] = 400.0  # a bony column
    aff = np.zeros((4, 4))
    aff[0, 2] = aff[1, 1] = aff[2, 0] = 3.0
    aff[3, 3] = 1.0
    vol = Volume(hu, (3.0, 3.0, 3.0), aff, AcquisitionInfo("CT"))
    rules_labels = np.zeros(vol.shape, np.uint8)
    rules_labels[:, 5:10, 5:10] = structure("ligamentum_flavum_zone").label
    rules = AnatomyMap(rules_labels, aff, (None,) * vol.shape[0], {"aorta": "rules"}, ())
    fused = anatomy_with_model(rules, vol, model, Device("cpu"), model_name=path.name)
    assert fused.labels.shape == vol.shape and fused.labels.dtype == np.uint8
    assert (fused.labels[:, 5:10, 5:10] == structure("ligamentum_flavum_zone").label).all()  # rules-only kept
    assert fused.source["model"] == path.name and len(fused.slice_levels) == vol.shape[0]


def test_fusion_choice_trusts_only_classes_the_cnn_measured_better_on():
    """A model's fusion list follows its measured Dice, and the evidence travels with it."""
    import json

    from calcdetect.nets.fusion import fusion_choice

    cnn = {"aorta": 0.93, "kidney_left": 0.88, "vertebrae_unlabelled": 0.91}
    rules = {"aorta": 0.74, "kidney_left": 0.90, "vertebrae_unlabelled": 0.91}
    extra = fusion_choice(cnn, rules, measured_on="seeds 200-209")
    assert trusted_classes(C, extra) == ("aorta",)  # a tie is not a win: the rules stay
    evidence = json.loads(extra["measured_dice"])
    assert evidence["cnn"]["kidney_left"] == 0.88 and evidence["rules"]["aorta"] == 0.74
    assert evidence["measured_on"] == "seeds 200-209"
    assert trusted_classes(C, fusion_choice({"aorta": 0.5}, {"aorta": 0.7}, measured_on="x")) == ()


@pytest.fixture(scope="module")
def v3_on_phantom_205():
    """v3, the rules and the network's map on a phantom v3 was not trained on (2 mm pixels, 2.5 mm slices)."""
    from pathlib import Path

    from calcdetect.anatomy import build_anatomy
    from calcdetect.bone import segment_bone
    from calcdetect.device import Device
    from calcdetect.nets import load_model, segment_anatomy
    from calcdetect.phantoms.ct import generate_ct_phantom, random_settings
    from calcdetect.types import AcquisitionInfo, Volume

    path = Path(__file__).resolve().parents[2] / "models" / "anatomy_phantom_v3.safetensors"
    if not path.is_file():
        pytest.skip("anatomy_phantom_v3 is not shipped")
    ph = generate_ct_phantom(random_settings(205, matrix=192, pixel_mm=2.0, slice_thickness_mm=2.5))
    vol = Volume(np.asarray(ph.hu, np.float32), tuple(ph.spacing), np.asarray(ph.affine), AcquisitionInfo("CT"))
    device = Device("cpu")
    model = load_model(path, device)
    rules = build_anatomy(vol, device, bone_mask=segment_bone(vol.array, vol.spacing, device))
    return ph, vol, model, rules, segment_anatomy(vol, model, device)


def test_v3_segments_the_iliac_arteries_and_the_fusion_names_their_segments(v3_on_phantom_205):
    """v2 never predicted the iliac arteries (Dice 0); v3 does, and the pipeline trusts it for them."""
    from calcdetect.nets.fusion import fuse_model_anatomy

    ph, vol, model, rules, cnn = v3_on_phantom_205
    assert {"common_iliac_artery_left", "common_iliac_artery_right"} <= set(trusted_classes(model.spec.classes,
                                                                                             model.spec.extra))
    for side in ("left", "right"):
        truth = np.isin(ph.anatomy_labels, [structure(f"{g}_iliac_artery_{side}").label
                                            for g in ("common", "external", "internal")])
        pred = cnn.labels == structure(f"common_iliac_artery_{side}").label  # one class per side
        assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) > 0.6, side
    fused = fuse_model_anatomy(rules, cnn, vol, model.spec)
    present = set(np.unique(fused.labels))
    assert structure("external_iliac_artery_left").label in present  # segments named from the rules
    assert fused.source["common_iliac_artery_left"] == "cnn+fat-plane"


def test_the_steps_after_the_fusion_give_the_same_map_in_their_box_as_on_the_whole_scan(v3_on_phantom_205):
    """The vessel and kidney steps run in the box around those structures (for speed); the map must not change."""
    from calcdetect.nets import fusion as F

    _, vol, model, rules, cnn = v3_on_phantom_205
    spec = model.spec
    boxed = F.fuse_model_anatomy(rules, cnn, vol, spec)
    plain = F.fuse_anatomy(rules, cnn, spec.classes, trusted=trusted_classes(spec.classes, spec.extra),
                           levels=spec.extra.get("fuse_levels", "cnn"))
    source = dict(plain.source)
    whole = F._vessels_and_kidneys_put_right(plain.labels.copy(), rules.labels, vol.array, vol.spacing, source)
    box = F._vessel_and_kidney_box(plain.labels, rules.labels, vol.spacing)
    assert box is not None and np.prod([b.stop - b.start for b in box]) < 0.6 * plain.labels.size
    assert not np.array_equal(whole, plain.labels)  # the steps did change the map
    assert np.array_equal(boxed.labels, whole)
    assert boxed.source == source


def test_the_spinal_canal_stays_the_rules_with_the_ligament_zone():
    """Phantom 2316: with v3's canal a ligamentum flavum fleck at T11 measured too deep and became 'other'."""
    from types import SimpleNamespace

    from calcdetect.nets.fusion import fuse_model_anatomy

    canal, aorta, body = structure("spinal_canal").label, structure("aorta").label, structure("body").label
    rules = np.full((4, 12, 12), body, np.uint8)
    rules[:, 2:5, 2:5] = canal
    rules[:, 8:10, 8:10] = aorta
    cnn = np.zeros_like(rules)
    cnn[:, 2:6, 2:6] = C.index("spinal_canal")  # the network's canal, a voxel wider
    cnn[:, 8:11, 8:11] = C.index("aorta")
    spec = SimpleNamespace(classes=C, extra={"fuse_classes": "spinal_canal,aorta", "fuse_levels": "rules"})
    volume = SimpleNamespace(array=np.full(rules.shape, 40.0, np.float32), spacing=(2.0, 1.0, 1.0))
    fused = fuse_model_anatomy(_amap(rules, [None] * 4, "rules"), _amap(cnn, [None] * 4, "cnn"), volume, spec)
    assert np.array_equal(fused.labels == canal, rules == canal)
    assert fused.source["aorta"] == "cnn+fat-plane" and fused.source.get("spinal_canal", "rules") == "rules"


def test_a_cnn_map_on_another_grid_leaves_the_rules_map_untouched():
    """fuse_anatomy hands the rules back on a grid mismatch; the boundary steps must not write into them."""
    from types import SimpleNamespace

    from calcdetect.nets.fusion import fuse_model_anatomy

    kidney, body = structure("kidney_left").label, structure("body").label
    rules = np.full((4, 30, 30), body, np.uint8)
    rules[:, 11:19, 11:19] = kidney  # the rules' kidney stops short of its capsule
    hu = np.full(rules.shape, 40.0, np.float32)
    hu[:, 3:27, 3:27] = -100.0  # perirenal fat
    hu[:, 9:21, 9:21] = 30.0  # the kidney out to its capsule: the growth step takes it
    before = rules.copy()
    cnn = np.zeros((4, 12, 12), np.uint8)
    spec = SimpleNamespace(classes=C, extra={"fuse_classes": "aorta", "fuse_levels": "rules"})
    volume = SimpleNamespace(array=hu, spacing=(2.0, 1.0, 1.0))
    fused = fuse_model_anatomy(_amap(rules, [None] * 4, "rules"), _amap(cnn, [None] * 4, "cnn"), volume, spec)
    assert np.array_equal(rules, before)
    assert fused.labels is not rules
