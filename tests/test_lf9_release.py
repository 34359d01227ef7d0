"""Ligamentum flavum calcium taken back from the laminae (issue #4, held-out misses):
on the first interlaminar slice next to a lamina when that slice is clearly
ligament, and when the bone mask did not swallow it at all."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

import calcdetect.bone as bone_mod
from calcdetect.bone import release_ligament_calcification, segment_bone
from calcdetect.candidates import find_candidates
from calcdetect.device import Device
from calcdetect.types import AcquisitionInfo, Volume

CPU = Device("cpu")
CANAL_C = (24.0, 32.0)  # (j, i) mm; j grows posteriorly
CANAL_AB = (8.0, 11.0)  # semi-axes (j, i) mm
LIGAMENT_MM = 3.5  # the lamina starts this far out on interlaminar slices


def _canal_geometry(shape: tuple[int, int, int], spacing: tuple[float, float, float]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of a slice: distance (mm, approximate) outside the canal ellipse,
    posterior offset from the canal centre, angle from the posterior midline
    (degrees), and whether the pixel is on the patient's left."""
    j, i = np.indices(shape[1:]).astype(float)
    dj, di = j * spacing[1] - CANAL_C[0], i * spacing[2] - CANAL_C[1]
    q = np.sqrt((dj / CANAL_AB[0]) ** 2 + (di / CANAL_AB[1]) ** 2)
    r = np.hypot(dj, di)
    offset = r - r / np.maximum(q, 1e-6)
    return offset, dj, np.degrees(np.arctan2(np.abs(di), dj)), di > 0


def make_arch(shape: tuple[int, int, int], spacing: tuple[float, float, float], interlaminar: slice,
              calcified: slice, calc_offset_mm: tuple[float, float], seed: int = 0,
              ) -> tuple[Volume, np.ndarray, np.ndarray, np.ndarray]:
    """A posterior arch around the canal: on ``interlaminar`` slices a 60 HU
    ligament lines the canal and the lamina (700 HU) starts 3.5 mm out, elsewhere
    the lamina is the canal wall. On the ``calcified`` slices a one-sided 500 HU
    calcification lies ``calc_offset_mm`` off the canal, paramedian (15-50 deg).
    Blurred (0.5 mm) and noisy (15 HU).

    Returns the volume, the calcification's voxels, the laminae (bone by
    construction) and the anatomy-style ligament zone (5 mm band, every slice).
    """
    offset, dj, angle, left = _canal_geometry(shape, spacing)
    arr = np.full(shape, 45.0)
    calc = np.zeros(shape, bool)
    lamina = np.zeros(shape, bool)
    for k in range(shape[0]):
        inter = interlaminar.start <= k < interlaminar.stop
        s = arr[k]
        s[offset <= 0] = -80.0
        s[offset <= -2.0] = 8.0
        if inter:
            s[(offset > 0) & (offset <= LIGAMENT_MM) & (dj > -0.3 * CANAL_AB[0])] = 60.0
        inset = LIGAMENT_MM if inter else 0.0
        lamina[k] = (offset > inset) & (offset <= inset + 8.0) & (dj > -0.3 * CANAL_AB[0])
        s[lamina[k]] = 700.0
        if calcified.start <= k < calcified.stop:
            lo, hi = calc_offset_mm
            calc[k] = (offset > lo) & (offset <= hi) & (angle >= 15) & (angle <= 50) & (dj > 0) & left
            s[calc[k]] = 500.0
    body = np.zeros(shape[1:], bool)  # a vertebral body in front: the arch is part of a large bone
    body[2:int(14 / spacing[1]), 15:65] = True
    arr[:, body] = 700.0
    arr = ndi.gaussian_filter(arr, tuple(0.5 / s for s in spacing))
    arr += np.random.default_rng(seed).normal(0.0, 15.0, shape)
    zone = np.broadcast_to((offset > 0) & (offset <= 5.0) & (dj > 0), shape).copy()
    vol = Volume(arr.astype(np.float32), spacing, np.diag([*spacing, 1.0]), AcquisitionInfo("CT", kvp=120))
    return vol, calc, lamina, zone


# 3 mm slices: slices 0-3 and 9-11 laminar, 4-8 interlaminar; the calcification
# fills slice 4, the first interlaminar slice (held-out seeds 1421 and 1433:
# 4.2 and 4.9 mm calcifications on one 3 mm slice next to a lamina).
EDGE = dict(shape=(12, 90, 80), spacing=(3.0, 0.8, 0.8), interlaminar=slice(4, 9), calcified=slice(4, 5),
            calc_offset_mm=(0.6, 3.4))


@pytest.fixture(scope="module")
def edge_scene():
    return make_arch(**EDGE)


def test_calcium_on_the_first_interlaminar_slice_is_released_and_found(edge_scene):
    vol, calc, _, zone = edge_scene
    bone = segment_bone(vol.array, vol.spacing, CPU)
    assert (bone & calc).sum() > 0.5 * calc.sum()  # fused with the lamina
    released = release_ligament_calcification(bone, vol.array, zone, vol.spacing, 130.0)
    assert (released & calc).sum() >= 0.5 * (bone & calc).sum()
    # The laminar slices keep their lamina: nothing is released there.
    assert not released[:4].any() and not released[9:].any()
    cands = find_candidates(vol, CPU, ligament_mask=zone)
    assert (cands.labels[calc] > 0).sum() >= 0.5 * calc.sum()


def test_edge_slice_is_eroded_with_the_clear_fraction_off(edge_scene, monkeypatch):
    vol, calc, _, zone = edge_scene
    monkeypatch.setattr(bone_mod, "INTERLAMINAR_CLEAR_SOFT_FRACTION", None)
    bone = segment_bone(vol.array, vol.spacing, CPU)
    released = release_ligament_calcification(bone, vol.array, zone, vol.spacing, 130.0)
    assert not (released & calc).any()
    cands = find_candidates(vol, CPU, ligament_mask=zone)
    assert not (cands.labels[calc] > 0).any()


def test_a_lamina_edge_on_the_first_interlaminar_slice_is_not_released(monkeypatch):
    # The partial-volume slice at a lamina's edge on a rotated spine: the
    # lamina runs into the first interlaminar slice along half the posterior
    # wall. Half its shell is dense, so the slice is interlaminar by the
    # fraction test but not clearly: the z margin still erodes it.
    vol, _, _, zone = make_arch(shape=(12, 90, 80), spacing=(3.0, 0.8, 0.8), interlaminar=slice(4, 9),
                                calcified=slice(0, 0), calc_offset_mm=(0.6, 3.4), seed=2)
    arr = vol.array.copy()
    offset, dj, _, left = _canal_geometry(arr.shape, vol.spacing)
    wall = (offset > 0.3) & (offset <= LIGAMENT_MM) & (dj > 0) & left
    arr[4][wall] = 350.0  # a lamina half in the slice, averaged with the ligament
    bone = segment_bone(arr, vol.spacing, CPU)

    def released_on_edge() -> int:
        return int(release_ligament_calcification(bone, arr, zone, vol.spacing, 130.0)[4].sum())

    assert released_on_edge() == 0
    # The rule has teeth: with a clear fraction this half lamina would pass, it is released.
    monkeypatch.setattr(bone_mod, "INTERLAMINAR_CLEAR_SOFT_FRACTION", 0.35)
    assert released_on_edge() > 0


# 1 mm slices, the calcification on the canal side of an interlaminar ligament,
# 1-3.2 mm off the canal and against the lamina (3.5 mm out), which the bone mask
# (here: the laminae as built) did not take (held-out seed 1556: 3.2 mm, 1-2 mm
# off the lumen, never in the bone mask, dropped as a lamina edge).
UNFUSED = dict(shape=(40, 90, 80), spacing=(1.0, 0.8, 0.8), interlaminar=slice(12, 28), calcified=slice(18, 22),
               calc_offset_mm=(1.0, 3.2))


def test_unfused_calcium_against_a_lamina_is_kept():
    vol, calc, lamina, zone = make_arch(**UNFUSED)
    cands = find_candidates(vol, CPU, bone_mask=lamina, ligament_mask=zone)
    assert (cands.labels[calc] > 0).sum() >= 0.5 * calc.sum()


def test_unfused_calcium_is_dropped_with_the_setting_off(monkeypatch):
    monkeypatch.setattr(bone_mod, "RELEASE_UNFUSED_LIGAMENT_CALCIUM", False)
    vol, calc, lamina, zone = make_arch(**UNFUSED)
    cands = find_candidates(vol, CPU, bone_mask=lamina, ligament_mask=zone)
    assert not (cands.labels[calc] > 0).any()


def test_intact_arch_gives_no_candidates_in_the_zone():
    vol, _, lamina, zone = make_arch(shape=(40, 90, 80), spacing=(1.0, 0.8, 0.8), interlaminar=slice(12, 28),
                                     calcified=slice(0, 0), calc_offset_mm=(1.0, 3.2), seed=3)
    for bone in (lamina, None):
        cands = find_candidates(vol, CPU, bone_mask=bone, ligament_mask=zone)
        assert not any((cands.labels[zone] == les.label).any() for les in cands.lesions)


def test_faint_partial_volume_on_an_edge_slice_stays_bone(monkeypatch):
    # Held-out seed 1529: on the first interlaminar slice the lamina's partial
    # volume, ~20 HU above the threshold, was released and joined a true
    # calcification, whose mean HU then fell under the faint-cluster rule.
    vol, calc, _, zone = make_arch(**EDGE)
    arr = vol.array.copy()
    offset, dj, angle, left = _canal_geometry(arr.shape, vol.spacing)
    faint = (offset > 0.6) & (offset <= 2.0) & (angle >= 20) & (angle <= 30) & (dj > 0) & ~left
    arr[4][faint] = 190.0 + np.random.default_rng(5).normal(0.0, 10.0, int(faint.sum()))
    bone = segment_bone(arr, vol.spacing, CPU)

    def released() -> np.ndarray:
        return release_ligament_calcification(bone, arr, zone, vol.spacing, 130.0)[4]

    assert not (released() & faint).any()
    assert (released() & calc[4]).sum() >= 0.5 * (bone[4] & calc[4]).sum()  # the calcification still is
    monkeypatch.setattr(bone_mod, "EDGE_SLICE_MIN_EXCESS_HU", 0.0)
    assert (released() & faint).any()
