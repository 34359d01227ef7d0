"""Splitting a component that fuses two calcifications at an HU saddle."""

import numpy as np

from calcdetect.candidates import find_candidates
from calcdetect.candidates.split import SplitSettings, split_fused_components
from calcdetect.device import Device
from calcdetect.types import AcquisitionInfo, Volume

SPACING = (1.0, 0.7, 0.7)


def _labels_of(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import cc3d

    labels = cc3d.connected_components(mask, connectivity=26).astype(np.int32)
    idx = np.flatnonzero(labels)
    # one 2-D region per (slice, component) is enough here
    reg = (idx // (mask.shape[1] * mask.shape[2])) * 10 + labels.reshape(-1)[idx]
    return labels, idx, reg


def _two_plaques(bridge_hu: float, rng: np.random.Generator, noise_hu: float = 15.0,
                 bridge_px: tuple[int, int] = (11, 13)) -> np.ndarray:
    """Two dense plaques stacked along z on one wall, joined by a fainter bridge."""
    hu = rng.normal(40.0, noise_hu, (40, 24, 24)).astype(np.float32)
    hu[4:16, 10:14, 10:14] = 600.0
    b0, b1 = bridge_px
    hu[16:20, b0:b1, b0:b1] = bridge_hu  # blurred edges meeting between them
    hu[20:32, 10:14, 10:14] = 550.0
    return hu


def test_two_plaques_joined_by_a_faint_bridge_are_split_along_z() -> None:
    hu = _two_plaques(200.0, np.random.default_rng(0))
    labels, idx, reg = _labels_of(hu >= 130)
    assert labels.max() == 1  # fused at the calcium threshold
    labels, n, idx, reg, adj = split_fused_components(labels, idx, reg, frozenset({1}), hu, SPACING, 130.0)
    assert n == 2
    low, high = labels[8, 12, 12], labels[26, 12, 12]
    assert {int(low), int(high)} == {1, 2}
    # each part keeps its own plaque's slices: the level span follows
    assert (labels[4:16][labels[4:16] > 0] == low).all()
    assert (labels[21:32][labels[21:32] > 0] == high).all()
    assert adj == frozenset({1, 2})  # a part of a bone-adjacent component stays adjacent
    # no Agatston region spans two components
    lab = labels.reshape(-1)[idx]
    for r in np.unique(reg):
        assert np.unique(lab[reg == r]).size == 1


def test_one_plaque_with_noisy_texture_is_not_split() -> None:
    rng = np.random.default_rng(1)
    hu = rng.normal(40.0, 15.0, (40, 24, 24)).astype(np.float32)
    hu[4:32, 10:14, 10:14] = 450.0 + rng.normal(0.0, 40.0, (28, 4, 4))  # 40 HU noise on the plaque
    labels, idx, reg = _labels_of(hu >= 130)
    before = labels.copy()
    labels, n, *_ = split_fused_components(labels, idx, reg, frozenset(), hu, SPACING, 130.0)
    assert n == int(before.max())
    assert (labels == before).all()


def test_a_shallow_saddle_is_not_split() -> None:
    # as wide as the cores and only ~10 % fainter: one plaque, denser at its ends
    hu = _two_plaques(500.0, np.random.default_rng(2), bridge_px=(10, 14))
    labels, idx, reg = _labels_of(hu >= 130)
    _, n, *_ = split_fused_components(labels, idx, reg, frozenset(), hu, SPACING, 130.0)
    assert n == 1


def test_short_components_are_not_examined() -> None:
    hu = _two_plaques(200.0, np.random.default_rng(3))
    labels, idx, reg = _labels_of(hu >= 130)
    s = SplitSettings(min_z_extent_mm=40.0)  # the pair spans 28 mm
    _, n, *_ = split_fused_components(labels, idx, reg, frozenset(), hu, SPACING, 130.0, s)
    assert n == 1


def test_candidate_stage_reports_the_two_plaques_separately() -> None:
    hu = _two_plaques(200.0, np.random.default_rng(4))
    vol = Volume(hu, SPACING, np.eye(4), AcquisitionInfo("CT", kvp=120))
    found = find_candidates(vol, Device("cpu"))
    big = sorted((les for les in found.lesions if les.voxel_count >= 50), key=lambda les: les.centroid_kji[0])
    assert len(big) == 2
    assert big[0].peak_hu >= 590 and 540 <= big[1].peak_hu < 590


def test_a_small_dense_fleck_is_not_cut_off_a_plaque() -> None:
    # ~4 mm3 of bone-dense HU at a plaque's end (a fleck of bone or noise):
    # too small a core to be a calcification of its own
    rng = np.random.default_rng(5)
    hu = rng.normal(40.0, 15.0, (40, 24, 24)).astype(np.float32)
    hu[4:20, 10:14, 10:14] = 450.0
    hu[20:22, 11:13, 11:13] = 200.0
    hu[22:24, 11:13, 11:13] = 900.0
    labels, idx, reg = _labels_of(hu >= 130)
    assert labels.max() == 1
    _, n, *_ = split_fused_components(labels, idx, reg, frozenset(), hu, SPACING, 130.0)
    assert n == 1


def test_bone_sized_components_are_not_examined() -> None:
    hu = _two_plaques(200.0, np.random.default_rng(6))
    labels, idx, reg = _labels_of(hu >= 130)
    s = SplitSettings(max_volume_mm3=100.0)  # the pair holds ~200 mm3
    _, n, *_ = split_fused_components(labels, idx, reg, frozenset(), hu, SPACING, 130.0, s)
    assert n == 1
