"""Tests for the lateral radiograph phantom (calcdetect.phantoms.radiograph)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from calcdetect.anatomy.regions import structure, vertebra_label
from calcdetect.errors import ConfigError
from calcdetect.ids import hash_uid
from calcdetect.phantoms.radiograph import (
    RadiographSettings,
    aac8_from_intervals,
    aac24_from_intervals,
    ct_effective_kev,
    equalise,
    generate_lateral_radiograph,
    hu_to_mu,
    kauppila_grade,
    line_integral_lateral,
    union_length,
    write_radiograph_phantom,
)

MU_WATER_60 = 0.02059  # 1/mm, NIST XCOM water at 60 keV



def _affine(spacing, origin=(0.0, 0.0, 0.0)):
    sk, sj, si = spacing
    a = np.zeros((4, 4))
    a[0, 2], a[1, 1], a[2, 0] = si, sj, sk  # k -> z, j -> y, i -> x
    a[:3, 3] = origin
    a[3, 3] = 1.0
    return a


def _cube_phantom(n=(40, 40, 40), spacing=(1.0, 1.0, 0.5)):
    hu = np.full(n, -1000.0, np.float32)
    hu[15:25, 15:25, 10:30] = 0.0  # 10 x 10 voxels in k, j; 20 voxels = 10 mm along i
    return SimpleNamespace(hu=hu, affine=_affine(spacing), spacing=spacing,
                           anatomy_labels=None, lesion_labels=None, lesions=[])


# --------------------------------------------------------------------- physics / projection


def test_hu_to_mu_water_air_and_bone():
    mu = hu_to_mu(np.array([-1000.0, 0.0, 1000.0]), 60.0)
    assert mu[0] == 0.0
    assert mu[1] == pytest.approx(MU_WATER_60, rel=1e-3)
    # Calcium gains on water below the CT's 70 keV: 1000 HU is more than 2x water.
    assert mu[2] > 2.1 * mu[1]
    assert hu_to_mu(np.array([1000.0]), 80.0)[0] < 2.0 * hu_to_mu(np.array([0.0]), 80.0)[0]
    # Bone HU from an 80 kVp CT are "inflated": the same material maps to less attenuation.
    assert hu_to_mu(np.array([1000.0]), 60.0, ct_effective_kev(80.0))[0] < mu[2]
    assert ct_effective_kev(120.0) == 70.0 and ct_effective_kev(None) == 70.0


def test_line_integral_of_known_cube():
    ph = _cube_phantom()
    li = line_integral_lateral(hu_to_mu(ph.hu, 60.0), ph.spacing)
    assert li.shape == (40, 40)
    assert li[20, 20] == pytest.approx(MU_WATER_60 * 10.0, rel=1e-3)
    assert li[5, 5] == 0.0


@pytest.mark.parametrize("groups", [1, 4])
def test_detector_sees_cube_line_integral_and_magnification(groups):
    ph = _cube_phantom()
    # Noise-, blur- and scatter-free: the detector sees the exact line integral.
    s = RadiographSettings(photons_per_pixel=None, blur_fwhm_mm=0.0, divergent_groups=groups,
                           detector_pixel_mm=0.5, scatter_per_attenuation=0.0)
    rg = generate_lateral_radiograph(ph, s)
    rows, cols = rg.image.shape
    centre = rg.image[rows // 2 - 2: rows // 2 + 3, cols // 2 - 2: cols // 2 + 3]
    assert centre == pytest.approx(MU_WATER_60 * 10.0, rel=2e-3)
    # The 10 mm cube spans about 10 mm x M on the detector (M ~ 1.15 at the midplane).
    width_px = int((rg.image[rows // 2] > 0.5 * MU_WATER_60 * 10.0).sum())
    assert width_px * 0.5 == pytest.approx(10.0 * s.magnification, abs=1.0)
    assert rg.magnification == pytest.approx(1150.0 / 1000.0)


def _plate_band(groups: int) -> np.ndarray:
    """Detector column through a thin plate 300 mm wide along the beam, 60 mm above the central ray."""
    spacing = (0.5, 1.0, 1.0)
    hu = np.full((400, 40, 300), -1000.0, np.float32)
    hu[320, 10:30, :] = 1000.0  # one 0.5 mm slice: an endplate seen edge-on
    ph = SimpleNamespace(hu=hu, affine=_affine(spacing, origin=(-150.0, -20.0, -100.0)), spacing=spacing,
                         anatomy_labels=None, lesion_labels=None, lesions=[])
    s = RadiographSettings(photons_per_pixel=None, blur_fwhm_mm=0.0, divergent_groups=groups,
                           detector_pixel_mm=0.2, scatter_per_attenuation=0.0)
    img = generate_lateral_radiograph(ph, s).image
    return img[:, img.shape[1] // 2]


def test_many_divergent_slabs_draw_a_wide_plate_as_one_band_not_one_line_per_slab():
    # The near side of the plate is magnified more than the far side, so a divergent beam
    # spreads it over a band of rows. Eight slabs draw that band as eight separate lines
    # (the doubled endplates of the 'standard' and 'sharp' evaluation phantoms); 128 fill it.
    for groups, gaps in ((8, True), (128, False)):
        col = _plate_band(groups)
        lit = np.nonzero(col > 0.02 * col.max())[0]
        assert lit.size and lit[-1] - lit[0] > 10  # a band, not a line: rows from both ends of the plate
        assert bool(np.any(col[lit[0]:lit[-1] + 1] < 0.02 * col.max())) == gaps


def test_noise_and_blur_change_the_image_but_keep_the_mean():
    ph = _cube_phantom()
    clean = generate_lateral_radiograph(ph, RadiographSettings(photons_per_pixel=None, detector_pixel_mm=0.5))
    noisy = generate_lateral_radiograph(ph, RadiographSettings(photons_per_pixel=1e4, detector_pixel_mm=0.5))
    assert not np.array_equal(clean.image, noisy.image)
    # Air: the estimated log-attenuation is 0 on average, sd ~ 1/sqrt(N0) = 0.01.
    air = noisy.image[:5, :5]
    assert abs(float(air.mean())) < 0.01 and 0.003 < float(air.std()) < 0.03
    fat = generate_lateral_radiograph(ph, RadiographSettings(photons_per_pixel=None, detector_pixel_mm=0.5,
                                                             obesity_fat_mm=100.0))
    r, c = fat.image.shape[0] // 2, fat.image.shape[1] // 2
    assert fat.image[r, c] > clean.image[r, c] + 1.0  # 100 mm of fat adds ~1.9


@pytest.mark.parametrize("thickness_voxels", [10, 30])
def test_exposure_control_keeps_body_noise_at_the_target(thickness_voxels):
    hu = np.full((40, 40, 40), -1000.0, np.float32)
    hu[:, :, 5:5 + thickness_voxels] = 0.0  # 50 or 150 mm of water (5 mm voxels along i)
    spacing = (2.0, 2.0, 5.0)
    ph = SimpleNamespace(hu=hu, affine=_affine(spacing), spacing=spacing, anatomy_labels=None,
                         lesion_labels=None, lesions=[])
    s = RadiographSettings(photons_per_pixel=1e4, blur_fwhm_mm=0.0, divergent_groups=1,
                           detector_pixel_mm=1.0, scatter_per_attenuation=0.0, seed=4)
    img = generate_lateral_radiograph(ph, s).image
    centre = img[img.shape[0] // 2 - 15: img.shape[0] // 2 + 15, img.shape[1] // 2 - 15: img.shape[1] // 2 + 15]
    # Relative noise of N detected quanta is 1/sqrt(N), whatever the patient size.
    assert float(centre.std()) == pytest.approx(1e-2, rel=0.3)


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="midplane_to_detector_mm"):
        RadiographSettings(midplane_to_detector_mm=2000.0)
    with pytest.raises(ConfigError, match="effective_kev"):
        RadiographSettings(effective_kev=10.0)


# --------------------------------------------------------------------- AAC-24 scoring


SEG = {"L1": (0.0, 30.0)}


@pytest.mark.parametrize(
    "anterior, grade",
    [
        ([], 0),
        ([(0.0, 0.3)], 1),
        ([(0.0, 10.0)], 1),  # exactly 1/3 -> 1 (boundaries inclusive downwards)
        ([(0.0, 10.5)], 2),  # just over 1/3 -> 2
        ([(0.0, 20.0)], 2),  # exactly 2/3 -> 2
        ([(0.0, 20.5)], 3),  # just over 2/3 -> 3
        ([(-50.0, 80.0)], 3),  # covering the whole segment and beyond
        ([(0.0, 6.0), (4.0, 10.0)], 1),  # overlaps merge: 10 mm, not 12
        ([(0.0, 6.0), (12.0, 18.0)], 2),  # disjoint pieces add: 12 mm
        ([(30.0, 50.0), (-20.0, 0.0)], 0),  # touching the ends only: nothing inside
    ],
)
def test_aac24_wall_grade_boundaries(anterior, grade):
    score = aac24_from_intervals(SEG, anterior, [])
    assert score["segments"]["L1"] == {"anterior": grade, "posterior": 0}
    assert score["total"] == grade


def test_aac24_walls_and_segments_add_up():
    segs = {"L1": (90.0, 120.0), "L2": (60.0, 90.0), "L3": (30.0, 60.0), "L4": (0.0, 30.0)}
    # Anterior: all of L1 (3) and 5 mm into L2 (1); posterior: half of L4 (2).
    s = aac24_from_intervals(segs, [(85.0, 125.0)], [(0.0, 15.0)])
    assert s["segments"]["L1"] == {"anterior": 3, "posterior": 0}
    assert s["segments"]["L2"] == {"anterior": 1, "posterior": 0}
    assert s["segments"]["L3"] == {"anterior": 0, "posterior": 0}
    assert s["segments"]["L4"] == {"anterior": 0, "posterior": 2}
    assert s["total"] == 6
    full = aac24_from_intervals(segs, [(0.0, 120.0)], [(0.0, 120.0)])
    assert full["total"] == 24


def test_kauppila_grade_and_union_length():
    assert [kauppila_grade(f) for f in (0.0, 1e-6, 1 / 3, 0.34, 2 / 3, 0.67, 1.0)] == [0, 1, 1, 2, 2, 3, 3]
    assert union_length([(0, 2), (1, 3), (5, 6)], 0.5, 5.5) == pytest.approx(3.0)
    assert union_length([(3, 1)], 0, 10) == pytest.approx(2.0)  # reversed interval


def test_grades_agree_with_the_radiograph_scorer():
    # Truth and prediction must share the Kauppila boundaries exactly.
    aac = pytest.importorskip("calcdetect.radiograph.aac")
    fractions = [0.0, 1e-6, 0.1, 0.3333, 1 / 3, 0.34, 0.5, 0.6666, 2 / 3, 0.7, 1.0]
    assert [kauppila_grade(f) for f in fractions] == [aac.kauppila_grade(f) for f in fractions]


def test_aac8_grades_by_vertebral_heights():
    segs = {"L1": (30.0, 40.0), "L2": (20.0, 30.0), "L3": (10.0, 20.0), "L4": (0.0, 10.0)}
    assert aac8_from_intervals(segs, [], [])["total"] == 0
    assert aac8_from_intervals(segs, [(0.0, 10.0)], [])["walls"]["anterior"] == 1  # exactly 1 height
    assert aac8_from_intervals(segs, [(0.0, 10.5)], [])["walls"]["anterior"] == 2
    assert aac8_from_intervals(segs, [(0.0, 31.0)], [(0.0, 40.0)])["walls"] == {"anterior": 4, "posterior": 4}


# --------------------------------------------------------------------- synthetic spine phantom

SPACING = (2.0, 1.5, 1.5)
LEVELS = ("T12", "L1", "L2", "L3", "L4", "L5")


def _spine_phantom():
    """A tiny box spine: six vertebrae, a canal, an aorta and two aortic-wall plaques."""
    nk, nj, ni = 110, 70, 50
    hu = np.full((nk, nj, ni), -1000.0, np.float32)
    hu[:, 5:65, 5:45] = 40.0  # body
    anatomy = np.zeros(hu.shape, np.uint8)
    canal = structure("spinal_canal").label
    z_ranges = {}
    for n, level in enumerate(LEVELS):  # T12 at the top (largest k)
        k1 = nk - 3 - n * 17
        k0 = k1 - 14
        anatomy[k0:k1, 35:50, 17:33] = vertebra_label(level)  # body, anterior to the canal
        anatomy[k0:k1, 50:62, 22:28] = vertebra_label(level)  # posterior elements
        hu[k0:k1, 35:50, 17:33] = 300.0
        z_ranges[level] = (k0, k1)
    anatomy[:, 51:56, 23:27] = canal
    hu[:, 51:56, 23:27] = 8.0
    # Aorta: centre j = 25, radius 5 voxels, around i = 25.
    jj, ii = np.mgrid[0:nj, 0:ni]
    disk = (jj - 25) ** 2 + (ii - 25) ** 2 <= 25
    anatomy[:, disk] = structure("aorta").label
    hu[:, disk] = 42.0
    lesions_lab = np.zeros(hu.shape, np.uint16)
    # Lesion 1: anterior wall (j 20-21) over all of L2's body slices.
    l2k0, l2k1 = z_ranges["L2"]
    lesions_lab[l2k0:l2k1, 20:22, 24:27] = 1
    # Lesion 2: posterior wall (j 29-30) over the lower half of L3 (7 of 14 slices).
    l3k0, _ = z_ranges["L3"]
    lesions_lab[l3k0:l3k0 + 7, 29:31, 24:27] = 2
    hu[lesions_lab > 0] = 600.0
    affine = _affine(SPACING, origin=(-37.0, -50.0, -100.0))

    def record(lid, region):
        kk, jjx, iix = np.nonzero(lesions_lab == lid)
        xyz = affine[:3, :3] @ np.array([kk.mean(), jjx.mean(), iix.mean()]) + affine[:3, 3]
        return {"id": lid, "region": region, "side": None, "level": None, "kind": "atherosclerotic",
                "volume_mm3": float(kk.size * np.prod(SPACING)), "centroid_lps_mm": xyz.tolist()}

    return SimpleNamespace(hu=hu, affine=affine, spacing=SPACING, anatomy_labels=anatomy,
                           lesion_labels=lesions_lab, lesions=[record(1, "aorta"), record(2, "aorta")])


@pytest.fixture(scope="module")
def spine_radiograph():
    s = RadiographSettings(seed=3, detector_pixel_mm=0.8, photons_per_pixel=2e4)
    return generate_lateral_radiograph(_spine_phantom(), s)


def test_synthetic_spine_aac24(spine_radiograph):
    aac = spine_radiograph.aac24
    assert aac["segments"]["L2"] == {"anterior": 3, "posterior": 0}
    assert aac["segments"]["L3"] == {"anterior": 0, "posterior": 2}
    assert aac["segments"]["L1"] == aac["segments"]["L4"] == {"anterior": 0, "posterior": 0}
    assert aac["total"] == 5
    assert spine_radiograph.aac8["walls"] == {"anterior": 1, "posterior": 1}


def test_synthetic_spine_vertebrae_in_plausible_order(spine_radiograph):
    v = spine_radiograph.vertebrae
    assert set(v) == set(LEVELS)
    for level in LEVELS:
        c = v[level]["corners_px"]
        assert c["anterior_superior"][0] < c["anterior_inferior"][0]  # superior above inferior
        assert c["posterior_superior"][0] < c["posterior_inferior"][0]
        assert c["anterior_superior"][1] < c["posterior_superior"][1]  # anterior on the left
        # Body height ~ 14 slices x 2 mm x M / 0.8 mm pixels.
        height = c["anterior_inferior"][0] - c["anterior_superior"][0]
        assert height == pytest.approx(28 * 1.15 / 0.8, rel=0.15)
        assert len(v[level]["outline_px"]) >= 4
    for upper, lower in zip(LEVELS, LEVELS[1:]):
        assert v[upper]["corners_px"]["anterior_inferior"][0] < v[lower]["corners_px"]["anterior_superior"][0]


def test_synthetic_spine_lesions_project_where_expected(spine_radiograph):
    rg = spine_radiograph
    for rec in rg.lesions:
        assert rec["area_px"] > 0
        r, c = (int(round(v)) for v in rec["centroid_px"])
        assert rg.lesion_labels[r, c] == rec["id"]
    # Dense plaque projects brighter than the soft tissue beside it.
    les = rg.lesions[0]
    r0, c0, r1, c1 = les["bbox_px"]
    inside = rg.image[r0:r1, c0:c1][rg.lesion_labels[r0:r1, c0:c1] == les["id"]].mean()
    beside = rg.image[r0:r1, c0 - 12:c0 - 6].mean()
    assert inside > beside


# --------------------------------------------------------------------- DICOM round trip


def test_dx_dicom_round_trip(tmp_path, spine_radiograph):
    pydicom = pytest.importorskip("pydicom")
    out = write_radiograph_phantom(spine_radiograph, tmp_path / "rg")
    ds = pydicom.dcmread(out / "dicom" / "DX000.dcm")
    assert ds.Modality == "DX"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.8, 0.8]
    assert float(ds.EstimatedRadiographicMagnificationFactor) == pytest.approx(1.15)
    assert ds.ViewPosition == "LL" and ds.BodyPartExamined == "LSPINE"
    assert str(ds.PatientName) == "PHANTOM^DX"
    assert ds.BitsStored == 12
    px = ds.pixel_array
    assert px.shape == spine_radiograph.image.shape
    assert np.array_equal(px, spine_radiograph.stored_pixels())
    assert px.max() <= 4095
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert truth["schema"] == "calcdetect-truth/1" and truth["kind"] == "radiograph"
    assert truth["series_uid_hash"] == hash_uid(ds.SeriesInstanceUID)
    assert truth["aac24"]["total"] == 5
    assert set(truth["vertebrae"]["L1"]["corners_px"]) == {
        "anterior_superior", "posterior_superior", "anterior_inferior", "posterior_inferior"}
    from PIL import Image

    labels = np.array(Image.open(out / "truth" / "calcification_labels.png"))
    assert labels.dtype == np.uint16 and np.array_equal(labels, spine_radiograph.lesion_labels)
    mask = np.array(Image.open(out / "truth" / "calcification_mask.png"))
    assert np.array_equal(mask > 0, spine_radiograph.lesion_labels > 0)  # both lesions are aortic targets
    with np.load(out / "truth" / "lesion_masks.npz") as masks:
        for rec in truth["lesions"]:
            crop = masks[str(rec["id"])]
            r0, c0, r1, c1 = rec["bbox_px"]
            assert crop.shape == (r1 - r0, c1 - c0) and int(crop.sum()) == rec["area_px"]
            assert np.all(labels[r0:r1, c0:c1][crop] > 0)
    with pytest.raises(FileExistsError):
        write_radiograph_phantom(spine_radiograph, tmp_path / "rg")


def test_written_truth_is_accepted_by_evaluate(tmp_path, spine_radiograph):
    from calcdetect.evaluate import evaluate

    study = write_radiograph_phantom(spine_radiograph, tmp_path / "truth" / "rg")
    series = tmp_path / "run" / "s1"
    series.mkdir(parents=True)
    doc = {"schema": "calcdetect-findings/1",
           "input": {"modality": "DX", "series_uid_hash": hash_uid(spine_radiograph.series_uid)},
           "warnings": [], "findings": [], "aac24": {"total": 4, "segments": {}}}
    (series / "findings.json").write_text(json.dumps(doc))
    rep = evaluate(tmp_path / "run", study)
    assert rep.aac24["n"] == 1 and rep.aac24["mae"] == 1.0


def test_vertebrae_without_canal_label_use_anterior_fallback():
    ph = _spine_phantom()
    anatomy = ph.anatomy_labels.copy()
    anatomy[anatomy == structure("spinal_canal").label] = 0
    ph.anatomy_labels = anatomy
    rg = generate_lateral_radiograph(ph, RadiographSettings(detector_pixel_mm=1.0, photons_per_pixel=None))
    c = rg.vertebrae["L3"]["corners_px"]
    assert c["anterior_superior"][0] < c["anterior_inferior"][0]
    assert c["anterior_superior"][1] < c["posterior_superior"][1]
    assert rg.aac24["total"] == 5


def test_scatter_lowers_contrast_and_matches_uniform_slab_spr():
    # A uniform 100 mm water slab: SPR = k x L in the middle, so -log(P (1 + k L)).
    hu = np.full((60, 60, 40), -1000.0, np.float32)
    hu[:, :, 10:30] = 0.0
    spacing = (2.0, 2.0, 5.0)  # 20 voxels x 5 mm = 100 mm of water
    ph = SimpleNamespace(hu=hu, affine=_affine(spacing), spacing=spacing, anatomy_labels=None,
                         lesion_labels=None, lesions=[])
    s = RadiographSettings(photons_per_pixel=None, blur_fwhm_mm=0.0, divergent_groups=1,
                           detector_pixel_mm=1.0, scatter_per_attenuation=0.1, scatter_sigma_mm=10.0)
    rg = generate_lateral_radiograph(ph, s)
    li = MU_WATER_60 * 100.0
    r, c = rg.image.shape[0] // 2, rg.image.shape[1] // 2
    assert rg.image[r, c] == pytest.approx(li - np.log1p(0.1 * li), rel=1e-2)


def test_dx_loads_through_calcdetect_io(tmp_path, spine_radiograph):
    io = pytest.importorskip("calcdetect.io")
    out = write_radiograph_phantom(spine_radiograph, tmp_path / "rg")
    groups = io.discover(out / "dicom").loadable()
    assert len(groups) == 1 and groups[0].kind == "radiograph"
    rg = io.load_radiograph(groups[0])
    assert rg.view == "lateral"
    assert rg.pixel_spacing == pytest.approx((0.8 / 1.15, 0.8 / 1.15))
    assert np.array_equal(rg.array, spine_radiograph.stored_pixels().astype(np.float32))
    assert rg.info.series_uid_hash == hash_uid(spine_radiograph.series_uid)


# --------------------------------------------------------------------- with the CT phantom


@pytest.fixture(scope="module")
def ct_radiograph():
    ct_mod = pytest.importorskip("calcdetect.phantoms.ct")
    ct = ct_mod.generate_ct_phantom(ct_mod.CTPhantomSettings(
        seed=5, matrix=128, pixel_mm=3.0, slice_thickness_mm=5.0, fov=("T12", "S1"),
        noise_sigma_hu=0.0, plaque_burden=0.8))
    return ct, generate_lateral_radiograph(ct, RadiographSettings(seed=5, detector_pixel_mm=1.0))


def test_ct_phantom_projects_with_plausible_vertebrae(ct_radiograph):
    ct, rg = ct_radiograph
    v = rg.vertebrae
    assert {"L1", "L2", "L3", "L4"} <= set(v)
    for level in ("L1", "L2", "L3", "L4"):
        c = v[level]["corners_px"]
        assert c["anterior_superior"][0] < c["anterior_inferior"][0]
        assert c["posterior_superior"][0] < c["posterior_inferior"][0]
        assert c["anterior_superior"][1] < c["posterior_superior"][1]
        for r, col in c.values():
            assert 0 <= r < rg.image.shape[0] and 0 <= col < rg.image.shape[1]
    rows = [v[lv]["centroid_px"][0] for lv in ("L1", "L2", "L3", "L4")]
    assert rows == sorted(rows)  # L1 above L2 above L3 above L4
    # The segments agree with the CT phantom's own vertebral body z extents.
    bodies = {b["level"]: b for b in ct.anatomy["vertebrae"]}
    for level in ("L1", "L2", "L3", "L4"):
        lo, hi = v[level]["z_range_mm"]
        assert lo == pytest.approx(bodies[level]["z_bottom_mm"], abs=ct.spacing[0] + 1.0)
        assert hi == pytest.approx(bodies[level]["z_top_mm"], abs=ct.spacing[0] + 1.0)


def test_ct_phantom_aac24_and_lesion_truth(ct_radiograph):
    ct, rg = ct_radiograph
    assert 0 <= rg.aac24["total"] <= 24 and set(rg.aac24["segments"]) == {"L1", "L2", "L3", "L4"}
    aortic = [les for les in ct.lesions if les.region == "aorta"]
    if aortic:  # heavy plaque burden: the aorta in front of L1-L4 is calcified somewhere
        assert rg.aac24["total"] > 0
    ids = {rec["id"] for rec in rg.lesions}
    assert ids == {les.id for les in ct.lesions}
    rows, cols = rg.image.shape
    inside = [rec for rec in rg.lesions
              if 3 <= rec["centroid_px"][0] < rows - 3 and 3 <= rec["centroid_px"][1] < cols - 3]
    assert len(inside) >= 10
    assert all(rec["area_px"] > 0 for rec in inside)  # every lesion in the field projects
    far = [rec for rec in rg.lesions if not -10 <= rec["centroid_px"][0] < rows + 10]
    assert all(rec["area_px"] == 0 and rec["bbox_px"] is None for rec in far)


def test_cli_entry_validates_and_writes(tmp_path):
    pytest.importorskip("calcdetect.phantoms.ct")
    from calcdetect.phantoms.radiograph import cli_phantom_radiograph

    with pytest.raises(ValueError, match="effective_kev"):
        cli_phantom_radiograph(tmp_path / "x", seed=1, bogus=3)
    with pytest.raises(ValueError, match="unknown CT phantom option"):
        cli_phantom_radiograph(tmp_path / "x", seed=1, ct_options={"nope": 1})
    out = cli_phantom_radiograph(
        tmp_path / "rg", seed=1, detector_pixel_mm=1.5,
        ct_options={"matrix": 96, "pixel_mm": 3.0, "slice_thickness_mm": 5.0, "fov": ("T12", "L5")})
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert truth["kind"] == "radiograph" and truth["aac24"] is not None
    assert (out / "dicom" / "DX000.dcm").is_file()


def test_presentation_log_stores_scaled_line_integral_and_equalised_lifts_edges():
    from dataclasses import replace

    ph = _spine_phantom()
    base = RadiographSettings(seed=3, detector_pixel_mm=0.8, photons_per_pixel=None, presentation="log")
    log_rg = generate_lateral_radiograph(ph, base)
    stored = log_rg.stored_pixels().astype(float)
    assert stored == pytest.approx(np.clip(np.rint(log_rg.image * 409.5), 0, 4095))
    eq_rg = generate_lateral_radiograph(ph, replace(base, presentation="equalised"))
    assert np.array_equal(eq_rg.image, log_rg.image)  # the truth image is always raw log-attenuation
    eq = eq_rg.stored_pixels().astype(float)
    assert eq.min() == 0 and eq.max() == 4095  # windowed to the body
    # Equalisation lifts a small dense spot (up to 1 + gain) over a wide gradient
    # it leaves alone: the spot's share of the dynamic range grows.
    yy, xx = np.mgrid[0:400, 0:400]
    img = (6.0 * xx / 400.0).astype(np.float32)
    img[195:205, 195:205] += 0.3
    out = equalise(img, 0.5, 25.0, 3.0)
    inner = (slice(100, 300), slice(100, 300))

    def spot_share(a):
        return (a[200, 200] - a[200, 190]) / np.ptp(a[inner])

    assert spot_share(out) > 2.5 * spot_share(img)
    with pytest.raises(ConfigError, match="presentation"):
        RadiographSettings(presentation="fancy")


def test_uids_are_deterministic_and_differ_between_sources():
    s = RadiographSettings(detector_pixel_mm=2.0, photons_per_pixel=None)
    a1 = generate_lateral_radiograph(_cube_phantom(), s)
    a2 = generate_lateral_radiograph(_cube_phantom(), s)
    other = _cube_phantom()
    other.hu[0, 0, 0] = 500.0
    b = generate_lateral_radiograph(other, s)
    assert a1.series_uid == a2.series_uid and a1.sop_uid == a2.sop_uid
    assert b.series_uid != a1.series_uid
    assert len({a1.study_uid, a1.series_uid, a1.sop_uid}) == 3


def test_aortic_calcification_is_visible_in_the_projection():
    """Wall plaques seen edge-on stand above the quantum noise (median CNR > 1.5).

    This phantom measures 1.95 with the film's 128 divergent slabs (the default) and 2.5 with
    8: one magnification per slab draws a plaque that is wide along the beam sharper than a
    divergent beam does.

    CNR of a lesion: mean log-attenuation on its truth mask minus the median of
    a ring around it (outside every lesion), over the quantum noise in that ring
    (noisy minus noise-free image of the same exposure).
    """
    ndimage = pytest.importorskip("scipy.ndimage")
    ct_mod = pytest.importorskip("calcdetect.phantoms.ct")
    ct = ct_mod.generate_ct_phantom(ct_mod.CTPhantomSettings(
        seed=7, matrix=256, pixel_mm=1.25, slice_thickness_mm=2.0, fov=("L1", "L4"),
        noise_sigma_hu=0.0, plaque_burden=1.0))
    base = dict(seed=7, detector_pixel_mm=0.4, image_shape=None)
    rg = generate_lateral_radiograph(ct, RadiographSettings(**base, photons_per_pixel=3e4))
    clean = generate_lateral_radiograph(ct, RadiographSettings(**base, photons_per_pixel=None)).image
    img = rg.image.astype(np.float64)
    cnr, contrast = [], []
    for rec in rg.lesions:
        if rec["region"] != "aorta" or rec["bbox_px"] is None:
            continue
        r0, c0, r1, c1 = rec["bbox_px"]
        mask = np.zeros(img.shape, bool)
        mask[r0:r1, c0:c1] = rg.lesion_masks[rec["id"]]
        near = ndimage.binary_dilation(mask, iterations=3)
        ring = ndimage.binary_dilation(mask, iterations=10) & ~near & (rg.lesion_labels == 0)
        if ring.sum() < 20:
            continue
        noise = float((img - clean)[ring].std())
        contrast.append(img[mask].mean() - np.median(img[ring]))
        cnr.append(contrast[-1] / noise)
    assert len(cnr) >= 3
    assert np.median(cnr) > 1.5  # was ~0.6 when the CT-blurred, en-face-heavy plaques were projected
    # Visible but subtle: a few hundredths of log-attenuation, far below bone.
    assert np.median(contrast) < 0.1


def test_aortic_lesions_are_given_the_wall_quadrant_they_lie_on():
    # a lateral view sees the anterior and posterior walls in profile, the left and right walls en face
    from calcdetect.phantoms.radiograph import aortic_wall_quadrants

    shape = (9, 60, 60)  # k (z), j (y, posterior), i (x, left)
    anatomy = np.zeros(shape, np.uint8)
    jj, ii = np.mgrid[0:60, 0:60]
    anatomy[:, (jj - 30) ** 2 + (ii - 30) ** 2 <= 100] = structure("aorta").label  # r = 10 mm
    lesions = np.zeros(shape, np.int32)
    lesions[0:3, 20, 29:32] = 1  # anterior wall
    lesions[3:6, 29:32, 40] = 2  # left wall
    lesions[6:9, 40, 29:32] = 3  # posterior wall
    assert aortic_wall_quadrants(lesions, [1, 2, 3], anatomy, (1.0, 1.0, 1.0)) == {
        1: "anterior", 2: "lateral", 3: "posterior"}


def test_aac24_truth_grades_the_walls_seen_in_profile():
    # Kauppila grades the anterior and posterior walls, which a lateral beam meets edge-on;
    # left-wall plaque is seen en face over the lumen: not graded by the truth, but still
    # graded (on the wall it leans to) by the older all-walls definition kept for comparison.
    from calcdetect.phantoms.radiograph import _aortic_wall_intervals, _Geometry

    shape = (9, 60, 60)
    anatomy = np.zeros(shape, np.uint8)
    jj, ii = np.mgrid[0:60, 0:60]
    anatomy[:, (jj - 30) ** 2 + (ii - 30) ** 2 <= 100] = structure("aorta").label
    lesions = np.zeros(shape, np.int32)
    lesions[0:3, 20, 29:32] = 1  # anterior wall, slices 0-2
    lesions[3:6, 31:33, 40] = 2  # left wall (leans posterior), slices 3-5
    lesions[6:9, 40, 29:32] = 3  # posterior wall, slices 6-8
    lesions[4, 21:24, 35:38] = 4  # 35-40 degrees from anterior: still in profile, slice 4
    geom = _Geometry(sid=1000.0, x_source=0.0, y_c=0.0, z_c=0.0, pixel=1.0, rows=9, cols=60,
                     origin_kji_mm=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 1.0))
    ant, post = _aortic_wall_intervals(lesions, [1, 2, 3, 4], anatomy, geom)
    assert sorted(ant) == [(-0.5, 0.5), (0.5, 1.5), (1.5, 2.5), (3.5, 4.5)]
    assert sorted(post) == [(5.5, 6.5), (6.5, 7.5), (7.5, 8.5)]
    ant_all, post_all = _aortic_wall_intervals(lesions, [1, 2, 3, 4], anatomy, geom, walls="all")
    assert sorted(post_all) == [(2.5, 3.5), (3.5, 4.5), (4.5, 5.5), (5.5, 6.5), (6.5, 7.5), (7.5, 8.5)]
    with pytest.raises(ValueError, match="profile"):
        _aortic_wall_intervals(lesions, [1], anatomy, geom, walls="left")


def test_profile_volume_keeps_only_the_voxels_the_truth_grades():
    from calcdetect.phantoms.radiograph import aortic_profile_volume

    shape = (6, 60, 60)
    anatomy = np.zeros(shape, np.uint8)
    jj, ii = np.mgrid[0:60, 0:60]
    anatomy[:5, (jj - 30) ** 2 + (ii - 30) ** 2 <= 100] = structure("aorta").label  # no aorta on slice 5
    lesions = np.zeros(shape, np.int32)
    lesions[0:2, 20, 29:32] = 1  # anterior wall
    lesions[2:4, 29:32, 40] = 2  # left wall: seen en face, not graded
    lesions[4:6, 40, 29:32] = 3  # posterior wall; slice 5 has no aortic centre, kept
    lesions[0, 5, 5] = 9  # not an aortic lesion
    out = aortic_profile_volume(lesions, [1, 2, 3], anatomy, (1.0, 1.0, 1.0))
    assert set(np.unique(out)) == {0, 1, 3}
    assert (out == 1).sum() == (lesions == 1).sum() and (out == 3).sum() == (lesions == 3).sum()
    assert lesions.max() == 9  # the input is not modified


def test_ct_phantom_profile_mask_is_the_graded_part_of_the_aortic_calcium(ct_radiograph):
    _, rg = ct_radiograph
    aortic = [int(r["id"]) for r in rg.lesions if r.get("region") == "aorta"]
    if not aortic:
        pytest.skip("no aortic lesion in this phantom")
    all_aortic = np.isin(rg.lesion_labels, aortic)
    assert rg.aortic_profile_mask.shape == rg.image.shape
    assert (rg.aortic_profile_mask & ~all_aortic).sum() <= 0.02 * rg.aortic_profile_mask.sum() + 5
    if rg.aac24["total"] > 0:
        assert rg.aortic_profile_mask.any()


def test_aac24_by_visibility_drops_only_the_calcium_that_adds_too_little_attenuation(spine_radiograph):
    # Both plaques run 3 voxels (4.5 mm) along the beam at 600 HU in 42 HU blood: about
    # 0.07 of log-attenuation. Thinning the posterior one to a single voxel along the beam
    # (1.5 mm, about 0.02) makes it the first to go as the threshold rises.
    from calcdetect.phantoms.radiograph import aac24_by_visibility

    settings = RadiographSettings(seed=3, detector_pixel_mm=0.8, photons_per_pixel=2e4)
    truth = spine_radiograph.aac24
    ph = _spine_phantom()
    by_tau = aac24_by_visibility(ph, settings, [0.0, 0.04, 0.5])
    assert by_tau[0.0] == truth
    assert by_tau[0.04]["total"] == truth["total"] > 0
    assert by_tau[0.5]["total"] == 0
    thin = _spine_phantom()
    lab = thin.lesion_labels
    lab[(lab == 2) & (np.arange(lab.shape[2]) != 25)[None, None, :]] = 0
    before = lab.copy()
    segs = aac24_by_visibility(thin, settings, [0.0, 0.04])
    assert segs[0.0]["segments"]["L3"]["posterior"] > 0
    assert segs[0.04]["segments"]["L3"]["posterior"] == 0
    assert segs[0.04]["segments"]["L2"]["anterior"] == segs[0.0]["segments"]["L2"]["anterior"] > 0
    assert np.array_equal(thin.lesion_labels, before)  # the phantom is not modified
