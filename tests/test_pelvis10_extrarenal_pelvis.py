"""classify(): a calculus in an extrarenal pelvis, medial to the estimated
renal sinus, is a renal stone of that side, not "other".

The renal pelvis often bulges out of the hilum; the rules estimate the
collecting system as the sinus inside the kidney's outline. Dev phantom 1609
(3 mm slices): a 6 mm stone in the renal pelvis lay with its nearest voxel
8.3 mm medial of the estimated sinus and was reported as "other", losing its
side."""

from __future__ import annotations

from dataclasses import replace

from calcdetect.classify import ClassifySettings, classify
from calcdetect.types import Kind
from classify_scene import box, measured_lesion, tube_scene

SHAPE = (20, 60, 80)  # k, j, i
SP = (1.0, 1.0, 1.0)


def _hilum_scene():
    """The right collecting system (sinus estimate) as a tube of radius 5 at i 60."""
    return tube_scene(SHAPE, SP, [("collecting_system_right", 30, 60, 5)])


def test_a_stone_9_mm_medial_of_the_sinus_estimate_is_a_renal_stone():
    vol, am = _hilum_scene()
    stone = box(SHAPE, 8, 13, 28, 33, 42, 47)  # 5 mm cube, nearest voxel 9 mm from the tube
    (f,) = classify([measured_lesion(vol, stone)], am, vol)
    assert (f.region, f.kind, f.side) == ("renal", Kind.STONE, "right")


def test_the_same_stone_beyond_the_reach_is_not_placed_in_the_kidney():
    # the reach is what places it: at the former 8 mm it was "other"
    vol, am = _hilum_scene()
    stone = box(SHAPE, 8, 13, 28, 33, 42, 47)
    (f,) = classify([measured_lesion(vol, stone)], am, vol, settings=replace(ClassifySettings(), renal_pelvis_mm=8.0))
    assert f.region == "other"
