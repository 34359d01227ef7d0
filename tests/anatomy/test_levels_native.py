"""Vertebral levels at the CT's own resolution.

The rules find the bodies on a 2.5-3 mm work grid, so a body's end is known to
a slice or two; a plaque that enters a disc by a millimetre or two is then
named with the wrong level. These tests build a CT whose endplates lie between
the work grid's slices and check that (a) the endplate is found where the CT
shows it and (b) the level of a lesion follows the phantom convention: the
levels its z extent overlaps by at least 1 mm.
"""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.anatomy.regions import structure
from calcdetect.anatomy.spine import (
    LevelZone,
    ENDPLATE_MM,
    endplate_position,
    level_of_extent,
    level_zones,
    refine_endplates,
)
from calcdetect.classify import classify
from calcdetect.types import AcquisitionInfo, AnatomyMap, Lesion, Volume

SK = 0.625  # mm between slices
SHAPE = (80, 60, 60)  # k (cranial), j, i
SP = (SK, 1.0, 1.0)
# Truth: L3 body up to slice 29 (its top endplate at index 29.5), the L2-L3 disc
# 30-45 (10 mm), the L2 body from 46.
L3_TOP, L2_BOTTOM = 29.5, 45.5
# What a 2.5 mm work grid gives back: L3 three slices (1.9 mm) too tall.
COARSE = tuple("L3" if k <= 32 else "L2-L3" if k <= 45 else "L2" for k in range(SHAPE[0]))


def _affine() -> np.ndarray:
    a = np.zeros((4, 4))
    a[0, 2], a[1, 1], a[2, 0], a[3, 3] = 1.0, 1.0, SK, 1.0
    return a


def _disk(jc: float, ic: float, r: float) -> np.ndarray:
    jj, ii = np.mgrid[: SHAPE[1], : SHAPE[2]]
    return (jj - jc) ** 2 + (ii - ic) ** 2 <= r * r


BODY = _disk(35, 30, 12)
AORTA = _disk(14, 36, 6)


def _ct(rng: np.random.Generator) -> np.ndarray:
    """Soft tissue; cancellous bodies with a dense endplate, a disc between them."""
    hu = np.full(SHAPE, 40.0, dtype=np.float32)
    for k in range(SHAPE[0]):
        if k < L3_TOP or k > L2_BOTTOM:
            hu[k][BODY] = 180.0
    hu[int(L3_TOP - 0.5)][BODY] = 600.0  # cortical endplates
    hu[int(L2_BOTTOM + 0.5)][BODY] = 600.0
    hu += rng.normal(0.0, 25.0, SHAPE).astype(np.float32)
    return hu


def _anatomy(levels: tuple[str, ...]) -> AnatomyMap:
    labels = np.full(SHAPE, structure("body").label, dtype=np.uint8)
    for k, lv in enumerate(levels):
        name = "intervertebral_disc" if "-" in lv else f"vertebrae_{lv}"
        labels[k][BODY] = structure(name).label
        labels[k][AORTA] = structure("aorta").label
    return AnatomyMap(labels=labels, affine=_affine(), slice_levels=levels)


def _plaque(vol: Volume, k0: int, k1: int) -> Lesion:
    """A plaque in the aortic wall over slices ``k0 .. k1`` (inclusive)."""
    mask = np.zeros((k1 - k0 + 1, 2, 2), dtype=bool)
    mask[:] = True
    bbox = (k0, 8, 36, k1 + 1, 10, 38)
    cen = np.array([(k0 + k1) / 2, 8.5, 36.5])
    return Lesion(label=1, bbox=bbox, mask=mask, voxel_count=int(mask.sum()), volume_mm3=float(mask.sum()) * SK,
                  agatston=0.0, mass_mg=0.0, peak_hu=500.0, mean_hu=500.0,
                  centroid_lps_mm=tuple(vol.index_to_lps(cen).tolist()), centroid_kji=tuple(cen.tolist()),
                  max_diameter_mm=(k1 - k0 + 1) * SK, axes_mm=((k1 - k0 + 1) * SK, 2.0, 2.0), elongation=0.8,
                  central_lucency=False)


@pytest.fixture(scope="module")
def ct() -> Volume:
    arr = _ct(np.random.default_rng(4))
    arr[:, 8:10, 36:38] = np.float32(40.0)
    return Volume(arr, SP, _affine(), AcquisitionInfo("CT", kvp=120.0))


def _with_plaque(vol: Volume, k0: int, k1: int) -> Volume:
    arr = vol.array.copy()
    arr[k0 : k1 + 1, 8:10, 36:38] = 500.0
    return Volume(arr, vol.spacing, vol.affine, vol.info)


def test_endplates_are_moved_to_where_the_ct_shows_them(ct) -> None:
    zones = level_zones(COARSE)
    assert [z.level for z in zones] == ["L3", "L2-L3", "L2"] and zones[0].hi == 32.5
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[33:46][:, BODY] = 32
    refined = refine_endplates(zones, ct.array, labels, 32, SK)
    # within a third of a slice (0.2 mm) of the truth; the work grid was 1.9 mm off
    assert refined[0].hi == pytest.approx(L3_TOP, abs=0.35)
    assert refined[1].hi == pytest.approx(L2_BOTTOM, abs=0.35)
    assert refined[1].lo == refined[0].hi and refined[2].lo == refined[1].hi



def test_memoised_endplates_equal_fresh_ones_and_are_measured_once(ct) -> None:
    """Classification shares one memo per scan: every lesion must get the zones
    it would get alone, and a second lesion near the same edges costs no
    measurement (a different CT would show if the memo were read instead)."""
    zones = level_zones(COARSE)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[33:46][:, BODY] = 32
    memo: dict = {}
    for near in ((30.0, 34.0), (44.0, 47.0), (20.0, 50.0)):
        fresh = refine_endplates(zones, ct.array, labels, 32, SK, near=near)
        assert refine_endplates(zones, ct.array, labels, 32, SK, near=near, memo=memo) == fresh
    assert len(memo) == 2  # the two endplates of the one disc
    blank = np.zeros_like(ct.array)
    for near in ((30.0, 34.0), (44.0, 47.0)):
        assert refine_endplates(zones, blank, labels, 32, SK, near=near, memo=memo) == refine_endplates(
            zones, ct.array, labels, 32, SK, near=near)

def test_endplate_without_contrast_is_left_where_the_rules_put_it() -> None:
    flat = np.random.default_rng(1).normal(120.0, 20.0, (20, 50))  # no endplate, no disc
    assert endplate_position(flat, 9.5, 18.0, body_below=True, slice_mm=SK) is None


def test_a_disc_grazed_by_less_than_one_mm_is_not_named() -> None:
    zones = [LevelZone("L3", -0.5, 29.5), LevelZone("L2-L3", 29.5, 45.5), LevelZone("L2", 45.5, 79.5)]
    assert level_of_extent(10.0, 30.5, zones, SK) == ["L3"]  # 0.6 mm into the disc
    assert level_of_extent(10.0, 32.0, zones, SK) == ["L3", "L2-L3"]  # 1.6 mm
    # nothing reaches 1 mm: the level holding the middle
    assert level_of_extent(29.0, 30.2, zones, SK) == ["L2-L3"]


def test_plaque_entering_the_disc_gets_the_disc_despite_a_coarse_body_end(ct) -> None:
    """Regression: the per-slice levels put slices 30-32 in L3; the plaque fills
    slices 20-32, 1.9 mm into the disc the CT shows, so it is "L2-L3" (as the
    phantom truth names it), not "L3"."""
    vol = _with_plaque(ct, 20, 32)
    (f,) = classify([_plaque(vol, 20, 32)], _anatomy(COARSE), vol)
    assert f.region == "aorta"
    assert f.level == "L2-L3"


def test_plaque_grazing_the_disc_keeps_its_body_level(ct) -> None:
    """Regression: with exact per-slice levels, a plaque whose last slice is the
    first disc slice lies 0.5 mm in the disc: "L3", not "L3"/"L2-L3" by slices."""
    exact = tuple("L3" if k <= 29 else "L2-L3" if k <= 45 else "L2" for k in range(SHAPE[0]))
    vol = _with_plaque(ct, 18, 30)
    (f,) = classify([_plaque(vol, 18, 30)], _anatomy(exact), vol)
    assert f.level == "L3"


def test_scan_ending_in_a_disc_names_that_disc() -> None:
    """Regression: a field of view that starts 6 mm above L1 shows only the T12-L1
    disc there; those slices had no level, so a plaque in them had none."""
    from calcdetect.anatomy.spine import Segment, _slice_levels

    segs = [Segment(0, 20, "L2", partial=True), Segment(28, 50, "L1")]
    levels = _slice_levels(segs, 57, 1.0)
    assert set(levels[21:28]) == {"L1-L2"}
    assert set(levels[51:]) == {"T12-L1"}
    # 20 mm without a body is more than a disc: a body may be hidden there
    assert set(_slice_levels(segs, 71, 1.0)[51:]) == {None}


def test_tilted_endplate_ends_at_the_footprints_middle() -> None:
    """A tilted endplate ends 5 slices apart across the footprint; the body's end is
    where the middle of the footprint ends (where the phantom and a reader measure)."""
    n, cols = 30, 51
    edges = 10.0 + 5.0 * (np.arange(cols) - 25) / 50.0  # per column; slice k spans k-0.5 .. k+0.5
    lo, hi = np.arange(n)[:, None] - 0.5, np.arange(n)[:, None] + 0.5
    body = np.clip(np.minimum(hi, edges) - lo, 0.0, 1.0)  # share of each slice below the edge
    plate = np.clip(np.minimum(hi, edges) - np.maximum(lo, edges - 2.0), 0.0, 1.0)  # 2 slices thick
    stack = 40.0 + 140.0 * body + 460.0 * plate  # disc 40, cancellous 180, endplate 640 HU
    pos = endplate_position(stack, 12.5, 25.0, body_below=True, slice_mm=SK)
    assert pos == pytest.approx(10.0, abs=0.25)  # the middle column's edge


def _tilted_plate_stack(cols: int, rise_slices: float) -> tuple[np.ndarray, np.ndarray]:
    """Disc over a body whose endplate (2 slices thick) rises ``rise_slices`` across
    ``cols`` columns; returns the stack and each column's true end (slice index)."""
    n = 30
    edges = 10.0 + rise_slices * (np.arange(cols) - (cols - 1) / 2) / (cols - 1)
    lo, hi = np.arange(n)[:, None] - 0.5, np.arange(n)[:, None] + 0.5
    body = np.clip(np.minimum(hi, edges) - lo, 0.0, 1.0)
    plate = np.clip(np.minimum(hi, edges) - np.maximum(lo, edges - 2.0), 0.0, 1.0)
    return 40.0 + 140.0 * body + 460.0 * plate, edges


def test_steep_endplate_ends_towards_the_disc_among_its_columns() -> None:
    """Regression: the sacral promontory (20-30 deg) was placed 0.8-2.4 mm inside
    S1 (its median column), so iliac plaque lying in S1 up to its top got
    "L5-S1". A steep plate (here 0.5 mm per mm front to back) ends at the upper
    part of its columns' ends; a flat one keeps the median."""
    from calcdetect.anatomy.spine import STEEP_ENDPLATE_PERCENTILE

    stack, edges = _tilted_plate_stack(51, 8.0)  # 5 mm over 10 mm front to back
    ap = 0.2 * np.arange(51)
    flat_answer = endplate_position(stack, 12.5, 25.0, body_below=True, slice_mm=SK)
    steep = endplate_position(stack, 12.5, 25.0, body_below=True, slice_mm=SK, col_ap_mm=ap)
    assert flat_answer == pytest.approx(10.0, abs=0.5)  # near the middle column's end
    assert steep == pytest.approx(np.percentile(edges, STEEP_ENDPLATE_PERCENTILE), abs=0.25)
    assert steep > flat_answer + 1.0  # > 0.6 mm towards the disc (S1: L5-S1 -> S1)
    # the same plate seen from the other side (body above the disc) moves the other way
    mirrored = endplate_position(stack[::-1], 29 - 12.5, 29 - 25.0, body_below=False, slice_mm=SK,
                                 col_ap_mm=ap)
    assert 29 - mirrored == pytest.approx(steep, abs=1e-6)
    # a lumbar endplate (0.1 mm per mm) is not steep: its end stays the middle column's
    gentle, _ = _tilted_plate_stack(51, 1.6)
    assert endplate_position(gentle, 12.5, 25.0, body_below=True, slice_mm=SK, col_ap_mm=ap) == \
        pytest.approx(endplate_position(gentle, 12.5, 25.0, body_below=True, slice_mm=SK), abs=1e-9)


def test_body_end_under_the_disc_a_scan_starts_in_is_measured() -> None:
    """Regression: a field of view from L1 starts in the T12-L1 disc, which the
    rules draw no disc label in (they draw discs between two bodies), so the L1
    top stayed where the work grid put it (0.5-2.2 mm off on the former held-out
    phantoms). The body's other disc gives the footprint to measure it on."""
    rng = np.random.default_rng(7)
    nk, top = 52, 39.5  # L3-L4 disc 0-9, L3 10-39 (top endplate at 39.5), disc above to the scan's top
    hu = np.full((nk, 60, 60), 40.0, dtype=np.float32)
    hu[10:40][:, BODY] = 180.0
    hu[39][BODY] = hu[10][BODY] = 600.0
    hu[:10][:, BODY] = hu[40:][:, BODY] = 90.0  # disc
    hu += rng.normal(0.0, 25.0, hu.shape).astype(np.float32)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[:10][:, BODY] = 32  # only the disc between two bodies is drawn
    # the work grid's zones: the L3 top three slices (1.9 mm) too high
    zones = [LevelZone("L3-L4", -0.5, 9.5), LevelZone("L3", 9.5, 42.5), LevelZone("L2-L3", 42.5, nk - 0.5)]
    refined = refine_endplates(zones, hu, labels, 32, SK)
    assert refined[1].hi == pytest.approx(top, abs=0.35)
    assert refined[2].lo == refined[1].hi


def test_thick_slices_do_not_make_bodies_taller() -> None:
    """Regression: at 3 mm slices a 1.5 mm cortical endplate fills the slice it
    lies in; the half-way crossing lay on average ~0.9 mm outside the plate (0-2 mm
    with the plate's place in the slice), so bodies came out too tall and plaque
    in a disc was named by the body beside it (noisy 3 mm tuning phantoms: body
    tops +1.0 mm, bottoms -0.7 mm on average). Over the plate's places in a
    slice the body's end is now unbiased."""
    t = 3.0  # slice k spans 3k-1.5 .. 3k+1.5 mm
    z = np.arange(0.0, 60.0, 0.05)
    rng = np.random.default_rng(3)
    errors, uncorrected = [], []
    for edge_mm in np.arange(30.0, 33.0, 0.25):  # one slice's worth of places
        fine = np.where(z < edge_mm - ENDPLATE_MM, 180.0, np.where(z < edge_mm, 1200.0, 80.0))
        slices = np.array([fine[np.abs(z - c) <= t / 2].mean() for c in np.arange(20) * t])
        stack = slices[:, None] + rng.normal(0.0, 10.0, (20, 40))
        pos = endplate_position(stack, 10.5, 14.0, body_below=True, slice_mm=t)
        raw = endplate_position(stack, 10.5, 14.0, body_below=True, slice_mm=t, slice_thickness_mm=ENDPLATE_MM)
        errors.append(pos * t - edge_mm)
        uncorrected.append(raw * t - edge_mm)
    assert abs(np.mean(errors)) <= 0.3, errors
    assert np.mean(uncorrected) >= 0.6, uncorrected  # what the crossing alone gives
    assert np.abs(errors).max() <= 1.5, errors
