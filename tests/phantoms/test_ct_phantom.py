"""The CT phantom: deterministic, and its truth agrees with its image and anatomy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from calcdetect.anatomy.regions import structure, vertebra_label
from calcdetect.phantoms.ct import (
    CTPhantom,
    CTPhantomSettings,
    generate_ct_phantom,
    write_ct_phantom,
)
from calcdetect.phantoms.truth import TRUTH_SCHEMA, nifti_affine_from_kji

TINY = CTPhantomSettings(seed=5, matrix=128, pixel_mm=2.8, slice_thickness_mm=4.0, fov=("L2", "L4"),
                         noise_sigma_hu=20.0)


def _lps(ph: CTPhantom, kji: np.ndarray) -> np.ndarray:
    return np.asarray(kji, float) @ ph.affine[:3, :3].T + ph.affine[:3, 3]


def _min_dist_mm(ph: CTPhantom, point_lps, labels: list[int]) -> float:
    idx = np.argwhere(np.isin(ph.anatomy_labels, labels))
    assert len(idx), f"no voxels with labels {labels}"
    return float(np.min(np.linalg.norm(_lps(ph, idx) - np.asarray(point_lps), axis=1)))


def test_determinism_by_seed() -> None:
    a = generate_ct_phantom(TINY)
    b = generate_ct_phantom(TINY)
    c = generate_ct_phantom(dataclasses.replace(TINY, seed=6))
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.lesion_labels, b.lesion_labels)
    np.testing.assert_array_equal(a.anatomy_labels, b.anatomy_labels)
    assert a.truth_document() == b.truth_document()
    assert a.hu.shape[1:] == c.hu.shape[1:]
    assert not np.array_equal(a.hu[:, :, :], c.hu[: a.hu.shape[0]]) or a.hu.shape != c.hu.shape
    assert a.truth_document()["lesions"] != c.truth_document()["lesions"]


def test_geometry_and_types(small_phantom: CTPhantom) -> None:
    ph = small_phantom
    assert ph.hu.dtype == np.float32 and ph.hu.ndim == 3 and ph.hu.shape[1:] == (224, 224)
    assert ph.anatomy_labels.dtype == np.uint8 and ph.lesion_labels.dtype == np.uint16
    np.testing.assert_allclose(np.diag(ph.affine[[2, 1, 0], :3]), [2.0, 1.5, 1.5])  # (sk, sj, si)
    # LPS: i runs to the patient's left (+x), j posterior (+y), k superior (+z).
    assert ph.affine[0, 2] > 0 and ph.affine[1, 1] > 0 and ph.affine[2, 0] > 0
    ids = sorted(np.unique(ph.lesion_labels[ph.lesion_labels > 0]).tolist())
    assert ids == [les.id for les in ph.lesions]


def test_tissue_values_plausible(small_phantom: CTPhantom) -> None:
    ph = small_phantom
    lab = ph.anatomy_labels
    med = lambda name: float(np.median(ph.hu[lab == structure(name).label]))  # noqa: E731
    assert -50 < med("psoas_left") < 80
    assert 20 < med("aorta") < 80
    assert 100 < float(np.median(ph.hu[lab == vertebra_label("L3")])) < 600
    assert 40 < med("intervertebral_disc") < 130
    assert float(ph.hu.min()) >= -1024


def test_anatomy_layout(small_phantom: CTPhantom) -> None:
    """Aorta anterior-left of the spine, kidneys lateral, canal posterior to the bodies."""
    ph = small_phantom
    lab = ph.anatomy_labels

    def centre(label: int) -> np.ndarray:
        return _lps(ph, np.argwhere(lab == label).mean(0))

    l3 = centre(vertebra_label("L3"))
    aorta = centre(structure("aorta").label)
    assert aorta[0] > l3[0] and aorta[1] < l3[1]  # left (+x) and anterior (-y)
    assert centre(structure("kidney_left").label)[0] > 40
    assert centre(structure("kidney_right").label)[0] < -40
    assert centre(structure("spinal_canal").label)[1] > l3[1]
    assert centre(structure("ligamentum_flavum_zone").label)[1] > centre(structure("spinal_canal").label)[1]
    # Vertebral bodies are stacked cranio-caudally in order, 20-35 mm apart.
    vz = {v["level"]: 0.5 * (v["z_top_mm"] + v["z_bottom_mm"]) for v in ph.anatomy["vertebrae"]}
    order = ["T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    steps = [vz[a] - vz[b] for a, b in zip(order, order[1:])]
    assert all(20 < s < 45 for s in steps), steps
    assert ph.anatomy["bifurcation"]["level"] in ("L3", "L4", "L5")


def test_lesions_visible_in_image(small_phantom: CTPhantom) -> None:
    ph = small_phantom
    checked = 0
    for les in ph.lesions:
        mask = ph.lesion_labels == les.id
        assert mask.any(), les
        k0, j0, i0, k1, j1, i1 = les.bbox_kji
        assert mask[k0:k1, j0:j1, i0:i1].sum() == mask.sum()
        if les.diameter_mm is not None and les.diameter_mm >= 3.0 and les.kind != "contrast":
            peak = float(ph.hu[mask].max())
            assert peak > 130, (les.id, les.kind, les.diameter_mm, peak)
            checked += 1
        # Truth arithmetic.
        if les.density_mg_cm3 is not None:
            assert les.mass_mg == pytest.approx(les.volume_mm3 * les.density_mg_cm3 / 1000, rel=1e-3)
    assert checked >= 5


def test_lesion_kinds_present(small_phantom: CTPhantom) -> None:
    kinds = {les.kind for les in small_phantom.lesions}
    assert {"atherosclerotic", "stone", "nephrocalcinosis", "ligament"} <= kinds
    regions = {les.region for les in small_phantom.lesions}
    assert {"aorta", "iliac", "renal", "ligamentum_flavum"} <= regions


def test_lesions_sit_in_their_structures(small_phantom: CTPhantom) -> None:
    ph = small_phantom
    lab = lambda name: structure(name).label  # noqa: E731
    for les in ph.lesions:
        c = les.centroid_lps_mm
        if les.region == "aorta":
            assert _min_dist_mm(ph, c, [lab("aorta")]) <= 5.0, les
            assert les.segment in ("infrarenal", "suprarenal")
        elif les.region == "iliac":
            name = {"common": "common_iliac_artery", "external": "external_iliac_artery",
                    "internal": "internal_iliac_artery"}[les.segment] + f"_{les.side}"
            assert _min_dist_mm(ph, c, [lab(name)]) <= 5.0, les
        elif les.kind == "stone":
            assert _min_dist_mm(ph, c, [lab(f"collecting_system_{les.side}")]) <= 3.0, les
            assert les.pole in ("upper", "mid", "lower")
        elif les.kind == "nephrocalcinosis":
            assert _min_dist_mm(ph, c, [lab(f"kidney_medulla_{les.side}"), lab(f"kidney_{les.side}")]) <= 3.0, les
        elif les.kind == "ureteral_stone":
            assert _min_dist_mm(ph, c, [lab(f"ureter_{les.side}")]) <= 5.0, les
        elif les.region == "ligamentum_flavum":
            assert _min_dist_mm(ph, c, [lab("ligamentum_flavum_zone")]) <= 3.0, les
            # Left-sided LF lesions lie at +x (LPS) and vice versa.
            assert (c[0] > 0) == (les.side == "left"), les


def test_levels_agree_with_vertebra_labels(small_phantom: CTPhantom) -> None:
    ph = small_phantom
    z = ph.affine[2, 0] * np.arange(ph.hu.shape[0]) + ph.affine[2, 3]
    zr = {}
    for lv in ("T12", "L1", "L2", "L3", "L4", "L5", "S1"):
        ks = np.flatnonzero((ph.anatomy_labels == vertebra_label(lv)).any(axis=(1, 2)))
        if len(ks):
            zr[lv] = (z[ks].min(), z[ks].max())
    n = 0
    for les in ph.lesions:
        if les.level is None or les.kind == "metal":
            continue
        parts = les.level.split("-")
        if not all(p in zr for p in parts):
            continue  # a level outside the field of view: nothing to compare with
        lo = min(zr[p][0] for p in parts) - 2.0
        hi = max(zr[p][1] for p in parts) + 2.0
        assert lo <= les.centroid_lps_mm[2] <= hi, (les.id, les.level, les.centroid_lps_mm, lo, hi)
        n += 1
    assert n >= 5
    for v in ph.anatomy["vertebrae"]:
        if v["level"] in zr and zr[v["level"]][0] > z[0] + 1 and zr[v["level"]][1] < z[-1] - 1:
            assert zr[v["level"]][0] - 2 <= v["z_bottom_mm"] and v["z_top_mm"] <= zr[v["level"]][1] + 2


def test_nifti_affine_conversion() -> None:
    aff = np.array([[0, 0, 0.7, -100], [0, 0.8, 0, -50], [2.5, 0, 0, 30], [0, 0, 0, 1.0]])
    nif = nifti_affine_from_kji(aff)
    for kji in ([0, 0, 0], [3, 5, 7], [1, 9, 2]):
        lps = aff @ [*kji, 1]
        ras = nif @ [kji[2], kji[1], kji[0], 1]
        np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]])


def test_write_round_trip(tmp_path: Path) -> None:
    ph = generate_ct_phantom(TINY)
    out = write_ct_phantom(ph, tmp_path / "ph")
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == ph.hu.shape[0]
    dss = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    vol = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])
    assert np.max(np.abs(vol - ph.hu)) <= 0.5 + 1e-4
    for k, d in enumerate(dss):
        np.testing.assert_allclose([float(v) for v in d.ImagePositionPatient], (ph.affine @ [k, 0, 0, 1])[:3], atol=1e-4)
        np.testing.assert_allclose([float(v) for v in d.PixelSpacing], [ph.spacing[1], ph.spacing[2]])
        assert str(d.PatientName) == "PHANTOM^CT" and d.PatientID == "PHANTOM-5"
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert truth["schema"] == TRUTH_SCHEMA and truth["kind"] == "ct"
    assert [les["id"] for les in truth["lesions"]] == [les.id for les in ph.lesions]
    for name, arr in (("lesions", ph.lesion_labels), ("anatomy", ph.anatomy_labels)):
        img = nib.load(out / "truth" / f"{name}.nii.gz")
        np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), arr)
        # A voxel's NIfTI world coordinate is its DICOM LPS coordinate with x, y negated.
        k, j, i = 2, 10, 20
        ras = img.affine @ [i, j, k, 1]
        lps = np.array([float(v) for v in dss[k].ImagePositionPatient]) + np.array(
            [float(dss[k].PixelSpacing[1]) * i, float(dss[k].PixelSpacing[0]) * j, 0.0])
        np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)


@pytest.mark.parametrize(
    "change, match",
    [({"kvp": 200}, "kvp"), ({"fov": ("L5", "T10")}, "above"), ({"fov": ("C3", "L1")}, "fov"),
     ({"lf_calcification": "lots"}, "lf_calcification"), ({"pixel_mm": 0.1}, "pixel_mm")],
)
def test_settings_errors(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_ct_phantom(dataclasses.replace(TINY, **change))


def test_metal_contrast_and_level_helper() -> None:
    from calcdetect.phantoms.truth import VertebraTruth, level_span

    ph = generate_ct_phantom(dataclasses.replace(TINY, fov=("L3", "FH"), metal=True, contrast=True, table=True))
    # The table lies below the back, unlabelled: dense skins outside every structure.
    back = int(np.flatnonzero(ph.anatomy_labels.any(axis=(0, 2))).max())
    below = ph.hu[:, back + 1:, :]
    assert float(below.max()) > 200 and not ph.anatomy_labels[:, back + 1:, :].any()
    kinds = [les.kind for les in ph.lesions]
    assert "metal" in kinds and kinds.count("contrast") == 1
    contrast = next(les for les in ph.lesions if les.kind == "contrast")
    assert contrast.density_mg_cm3 is None and contrast.mass_mg is None
    assert 250 <= ph.acquisition["contrast_hu"] <= 400
    # Opacified lumen is bright in the image; plaques keep their own ids.
    assert float(np.median(ph.hu[ph.lesion_labels == contrast.id])) > 200
    verts = [VertebraTruth("L3", 100, 72), VertebraTruth("L4", 62, 34)]
    assert level_span(80, 90, verts) == "L3"
    assert level_span(65, 70, verts) == "L3-L4"
    assert level_span(40, 95, verts) == "L3-L4"
    assert level_span(-100, -90, verts) is None


def test_sample_study_is_small_and_complete(tmp_path: Path) -> None:
    from calcdetect.phantoms import make_sample_study

    out = make_sample_study(tmp_path / "sample")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < 8e6
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert {les["region"] for les in truth["lesions"]} >= {"aorta", "iliac", "renal", "ligamentum_flavum"}
    assert pydicom.dcmread(next((out / "dicom").glob("*.dcm"))).PatientID == "PHANTOM-2024"


def test_random_settings_in_clinical_ranges() -> None:
    from calcdetect.phantoms.ct import random_settings

    drawn = [random_settings(seed) for seed in range(30)]
    for s in drawn:
        s.validate()
        assert 0.6 <= s.pixel_mm <= 1.0 and 0.625 <= s.slice_thickness_mm <= 5
        assert 80 <= s.kvp <= 140 and 10 <= s.noise_sigma_hu <= 40
    assert random_settings(3) == random_settings(3)
    assert len({s.kvp for s in drawn}) > 1 and len({s.slice_thickness_mm for s in drawn}) > 1
    assert random_settings(3, kvp=100.0).kvp == 100.0


def test_s1_width_includes_sacral_alae() -> None:
    """At S1 the sacrum with its alae is >= 95 mm wide and, joined across the
    sacro-iliac joints, forms the wide bony ring the level counter looks for."""
    from calcdetect.anatomy.spine import _component_width_mm
    from calcdetect.bone import segment_bone
    from calcdetect.device import Device

    ph = generate_ct_phantom(CTPhantomSettings(seed=3, matrix=160, pixel_mm=2.0, slice_thickness_mm=3.0,
                                               fov=("L5", "S1"), noise_sigma_hu=0.0, metal=False))
    s1 = next(v for v in ph.anatomy["vertebrae"] if v["level"] == "S1")
    sk, sj, si = ph.spacing
    bone = segment_bone(ph.hu, tuple(ph.spacing), Device("cpu"))
    ic = -ph.affine[0, 3] / ph.affine[0, 2]  # x = 0 (midline)
    sac_w, ring_w = [], []
    for k in range(ph.hu.shape[0]):
        z = ph.affine[2, 0] * k + ph.affine[2, 3]
        if not s1["z_bottom_mm"] <= z <= s1["z_top_mm"]:
            continue
        sac = ph.anatomy_labels[k] == vertebra_label("S1")
        if not sac.any():
            continue
        cols = np.flatnonzero(sac.any(axis=0))
        sac_w.append((cols[-1] - cols[0] + 1) * si)
        jc = float(np.flatnonzero(sac[:, int(round(ic))]).mean())
        ring_w.append(_component_width_mm(bone[k], (jc, ic), sj, si))
    assert len(sac_w) >= 5
    assert 95.0 <= float(np.median(sac_w)) <= 125.0, sac_w
    assert float(np.median(ring_w)) >= 95.0, ring_w
    # the iliac bones lie lateral to the alae, across a joint space
    hip = ph.anatomy_labels == structure("hip_bones").label
    assert hip.any()


def _endplate_partial_volume(anatomy_dz_mm: float, seed: int) -> float:
    """Of the bright pixels along L5's upper endplate, seen from the side (the CT summed across
    the body), the fraction between 20% and 80% of the plate's peak: partially covered slices."""
    ph = generate_ct_phantom(CTPhantomSettings(seed=seed, matrix=160, pixel_mm=1.5, slice_thickness_mm=1.0,
                                               fov=("L4", "S1"), noise_sigma_hu=0.0, anatomy_dz_mm=anatomy_dz_mm))
    l5 = ph.anatomy_labels == vertebra_label("L5")
    xs = np.nonzero(l5.any(axis=(0, 1)))[0]
    side = np.clip(ph.hu[:, :, xs.min():xs.max() + 1] - 100.0, 0, None).sum(axis=2)  # (k, j)
    sagittal = l5.any(axis=2)
    tall = np.nonzero(sagittal.sum(axis=0) * ph.spacing[0] >= 20.0)[0]
    body = tall[: int(np.argmax(np.diff(np.r_[tall, 10**6]) > 1)) + 1]  # the front run of columns
    fractions = []
    for j in body[2:-2]:
        top = int(np.nonzero(sagittal[:, j])[0].max())
        col = side[top - 3: top + 4, j]
        plate = col[col > 0.2 * col.max()]
        fractions.append(float(np.mean(plate < 0.8 * col.max())))
    return float(np.mean(fractions))


@pytest.mark.parametrize("seed", [33, 5])
def test_fine_anatomy_painting_gives_tilted_endplates_partial_volume(seed):
    # Point-sampled 1 mm slices cut L5's tilted endplate into whole-slice steps (the
    # staircase of the lateral projections); painted at 0.25 mm and box-averaged, the
    # slices the plate crosses take their share of it.
    coarse, fine = _endplate_partial_volume(1.25, seed), _endplate_partial_volume(0.25, seed)
    assert fine > coarse + 0.15 and fine > 0.35


def test_anatomy_dz_is_validated():
    with pytest.raises(ValueError, match="anatomy_dz_mm"):
        generate_ct_phantom(CTPhantomSettings(anatomy_dz_mm=0.01))
