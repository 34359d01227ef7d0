"""classify() on thick-slice scans: what the slice profile does to a lesion's
shape must not change what it is called (issue 4: side and region on CT)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from calcdetect.anatomy.regions import Region
from calcdetect.classify import ClassifySettings, classify
from calcdetect.pipeline import _finding_labels
from calcdetect.report import draft_report
from calcdetect.types import AcquisitionInfo, AnatomyMap, Kind, Lesion, Volume
from classify_scene import affine, disk, label

SHAPE = (20, 60, 60)  # k, j, i
SP = (3.0, 1.0, 1.0)  # 3 mm slices


def _lesion(vol: Volume, mask: np.ndarray, peak: float = 900.0) -> Lesion:
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    pts = idx * np.array(vol.spacing)
    ev = np.sort(np.linalg.eigvalsh(np.cov((pts - pts.mean(0)).T)))[::-1]
    axes = 4 * np.sqrt(np.clip(ev, 0, None))
    cen = idx.mean(0)
    return Lesion(
        label=1, bbox=(*lo.tolist(), *hi.tolist()), mask=mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]],
        voxel_count=len(idx), volume_mm3=len(idx) * 3.0, agatston=0.0, mass_mg=0.0, peak_hu=peak,
        mean_hu=peak, centroid_lps_mm=tuple(vol.index_to_lps(cen).tolist()), centroid_kji=tuple(cen.tolist()),
        max_diameter_mm=float(axes[0]), axes_mm=tuple(axes.tolist()),
        elongation=float(1 - axes[1] / axes[0]),
    )


def _kidney_scene() -> tuple[Volume, AnatomyMap]:
    """A left kidney whose estimated collecting system lies 6-7 mm lateral of the
    renal pelvis (as the rules place it on noisy thick-slice phantoms)."""
    labels = np.full(SHAPE, label("body"), dtype=np.uint8)
    for k in range(4, 16):
        labels[k][disk(SHAPE, 30, 47, 10)] = label("kidney_left")
        labels[k][disk(SHAPE, 30, 49, 6)] = label("kidney_medulla_left")
        labels[k][disk(SHAPE, 30, 40, 3)] = label("collecting_system_left")
    am = AnatomyMap(labels=labels, affine=affine(SP), slice_levels=("L2",) * SHAPE[0])
    vol = Volume(np.zeros(SHAPE, np.float32), SP, affine(SP), AcquisitionInfo("CT"))
    return vol, am


def test_a_renal_pelvic_stone_stretched_by_thick_slices_is_still_a_stone():
    """A 3-4 mm stone at 3 mm slices spans two slices (axes ~6 x 4.5 x 3.3 mm):
    5-8 mm medial of the estimated collecting system it is a left renal stone,
    not "other" -- its roundness before the slice profile is allowed for is
    below the nodule limit, which is what lost it."""
    vol, am = _kidney_scene()
    stone = np.zeros(SHAPE, bool)
    stone[9:11, 28:32, 30:33] = True  # i 30-32: 5-7 mm medial of the system's edge (i = 37)
    les = _lesion(vol, stone)
    assert les.axes_mm[2] / les.axes_mm[0] < ClassifySettings().nodule_roundness
    (f,) = classify([les], am, vol)
    assert (f.region, f.kind, f.side, f.segment) == ("renal", Kind.STONE, "left", "collecting system")


def test_a_flake_beside_the_renal_pelvis_at_thick_slices_is_not_a_stone():
    """The allowance is for the stretch along z only: a thin in-plane flake
    there stays "other"."""
    vol, am = _kidney_scene()
    flake = np.zeros(SHAPE, bool)
    flake[10, 26:34, 31:33] = True
    (f,) = classify([_lesion(vol, flake)], am, vol)
    assert f.region == "other"


def _ligament_scene(lesion_mask: np.ndarray) -> tuple[Volume, AnatomyMap]:
    """Spinal canal (centre j 40, i 30: LPS x 30 mm) with the ligamentum flavum
    zone on its posterior wall; the CT holds a 600 HU calcification at ``lesion_mask``."""
    labels = np.full(SHAPE, label("body"), dtype=np.uint8)
    ring = disk(SHAPE, 40, 30, 9) & ~disk(SHAPE, 40, 30, 4)
    ring[:40] = False
    for k in range(SHAPE[0]):
        labels[k][disk(SHAPE, 40, 30, 4)] = label("spinal_canal")
        labels[k][ring] = label("ligamentum_flavum_zone")
    am = AnatomyMap(labels=labels, affine=affine(SP), slice_levels=("L3-L4",) * SHAPE[0])
    vol = Volume(np.where(lesion_mask, 600.0, 0.0).astype(np.float32), SP, affine(SP), AcquisitionInfo("CT", kvp=120.0))
    return vol, am


def _arc(i_min: int, i_max: int) -> np.ndarray:
    """A calcified band along the canal's posterior wall (5-7 mm out), i in [i_min, i_max]."""
    m = np.zeros(SHAPE, bool)
    band = disk(SHAPE, 40, 30, 7.5) & ~disk(SHAPE, 40, 30, 5)
    band[:43] = False
    band[:, :i_min] = False
    band[:, i_max + 1:] = False
    m[8:12] = band
    return m


def test_a_ligament_calcification_fused_across_the_midline_is_reported_left_and_right():
    """Bilateral calcified ligamenta flava fused into one V: two findings, one
    per side, that share the whole's voxels and mass (with the split on)."""
    mask = _arc(22, 38)
    vol, am = _ligament_scene(mask)
    les = replace(_lesion(vol, mask), mass_mg=10.0)
    (one,) = classify([les], am, vol, ClassifySettings(split_bilateral_ligament=False))
    assert one.region == "ligamentum_flavum" and one.side is None  # by its centroid: on the midline
    fr, fl = classify([les], am, vol)  # the split is on by default
    assert (fr.id, fr.region, fr.side, fl.id, fl.region, fl.side) == (
        "F001", "ligamentum_flavum", "right", "F002", "ligamentum_flavum", "left")
    assert fr.level == fl.level == one.level
    assert fr.lesion.voxel_count + fl.lesion.voxel_count == les.voxel_count
    assert fr.lesion.centroid_lps_mm[0] < 30.0 < fl.lesion.centroid_lps_mm[0]
    assert fr.lesion.mass_mg + fl.lesion.mass_mg == pytest.approx(10.0)
    assert len({fr.lesion.label, fl.lesion.label}) == 2
    # each part's mask lies where its measurements say
    for f in (fr, fl):
        k0, j0, i0, k1, j1, i1 = f.lesion.bbox
        assert mask[k0:k1, j0:j1, i0:i1][f.lesion.mask].all()
    text = draft_report([fr, fl], {r: True for r in Region}).text()
    assert "ligamentum flavum at L3-L4, bilateral" in text
    # lesions.nii.gz and the overlays get both parts, each under its own label
    painted = _finding_labels((fr, fl), mask.shape)
    assert set(np.unique(painted[mask])) == {fr.lesion.label, fl.lesion.label}
    assert not painted[~mask].any()


def test_a_one_sided_ligament_calcification_reaching_the_midline_is_not_split():
    mask = _arc(28, 38)  # crosses the centre (i 30) by 2 mm with a third of its voxels (> 30 mm3)
    vol, am = _ligament_scene(mask)
    (f,) = classify([_lesion(vol, mask)], am, vol, ClassifySettings(split_bilateral_ligament=True))
    assert (f.region, f.side) == ("ligamentum_flavum", "left")
