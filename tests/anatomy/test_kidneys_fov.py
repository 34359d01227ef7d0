"""Kidneys cut by the field of view, and the pelvic ureter zone.

A scan that starts at L1 (a lumbar spine CT) cuts the kidneys' upper poles: the
kidney search must accept a kidney reaching the scan's first or last slice,
while an organ cut by the scan that is not a kidney (the liver's posterior
lobe, a bowel loop in front of the column) is still rejected.
"""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_synth import SPACING, VB_CENTRE_J_MM, make_ct

from calcdetect.anatomy.kidneys import KidneySettings, find_kidneys, pelvic_ureter_zone
from calcdetect.anatomy.spine import body_masks, find_spine


@pytest.fixture(scope="module")
def spine_of_trunk(trunk):
    hu = trunk.volume.array
    spine = find_spine(hu, SPACING, bone=hu >= 200.0, body=body_masks(hu))
    assert spine.found
    return spine


def _kidney_centre_k(trunk) -> int:
    k = np.flatnonzero(trunk.kidneys["left"].any(axis=(1, 2)))
    return int(round(k.mean()))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.mark.parametrize("cut", ["first_slices_above", "last_slices_below"])
def test_a_kidney_cut_by_the_scan_edge_is_found(trunk, spine_of_trunk, cut):
    # Keep the kidneys' lower 60 % (scan starting mid-kidney) or upper 60 %.
    kc = _kidney_centre_k(trunk)
    margin = int(round(10.0 / SPACING[0]))
    keep = slice(0, kc + margin) if cut == "first_slices_above" else slice(kc - margin, None)
    hu = trunk.volume.array[keep]
    nk = hu.shape[0]
    spine_mask = (spine_of_trunk.column | spine_of_trunk.bodies)[keep]
    # The level range stops two slices short of the edge (a partly seen
    # vertebra has no level): the edge must still count as the scan's edge.
    k_range = (0, nk - 3) if cut == "first_slices_above" else (2, nk - 1)
    found = find_kidneys(hu, SPACING, spine_of_trunk.body_centre[keep], spine_mask, k_range=k_range, workers=1)
    assert set(found) == {"left", "right"}
    for side in ("left", "right"):
        truth = (trunk.kidneys[side] | trunk.sinus[side])[keep]
        kid = found[side]
        got = kid.parenchyma | kid.collecting_system
        assert _dice(got, truth) > 0.75, side
        # the part in view reaches the scan's edge, as the true kidney does
        edge = nk - 1 if cut == "first_slices_above" else 0
        assert got[edge].any(), side


def _trunk_with_organ(centre_lat_mm: float, centre_ap_mm: float, radii_mm: tuple[float, float, float]):
    """A trunk without kidneys, with a soft-tissue ellipsoid (45 HU) on the
    left; ``centre_ap_mm`` is posterior of the vertebral body centre."""
    synth = make_ct(kidneys=False, lesions=False, aorta=False)
    hu = synth.volume.array.copy()
    nk, nj, ni = hu.shape
    kk = np.arange(nk)[:, None, None] * SPACING[0]
    jj = np.arange(nj)[None, :, None] * SPACING[1]
    ii = np.arange(ni)[None, None, :] * SPACING[2]
    jc, ic = 100 * SPACING[1] + VB_CENTRE_J_MM + centre_ap_mm, 100 * SPACING[2] + centre_lat_mm
    zc = nk * SPACING[0] * 0.6
    ri, rj, rk = radii_mm
    organ = ((ii - ic) / ri) ** 2 + ((jj - jc) / rj) ** 2 + ((kk - zc) / rk) ** 2 <= 1.0
    hu[organ] = 45.0
    spine = find_spine(hu, SPACING, bone=hu >= 200.0, body=body_masks(hu))
    assert spine.found
    # the scan starts through the organ's middle
    keep = slice(0, int(zc / SPACING[0]))
    return hu[keep], spine.body_centre[keep], (spine.column | spine.bodies)[keep]


def test_a_wide_organ_cut_by_the_scan_edge_is_not_a_kidney():
    # The liver's posterior lobe beside and behind the column, cut by a scan
    # starting at L1: kidney-like in position and extent, but far wider where
    # the scan cuts it than a kidney ever is.
    hu, centre, spine_mask = _trunk_with_organ(68.0, 5.0, (40.0, 35.0, 80.0))
    assert "left" not in find_kidneys(hu, SPACING, centre, spine_mask, workers=1)
    # it is this rule that rejects it
    lax = KidneySettings(cut_max_area_cm2=1e9)
    assert "left" in find_kidneys(hu, SPACING, centre, spine_mask, settings=lax, workers=1)


def test_an_organ_in_front_of_the_column_cut_by_the_scan_edge_is_not_a_kidney():
    # A kidney-sized soft-tissue mass in front of the vertebral bodies (bowel,
    # the liver's tip) cut by the scan's edge: the kidneys lie beside or behind.
    hu, centre, spine_mask = _trunk_with_organ(68.0, -25.0, (25.0, 18.0, 50.0))
    assert "left" not in find_kidneys(hu, SPACING, centre, spine_mask, workers=1)
    lax = KidneySettings(cut_min_posterior_mm=-100.0)
    assert "left" in find_kidneys(hu, SPACING, centre, spine_mask, settings=lax, workers=1)


def test_pelvic_ureter_zone_runs_in_front_of_the_internal_iliac_zone():
    # An internal iliac zone descending posteriorly on the left pelvic wall,
    # 50 mm long (k 0-19, k grows cranially).
    spacing = (2.5, 1.5, 1.5)
    internal = np.zeros((24, 120, 120), bool)
    for k in range(0, 20):
        j = 40 + (20 - k) * 2
        internal[k, j - 4 : j + 5, 85:94] = True
    zone = pelvic_ureter_zone(internal, "left", spacing, length_mm=35.0)
    # from the division (its top) down 35 mm, not further towards the
    # phleboliths of the lower pelvis
    assert np.array_equal(np.flatnonzero(zone.any(axis=(1, 2))), np.arange(5, 20))
    for k in range(5, 20):
        jz, iz = np.argwhere(zone[k]).mean(axis=0)
        ja, ia = np.argwhere(internal[k]).mean(axis=0)
        assert 8.0 < (ja - jz) * spacing[1] < 16.0  # in front of the artery (j grows posteriorly)
        assert (iz - ia) * spacing[2] > 0.0  # and not medial of it (left: i grows to the left)
    right = pelvic_ureter_zone(internal[:, :, ::-1], "right", spacing)
    assert np.array_equal(right, zone[:, :, ::-1])  # mirror image on the right
