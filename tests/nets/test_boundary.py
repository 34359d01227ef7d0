"""The CNN aorta's boundary re-drawn along the periaortic fat (calcdetect.nets.boundary)."""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.anatomy.regions import structure
from calcdetect.nets.boundary import (
    in_plane_distance,
    label_by_nearest,
    label_mask,
    refine_aorta,
    refine_vessel_boundary,
)

SPACING = (2.0, 0.8, 0.8)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _radius_mm(shape=(12, 96, 96)) -> np.ndarray:
    _, j, i = np.indices(shape)
    return np.hypot((j - 48) * SPACING[1], (i - 48) * SPACING[2])


def _aorta_scene(lumen_hu: float, *, fat: bool = True, noise: float = 20.0, seed: int = 0):
    """A 10 mm (outer) aorta: lumen to 8.4 mm, a 1.6 mm wall, then 3.5 mm of fat in soft tissue."""
    r = _radius_mm()
    hu = np.full(r.shape, 40.0, np.float32)
    if fat:
        hu[r <= 13.5] = -100.0
    hu[r <= 10.0] = 40.0
    hu[r <= 8.4] = lumen_hu
    hu += np.random.default_rng(seed).normal(0.0, noise, hu.shape).astype(np.float32)
    return hu, r <= 10.0


def _blocky(truth: np.ndarray, grow_mm: float) -> np.ndarray:
    """A coarse network's mask: the vessel grown by ``grow_mm`` on 3 mm blocks (as a 3 mm grid upsampled)."""
    r = _radius_mm(truth.shape)
    _, j, i = np.indices(truth.shape)
    bj, bi = (j * SPACING[1] // 3.0) * 3.0 + 1.5, (i * SPACING[2] // 3.0) * 3.0 + 1.5
    block_r = np.hypot(bj - 48 * SPACING[1], bi - 48 * SPACING[2])
    del r
    return block_r <= 10.0 + grow_mm


@pytest.mark.parametrize("grow_mm", [-2.5, 0.0, 2.5])
def test_a_coarse_aorta_snaps_to_its_fat_plane(grow_mm):
    hu, truth = _aorta_scene(40.0)
    coarse = _blocky(truth, grow_mm)
    refined = refine_vessel_boundary(hu, coarse, SPACING)
    assert _dice(refined, truth) > 0.95
    assert _dice(refined, truth) > _dice(coarse, truth) + 0.02


def test_a_contrast_filled_lumen_keeps_its_unenhanced_wall():
    hu, truth = _aorta_scene(300.0)
    refined = refine_vessel_boundary(hu, _blocky(truth, 2.5), SPACING)
    # the 1.6 mm wall (40 HU) is aorta: a threshold halfway to the lumen would cut it off
    assert _dice(refined, truth) > 0.95


def test_without_a_fat_plane_the_network_boundary_stays():
    hu, truth = _aorta_scene(40.0, fat=False)
    coarse = _blocky(truth, 2.5)
    assert np.array_equal(refine_vessel_boundary(hu, coarse, SPACING), coarse)


def test_the_boundary_moves_at_most_one_band_into_a_bright_neighbour():
    hu, truth = _aorta_scene(40.0)
    r = _radius_mm()
    _, j, _ = np.indices(hu.shape)
    hu[(j > 48 + 9.0 / SPACING[1]) & (r > 9.0)] = 40.0  # soft tissue abutting the vessel's back, no fat there
    refined = refine_vessel_boundary(hu, truth, SPACING, band_mm=3.0)
    assert (refined & (r > 10.0 + 3.0 + 1.0)).sum() == 0


def test_refine_aorta_leaves_bone_and_the_input_alone():
    hu, truth = _aorta_scene(40.0)
    aorta, body = structure("aorta").label, structure("body").label
    bone = structure("vertebrae_L2").label
    labels = np.where(_blocky(truth, 2.5), aorta, body).astype(np.uint8)
    r = _radius_mm()
    _, j, _ = np.indices(hu.shape)
    behind = (j > 48 + 10.5 / SPACING[1]) & (r < 20.0)
    labels[behind] = bone
    hu[behind] = 400.0  # bright bone just behind the vessel
    before = labels.copy()
    out = refine_aorta(labels, hu, SPACING)
    assert np.array_equal(labels, before)
    assert np.array_equal(out[behind], labels[behind])  # bone never joins the aorta
    given_up = (before == aorta) & (out != aorta)
    assert given_up.any() and (out[given_up] == body).all()


def test_kidneys_grow_to_their_capsule_and_keep_their_collecting_system():
    from calcdetect.nets.boundary import grow_kidneys

    cortex, pelvis, body = (structure(n).label for n in ("kidney_left", "collecting_system_left", "body"))
    k, j, i = np.indices((16, 96, 96))
    ellipsoid = ((k - 8) * SPACING[0] / 24.0) ** 2 + ((j - 48) * SPACING[1] / 20.0) ** 2 \
        + ((i - 48) * SPACING[2] / 28.0) ** 2
    truth = ellipsoid <= 1.0
    hu = np.where(truth, 30.0, -100.0).astype(np.float32)
    hu += np.random.default_rng(1).normal(0.0, 20.0, hu.shape).astype(np.float32)
    shrunk = ((k - 8) * SPACING[0] / 22.0) ** 2 + ((j - 48) * SPACING[1] / 18.0) ** 2 \
        + ((i - 48) * SPACING[2] / 26.0) ** 2 <= 1.0  # the rules stop ~2 mm short of the capsule
    labels = np.where(shrunk, cortex, body).astype(np.uint8)
    labels[shrunk & (np.hypot((j - 48) * SPACING[1], (i - 48) * SPACING[2]) < 6.0)] = pelvis
    before = labels.copy()
    out = grow_kidneys(labels, hu, SPACING)
    assert np.array_equal(labels, before)
    kidney_out = np.isin(out, [cortex, pelvis])
    assert _dice(kidney_out, truth) > 0.95 > _dice(shrunk, truth) + 0.03
    assert np.array_equal(out == pelvis, before == pelvis)  # growth is cortex; nothing is taken away
    assert (out[(before != out)] == cortex).all()


def test_the_aorta_keeps_its_boundary_where_the_iliac_arteries_begin():
    hu, truth = _aorta_scene(40.0)
    aorta, body, iliac = (structure(n).label for n in ("aorta", "body", "common_iliac_artery_right"))
    labels = np.where(_blocky(truth, -2.5), aorta, body).astype(np.uint8)
    edge = 48 + int(np.ceil(7.5 / SPACING[2]))  # just beyond the shrunken aorta's side
    labels[:4, 46:50, edge:edge + 4] = iliac  # the bifurcation's slices: an iliac artery beside the aorta
    labels[4:8, 4:8, 4:8] = iliac  # an iliac artery far from the aorta (a CNN's, along the psoas) ...
    out = refine_aorta(labels, hu, SPACING)
    assert np.array_equal(out[:4], labels[:4])
    # ... does not keep its slices coarse: there and elsewhere the shrunken aorta regrows
    for ks in (slice(4, 8), slice(8, None)):
        assert (out[ks] == aorta).sum() > (labels[ks] == aorta).sum()


def test_a_calcified_speck_beside_the_vessel_is_not_taken_in():
    hu, truth = _aorta_scene(40.0, noise=5.0)
    r = _radius_mm()
    _, j, i = np.indices(hu.shape)
    speck = (np.hypot((j - 48) * SPACING[1] - 12.0, (i - 48) * SPACING[2]) <= 1.2)  # 2.4 mm plaque 2 mm outside the wall
    hu[speck] = 600.0
    refined = refine_vessel_boundary(hu, truth, SPACING)
    assert not (refined & speck).any()  # a neighbour's plaque: which vessel it belongs to is the classifier's call
    assert _dice(refined, truth) > 0.95
    # an enhanced lumen outside the coarse mask still joins (calcium there is the lumen + 100 HU)
    hu2, truth2 = _aorta_scene(300.0)
    shrunk = _blocky(truth2, -2.5)
    assert _dice(refine_vessel_boundary(hu2, shrunk, SPACING), truth2) > 0.95
    del r


def _iliac_pair_scene(noise: float = 10.0):
    """Two 8 mm iliac arteries (wall + lumen at 40 HU) in 8 mm of fat, 30 mm apart, on a 96 x 96 field."""
    _, j, i = np.indices((12, 96, 96))
    hu = np.full(j.shape, 40.0, np.float32)
    centres = {"right": 48 - 15.0 / SPACING[2], "left": 48 + 15.0 / SPACING[2]}
    truth = {}
    for side, ci in centres.items():
        r = np.hypot((j - 48) * SPACING[1], (i - ci) * SPACING[2])
        hu[r <= 12.0] = -100.0  # pelvic fat around the vessel
        truth[side] = r <= 4.0
    for side in truth:
        hu[truth[side]] = 40.0
    hu += np.random.default_rng(3).normal(0.0, noise, hu.shape).astype(np.float32)
    return hu, truth


def test_coarse_iliac_arteries_snap_to_their_fat_plane_and_keep_their_segments():
    from calcdetect.nets.boundary import refine_iliacs

    hu, truth = _iliac_pair_scene()
    body = structure("body").label
    cia_r, eia_r, cia_l = (structure(n).label for n in
                           ("common_iliac_artery_right", "external_iliac_artery_right", "common_iliac_artery_left"))
    labels = np.full(hu.shape, body, np.uint8)
    _, j, i = np.indices(hu.shape)
    for side, lab in (("right", cia_r), ("left", cia_l)):
        grown = ndimage_grow(truth[side], 2.5)  # a 3 mm network's vessel, a band too wide
        labels[grown] = lab
    labels[6:][np.isin(labels[6:], [cia_r])] = eia_r  # below the iliac bifurcation: the external segment
    before = labels.copy()
    out = refine_iliacs(labels, hu, SPACING)
    assert np.array_equal(labels, before)
    for side in ("right", "left"):
        mine = np.isin(out, [structure(f"{s}_iliac_artery_{side}").label for s in ("common", "external", "internal")])
        was = np.isin(before, [structure(f"{s}_iliac_artery_{side}").label for s in ("common", "external", "internal")])
        assert _dice(mine, truth[side]) > 0.85 > _dice(was, truth[side]) + 0.2  # 5 pixels of radius
    assert set(np.unique(out[6:][np.isin(out[6:], [cia_r, eia_r])])) == {eia_r}  # segments kept per slice
    assert (out[(before != out)] == body).all()  # the band given up is body


def ndimage_grow(mask: np.ndarray, mm: float) -> np.ndarray:
    from scipy import ndimage

    return ndimage.distance_transform_edt(~mask, sampling=(1e6, SPACING[1], SPACING[2])) <= mm


def test_a_coarse_cnn_iliac_artery_is_named_by_the_rules_segments():
    """A coarse model has one iliac class per side; the report names the segment the rules follow."""
    from calcdetect.nets.fusion import _iliac_segments_from_rules

    cia, eia, iia = (structure(f"{s}_iliac_artery_left").label for s in ("common", "external", "internal"))
    cia_r = structure("common_iliac_artery_right").label
    rules = np.zeros((4, 10, 10), np.uint8)
    rules[:2, 2:4, 2:4] = cia
    rules[2:, 2:4, 2:4] = eia
    rules[2:, 7:9, 2:4] = iia
    fused = rules.copy()
    fused[:, 4, 2:4] = cia  # the CNN's vessel, a voxel wider than the rules' on every slice
    fused[2:, 6, 2:4] = cia  # next to the internal iliac artery
    fused[:, 2:4, 8:10] = cia_r  # the other side, where the rules found nothing: stays common
    out = _iliac_segments_from_rules(fused, rules, (2.0, 1.0, 1.0))
    assert (out[:2, 4, 2:4] == cia).all() and (out[2:, 4, 2:4] == eia).all()
    assert (out[2:, 6, 2:4] == iia).all()
    assert (out[:, 2:4, 8:10] == cia_r).all()
    assert np.array_equal(out[rules > 0], rules[rules > 0])


def test_a_cnn_iliac_piece_away_from_the_aorta_and_the_rules_arteries_is_not_used():
    """The iliac arteries leave the aorta in one piece: a detached piece of the class is something else."""
    from calcdetect.nets.fusion import _anchored_iliacs

    aorta, cia_r, cia_l, body = (structure(n).label for n in
                                 ("aorta", "common_iliac_artery_right", "common_iliac_artery_left", "body"))
    rules = np.full((10, 60, 60), body, np.uint8)
    fused = rules.copy()
    fused[6:, 20:26, 28:32] = aorta
    fused[:6, 20:24, 22:26] = cia_r  # continues the aorta downwards: kept
    fused[:4, 50:54, 50:54] = cia_r  # 30 mm in front of everything (bowel wall on a real scan): dropped
    rules[:3, 40:44, 5:9] = cia_l
    fused[:3, 41:45, 6:10] = cia_l  # no aorta near, but on the rules' left iliac artery: kept
    out = _anchored_iliacs(fused, rules, (2.0, 1.0, 1.0))
    assert (out[:6, 20:24, 22:26] == cia_r).all() and (out[:3, 41:45, 6:10] == cia_l).all()
    assert (out[:4, 50:54, 50:54] == body).all()  # given back to the rules' label
    # a scan with neither anchor: the network's iliac arteries are not used
    no_aorta = np.where(fused == aorta, body, fused).astype(np.uint8)
    bare = np.full(rules.shape, body, np.uint8)
    assert not np.isin(_anchored_iliacs(no_aorta, bare, (2.0, 1.0, 1.0)), [cia_r, cia_l]).any()


def test_an_iliac_origin_of_one_side_on_the_aortas_outline_is_aorta():
    """Both common iliac arteries leave at the bifurcation: above it, a one-sided 'iliac' on the aorta is aorta."""
    from calcdetect.nets.fusion import _paired_iliac_origins

    aorta, cia_l, cia_r, eia_l, body = (structure(n).label for n in (
        "aorta", "common_iliac_artery_left", "common_iliac_artery_right", "external_iliac_artery_left", "body"))
    fused = np.full((12, 40, 40), body, np.uint8)
    fused[6:, 14:24, 14:24] = aorta
    fused[8:11, 14:24, 22:24] = cia_l  # the left wall of the aorta, two slices above the bifurcation
    fused[6, 14:24, 19:24] = cia_l  # the bifurcation slice: both origins on the outline
    fused[6, 14:24, 14:17] = cia_r
    fused[:6, 16:22, 8:13] = cia_r  # below: two separate arteries
    fused[:6, 16:22, 25:30] = cia_l
    fused[2, 16:22, 25:28] = eia_l
    fused[9:11, 30:34, 30:34] = cia_l  # a left 'iliac' off the aorta on those slices: not the aorta's outline
    before = fused.copy()
    out = _paired_iliac_origins(fused)
    assert np.array_equal(fused, before)  # the input is untouched
    assert (out[8:11, 14:24, 22:24] == aorta).all()
    assert np.array_equal(out[:7], before[:7])  # the bifurcation and below keep both sides
    assert (out[9:11, 30:34, 30:34] == cia_l).all()
    # a map without any one-sided origin comes back as it was
    assert np.array_equal(_paired_iliac_origins(out), out)


def test_a_stray_piece_of_cnn_aorta_is_given_back_to_the_rules():
    """The aorta is one vessel: a few slices of 'aorta' drawn over an iliac artery at the scan's edge are not it."""
    from calcdetect.nets.fusion import _main_aorta

    aorta, eia_l, body = (structure(n).label for n in ("aorta", "external_iliac_artery_left", "body"))
    rules = np.full((40, 30, 30), body, np.uint8)
    rules[:3, 20:24, 20:24] = eia_l
    fused = rules.copy()
    fused[10:, 5:12, 10:17] = aorta  # the aorta, 30 slices
    fused[:2, 20:24, 20:24] = aorta  # the stray piece over the external iliac artery
    out = _main_aorta(fused, rules)
    assert (out[:2, 20:24, 20:24] == eia_l).all()
    assert (out[10:, 5:12, 10:17] == aorta).all()
    # two large pieces (an ascending and a descending aorta cut apart by the field of view) both stay
    fused[10:, 20:26, 20:26] = aorta
    assert (_main_aorta(fused, rules)[10:] == fused[10:]).all()
    assert _main_aorta(rules, rules) is rules  # nothing to do: the same map back


def test_iliac_voxels_on_the_aortas_course_above_its_end_are_aorta():
    """Phantom 2224: the aorta called left common iliac on a few slices above the bifurcation."""
    from calcdetect.nets.fusion import _iliacs_on_the_aortas_course

    aorta, cia_l, cia_r, body = (structure(n).label for n in (
        "aorta", "common_iliac_artery_left", "common_iliac_artery_right", "body"))
    fused = np.full((30, 40, 40), body, np.uint8)
    fused[10:, 14:24, 14:24] = aorta
    fused[17:22, 14:24, 16:24] = cia_l  # five slices of the aorta mislabelled, a sliver of it left
    fused[:10, 16:22, 8:13] = cia_r  # the iliac arteries below the aorta's end
    fused[:10, 16:22, 25:30] = cia_l
    fused[22:26, 30:34, 30:34] = cia_l  # beside the aorta, off its course: not the aorta's
    before = fused.copy()
    out = _iliacs_on_the_aortas_course(fused)
    assert np.array_equal(fused, before)
    assert (out[17:22, 14:24, 14:24] == aorta).all()
    assert np.array_equal(out[:10], before[:10])
    assert (out[22:26, 30:34, 30:34] == cia_l).all()
    # the same scan stored head first (caudal at high k)
    flipped = _iliacs_on_the_aortas_course(before[::-1].copy())
    assert np.array_equal(flipped, out[::-1])


def test_a_gap_in_the_cnn_iliac_artery_is_filled_by_the_rules_artery():
    """Phantom 2245: v3 lost the right common iliac artery for 36 mm; a plaque on it was reported as 'other'."""
    from calcdetect.nets.fusion import _bridged_iliac_gaps

    cia_r, ureter_r, body = (structure(n).label for n in ("common_iliac_artery_right", "ureter_right", "body"))
    rules = np.full((40, 20, 20), body, np.uint8)
    rules[:, 8:12, 8:12] = cia_r
    fused = rules.copy()
    fused[10:20, 8:12, 8:12] = body  # the network's gap: 10 slices of 2 mm
    fused[12, 9, 9] = ureter_r  # another structure there keeps its label
    fused[30:, 8:12, 8:12] = body  # the artery's end: not a gap
    out = _bridged_iliac_gaps(fused, rules, (2.0, 1.0, 1.0))
    filled = out[10:20, 8:12, 8:12] == cia_r
    assert filled.sum() == filled.size - 1 and out[12, 9, 9] == ureter_r
    assert (out[30:, 8:12, 8:12] == body).all()
    # a gap longer than ILIAC_GAP_MAX_MM is left open
    long_gap = rules.copy()
    long_gap[2:38, 8:12, 8:12] = body
    assert _bridged_iliac_gaps(long_gap, rules, (2.0, 1.0, 1.0)) is long_gap


def _divide_scene(overrun: int):
    """Rules: aorta down to k=15, both common iliac arteries below; fused: the aorta ``overrun`` slices further."""
    aorta, cia_l, cia_r, body = (structure(n).label for n in (
        "aorta", "common_iliac_artery_left", "common_iliac_artery_right", "body"))
    rules = np.full((40, 40, 40), body, np.uint8)
    rules[15:, 14:24, 14:24] = aorta
    rules[:15, 16:22, 10:16] = cia_r
    rules[:15, 16:22, 22:28] = cia_l
    fused = rules.copy()
    fused[15 - overrun:15, 14:24, 14:24] = aorta
    return rules, fused, (aorta, cia_l, cia_r)


def test_the_aorta_ends_where_the_rules_saw_it_divide():
    """Phantom 2320: v3's aorta ran 4 slices past the bifurcation and took a left common iliac plaque."""
    from calcdetect.nets.fusion import _aorta_ends_where_the_rules_divide

    spacing = (1.25, 0.8, 0.8)
    rules, fused, (aorta, cia_l, cia_r) = _divide_scene(4)  # 5 mm past the rules' end
    before = fused.copy()
    out = _aorta_ends_where_the_rules_divide(fused, rules, spacing)
    assert np.array_equal(fused, before)  # the input is untouched
    assert not (out[:15] == aorta).any()
    assert (out[11:15, 14:24, 14:18] == cia_r).all() and (out[11:15, 14:24, 20:24] == cia_l).all()
    assert np.array_equal(out[15:], before[15:])  # the aorta above the rules' end is the network's
    # the next step reads the aorta's course above its (new) end: the slices below stay iliac
    from calcdetect.nets.fusion import _iliacs_on_the_aortas_course
    assert np.array_equal(_iliacs_on_the_aortas_course(out)[:15], out[:15])
    # the same scan stored head first
    flipped = _aorta_ends_where_the_rules_divide(before[::-1].copy(), rules[::-1].copy(), spacing)
    assert np.array_equal(flipped, out[::-1])
    # an overrun longer than AORTA_END_CUT_MAX_MM is left to the network (the rules' end is likelier wrong)
    rules, far, _ = _divide_scene(10)  # 12.5 mm
    assert _aorta_ends_where_the_rules_divide(far, rules, spacing) is far
    # rules that saw one iliac artery only did not see the vessel divide
    rules, fused, _ = _divide_scene(4)
    one_sided = np.where(rules == cia_l, structure("body").label, rules).astype(np.uint8)
    assert _aorta_ends_where_the_rules_divide(fused, one_sided, spacing) is fused


def test_in_plane_distances_match_a_3d_transform_that_keeps_slices_apart():
    """Slice-by-slice distances (the fast path) equal scipy's 3-D transform with a huge k spacing,
    including slices with no mask and slices with nothing outside it."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    mask = rng.random((6, 17, 19)) < 0.6
    mask[1] = False
    mask[4] = True
    for m in (mask, ~mask):
        reference = ndimage.distance_transform_edt(m, sampling=(1e6, 0.7, 0.9))
        fast = in_plane_distance(m, (0.7, 0.9))
        far = reference > 1e5
        assert np.array_equal(np.isinf(fast), far)
        assert np.allclose(fast[~far], reference[~far])


def test_label_mask_is_isin_for_runs_and_scattered_ids():
    rng = np.random.default_rng(4)
    for dtype in (np.uint8, np.int16):
        labels = rng.integers(0, 60, (5, 20, 20)).astype(dtype)
        for ids in ([40, 41, 42, 50, 51], [3], [1, 3, 5, 7, 9, 11], [], [59, 0], [0, 1, 2]):
            assert np.array_equal(label_mask(labels, ids), np.isin(labels, ids)), (dtype, ids)


def test_label_by_nearest_takes_the_nearest_source_in_millimetres():
    """Anisotropic spacing: 1 voxel away along k (5 mm) is farther than 3 voxels in-plane (2.4 mm)."""
    labels = np.zeros((3, 1, 8), np.uint8)
    labels[0, 0, 1] = 7  # one slice up: 5 mm from the target
    labels[1, 0, 4] = 9  # same slice, three voxels across: 2.4 mm
    targets = np.zeros(labels.shape, bool)
    targets[1, 0, 1] = True
    out = label_by_nearest(labels, targets, labels > 0, (5.0, 0.8, 0.8))
    assert out[1, 0, 1] == 9 and labels[1, 0, 1] == 0  # the input is not modified
    values = np.full(labels.shape, 3, np.uint8)
    assert label_by_nearest(labels, targets, labels > 0, (5.0, 0.8, 0.8), values=values)[1, 0, 1] == 3


def test_calcified_iliac_wall_the_network_left_out_goes_back_to_the_artery():
    """Phantom 2368: a right common iliac plaque on the back wall, against L4, lay in body between v3's
    artery and the vertebra and was reported as bone; the rules had it in the artery."""
    from calcdetect.nets.fusion import _calcified_iliac_wall_from_rules

    cia_r, cia_l, body, l4 = (structure(n).label for n in (
        "common_iliac_artery_right", "common_iliac_artery_left", "body", "vertebrae_L4"))
    rules = np.full((6, 30, 30), body, np.uint8)
    rules[:, 20:, :] = l4
    rules[:, 8:20, 4:14] = cia_r  # the rules' artery reaches the vertebra
    rules[:, 8:20, 18:28] = cia_l
    hu = np.full(rules.shape, 40.0, np.float32)
    hu[:, 18:20, 6:12] = 600.0  # plaque on the right artery's back wall
    hu[:, 18:20, 20:26] = 600.0  # and on the left one's, but 5 mm from the left artery the network drew
    hu[:, 20:, :] = 700.0
    fused = rules.copy()
    fused[:, 17:20, 4:14] = body  # the network's right artery stops 1 mm short of the plaque (2 mm deep)
    fused[:, 14:20, 18:28] = body  # its left one 5 mm short
    out = _calcified_iliac_wall_from_rules(fused, rules, hu, (2.0, 1.0, 1.0))
    assert (out[:, 18:20, 6:12] == cia_r).all()
    assert (out[:, 17, 4:14] == body).all()  # soft tissue the network left out stays out
    assert (out[:, 18:20, 20:26] == body).all()  # beyond the reach: not this artery's wall
    assert (out[:, 20:] == l4).all() and (fused[:, 18:20, 6:12] == body).all()  # bone untouched, input not modified
    no_rules = np.where(rules == cia_r, body, rules).astype(np.uint8)
    assert _calcified_iliac_wall_from_rules(fused, no_rules, hu, (2.0, 1.0, 1.0)) is fused  # the rules' call is needed
