"""The stack-at-once helpers that replaced per-slice loops give the per-slice
answers, and the vessel-tracking rules that keep the path on the artery."""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_synth import SPACING
from scipy import ndimage as ndi

from calcdetect.anatomy import build_anatomy
from calcdetect.anatomy.regions import structure
from calcdetect.anatomy.spine import (
    body_mask_2d,
    body_masks,
    dilate_in_plane,
    disk,
    fill_holes_per_slice,
)
from calcdetect.anatomy.vessels import (
    VesselSettings,
    _bifurcation_cut,
    _lateral_departure_cut,
    _viterbi,
    _external_iliac_target,
    _with_neighbours,
    enhanced_lumen,
    find_femoral_heads,
)
from calcdetect.device import Device
from calcdetect.types import Volume


def test_fill_holes_per_slice_matches_slice_by_slice():
    rng = np.random.default_rng(1)
    mask = ndi.binary_opening(rng.random((6, 40, 50)) > 0.45)
    mask[:, 10:30, 10] = mask[:, 10:30, 30] = mask[:, 10, 10:31] = mask[:, 30, 10:31] = True  # a ring
    expected = np.stack([ndi.binary_fill_holes(m) for m in mask])
    assert np.array_equal(fill_holes_per_slice(mask), expected)
    assert fill_holes_per_slice(mask)[:, 20, 20].all()


def test_body_masks_fill_lungs_and_drop_a_separate_arm():
    hu = np.full((5, 80, 100), -1000.0, np.float32)
    yy, xx = np.mgrid[0:80, 0:100]
    trunk = ((yy - 40) / 30.0) ** 2 + ((xx - 45) / 35.0) ** 2 <= 1.0
    lung = ((yy - 40) / 10.0) ** 2 + ((xx - 35) / 8.0) ** 2 <= 1.0
    arm = ((yy - 40) / 6.0) ** 2 + ((xx - 93) / 4.0) ** 2 <= 1.0
    hu[:, trunk] = 40.0
    hu[:, lung] = -850.0
    hu[:, arm] = 40.0
    got = body_masks(hu)
    for k in range(5):
        assert np.array_equal(got[k], body_mask_2d(hu[k]))
    assert got[:, 40, 35].all() and not got[:, 40, 93].any()


def test_dilate_in_plane_is_a_disk_per_slice():
    rng = np.random.default_rng(2)
    mask = np.zeros((4, 60, 60), bool)
    mask[:, 20:40, 20:40] = rng.random((4, 20, 20)) > 0.97
    got = dilate_in_plane(mask, 6.0, 1.5, 1.5)
    expected = np.stack([ndi.binary_dilation(m, structure=disk(6.0 / 1.5)) for m in mask])
    assert np.array_equal(got, expected)


def test_bifurcation_is_where_the_radius_halves_walking_down():
    # caudal slices first (k grows cranially): the path slid into a common iliac
    # (6 mm) for four slices below the aorta (11 mm)
    radius = np.array([6.0, 6.5, 6.0, 6.0] + [11.0] * 20)
    assert _bifurcation_cut(radius, 0, len(radius) - 1) == 4
    # no slip: the run starts at the aorta
    assert _bifurcation_cut(np.full(10, 11.0), 0, 9) == 0
    # a chest scan: the aorta narrows towards the top of the scan (arch, edge);
    # that is no bifurcation and must not cut the descending aorta away
    assert _bifurcation_cut(np.array([14.0] * 20 + [12.0, 10.0, 9.0, 8.0]), 0, 23) == 0


def test_a_dip_in_the_fitted_aortic_radius_is_not_the_bifurcation():
    # caudal slices first: the common iliac (8 mm) for 12 slices, then the aorta
    # (14 mm) whose fit dips to 10 mm over 4 slices (10 mm at 2.5 mm a slice)
    # 15 mm above the bifurcation. The old rule ended the aorta above the dip.
    sp = (2.5, 2.0, 2.0)
    radius = np.array([8.4] * 12 + [14.0] * 6 + [10.3] * 4 + [14.0] * 30)
    centre = np.tile([60.0, 100.0], (len(radius), 1))
    centre[:12, 1] += np.arange(12, 0, -1)  # the iliac leaves the midline
    assert _bifurcation_cut(radius, 0, len(radius) - 1, centre=centre, spacing=sp) == 12
    # a narrowing that does not come back within 30 mm is the end of the aorta
    radius = np.array([8.4] * 14 + [14.0] * 30)
    assert _bifurcation_cut(radius, 0, len(radius) - 1, centre=centre[:44], spacing=sp) == 14
    # the path slid into a common iliac fitted nearly as wide as the aorta:
    # the "recovery" 10-20 mm off the aortic course is the iliac, not the aorta
    radius = np.array([12.1] * 12 + [8.4] * 4 + [14.0] * 30)
    centre = np.tile([60.0, 100.0], (len(radius), 1))
    centre[:16, 1] += np.linspace(10.0, 3.0, 16)  # 20-6 mm to the left
    assert _bifurcation_cut(radius, 0, len(radius) - 1, centre=centre, spacing=sp) == 16


def test_a_slice_with_a_weak_wall_does_not_hand_the_path_to_a_neighbour():
    """The tube is missed on slice 5; from there on a round neighbour 30 mm away
    scores as well. Carried neighbours keep the path on the tube."""
    spacing = (2.5, 1.0, 1.0)
    tube = (0.5, 50.0, 50.0, 10.0)
    other = (0.55, 50.0, 80.0, 10.0)  # a little rounder than the tube
    cands = [[tube] if k < 5 else ([other] if k == 5 else [tube, other]) for k in range(12)]
    path = _viterbi(_with_neighbours(cands, spacing), spacing, VesselSettings())
    assert np.isfinite(path.radius_mm).all()
    assert np.allclose(path.centre[:, 1], 50.0)


def test_common_iliacs_end_at_the_upper_sacrum(trunk, trunk_anatomy):
    """The common iliac divides in front of the sacro-iliac joint: no common
    iliac label more than a few mm below 20 mm under the top of the sacrum."""
    s1_top = next(z1 for lv, z0, z1 in trunk.segments if lv == "S1")
    division_k = (s1_top - VesselSettings().division_below_sacrum_mm) / SPACING[0]
    labels = trunk_anatomy.labels
    for side in ("left", "right"):
        common = np.flatnonzero((labels == structure(f"common_iliac_artery_{side}").label).any(axis=(1, 2)))
        assert common.size and common.min() >= division_k - 2, side


def _enhanced(trunk) -> tuple[Volume, np.ndarray]:
    """The trunk in an arterial phase: iodinated blood at ~300 HU in the aorta,
    bone mask at the 130 HU calcium threshold (which the lumen passes)."""
    hu = trunk.volume.array.copy()
    rng = np.random.default_rng(5)
    hu[trunk.aorta] = 300.0 + rng.normal(0.0, 15.0, int(trunk.aorta.sum()))
    vol = Volume(hu, trunk.volume.spacing, trunk.volume.affine, trunk.volume.info)
    return vol, hu >= 130.0


def test_enhanced_aorta_is_carved_out_of_the_bone_mask(trunk):
    vol, bone = _enhanced(trunk)
    lumen = enhanced_lumen(vol.array, bone, vol.spacing)
    inside = trunk.aorta & bone
    assert (lumen & inside).sum() >= 0.9 * inside.sum()
    # nothing away from the aorta is carved (a plaque fused to its lumen may
    # be): the vertebrae, round-ish too but cortex around marrow, stay bone
    near_aorta = ndi.binary_dilation(trunk.aorta, iterations=2)
    assert not (lumen & ~near_aorta).any()


def test_enhanced_aorta_is_found_with_the_pipeline_bone_mask(trunk):
    vol, bone = _enhanced(trunk)
    am = build_anatomy(vol, Device("cpu"), bone_mask=bone)
    aorta = am.labels == structure("aorta").label
    above = np.flatnonzero(trunk.aorta.any(axis=(1, 2)))
    above = above[above * SPACING[0] > trunk.bifurcation_z + 5.0]
    assert sum(aorta[k].any() for k in above) >= 0.9 * len(above)
    assert any("contrast-enhanced" in n for n in am.notes)
    # and its lumen is not labelled vertebra
    vert = (am.labels >= 1) & (am.labels <= 25)
    assert not (vert & trunk.aorta).any()


def test_aorta_ends_where_its_path_veers_off_the_midline():
    """Below the bifurcation a path that slid into a common iliac drifts
    sideways (~0.7 mm per mm); the aorta above keeps its line."""
    spacing = (2.5, 1.0, 1.0)
    centre = np.zeros((60, 2))
    centre[:, 0] = 100.0
    centre[:, 1] = 120.0
    centre[:20, 1] = 120.0 + 1.75 * (20 - np.arange(20))  # slices 0-19: the iliac, veering left
    cut = _lateral_departure_cut(centre, 0, 59, spacing)
    assert 12 <= cut <= 20
    # a straight aorta is not cut
    assert _lateral_departure_cut(np.full((60, 2), 100.0), 0, 59, spacing) == 0


def test_a_calcified_enhanced_aorta_on_a_short_scan_is_found_where_the_tracker_is_off():
    """ct_abdomen_petct_siemens in miniature: 40 mm of scan, the enhanced lumen
    (160 HU) with a dense plaque crescent in its wall (SD 160 HU, MAD ~10 HU),
    dipping below the bone threshold on one slice; the tracker found nothing."""
    from calcdetect.anatomy.vessels import Tube, enhanced_aorta_mask, find_lumen_chains

    spacing = (2.0, 1.0, 1.0)
    nk, nj, ni = 20, 128, 128
    rng = np.random.default_rng(3)
    hu = 40.0 + rng.normal(0.0, 8.0, (nk, nj, ni))
    jj, ii = np.mgrid[:nj, :ni]
    body = (jj - 85) ** 2 + (ii - 64) ** 2
    lumen = (jj - 52) ** 2 + (ii - 74) ** 2 <= 10**2
    crescent = ((jj - 52) ** 2 + (ii - 74) ** 2 <= 12**2) & ~lumen & (jj > 55)
    for k in range(nk):
        hu[k][body <= 18**2] = 600.0  # cortex
        hu[k][body <= 15**2] = 200.0 + rng.normal(0.0, 80.0, int((body <= 15**2).sum()))  # marrow
        hu[k][lumen] = (125.0 if k == 8 else 160.0) + rng.normal(0.0, 10.0, int(lumen.sum()))
        hu[k][crescent] = 900.0
    bone = hu >= 130.0
    assert enhanced_lumen(hu, bone, spacing)[10][52, 74]  # the plaque no longer hides the lumen
    body_centre = np.tile([85.0, 64.0], (nk, 1))
    nothing = Tube(np.full((nk, 2), np.nan), np.full(nk, np.nan), np.zeros(nk))
    chains = find_lumen_chains(hu, bone, spacing)
    found = enhanced_aorta_mask(chains, spacing, body_centre, nothing)
    assert found is not None
    mask, ks = found
    assert len(ks) >= 15 and 8 in ks  # the gap slice is bridged
    assert mask[10][52, 74] and not mask[10][85, 64]
    # Where the tracker already sits on the lumen, its own circle is kept.
    on = Tube(np.tile([52.0, 74.0], (nk, 1)), np.full(nk, 10.0), np.ones(nk))
    assert enhanced_aorta_mask(chains, spacing, body_centre, on) is None


def _pelvis_bone(head_k: float) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """Bone of a pelvis on a 2.5 x 2 x 2 mm grid: femoral heads (22 mm balls,
    88 mm either side of the midline, centred on slice ``head_k``), iliac wings
    (6 mm plates) and the column."""
    spacing = (2.5, 2.0, 2.0)
    nk, nj, ni = 40, 120, 200
    k, j, i = np.meshgrid(np.arange(nk) * spacing[0], np.arange(nj) * spacing[1], np.arange(ni) * spacing[2],
                          indexing="ij")
    bone = np.zeros((nk, nj, ni), dtype=bool)
    for side in (-1, 1):
        bone |= (k - head_k * spacing[0]) ** 2 + (j - 120.0) ** 2 + (i - 200.0 - side * 88.0) ** 2 <= 22.0**2
        bone |= (k > 60.0) & (np.abs(i - 200.0 - side * 100.0) <= 3.0) & (j > 80.0) & (j < 200.0)  # iliac wing
    column = (j - 160.0) ** 2 + (i - 200.0) ** 2 <= 20.0**2
    bone |= column
    return bone, spacing, column


def test_femoral_heads_are_the_thickest_bone_of_each_half_of_the_pelvis():
    bone, spacing, column = _pelvis_bone(head_k=12)
    heads = find_femoral_heads(bone, spacing, np.tile([80.0, 100.0], (bone.shape[0], 1)), column, below_k=35)
    assert set(heads) == {"left", "right"}
    for side, i_px in (("left", 144.0), ("right", 56.0)):
        h = heads[side]
        assert (h.k, h.j, h.i) == pytest.approx((12.0, 60.0, i_px), abs=1.0)
        assert h.radius_mm == pytest.approx(22.0, abs=2.5)
        # the external iliac is expected in front of (lower j) and medial of the head
        _, tj, ti = _external_iliac_target(h, 1.0 if side == "left" else -1.0, spacing, VesselSettings())
        assert tj < h.j - h.radius_mm / spacing[1]
        assert abs(ti - 100.0) < abs(h.i - 100.0)


def test_a_femoral_head_cut_by_the_field_of_view_is_not_used():
    """Half a head at the bottom of the scan is no ball: no external iliac prior."""
    bone, spacing, column = _pelvis_bone(head_k=0)
    assert find_femoral_heads(bone, spacing, np.tile([80.0, 100.0], (bone.shape[0], 1)), column, below_k=35) == {}
