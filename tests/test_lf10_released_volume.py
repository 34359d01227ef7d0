"""The candidate stage records on each lesion how much of it was taken back from
the bone mask as ligamentum flavum calcium (``Lesion.released_ligament_mm3``):
classification trusts a small ligament calcification with such a core (issue #4)."""

from __future__ import annotations

import numpy as np
import pytest
from test_lf9_release import EDGE, make_arch

from calcdetect.candidates import find_candidates
from calcdetect.device import Device

CPU = Device("cpu")


@pytest.fixture(scope="module")
def arch():
    return make_arch(**EDGE)


def test_released_ligament_calcification_carries_its_released_volume(arch):
    vol, calc, _, zone = arch
    cands = find_candidates(vol, CPU, ligament_mask=zone)
    (les,) = {les.label: les for les in cands.lesions if (cands.labels[calc] == les.label).any()}.values()
    # Fused with the lamina on its interlaminar slice: most of it is released calcium.
    assert les.released_ligament_mm3 >= 0.5 * les.volume_mm3
    assert les.released_ligament_mm3 <= les.volume_mm3 + 1e-6


def test_without_the_ligament_zone_nothing_is_released(arch):
    vol, _, _, _ = arch
    cands = find_candidates(vol, CPU)
    assert all(les.released_ligament_mm3 == 0.0 for les in cands.lesions)
    assert np.isfinite([les.volume_mm3 for les in cands.lesions]).all()
