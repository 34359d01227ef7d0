"""classify(): the ureter zone beside the iliac arteries -- a calculus there is a
ureteral stone, a wall plaque flake is not (it stays with its artery)."""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.regions import structure
from calcdetect.classify import classify
from calcdetect.types import AcquisitionInfo, AnatomyMap, Kind, Lesion, Volume

SHAPE = (20, 60, 60)  # k, j, i
SP = (2.0, 1.0, 1.0)


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
        voxel_count=len(idx), volume_mm3=len(idx) * 2.0, agatston=0.0, mass_mg=0.0, peak_hu=peak,
        mean_hu=peak, centroid_lps_mm=tuple(vol.index_to_lps(cen).tolist()), centroid_kji=tuple(cen.tolist()),
        max_diameter_mm=float(axes[0]), axes_mm=tuple(axes.tolist()),
        elongation=float(1 - axes[1] / axes[0]), central_lucency=False,
    )


def _pelvic_scene() -> tuple[Volume, AnatomyMap]:
    """A left internal iliac zone (j 30) with the ureter zone in front of it (j 18)."""
    labels = np.full(SHAPE, _lab("body"), dtype=np.uint8)
    for k in range(SHAPE[0]):
        labels[k][_disk(18, 40, 8)] = _lab("ureter_left")
        labels[k][_disk(30, 40, 6)] = _lab("internal_iliac_artery_left")
    am = AnatomyMap(labels=labels, affine=_affine(), slice_levels=(None,) * SHAPE[0])
    vol = Volume(np.zeros(SHAPE, np.float32), SP, _affine(), AcquisitionInfo("CT", kvp=120.0))
    return vol, am


def _box(k0, k1, j0, j1, i0, i1) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[k0:k1, j0:j1, i0:i1] = True
    return m


def test_a_plaque_flake_in_the_ureter_zone_beside_an_artery_stays_iliac_plaque():
    # One slice, 10 x 5 mm: oval in its plane, but a flake of the anterior
    # wall, lying just in front of the internal iliac zone (2 mm off it).
    vol, am = _pelvic_scene()
    flake = _box(10, 11, 20, 22, 35, 45)
    assert (am.labels[flake] == _lab("ureter_left")).all()
    (f,) = classify([_lesion(vol, flake)], am, vol)
    assert (f.region, f.kind, f.side) == ("iliac", Kind.ATHEROSCLEROTIC, "left")
    assert f.structure == "internal_iliac_artery_left"


def test_a_flake_far_from_the_arteries_in_the_ureter_zone_is_not_a_stone():
    vol, am = _pelvic_scene()
    # 10 x 6 mm in its plane (oval enough for a stone seen end-on) but one
    # 2 mm slice thick, 6 mm in front of the artery's zone
    flake = _box(10, 11, 12, 18, 35, 45)
    assert (am.labels[flake] == _lab("ureter_left")).mean() > 0.5
    (f,) = classify([_lesion(vol, flake)], am, vol)
    assert f.kind is not Kind.URETERAL_STONE and f.region == "other"


def test_a_calculus_in_the_ureter_zone_beside_an_artery_is_a_ureteral_stone():
    vol, am = _pelvic_scene()
    stone = _box(9, 12, 18, 23, 38, 43)  # 6 x 5 x 5 mm, 1 mm off the artery's zone
    (f,) = classify([_lesion(vol, stone)], am, vol)
    assert (f.region, f.kind, f.side) == ("renal", Kind.URETERAL_STONE, "left")


def test_a_calculus_beyond_the_lower_end_of_the_ureter_zone_is_not_placed_in_it():
    # The zone stops above the lower pelvis: a round calcification just below
    # its end (a phlebolith there looks the same) is not a ureteral stone, one
    # at the same distance beside the zone within its slices is.
    vol, am0 = _pelvic_scene()
    labels = am0.labels.copy()
    labels[:8][labels[:8] == _lab("ureter_left")] = _lab("body")
    am = AnatomyMap(labels=labels, affine=am0.affine, slice_levels=am0.slice_levels)
    below = _box(6, 8, 16, 20, 38, 42)  # its slices end 2 mm below the zone's last one (k 8)
    beside = _box(10, 12, 16, 20, 50, 54)  # 2 mm lateral of the zone's edge
    f_below, f_beside = classify([_lesion(vol, below), _lesion(vol, beside)], am, vol)
    assert f_below.kind is not Kind.URETERAL_STONE and f_below.region == "other"
    assert (f_beside.region, f_beside.kind) == ("renal", Kind.URETERAL_STONE)
