"""CT false positives in front of the aorta (issue 4): plaque beyond the
aorta zone's estimate lies within a few mm of it; a calcified flake 8 mm in
front of the zone (costal cartilage there) is not aortic plaque."""

from __future__ import annotations

from calcdetect.anatomy.regions import Region
from calcdetect.classify import ClassifySettings, classify
from classify_scene import box, measured_lesion, tube_scene

SHAPE = (20, 60, 60)  # k, j, i (j grows posteriorly)
SP = (1.0, 1.0, 1.0)


def _flake_in_front_of_the_aorta(gap_mm: int, settings: ClassifySettings | None = None):
    """A 6 x 6 mm flake, one voxel thick, ``gap_mm`` in front of an aorta zone
    whose front edge is at j 22, in soft tissue."""
    vol, am = tube_scene(SHAPE, SP, [("aorta", 30, 30, 8)])
    j = 22 - gap_mm
    flake = box(SHAPE, 7, 13, j, j + 1, 27, 33)
    les = measured_lesion(vol, flake, peak=600.0)
    return classify([les], am, vol, settings, threshold_hu=130.0, blood_pool_hu=40.0)[0]


def test_a_flake_just_beyond_the_aorta_zone_is_aortic_plaque():
    f = _flake_in_front_of_the_aorta(5)
    assert f.region == Region.AORTA.value


def test_a_flake_8mm_in_front_of_the_aorta_zone_is_not_aortic():
    f = _flake_in_front_of_the_aorta(8)
    assert f.region == Region.OTHER.value


def test_the_iliac_reach_still_applies_to_the_aorta_when_set():
    f = _flake_in_front_of_the_aorta(8, ClassifySettings(aorta_wall_reach_mm=10.0))
    assert f.region == Region.AORTA.value
