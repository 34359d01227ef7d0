"""classify(): a ureteral stone crossing an iliac artery, seen at thick slices.

The slice profile stretches a round calculus along z by up to about a slice, so
at 3 mm slices a 4-5 mm stone in the iliac zone measures longer than it is wide.
It is still a ureteral stone where the ureter crosses; a plaque flake there is
still plaque."""

from __future__ import annotations

import numpy as np

from calcdetect.classify import classify
from calcdetect.types import AcquisitionInfo, AnatomyMap, Kind, Lesion, Volume
from classify_scene import affine, box, disk, label, measured_lesion

SHAPE = (12, 60, 60)  # k, j, i
SP = (3.0, 1.0, 1.0)  # thick slices


def _crossing_scene() -> tuple[Volume, AnatomyMap]:
    """A left external iliac zone (j 30) with the ureter zone just in front of it (j 16)."""
    labels = np.full(SHAPE, label("body"), dtype=np.uint8)
    for k in range(SHAPE[0]):
        labels[k][disk(SHAPE, 16, 40, 6)] = label("ureter_left")
        labels[k][disk(SHAPE, 30, 40, 7)] = label("external_iliac_artery_left")
    am = AnatomyMap(labels=labels, affine=affine(SP), slice_levels=(None,) * SHAPE[0])
    vol = Volume(np.zeros(SHAPE, np.float32), SP, affine(SP), AcquisitionInfo("CT", kvp=120.0))
    return vol, am


def test_a_stone_stretched_by_thick_slices_in_the_iliac_zone_is_a_ureteral_stone():
    vol, am = _crossing_scene()
    # 4 x 4 mm across, on two 3 mm slices: measured 6 x 4 x 4 mm (roundness
    # 0.67, which the old rule read as plaque of the artery it lies in).
    stone = box(SHAPE, 5, 7, 24, 28, 38, 42)
    assert (am.labels[stone] == label("external_iliac_artery_left")).all()
    les = measured_lesion(vol, stone)
    assert les.axes_mm[2] / les.axes_mm[0] < 0.7
    (f,) = classify([les], am, vol)
    assert (f.region, f.kind, f.side) == ("renal", Kind.URETERAL_STONE, "left")


def test_a_wall_flake_on_thick_slices_in_the_iliac_zone_stays_plaque():
    vol, am = _crossing_scene()
    # A flake of the anterior wall: 9 mm wide, 2 mm deep, on two slices.
    flake = box(SHAPE, 5, 7, 25, 27, 36, 45)
    assert (am.labels[flake] == label("external_iliac_artery_left")).all()
    (f,) = classify([measured_lesion(vol, flake)], am, vol)
    assert (f.region, f.kind, f.side) == ("iliac", Kind.ATHEROSCLEROTIC, "left")
    assert f.structure == "external_iliac_artery_left"


def test_a_plaque_speck_on_thick_slices_in_the_iliac_zone_stays_plaque():
    # A 3 mm plaque at 3 mm slices: 3 x 3 mm across on two slices, round once
    # the stretch along z is discounted, but no thicker across than the wall.
    vol, am = _crossing_scene()
    speck = box(SHAPE, 5, 7, 25, 28, 38, 41)
    assert (am.labels[speck] == label("external_iliac_artery_left")).all()
    (f,) = classify([measured_lesion(vol, speck)], am, vol)
    assert (f.region, f.kind, f.side) == ("iliac", Kind.ATHEROSCLEROTIC, "left")
