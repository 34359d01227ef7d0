"""CT false positives in the ureter zone (issue 4): at thin slices a 1.5 mm
thick disc of bone (an endplate rim chip beside the L5-S1 disc) is not a
ureteral stone; a 3 mm calculus at the same place is."""

from __future__ import annotations

from calcdetect.classify import ClassifySettings, classify
from calcdetect.types import Kind
from classify_scene import box, measured_lesion, tube_scene

SHAPE = (40, 60, 60)  # k, j, i
SP = (0.625, 1.0, 1.0)  # thin slices resolve a lesion's thickness


def _ureter_scene():
    """A left ureter zone (radius 6 mm) in soft tissue, far from any artery."""
    return tube_scene(SHAPE, SP, [("ureter_left", 30, 30, 6)])


def test_a_thin_disc_in_the_ureter_zone_at_thin_slices_is_not_a_stone():
    vol, am = _ureter_scene()
    chip = box(SHAPE, 20, 22, 28, 31, 28, 31)  # 3 x 3 mm across, 1.25 mm thick
    les = measured_lesion(vol, chip, peak=1350.0)
    assert les.axes_mm[2] < ClassifySettings().ureter_stone_min_axis_mm
    (f,) = classify([les], am, vol)
    assert f.kind is not Kind.URETERAL_STONE and f.region == "other"
    # the thickness is what decides: without the limit its shape passes as a calculus
    (f_off,) = classify([les], am, vol, ClassifySettings(ureter_stone_min_axis_mm=0.0))
    assert f_off.kind is Kind.URETERAL_STONE


def test_a_small_calculus_in_the_ureter_zone_is_a_stone():
    vol, am = _ureter_scene()
    stone = box(SHAPE, 18, 23, 28, 31, 28, 31)  # 3 x 3 x 3.1 mm
    (f,) = classify([measured_lesion(vol, stone, peak=1350.0)], am, vol)
    assert (f.region, f.kind, f.side) == ("renal", Kind.URETERAL_STONE, "left")


def test_at_thick_slices_the_thickness_is_not_judged():
    """At 3 mm slices a small stone on one slice measures one slice thick: the
    thickness rule does not apply there."""
    sp = (3.0, 1.0, 1.0)
    vol, am = tube_scene((12, 60, 60), sp, [("ureter_left", 30, 30, 6)])
    stone = box((12, 60, 60), 6, 7, 28, 31, 28, 31)
    (f,) = classify([measured_lesion(vol, stone, peak=1350.0)], am, vol)
    assert f.kind is Kind.URETERAL_STONE
