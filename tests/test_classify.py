"""classify(): lesion x anatomy -> Finding, on a hand-built anatomy map."""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.anatomy.regions import Region, structure
from calcdetect.classify import ClassifySettings, classify, morphology_of
from calcdetect.types import AcquisitionInfo, AnatomyMap, Kind, Lesion, Morphology, Volume

SHAPE = (40, 80, 80)  # k, j, i
SP = (2.0, 1.0, 1.0)


def _lab(name: str) -> int:
    return structure(name).label


def _affine(spacing=SP, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    a = np.zeros((4, 4))
    a[0, 2], a[1, 1], a[2, 0] = spacing[2], spacing[1], spacing[0]
    a[:3, 3] = origin
    a[3, 3] = 1.0
    return a


def _disk(shape2d, jc, ic, r):
    jj, ii = np.mgrid[: shape2d[0], : shape2d[1]]
    return (jj - jc) ** 2 + (ii - ic) ** 2 <= r * r


@pytest.fixture(scope="module")
def scene():
    """Aorta (k >= 20) bifurcating into iliacs; kidneys at k 24-36; spine; LF zone."""
    labels = np.full(SHAPE, _lab("body"), dtype=np.uint8)
    nj, ni = SHAPE[1:]
    for k in range(SHAPE[0]):
        labels[k][_disk((nj, ni), 50, 40, 9)] = _lab("vertebrae_L3")
        labels[k][_disk((nj, ni), 65, 40, 4)] = _lab("spinal_canal")
        ring = _disk((nj, ni), 65, 40, 8) & ~_disk((nj, ni), 65, 40, 4)
        ring[:65] = False
        labels[k][ring] = _lab("ligamentum_flavum_zone")
        if k >= 20:
            labels[k][_disk((nj, ni), 30, 46, 7)] = _lab("aorta")  # lumen 4 mm + 3 mm wall
        else:
            labels[k][_disk((nj, ni), 30, 52, 5)] = _lab("common_iliac_artery_left")
            labels[k][_disk((nj, ni), 30, 30, 5)] = _lab("common_iliac_artery_right")
        if 24 <= k <= 36:
            labels[k][_disk((nj, ni), 55, 68, 10)] = _lab("kidney_left")
            labels[k][_disk((nj, ni), 55, 68, 6)] = _lab("kidney_medulla_left")
            labels[k][_disk((nj, ni), 55, 64, 3)] = _lab("collecting_system_left")
    levels = tuple("L4" if k < 10 else "L3-L4" if k < 14 else "L3" if k < 26 else "L2-L3" if k < 29 else "L2"
                   for k in range(SHAPE[0]))
    am = AnatomyMap(labels=labels, affine=_affine(), slice_levels=levels)
    vol = Volume(np.zeros(SHAPE, np.float32), SP, _affine(), AcquisitionInfo("CT"))
    return vol, am


def _lesion(vol: Volume, mask: np.ndarray, *, lucent: bool = False, peak: float = 400.0) -> Lesion:
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    pts = idx * np.array(vol.spacing)
    c = pts - pts.mean(0)
    ev = np.sort(np.linalg.eigvalsh(np.cov(c.T)))[::-1] if len(pts) > 3 else np.array([1.0, 1.0, 1.0])
    axes = 4 * np.sqrt(np.clip(ev, 0, None))
    diam = float(np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1)).max()) + 1.0
    cen = idx.mean(0)
    return Lesion(
        label=1, bbox=(*lo.tolist(), *hi.tolist()), mask=mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]],
        voxel_count=len(idx), volume_mm3=len(idx) * 2.0, agatston=0.0, mass_mg=0.0, peak_hu=peak,
        mean_hu=peak, centroid_lps_mm=tuple(vol.index_to_lps(cen).tolist()), centroid_kji=tuple(cen.tolist()),
        max_diameter_mm=diam, axes_mm=tuple(axes.tolist()),
        elongation=float(1 - axes[1] / axes[0]) if axes[0] > 0 else 0.0, central_lucency=lucent,
    )


def _box(k0, k1, j0, j1, i0, i1):
    m = np.zeros(SHAPE, bool)
    m[k0:k1, j0:j1, i0:i1] = True
    return m


def test_plaque_in_the_aortic_wall_is_aortic(scene):
    vol, am = scene
    les = _lesion(vol, _box(28, 31, 24, 27, 46, 49))  # wall (4-7 mm from the centre), anterior
    (f,) = classify([les], am, vol)
    assert f.region == Region.AORTA.value
    assert f.kind is Kind.ATHEROSCLEROTIC
    assert f.structure == "aorta"
    assert f.side is None
    assert f.level == "L2-L3"  # slices 28-30: L2-L3 disc and L2
    assert f.confidence > 0.5
    assert f.id == "F001"


def test_lesion_two_mm_outside_the_wall_is_still_aortic(scene):
    vol, am = scene
    # the aorta label (lumen + wall) ends at radius 7 around (30, 46); put the
    # lesion at radius 9-10 (2-3 mm outside)
    les = _lesion(vol, _box(30, 32, 30, 32, 55, 57))
    lab = am.labels[30:32, 30:32, 55:57]
    assert not (lab == _lab("aorta")).any()
    (f,) = classify([les], am, vol)
    assert f.region == Region.AORTA.value
    assert 0 < f.confidence < 0.6  # placed by distance: less sure than overlap


def test_far_lesion_is_other(scene):
    vol, am = scene
    (f,) = classify([_lesion(vol, _box(30, 32, 5, 8, 5, 8))], am, vol)
    assert f.region == Region.OTHER.value
    assert f.kind is Kind.UNKNOWN


def test_stone_in_collecting_system_and_medullary_nephrocalcinosis(scene):
    vol, am = scene
    stone = _lesion(vol, _box(29, 31, 54, 57, 63, 66))
    medulla = _lesion(vol, _box(29, 30, 58, 60, 70, 72))
    cortex = _lesion(vol, _box(29, 30, 55, 56, 76, 78))
    # Two foci in a kidney: location decides.
    f1, f2 = classify([stone, medulla], am, vol)
    assert (f1.region, f1.kind, f1.side, f1.segment) == ("renal", Kind.STONE, "left", "collecting system")
    assert (f2.kind, f2.segment) == (Kind.NEPHROCALCINOSIS, "medullary")
    assert [f.id for f in (f1, f2)] == ["F001", "F002"]
    (f3,) = classify([cortex], am, vol)
    assert (f3.kind, f3.segment) == (Kind.NEPHROCALCINOSIS, "cortical")


def test_cluster_of_small_foci_is_nephrocalcinosis_and_a_large_focus_a_calculus(scene):
    vol, am = scene
    # Three 2-3 mm foci, one of them on the estimated collecting system (papilla
    # tips abut the calyces): the pattern is medullary nephrocalcinosis.
    foci = [_lesion(vol, _box(29, 30, 54, 56, 63, 65)), _lesion(vol, _box(31, 32, 58, 60, 70, 72)),
            _lesion(vol, _box(33, 34, 50, 52, 70, 72))]
    fs = classify(foci, am, vol)
    assert [f.kind for f in fs] == [Kind.NEPHROCALCINOSIS] * 3
    # A 9 mm calcification in the estimated medulla is a (calyceal) calculus.
    big = _lesion(vol, _box(28, 31, 56, 62, 68, 74))
    (fb,) = classify([big], am, vol)
    assert big.max_diameter_mm >= 6.0
    assert (fb.region, fb.kind, fb.segment) == ("renal", Kind.STONE, "collecting system")
    # By location alone (rule switched off) it would have been nephrocalcinosis.
    (fl,) = classify([big], am, vol, ClassifySettings(nephrocalcinosis_max_mm=100.0))
    assert fl.kind is Kind.NEPHROCALCINOSIS


def test_ring_lesion_in_the_pelvis_is_a_phlebolith_not_vascular(scene):
    vol, am = scene
    # below the bifurcation (k < 20), 2 mm beside the left iliac wall, lucent centre
    m = _box(8, 11, 38, 42, 56, 60)
    m[9, 39:41, 57:59] = False
    les = _lesion(vol, m, lucent=True)
    (f,) = classify([les], am, vol)
    assert f.region == Region.OTHER.value
    assert f.kind is Kind.PHLEBOLITH
    assert f.morphology is Morphology.RING


def test_iliac_plaque_gets_side_and_segment(scene):
    vol, am = scene
    (f,) = classify([_lesion(vol, _box(5, 8, 26, 28, 50, 53))], am, vol)
    assert (f.region, f.side, f.segment, f.kind) == ("iliac", "left", "common", Kind.ATHEROSCLEROTIC)
    assert f.level == "L4"


def test_ligamentum_flavum_side_from_midline(scene):
    vol, am = scene
    left = _lesion(vol, _box(15, 18, 68, 71, 44, 47))  # i > canal centre 40: patient left
    right = _lesion(vol, _box(15, 18, 68, 71, 33, 36))
    fl, fr = classify([left, right], am, vol)
    assert (fl.region, fl.kind, fl.side) == ("ligamentum_flavum", Kind.LIGAMENT, "left")
    assert fr.side == "right"
    assert fl.level == "L3-L4" or fl.level == "L3"


def test_bone_and_metal_are_other(scene):
    vol, am = scene
    bone = _lesion(vol, _box(15, 18, 47, 52, 38, 42))
    metal = _lesion(vol, _box(28, 30, 26, 28, 44, 46), peak=3500.0)
    fb, fm = classify([bone, metal], am, vol)
    assert (fb.region, fb.kind) == ("other", Kind.BONE)
    assert (fm.region, fm.kind) == ("other", Kind.METAL)


def test_anatomy_on_a_coarser_grid_is_mapped_through_lps(scene):
    vol, am = scene
    coarse = am.labels[::2, ::2, ::2]
    aff = _affine((SP[0] * 2, SP[1] * 2, SP[2] * 2))
    levels = am.slice_levels[::2]
    am2 = AnatomyMap(labels=np.ascontiguousarray(coarse), affine=aff, slice_levels=levels)
    les = _lesion(vol, _box(29, 31, 54, 57, 63, 66))
    (f,) = classify([les], am2, vol)
    assert f.kind is Kind.STONE


def test_morphology_rules():
    vol = Volume(np.zeros(SHAPE, np.float32), (1.0, 1.0, 1.0), _affine((1.0, 1.0, 1.0)), AcquisitionInfo("CT"))
    dot = _lesion(vol, _box(5, 6, 5, 7, 5, 7))
    line = _lesion(vol, _box(5, 6, 5, 6, 5, 25))
    arc = np.zeros(SHAPE, bool)
    t = np.linspace(0, np.pi, 80)
    arc[5, np.round(20 + 15 * np.sin(t)).astype(int), np.round(20 + 15 * np.cos(t)).astype(int)] = True
    curve = _lesion(vol, arc)
    blob = _lesion(vol, _box(5, 10, 5, 10, 5, 10))
    ring = _lesion(vol, _box(5, 10, 5, 10, 5, 10), lucent=True)
    sp = (1.0, 1.0, 1.0)
    assert morphology_of(dot, sp) is Morphology.PUNCTATE
    assert morphology_of(line, sp) is Morphology.LINEAR
    assert morphology_of(curve, sp) is Morphology.CURVILINEAR
    assert morphology_of(blob, sp) is Morphology.PLAQUE
    assert morphology_of(ring, sp) is Morphology.RING


def test_empty_input_gives_no_findings(scene):
    vol, am = scene
    assert classify([], am, vol) == []


def test_ligament_calcification_longer_than_an_interlaminar_space_is_bone(scene):
    from dataclasses import replace

    vol, am = scene
    mask = _box(15, 18, 68, 71, 44, 47)  # the left ligament spot of the test above
    short = _lesion(vol, mask)
    long = replace(short, max_diameter_mm=60.0)  # as long as two vertebrae
    assert classify([short], am, vol)[0].region == "ligamentum_flavum"
    # both ligamenta of one level calcified and merged into a V 34 mm across
    bilateral = replace(short, max_diameter_mm=34.0)
    assert classify([bilateral], am, vol)[0].region == "ligamentum_flavum"
    (f,) = classify([long], am, vol)
    assert (f.region, f.kind) == ("other", Kind.BONE)


def test_level_comes_from_the_lesion_core_not_its_blurred_edge(scene):
    vol0, am = scene
    arr = np.zeros(SHAPE, np.float32)
    mask = _box(29, 34, 27, 30, 44, 47)  # aortic wall; k 29-33 are "L2" (k >= 29)
    arr[mask] = 600.0
    tail = _box(27, 29, 27, 30, 44, 47)  # slice-profile blur reaching the L2-L3 disc
    arr[tail] = 150.0
    vol = Volume(arr, vol0.spacing, vol0.affine, vol0.info)
    f = classify([_lesion(vol, mask | tail, peak=600.0)], am, vol)[0]
    assert f.region == "aorta" and f.level == "L2"
    # A lesion that really spans the disc keeps both levels.
    arr[tail] = 600.0
    f = classify([_lesion(vol, mask | tail, peak=600.0)], am, vol)[0]
    assert f.level == "L2-L3"


def test_no_vertebral_level_deep_in_the_pelvis(scene):
    vol, am0 = scene
    # The rules label the whole sacrum "S1": k 0-29 here, L5 (20 mm) above.
    levels = tuple("S1" if k < 30 else "L5" for k in range(SHAPE[0]))
    am = AnatomyMap(labels=am0.labels, affine=am0.affine, slice_levels=levels)
    deep = classify([_lesion(vol, _box(2, 5, 28, 31, 28, 31))], am, vol)[0]
    high = classify([_lesion(vol, _box(16, 19, 28, 31, 28, 31))], am, vol)[0]
    assert deep.region == high.region == "iliac"
    assert deep.level is None  # ~50 mm below the top of the sacrum
    assert high.level == "S1"


def test_a_fleck_against_the_laminae_is_not_reported_as_ligament_calcification(scene):
    vol, am = scene
    fleck = _lesion(vol, _box(10, 11, 70, 72, 38, 40))  # 4 voxels, 8 mm3
    plaque = _lesion(vol, _box(10, 15, 70, 72, 38, 41))  # 30 voxels, 60 mm3
    f_fleck, f_plaque = classify([fleck, plaque], am, vol)
    assert (f_fleck.region, f_fleck.kind) == ("other", Kind.UNKNOWN)
    assert (f_plaque.region, f_plaque.kind) == ("ligamentum_flavum", Kind.LIGAMENT)


def test_a_cortex_fragment_in_the_aortic_zone_is_bone_but_a_plaque_beside_it_is_aortic(scene):
    """Where the aortic zone overlaps a vertebral body, bits of cortex released
    from the bone mask become candidates. They lie against the bone over a broad
    face; a plaque in the wall does not."""
    vol0, am = scene
    arr = np.zeros(SHAPE, np.float32)
    arr[26:34, 35:40, 42:52] = 1200.0  # cortex the bone mask kept (outside the lesion)
    fragment = _box(28, 30, 34, 35, 45, 49)  # one row against it, inside the aortic zone
    plaque = _box(28, 30, 24, 25, 45, 49)  # the same shape on the anterior wall
    arr[fragment | plaque] = 900.0
    vol = Volume(arr, vol0.spacing, vol0.affine, AcquisitionInfo("CT", kvp=120.0))
    assert (am.labels[fragment] == _lab("aorta")).all()
    f_frag, f_plaque = classify([_lesion(vol, fragment, peak=900.0), _lesion(vol, plaque, peak=900.0)], am, vol)
    assert (f_frag.region, f_frag.kind) == ("other", Kind.BONE)
    assert (f_plaque.region, f_plaque.kind) == ("aorta", Kind.ATHEROSCLEROTIC)


def test_dense_neighbours_do_not_mean_bone_on_a_contrast_scan(scene):
    """With iodine in the lumen the blood round a plaque passes the calcium
    threshold: the bone-contact rule must not remove aortic plaque."""
    vol0, am = scene
    arr = np.zeros(SHAPE, np.float32)
    lumen = am.labels == _lab("aorta")
    arr[lumen] = 300.0
    plaque = _box(28, 30, 26, 27, 45, 49)
    arr[plaque] = 900.0
    vol = Volume(arr, vol0.spacing, vol0.affine, AcquisitionInfo("CT", kvp=120.0))
    (f,) = classify([_lesion(vol, plaque, peak=900.0)], am, vol)
    assert (f.region, f.kind) == ("aorta", Kind.ATHEROSCLEROTIC)


def test_a_round_nodule_in_the_iliac_zone_beside_the_ureter_is_a_ureteral_stone(scene):
    """The ureter crosses in front of the common iliac artery below the end of
    the coarse ureter zone: a round calculus there is a ureteral stone; a thin
    plaque in the same place stays iliac."""
    vol, am0 = scene
    labels = am0.labels.copy()
    for k in range(16, 20):  # the zone ends 12 mm above the stone
        labels[k][_disk(SHAPE[1:], 21, 56, 3) & (labels[k] == _lab("body"))] = _lab("ureter_left")
    am = AnatomyMap(labels=labels, affine=am0.affine, slice_levels=am0.slice_levels)
    stone = _box(8, 10, 25, 29, 50, 54)  # 4 x 4 x 4 mm
    plaque = _box(8, 10, 26, 27, 49, 56)  # 1 mm thick, 7 mm wide
    assert (labels[stone] == _lab("common_iliac_artery_left")).mean() > 0.5
    f_stone, f_plaque = classify([_lesion(vol, stone), _lesion(vol, plaque)], am, vol)
    assert (f_stone.region, f_stone.kind, f_stone.side) == ("renal", Kind.URETERAL_STONE, "left")
    assert (f_plaque.region, f_plaque.kind) == ("iliac", Kind.ATHEROSCLEROTIC)
    # Without a ureter nearby the nodule stays in the artery it lies in.
    (f,) = classify([_lesion(vol, stone)], am0, vol)
    assert f.region == "iliac"


def test_a_calculus_just_outside_the_estimated_renal_sinus_is_a_renal_stone(scene):
    """An extrarenal pelvis bulges out of the hilum: a round stone 5-6 mm from
    the estimated collecting system is still a stone; a thin fleck there is not."""
    vol, am0 = scene
    labels = am0.labels.copy()
    for k in range(24, 37):  # the sinus opens at the hilum (j = 44)
        labels[k][_disk(SHAPE[1:], 47, 66, 3)] = _lab("collecting_system_left")
    am = AnatomyMap(labels=labels, affine=am0.affine, slice_levels=am0.slice_levels)
    stone = _box(29, 31, 36, 40, 64, 68)  # 5-8 mm in front of the sinus
    fleck = _box(29, 30, 38, 39, 63, 69)
    (f,) = classify([_lesion(vol, stone)], am, vol)
    assert (f.region, f.kind, f.side) == ("renal", Kind.STONE, "left")
    (g,) = classify([_lesion(vol, fleck)], am, vol)
    assert g.region == "other"


def test_foci_of_one_papilla_share_its_level_span(scene):
    """A papilla's nephrocalcinosis is one calcification seen as several specks:
    each speck is reported at the span of its group, not at its own slice; a
    focus of another papilla 10 mm away keeps its own level."""
    vol, am = scene
    a = _lesion(vol, _box(27, 28, 57, 59, 66, 68))  # slice 27: the L2-L3 disc
    b = _lesion(vol, _box(29, 30, 58, 60, 67, 69))  # slice 29: L2, 4 mm above a
    c = _lesion(vol, _box(34, 35, 52, 54, 72, 74))  # slice 34: L2, another papilla
    fa, fb, fc = classify([a, b, c], am, vol)
    assert [f.kind for f in (fa, fb, fc)] == [Kind.NEPHROCALCINOSIS] * 3
    assert fa.level == fb.level == "L2-L3"
    assert fc.level == "L2"


def test_a_speck_in_cancellous_bone_the_bone_mask_missed_is_not_plaque(scene):
    """Marrow at ~110 HU round a threshold speck is bone, not a vessel wall: a
    piece of pelvis missed by the bone mask must not become iliac plaque; the
    same speck in blood and fat stays iliac."""
    vol0, am = scene
    arr = np.zeros(SHAPE, np.float32)
    arr[2:10, 20:40, 44:60] = 110.0  # cancellous bone over the left common iliac zone
    in_bone = _box(5, 6, 29, 31, 51, 53)
    in_blood = _box(14, 15, 29, 31, 51, 53)
    arr[in_bone | in_blood] = 160.0
    vol = Volume(arr, vol0.spacing, vol0.affine, AcquisitionInfo("CT", kvp=140.0))
    f_bone, f_blood = classify([_lesion(vol, in_bone, peak=160.0), _lesion(vol, in_blood, peak=160.0)], am, vol)
    assert (f_bone.region, f_bone.kind) == ("other", Kind.BONE)
    assert (f_blood.region, f_blood.kind) == ("iliac", Kind.ATHEROSCLEROTIC)


def test_a_large_piece_of_bone_grazing_an_iliac_zone_is_not_plaque(scene):
    """A big dense mass mostly far from the artery (pelvis the bone mask missed)
    that touches the zone with a few voxels is not placed in the artery."""
    vol, am = scene
    mass = _box(2, 10, 30, 60, 54, 80)  # touches the left common iliac zone at its medial edge
    assert (am.labels[mass] == _lab("common_iliac_artery_left")).any()
    (f,) = classify([_lesion(vol, mass)], am, vol)
    assert f.region == "other"


def test_a_ligament_level_with_s1_is_ligament_but_a_dense_piece_level_with_the_canal_centre_is_bone(scene):
    """The L5-S1 ligament reaches ~12 mm below the S1 top, so a calcification on
    the canal's posterior wall on slices counted as S1 is still a ligament (the
    old "no ligament at S1" rule called it bone); a dense piece where the zone
    reaches forward to the level of the canal's centre (the back of S1, the roof
    of the sacral canal) is bone, at S1 or anywhere."""
    from dataclasses import replace as dc_replace

    vol, am = scene
    levels = tuple("S1" if k < 14 else lv for k, lv in enumerate(am.slice_levels))
    sacral_am = dc_replace(am, slice_levels=levels)
    on_wall = _box(5, 8, 68, 71, 44, 47)  # the canal (centre j 65, radius 4) ends at j 69
    at_centre = _box(5, 8, 65, 67, 45, 48)  # in the zone, level with the canal's centre
    assert (am.labels[at_centre] == _lab("ligamentum_flavum_zone")).all()
    f_wall, f_centre = classify([_lesion(vol, on_wall), _lesion(vol, at_centre)], sacral_am, vol)
    assert (f_wall.region, f_wall.kind, f_wall.level) == ("ligamentum_flavum", Kind.LIGAMENT, "S1")
    assert (f_centre.region, f_centre.kind) == ("other", Kind.BONE)
    (g,) = classify([_lesion(vol, at_centre)], am, vol)  # the same piece counted at L4
    assert (g.region, g.kind) == ("other", Kind.BONE)


def test_a_lesion_just_outside_the_ligament_zone_is_not_placed_there_by_distance(scene):
    """The distance rule is for plaque just outside an estimated vessel wall; the
    ligament zone already spans the canal's posterior wall, and what lies a few
    mm behind it is bone (laminae cut by the end of the scan were reported as
    ligament). The same lesion moved into the zone is a ligament."""
    vol, am = scene
    behind = _box(5, 10, 74, 76, 39, 42)  # 1-3 mm behind the zone (outer radius 8 round j 65)
    assert (am.labels[behind] == _lab("body")).all()
    (f,) = classify([_lesion(vol, behind)], am, vol)
    assert f.region == "other"
    inside = _box(5, 10, 70, 72, 39, 42)
    (g,) = classify([_lesion(vol, inside)], am, vol)
    assert g.region == "ligamentum_flavum"


def test_a_sliver_of_cortex_beside_the_ureter_is_not_a_ureteral_stone(scene):
    """The ureter passes over the sacral ala: a thin line of cortex released
    there (on its own, or against the bone) is not a calculus; a round stone in
    the same zone is."""
    vol0, am0 = scene
    labels = am0.labels.copy()
    for k in range(2, 12):
        labels[k][_disk(SHAPE[1:], 40, 64, 4) & (labels[k] == _lab("body"))] = _lab("ureter_left")
    am = AnatomyMap(labels=labels, affine=am0.affine, slice_levels=am0.slice_levels)
    arr = np.zeros(SHAPE, np.float32)
    stone = _box(7, 9, 38, 42, 62, 66)  # 4 x 4 x 4 mm in the zone
    sliver = _box(7, 8, 37, 38, 58, 68)  # 1 x 10 mm, one slice
    against_bone = _box(3, 5, 41, 44, 61, 64)  # round, but in a notch of the cortex
    arr[2:6, 41:48, 59:67] = 1200.0  # cortex the bone mask kept (outside the lesions)
    arr[stone | sliver | against_bone] = 1100.0
    vol = Volume(arr, vol0.spacing, vol0.affine, AcquisitionInfo("CT", kvp=120.0))
    assert (labels[stone] == _lab("ureter_left")).all()
    f_stone, f_sliver, f_bone = classify(
        [_lesion(vol, m, peak=1100.0) for m in (stone, sliver, against_bone)], am, vol)
    assert (f_stone.region, f_stone.kind, f_stone.side) == ("renal", Kind.URETERAL_STONE, "left")
    assert f_sliver.region == "other" and f_sliver.kind is not Kind.URETERAL_STONE
    assert (f_bone.region, f_bone.kind) == ("other", Kind.BONE)


def test_a_dense_line_in_a_disc_is_not_placed_in_the_aorta_by_distance(scene):
    """Endplate cortex in an intervertebral disc 2 mm behind the aortic zone is
    part of the column: the distance rule must not make it aortic plaque. The
    same lesion in soft tissue beside the aorta still is."""
    vol, am0 = scene
    labels = am0.labels.copy()
    for k in range(26, 35):
        labels[k][_disk(SHAPE[1:], 44, 46, 6)] = _lab("intervertebral_disc")
    am = AnatomyMap(labels=labels, affine=am0.affine, slice_levels=am0.slice_levels)
    line = _box(30, 31, 39, 40, 44, 49)
    assert (labels[line] == _lab("intervertebral_disc")).all()
    (f,) = classify([_lesion(vol, line, peak=1100.0)], am, vol)
    assert f.region == "other"
    (g,) = classify([_lesion(vol, line, peak=1100.0)], am0, vol)  # no disc there: soft tissue
    assert g.region == "aorta"


def test_a_faint_cluster_against_the_lamina_is_not_ligament_calcification(scene):
    """The laminar cortex's partial-volume halo plus noise passes the threshold
    in clusters against the bone (3 mm slices, high noise): one barely above
    the threshold is not a calcified ligament; a dense calcification in the
    same place against the same bone is."""
    vol0, am = scene
    arr = np.zeros(SHAPE, np.float32)
    arr[9:14, 72:75, 32:39] = 1200.0  # lamina behind the lesion
    arr[9:14, 68:72, 37:39] = 1200.0  # ... and beside it
    les = _box(10, 13, 70, 72, 34, 37)  # 18 voxels, 36 mm3, in the LF zone
    arr[les] = 180.0
    vol = Volume(arr, vol0.spacing, vol0.affine, AcquisitionInfo("CT", kvp=120.0))
    (faint,) = classify([_lesion(vol, les, peak=180.0)], am, vol)
    assert faint.region == "other"
    arr2 = arr.copy()
    arr2[les] = 500.0
    vol2 = Volume(arr2, vol0.spacing, vol0.affine, AcquisitionInfo("CT", kvp=120.0))
    (dense,) = classify([_lesion(vol2, les, peak=500.0)], am, vol2)
    assert (dense.region, dense.kind) == ("ligamentum_flavum", Kind.LIGAMENT)



def test_a_plaque_beyond_the_estimated_iliac_wall_is_iliac_but_faint_or_round_ones_are_not(scene):
    """The iliac zones miss the artery by up to ~10 mm in the pelvis: a flake of
    calcium in soft tissue 6-7 mm lateral of the zone is its plaque (the 4 mm
    distance rule left it "other"); noise barely over the threshold and a round
    nodule (a phlebolith, a node) at the same place are not."""
    vol, am = scene
    flake = _box(6, 8, 25, 36, 63, 65)  # 11 mm long; the left common iliac zone ends at i 57
    assert not (am.labels[4:10, 21:40, 59:69] == _lab("common_iliac_artery_left")).any()  # none within 4 mm
    assert (am.labels[flake] == _lab("body")).all()
    (f,) = classify([_lesion(vol, flake, peak=400.0)], am, vol)
    assert (f.region, f.kind, f.side, f.segment) == ("iliac", Kind.ATHEROSCLEROTIC, "left", "common")
    assert f.confidence < 0.4  # beyond the zone: less sure than the distance rule
    (faint,) = classify([_lesion(vol, flake, peak=180.0)], am, vol)
    assert faint.region == "other"
    nodule = _box(5, 7, 29, 33, 62, 66)  # 4 x 4 x 4 mm
    (g,) = classify([_lesion(vol, nodule, peak=400.0)], am, vol)
    assert g.region == "other"
