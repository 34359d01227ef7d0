"""classify(): the ureter zone beside the iliac arteries -- a calculus there is a
ureteral stone, a wall plaque flake is not (it stays with its artery)."""

from __future__ import annotations

from calcdetect.classify import classify
from calcdetect.types import AnatomyMap, Kind, Volume
from classify_scene import box, label, measured_lesion, tube_scene

SHAPE = (20, 60, 60)  # k, j, i
SP = (2.0, 1.0, 1.0)


def _pelvic_scene() -> tuple[Volume, AnatomyMap]:
    """A left internal iliac zone (j 30) with the ureter zone in front of it (j 18)."""
    return tube_scene(SHAPE, SP, [("ureter_left", 18, 40, 8), ("internal_iliac_artery_left", 30, 40, 6)])


def test_a_plaque_flake_in_the_ureter_zone_beside_an_artery_stays_iliac_plaque():
    # One slice, 10 x 5 mm: oval in its plane, but a flake of the anterior
    # wall, lying just in front of the internal iliac zone (2 mm off it).
    vol, am = _pelvic_scene()
    flake = box(SHAPE, 10, 11, 20, 22, 35, 45)
    assert (am.labels[flake] == label("ureter_left")).all()
    (f,) = classify([measured_lesion(vol, flake)], am, vol)
    assert (f.region, f.kind, f.side) == ("iliac", Kind.ATHEROSCLEROTIC, "left")
    assert f.structure == "internal_iliac_artery_left"


def test_a_flake_far_from_the_arteries_in_the_ureter_zone_is_not_a_stone():
    vol, am = _pelvic_scene()
    # 10 x 6 mm in its plane (oval enough for a stone seen end-on) but one
    # 2 mm slice thick, 6 mm in front of the artery's zone
    flake = box(SHAPE, 10, 11, 12, 18, 35, 45)
    assert (am.labels[flake] == label("ureter_left")).mean() > 0.5
    (f,) = classify([measured_lesion(vol, flake)], am, vol)
    assert f.kind is not Kind.URETERAL_STONE and f.region == "other"


def test_a_calculus_in_the_ureter_zone_beside_an_artery_is_a_ureteral_stone():
    vol, am = _pelvic_scene()
    stone = box(SHAPE, 9, 12, 18, 23, 38, 43)  # 6 x 5 x 5 mm, 1 mm off the artery's zone
    (f,) = classify([measured_lesion(vol, stone)], am, vol)
    assert (f.region, f.kind, f.side) == ("renal", Kind.URETERAL_STONE, "left")


def test_a_calculus_beyond_the_lower_end_of_the_ureter_zone_is_not_placed_in_it():
    # The zone stops above the lower pelvis: a round calcification just below
    # its end (a phlebolith there looks the same) is not a ureteral stone, one
    # at the same distance beside the zone within its slices is.
    vol, am0 = _pelvic_scene()
    labels = am0.labels.copy()
    labels[:8][labels[:8] == label("ureter_left")] = label("body")
    am = AnatomyMap(labels=labels, affine=am0.affine, slice_levels=am0.slice_levels)
    below = box(SHAPE, 6, 8, 16, 20, 38, 42)  # its slices end 2 mm below the zone's last one (k 8)
    beside = box(SHAPE, 10, 12, 16, 20, 50, 54)  # 2 mm lateral of the zone's edge
    f_below, f_beside = classify([measured_lesion(vol, below), measured_lesion(vol, beside)], am, vol)
    assert f_below.kind is not Kind.URETERAL_STONE and f_below.region == "other"
    assert (f_beside.region, f_beside.kind) == ("renal", Kind.URETERAL_STONE)
