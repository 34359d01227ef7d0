"""build_anatomy on a synthetic trunk: aorta, iliacs, kidneys, labels, FOV."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_synth import SPACING

from calcdetect.anatomy import build_anatomy, regions_in_fov
from calcdetect.anatomy.regions import Region, structure
from calcdetect.device import Device
from calcdetect.types import AnatomyMap


def _lab(name: str) -> int:
    return structure(name).label


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_aorta_found_anterior_left_of_the_spine(trunk, trunk_anatomy):
    labels = trunk_anatomy.labels
    aorta = labels == _lab("aorta")
    canal = labels == _lab("spinal_canal")
    truth = trunk.aorta
    above = np.flatnonzero(truth.any(axis=(1, 2)))
    above = above[above * SPACING[0] > trunk.bifurcation_z + 5.0]
    found = [k for k in above if aorta[k].any()]
    assert len(found) >= 0.9 * len(above)
    for k in [k for k in found if canal[k].any()]:
        ja, ia = np.argwhere(aorta[k]).mean(axis=0)
        jc, ic = np.argwhere(canal[k]).mean(axis=0)
        assert ia > ic + 5  # patient left: larger i
        assert ja < jc - 30  # anterior: smaller j
    # the wall margin makes the label larger than the lumen; it must cover it
    lumen = truth[above]
    assert (aorta[above] & lumen).sum() >= 0.95 * lumen.sum()
    assert trunk_anatomy.source["aorta"] == "rules"


def test_iliac_arteries_below_the_bifurcation(trunk, trunk_anatomy):
    labels = trunk_anatomy.labels
    kb = int(trunk.bifurcation_z / SPACING[0])
    for side in ("left", "right"):
        ids = [_lab(f"{seg}_iliac_artery_{side}") for seg in ("common", "external", "internal")]
        m = np.isin(labels, ids)
        assert m.any(), side
        assert np.flatnonzero(m.any(axis=(1, 2))).max() < kb + 3
    # left iliac is left of the right one
    lc = np.argwhere(labels == _lab("common_iliac_artery_left"))[:, 2].mean()
    rc = np.argwhere(labels == _lab("common_iliac_artery_right"))[:, 2].mean()
    assert lc > rc


def test_kidneys_both_sides_with_collecting_system(trunk, trunk_anatomy):
    labels = trunk_anatomy.labels
    for side in ("left", "right"):
        pred = np.isin(labels, [_lab(f"kidney_{side}"), _lab(f"kidney_medulla_{side}"),
                                _lab(f"collecting_system_{side}")])
        truth = trunk.kidneys[side] | trunk.sinus[side]
        assert _dice(pred, truth) > 0.8, side
        cs = labels == _lab(f"collecting_system_{side}")
        # most of the true sinus is labelled collecting system
        assert (cs & trunk.sinus[side]).sum() > 0.5 * trunk.sinus[side].sum()
        assert (labels == _lab(f"kidney_medulla_{side}")).any()
    # sides are not swapped: left kidney at larger i
    li = np.argwhere(labels == _lab("kidney_left"))[:, 2].mean()
    ri = np.argwhere(labels == _lab("kidney_right"))[:, 2].mean()
    assert li > ri


def test_map_is_consistent(trunk, trunk_anatomy):
    am = trunk_anatomy
    assert isinstance(am, AnatomyMap)
    assert am.labels.shape == trunk.volume.shape
    assert np.allclose(am.affine, trunk.volume.affine)
    assert am.labels.dtype == np.uint8
    assert "L3" in am.slice_levels and "L3-L4" in am.slice_levels
    assert _lab("vertebrae_L3") in np.unique(am.labels)
    assert all(regions_in_fov(am).values())


def test_regions_out_of_view_on_a_cropped_scan(trunk):
    """A thoracolumbar crop (T11-L1) has no iliac arteries in view."""
    l1 = next(s for s in trunk.segments if s[0] == "L1")
    k0 = int(l1[1] / SPACING[0]) - 4
    vol = trunk.volume
    aff = vol.affine.copy()
    aff[:3, 3] = vol.index_to_lps(np.array([k0, 0, 0]))
    from calcdetect.types import Volume

    crop = Volume(vol.array[k0:].copy(), vol.spacing, aff, vol.info)
    am = build_anatomy(crop, Device("cpu"))
    fov = regions_in_fov(am)
    assert fov[Region.AORTA]
    assert not fov[Region.ILIAC]
    assert not (np.isin(am.labels, [_lab("common_iliac_artery_left"), _lab("common_iliac_artery_right")])).any()


def test_bone_mask_shape_mismatch_is_a_clear_error(trunk):
    with pytest.raises(ValueError, match="bone_mask shape"):
        build_anatomy(trunk.volume, Device("cpu"), bone_mask=np.zeros((2, 2, 2), bool))


def test_ureter_zone_runs_caudally_from_each_kidney(trunk, trunk_anatomy):
    labels = trunk_anatomy.labels
    canal = labels == _lab("spinal_canal")
    for side, sign in (("left", 1), ("right", -1)):
        ureter = labels == _lab(f"ureter_{side}")
        kidney_ks = np.flatnonzero(np.isin(labels, [_lab(f"kidney_{side}"),
                                                    _lab(f"collecting_system_{side}")]).any(axis=(1, 2)))
        ks = np.flatnonzero(ureter.any(axis=(1, 2)))
        assert ks.size > 0, side
        assert ks.min() < kidney_ks.min()  # continues below the lower pole
        k = int(ks.min()) + 2
        ju, iu = np.argwhere(ureter[k]).mean(axis=0)
        jc, ic = np.argwhere(canal[k]).mean(axis=0)
        assert sign * (iu - ic) * SPACING[2] > 25.0  # beside the spine on its own side
        assert ju < jc  # anterior of the canal


def test_end_to_end_classification_on_built_anatomy(trunk, trunk_anatomy):
    """Rule anatomy -> classify: plaque -> aorta, sinus stone -> renal stone,
    pelvic ring -> phlebolith (never vascular or renal)."""
    from anatomy_synth import make_lesion

    from calcdetect.classify import classify
    from calcdetect.types import Kind

    vol = trunk.volume
    names = ["aortic_plaque", "renal_stone", "phlebolith"]
    lesions = [make_lesion(vol, trunk.lesions[n], central_lucency=(n == "phlebolith")) for n in names]
    plaque, stone, phleb = classify(lesions, trunk_anatomy, vol)
    assert (plaque.region, plaque.kind) == ("aorta", Kind.ATHEROSCLEROTIC)
    assert plaque.level == "L2"
    assert plaque.segment == "infrarenal"  # L2 lies below the renal hila (L1 lower end)
    assert (stone.region, stone.kind, stone.side) == ("renal", Kind.STONE, "left")
    assert (phleb.region, phleb.kind) == ("other", Kind.PHLEBOLITH)
