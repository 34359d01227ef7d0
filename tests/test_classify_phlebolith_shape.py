"""classify(): a phlebolith is a round nodule; a small flake of internal iliac
plaque just outside the artery zone's estimate is plaque, not a phlebolith.

Both are small and round in their own plane and lie in the pelvis below the
bifurcation; what tells them apart is thickness: a phlebolith is as thick as
it is wide, a wall flake about half or less (dev phantom s1202: a 2.7 mm
internal iliac plaque, 4.6 mm outside the zone, measured 3.9 x 2.7 x 1.8 mm
and was called a phlebolith)."""

from __future__ import annotations

import numpy as np

from calcdetect.classify import classify
from calcdetect.types import AcquisitionInfo, AnatomyMap, Kind, Volume
from classify_scene import affine, box, disk, label, measured_lesion

SHAPE = (20, 60, 60)  # k, j, i; k grows cranially
SP = (1.0, 1.0, 1.0)


def _pelvis_scene() -> tuple[Volume, AnatomyMap]:
    """Aorta above k 15 (the bifurcation), the left internal iliac zone below it."""
    labels = np.full(SHAPE, label("body"), dtype=np.uint8)
    for k in range(SHAPE[0]):
        if k >= 15:
            labels[k][disk(SHAPE, 30, 30, 6)] = label("aorta")
        else:
            labels[k][disk(SHAPE, 30, 45, 4)] = label("internal_iliac_artery_left")
    am = AnatomyMap(labels=labels, affine=affine(SP), slice_levels=(None,) * SHAPE[0])
    vol = Volume(np.zeros(SHAPE, np.float32), SP, affine(SP), AcquisitionInfo("CT", kvp=120.0))
    return vol, am


def test_a_small_flake_beside_the_internal_iliac_zone_is_plaque_not_a_phlebolith():
    vol, am = _pelvis_scene()
    flake = box(SHAPE, 4, 9, 39, 41, 43, 47)  # 5 x 4 x 2 mm, 5 mm behind the zone
    les = measured_lesion(vol, flake)
    assert les.elongation < 0.4 and les.axes_mm[2] / les.axes_mm[0] < 0.5
    (f,) = classify([les], am, vol)
    assert (f.region, f.kind, f.side) == ("iliac", Kind.ATHEROSCLEROTIC, "left")
    assert f.structure == "internal_iliac_artery_left"


def test_a_round_nodule_at_the_same_place_stays_a_phlebolith():
    vol, am = _pelvis_scene()
    nodule = box(SHAPE, 4, 8, 39, 43, 43, 47)  # 4 mm cube
    (f,) = classify([measured_lesion(vol, nodule)], am, vol)
    assert (f.region, f.kind) == ("other", Kind.PHLEBOLITH)
