"""Noise estimate, the candidate noise gate, compact dense blobs vs bone, lamina edges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcdetect.bone import segment_bone
from calcdetect.candidates import CandidateSettings, find_candidates
from calcdetect.candidates.noise import estimate_noise_hu
from calcdetect.device import Device
from calcdetect.types import AcquisitionInfo, Volume

CPU = Device("cpu")


def _volume(arr: np.ndarray, spacing=(1.0, 0.8, 0.8)) -> Volume:
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing)
    return Volume(arr.astype(np.float32), spacing, affine, AcquisitionInfo("CT", kvp=120))


def _ball(shape, centre, radius_mm, spacing) -> np.ndarray:
    g = np.indices(shape).astype(float)
    return sum(((g[a] - centre[a]) * spacing[a]) ** 2 for a in range(3)) <= radius_mm**2


@pytest.mark.parametrize("sigma", [10.0, 25.0, 40.0])
def test_noise_estimate_recovers_sigma_of_blurred_noise_with_edges(sigma):
    rng = np.random.default_rng(int(sigma))
    # Soft-tissue body with an organ edge and a fat layer: the edges must not inflate it.
    arr = np.full((10, 128, 128), -1000.0)
    arr[:, 10:118, 10:118] = -100.0
    arr[:, 25:103, 25:103] = 40.0
    arr[:, 50:80, 50:80] = 60.0
    noise = ndi.gaussian_filter(rng.standard_normal(arr.shape), (0, 0.6, 0.6))
    noise *= sigma / noise.std()
    est = estimate_noise_hu(arr + noise)
    assert est == pytest.approx(sigma, rel=0.15)


def test_noise_estimate_is_none_without_soft_tissue():
    assert estimate_noise_hu(np.full((4, 64, 64), -1000.0)) is None


def _noisy_scene(sigma: float, seed: int = 3):
    """Soft tissue at 40 HU with white noise, one 4 mm calcification (600 HU)."""
    rng = np.random.default_rng(seed)
    spacing = (1.0, 0.8, 0.8)
    shape = (40, 96, 96)
    arr = 40.0 + sigma * rng.standard_normal(shape)
    calc = _ball(shape, (20, 48, 48), 2.0, spacing)
    arr[calc] = 600.0
    return _volume(arr, spacing), calc


def test_noise_gate_removes_noise_specks_and_keeps_a_3mm_calcification():
    vol, calc = _noisy_scene(40.0)
    off = find_candidates(vol, CPU, CandidateSettings(min_peak_snr=0.0))
    on = find_candidates(vol, CPU)
    assert len(off.lesions) > 20  # 130 HU is only 2.25 SD above tissue: many specks
    assert off.noise_gate_hu is None
    assert on.noise_sd_hu == pytest.approx(40.0, rel=0.15)
    assert on.noise_gate_hu == pytest.approx(40.0 + 6.0 * on.noise_sd_hu)
    assert len(on.lesions) == 1
    found = on.labels > 0
    assert found[calc].mean() > 0.9  # the polar caps are below the 1 mm2 minimum area
    # The kept calcification is measured exactly as without the gate.
    same = [les for les in off.lesions if les.peak_hu >= 600.0]
    assert len(same) == 1 and same[0].voxel_count == on.lesions[0].voxel_count


def test_noise_gate_does_not_act_on_a_quiet_scan():
    vol, _ = _noisy_scene(10.0)
    c = find_candidates(vol, CPU)
    assert c.noise_gate_hu is None  # 40 + 6 x 10 = 100 HU < 130 HU threshold


def test_round_dense_blob_of_1_5_ml_is_a_candidate_but_a_rib_of_that_volume_is_bone():
    spacing = (2.0, 0.8, 0.8)
    shape = (60, 120, 160)
    arr = np.full(shape, 40.0)
    stone = _ball(shape, (30, 40, 40), 8.0, spacing)  # 2.1 mL, like a large pelvic stone
    arr[stone] = 900.0
    # A rib segment: 8 x 10 mm cross-section, 60 mm long (bone-like, 4.8 mL minus marrow).
    g = np.indices(shape)
    rib = (np.abs(g[1] * 0.8 - 70) <= 4) & (np.abs(g[0] * 2.0 - 60) <= 5) & (g[2] * 0.8 >= 50) & (g[2] * 0.8 <= 110)
    arr[rib] = 700.0
    bone = segment_bone(arr, spacing, CPU)
    assert not bone[stone].any()
    assert bone[rib].mean() > 0.9
    c = find_candidates(_volume(arr, spacing), CPU)
    assert any(les.volume_mm3 > 1500 for les in c.lesions)


def test_lamina_edge_in_the_ligament_zone_is_dropped_but_a_thick_nodule_is_kept():
    spacing = (1.0, 0.8, 0.8)
    shape = (30, 80, 80)
    arr = np.full(shape, 20.0)
    lamina = np.zeros(shape, bool)
    lamina[:, 50:70, 10:70] = True
    arr[lamina] = 900.0
    # A 1.6 mm dense sliver on the lamina's canal face (what the bone opening shaves off).
    edge = np.zeros(shape, bool)
    edge[5:12, 48:50, 20:30] = True
    arr[edge] = 500.0
    # A 4 mm-deep calcified nodule on the same face.
    nodule = np.zeros(shape, bool)
    nodule[18:24, 45:50, 40:46] = True
    arr[nodule] = 600.0
    bone = np.zeros(shape, bool)
    bone[:, 50:70, 10:70] = True  # the bone mask as the skeleton stage would give it
    zone = np.zeros(shape, bool)
    zone[:, 40:53, 10:70] = True
    vol = _volume(arr, spacing)
    c = find_candidates(vol, CPU, bone_mask=bone, ligament_mask=zone)
    found = c.labels > 0
    assert not found[edge].any()
    assert found[nodule].mean() > 0.5
    # Without the ligament rule (protected like a vessel wall) the sliver survives.
    p = find_candidates(vol, CPU, bone_mask=bone, protect_mask=zone)
    assert (p.labels > 0)[edge].any()
