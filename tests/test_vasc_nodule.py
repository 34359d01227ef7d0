"""CT false positives beside the iliac arteries (issue 4): a round nodule of
dense bowel content lying just outside an iliac artery zone is not plaque of
that artery; a wall flake at the same place is."""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.regions import Region
from calcdetect.classify import ClassifySettings, classify
from calcdetect.types import AnatomyMap, Volume
from classify_scene import box, measured_lesion, tube_scene

SHAPE = (24, 60, 60)  # k, j, i
SP = (1.0, 1.0, 1.0)


def _iliac() -> tuple[Volume, AnatomyMap]:
    """A left external iliac artery zone of radius 5 mm (centre j 30, i 30)."""
    return tube_scene(SHAPE, SP, [("external_iliac_artery_left", 30, 30, 5)])


def _classify(mask: np.ndarray, settings: ClassifySettings | None = None):
    vol, am = _iliac()
    les = measured_lesion(vol, mask, peak=600.0)
    return classify([les], am, vol, settings, threshold_hu=130.0, blood_pool_hu=40.0)[0]


def _bowel_nodule() -> np.ndarray:
    """A 4 x 4 x 4 mm nodule 2 mm lateral of the zone's edge (i 37-40)."""
    return box(SHAPE, 10, 14, 28, 32, 37, 41)


def test_a_round_nodule_beside_an_iliac_artery_is_not_plaque():
    f = _classify(_bowel_nodule())
    assert f.region == Region.OTHER.value


def test_a_wall_flake_at_the_same_distance_is_iliac_plaque():
    """A flake (6 mm along the artery, 4 mm around it, 1 mm thick) just outside
    the zone is placed by distance as plaque of that artery."""
    flake = box(SHAPE, 9, 15, 28, 32, 36, 37)
    f = _classify(flake)
    assert f.region == Region.ILIAC.value
    assert f.side == "left"


def test_a_nodule_inside_the_artery_zone_stays_plaque():
    """The rule is for nodules mostly outside the zone: one filling the wall's
    estimate (a calcified nodule of the wall) is still that artery's plaque."""
    inside = box(SHAPE, 10, 14, 28, 32, 28, 32)
    f = _classify(inside)
    assert f.region == Region.ILIAC.value


def test_the_setting_restores_the_old_placement():
    f = _classify(_bowel_nodule(), ClassifySettings(nodule_outside_artery_is_plaque=True))
    assert f.region == Region.ILIAC.value
