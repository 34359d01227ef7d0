"""classify(): a ureteral stone crossing an iliac artery, seen at thick slices.

The slice profile stretches a round calculus along z by up to about a slice, so
at 3 mm slices a 4-5 mm stone in the iliac zone measures longer than it is wide.
It is still a ureteral stone where the ureter crosses; a plaque flake there is
still plaque."""

from __future__ import annotations

from calcdetect.classify import classify
from calcdetect.types import AnatomyMap, Kind, Volume
from classify_scene import box, label, measured_lesion, tube_scene

SHAPE = (12, 60, 60)  # k, j, i
SP = (3.0, 1.0, 1.0)  # thick slices


def _crossing_scene() -> tuple[Volume, AnatomyMap]:
    """A left external iliac zone (j 30) with the ureter zone just in front of it (j 16)."""
    return tube_scene(SHAPE, SP, [("ureter_left", 16, 40, 6), ("external_iliac_artery_left", 30, 40, 7)])


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


# Thin slices, where the ureter zone and an artery zone overlap at the crossing.
SHAPE_THIN = (12, 50, 50)
SP_THIN = (1.0, 1.0, 1.0)


def _overlap_scene() -> tuple[Volume, AnatomyMap]:
    """The left ureter zone (j 20) overlapping the front of the left external iliac zone (j 30)."""
    return tube_scene(SHAPE_THIN, SP_THIN, [("ureter_left", 20, 40, 6), ("external_iliac_artery_left", 30, 40, 7)])


def test_a_wall_speck_mostly_in_the_ureter_zone_at_the_crossing_is_plaque():
    """A 2-3 mm plaque on the front wall measures about 5 x 3 x 2 mm: oval and
    not flat enough to be ruled out as a calculus by shape, but no nodule. Most
    of it in the ureter zone, it was called a ureteral stone (dev phantoms
    s1123, s1125, s51); touching the artery zone, it is that artery's plaque."""
    vol, am = _overlap_scene()
    speck = box(SHAPE_THIN, 4, 9, 22, 24, 38, 41)
    labs = am.labels[speck]
    assert (labs == label("ureter_left")).sum() > (labs == label("external_iliac_artery_left")).sum() > 0
    (f,) = classify([measured_lesion(vol, speck)], am, vol)
    assert (f.region, f.kind, f.side) == ("iliac", Kind.ATHEROSCLEROTIC, "left")
    assert f.structure == "external_iliac_artery_left"


def test_a_round_stone_in_the_ureter_zone_at_the_crossing_stays_a_ureteral_stone():
    vol, am = _overlap_scene()
    stone = box(SHAPE_THIN, 4, 9, 19, 24, 38, 43)  # 5 mm cube touching the artery zone
    assert (am.labels[stone] == label("external_iliac_artery_left")).any()
    (f,) = classify([measured_lesion(vol, stone)], am, vol)
    assert (f.region, f.kind, f.side) == ("renal", Kind.URETERAL_STONE, "left")


def test_a_plaque_flake_grazing_the_ureter_zone_beyond_the_artery_zone_is_plaque():
    """A long flake of external iliac plaque, 8 mm outside the artery zone's
    estimate (the pelvic zones miss by up to ~10 mm), with a corner in the
    ureter zone: without that zone it is plaque beyond the wall; the corner
    made it "other" (dev phantom s1106, a 24 mm plaque)."""
    vol, am = tube_scene(SHAPE_THIN, SP_THIN, [("ureter_right", 20, 20, 5), ("external_iliac_artery_right", 40, 20, 6)])
    flake = box(SHAPE_THIN, 3, 9, 24, 27, 8, 32)  # 24 x 6 x 3 mm
    in_ureter = (am.labels[flake] == label("ureter_right")).mean()
    assert 0 < in_ureter < 0.5
    (f,) = classify([measured_lesion(vol, flake)], am, vol)
    assert (f.region, f.kind, f.side) == ("iliac", Kind.ATHEROSCLEROTIC, "right")
    assert f.structure == "external_iliac_artery_right"


def test_a_stone_just_past_the_ureter_zone_end_beside_the_iliac_artery_is_a_ureteral_stone():
    """A round 4 mm calculus 2 mm below the (coarse) ureter zone's last slice and
    3 mm from the internal iliac zone: with the ureter zone the nearer, the
    artery claimed it as plaque; with the artery zone the nearer, the iliac
    rule called it a ureteral stone (dev phantom s23: a 5.3 mm stone). Which
    estimate is a millimetre nearer must not decide; a flake there is plaque."""
    vol, am = tube_scene(SHAPE_THIN, SP_THIN, [("ureter_right", 20, 20, 5), ("internal_iliac_artery_right", 33, 20, 5)])
    below = am.labels[:7]
    below[below == label("ureter_right")] = label("body")  # the ureter zone ends at slice 7
    stone = box(SHAPE_THIN, 2, 6, 22, 26, 18, 22)
    flake = box(SHAPE_THIN, 2, 6, 24, 26, 14, 26)  # 12 x 4 x 2 mm, same place
    f_stone, f_flake = classify([measured_lesion(vol, stone), measured_lesion(vol, flake)], am, vol)
    assert (f_stone.region, f_stone.kind, f_stone.side) == ("renal", Kind.URETERAL_STONE, "right")
    assert (f_flake.region, f_flake.kind, f_flake.side) == ("iliac", Kind.ATHEROSCLEROTIC, "right")
