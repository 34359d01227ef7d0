"""classify(): a ureteral stone crossing an iliac artery, seen at thick slices.

The slice profile stretches a round calculus along z by up to about a slice, so
at 3 mm slices a 4-5 mm stone in the iliac zone measures longer than it is wide.
It is still a ureteral stone where the ureter crosses; a plaque flake there is
still plaque."""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.regions import structure
from calcdetect.classify import classify
from calcdetect.types import AcquisitionInfo, AnatomyMap, Kind, Lesion, Volume

SHAPE = (12, 60, 60)  # k, j, i
SP = (3.0, 1.0, 1.0)  # thick slices


def _lab(name: str) -> int:
    return structure(name).label


def _affine() -> np.ndarray:
    a = np.zeros((4, 4))
    a[0, 2], a[1, 1], a[2, 0] = SP[2], SP[1], SP[0]
    a[3, 3] = 1.0
    return a


def _disk(jc: float, ic: float, r: float) -> np.ndarray:
    jj, ii = np.mgrid[: SHAPE[1], : SHAPE[2]]
    return (jj - jc) ** 2 + (ii - ic) ** 2 <= r * r


def _lesion(vol: Volume, mask: np.ndarray, peak: float = 900.0) -> Lesion:
    """A lesion with its axes as calcdetect.candidates measures them (each voxel a box)."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    pts = idx * np.array(SP)
    cov = np.cov((pts - pts.mean(0)).T) + np.diag(np.array(SP) ** 2 / 12.0)
    axes = np.sqrt(12.0 * np.sort(np.linalg.eigvalsh(cov))[::-1])
    cen = idx.mean(0)
    return Lesion(
        label=1, bbox=(*lo.tolist(), *hi.tolist()), mask=mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]],
        voxel_count=len(idx), volume_mm3=len(idx) * 3.0, agatston=0.0, mass_mg=0.0, peak_hu=peak,
        mean_hu=peak, centroid_lps_mm=tuple(vol.index_to_lps(cen).tolist()), centroid_kji=tuple(cen.tolist()),
        max_diameter_mm=float(axes[0]), axes_mm=tuple(axes.tolist()),
        elongation=float(1 - axes[1] / axes[0]), central_lucency=False,
    )


def _crossing_scene() -> tuple[Volume, AnatomyMap]:
    """A left external iliac zone (j 30) with the ureter zone just in front of it (j 16)."""
    labels = np.full(SHAPE, _lab("body"), dtype=np.uint8)
    for k in range(SHAPE[0]):
        labels[k][_disk(16, 40, 6)] = _lab("ureter_left")
        labels[k][_disk(30, 40, 7)] = _lab("external_iliac_artery_left")
    am = AnatomyMap(labels=labels, affine=_affine(), slice_levels=(None,) * SHAPE[0])
    vol = Volume(np.zeros(SHAPE, np.float32), SP, _affine(), AcquisitionInfo("CT", kvp=120.0))
    return vol, am


def _box(k0, k1, j0, j1, i0, i1) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[k0:k1, j0:j1, i0:i1] = True
    return m


def test_a_stone_stretched_by_thick_slices_in_the_iliac_zone_is_a_ureteral_stone():
    vol, am = _crossing_scene()
    # 4 x 4 mm across, on two 3 mm slices: measured 6 x 4 x 4 mm (roundness
    # 0.67, which the old rule read as plaque of the artery it lies in).
    stone = _box(5, 7, 24, 28, 38, 42)
    assert (am.labels[stone] == _lab("external_iliac_artery_left")).all()
    les = _lesion(vol, stone)
    assert les.axes_mm[2] / les.axes_mm[0] < 0.7
    (f,) = classify([les], am, vol)
    assert (f.region, f.kind, f.side) == ("renal", Kind.URETERAL_STONE, "left")


def test_a_wall_flake_on_thick_slices_in_the_iliac_zone_stays_plaque():
    vol, am = _crossing_scene()
    # A flake of the anterior wall: 9 mm wide, 2 mm deep, on two slices.
    flake = _box(5, 7, 25, 27, 36, 45)
    assert (am.labels[flake] == _lab("external_iliac_artery_left")).all()
    (f,) = classify([_lesion(vol, flake)], am, vol)
    assert (f.region, f.kind, f.side) == ("iliac", Kind.ATHEROSCLEROTIC, "left")
    assert f.structure == "external_iliac_artery_left"


def test_a_plaque_speck_on_thick_slices_in_the_iliac_zone_stays_plaque():
    # A 3 mm plaque at 3 mm slices: 3 x 3 mm across on two slices, round once
    # the stretch along z is discounted, but no thicker across than the wall.
    vol, am = _crossing_scene()
    speck = _box(5, 7, 25, 28, 38, 41)
    assert (am.labels[speck] == _lab("external_iliac_artery_left")).all()
    (f,) = classify([_lesion(vol, speck)], am, vol)
    assert (f.region, f.kind, f.side) == ("iliac", Kind.ATHEROSCLEROTIC, "left")
