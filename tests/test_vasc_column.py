"""CT false positives in the aorta and iliac zones (issue 4): a sliver of the
vertebral column's cortex lying in the estimated aorta zone is bone, not plaque,
while a plaque of the same size away from the column, or a plaque against it,
stays aortic."""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.regions import Region
from calcdetect.classify import ClassifySettings, classify
from calcdetect.types import AnatomyMap, Kind, Volume
from classify_scene import box, measured_lesion, tube_scene

SHAPE = (20, 60, 60)  # k, j, i (j grows posteriorly)
SP = (1.0, 1.0, 1.0)


def _aorta_before_vertebra() -> tuple[Volume, AnatomyMap]:
    """An aorta zone (j 14-29) abutting a vertebral body (j 30-50), as the
    estimated zone does where it overlaps the front of the column."""
    return tube_scene(SHAPE, SP, [("aorta", 22, 30, 8), ("vertebrae_L1", 40, 30, 10)])


def _classify_one(mask: np.ndarray, peak: float = 1300.0):
    vol, am = _aorta_before_vertebra()
    les = measured_lesion(vol, mask, peak=peak)
    return classify([les], am, vol, threshold_hu=130.0, blood_pool_hu=40.0)[0]


def test_a_cortex_sliver_against_the_column_in_the_aorta_zone_is_bone():
    """A one-slice line of 8 mm3 in the aorta zone next to the vertebra (the
    anterior rim of an endplate left by the bone mask's margin) is not plaque."""
    sliver = box(SHAPE, 10, 11, 29, 30, 26, 34)
    assert sliver.sum() * np.prod(SP) < ClassifySettings().column_fragment_max_mm3
    f = _classify_one(sliver)
    assert f.region == Region.OTHER.value
    assert f.kind is Kind.BONE


def test_the_same_speck_on_the_anterior_wall_is_aortic_plaque():
    speck = box(SHAPE, 10, 11, 15, 16, 26, 34)
    f = _classify_one(speck)
    assert f.region == Region.AORTA.value
    assert f.kind is Kind.ATHEROSCLEROTIC


def test_a_plaque_against_the_column_is_still_aortic():
    """A posterior-wall plaque touching the column but larger than a sliver
    (84 mm3 over seven slices) is reported as aortic plaque."""
    plaque = box(SHAPE, 5, 12, 28, 30, 27, 33)
    assert plaque.sum() * np.prod(SP) >= ClassifySettings().column_fragment_max_mm3
    f = _classify_one(plaque)
    assert f.region == Region.AORTA.value


def test_a_sliver_is_plaque_when_the_rule_is_switched_off():
    """The setting is what decides: with no size allowance the sliver is plaque."""
    vol, am = _aorta_before_vertebra()
    les = measured_lesion(vol, box(SHAPE, 10, 11, 29, 30, 26, 34), peak=1300.0)
    f = classify([les], am, vol, ClassifySettings(column_fragment_max_mm3=0.0), threshold_hu=130.0,
                 blood_pool_hu=40.0)[0]
    assert f.region == Region.AORTA.value
