"""The CPU voxel core on several threads gives exactly what one thread gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from calcdetect.bone import BoneSettings, _opened_bone, segment_bone
from calcdetect.candidates import find_candidates
from calcdetect.candidates.measure import measure_components
from calcdetect.config import RunSettings, load_run_settings
from calcdetect.device import Device
from calcdetect.errors import ConfigError
from calcdetect.types import AcquisitionInfo, Volume
from calcdetect.workers import available_cpus, resolve_workers, thread_map

CPU = Device("cpu")
SPACING = (1.0, 0.8, 0.8)


def _spine_scene(seed: int = 5) -> Volume:
    """A column of vertebrae (cortex, noisy marrow, gaps) with calcifications
    touching them and free in soft tissue, tall enough for three slabs."""
    shape = (64, 80, 80)
    rng = np.random.default_rng(seed)
    arr = rng.normal(40.0, 30.0, shape)
    k, j, i = np.indices(shape).astype(np.float64)
    for k0 in (2.0, 24.0, 46.0):  # bodies 18 mm tall, 4 mm discs between them
        z = (k >= k0) & (k < k0 + 18)
        r = np.hypot((j - 40) * 0.8, (i - 40) * 0.8)
        arr[z & (r <= 14)] = 900.0
        arr[z & (r <= 12.5)] = rng.normal(220.0, 60.0, shape)[z & (r <= 12.5)]
    # calcifications: one on a disc level (crosses slab edges), some free
    arr[20:26, 20:23, 38:44] = 420.0
    for kk, jj, ii in ((10, 70, 10), (31, 8, 70), (43, 70, 60), (55, 12, 12)):
        arr[kk:kk + 3, jj:jj + 3, ii:ii + 4] = rng.uniform(200, 600)
    affine = np.diag([*SPACING, 1.0])
    return Volume(arr.astype(np.float32), SPACING, affine, AcquisitionInfo("CT", kvp=120))


@pytest.fixture(scope="module")
def scene() -> Volume:
    return _spine_scene()


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_bone_mask_does_not_depend_on_the_worker_count(scene: Volume, workers: int) -> None:
    one = segment_bone(scene.array, SPACING, CPU, workers=1)
    assert one.sum() > 10_000  # the scene has bone to get wrong
    np.testing.assert_array_equal(segment_bone(scene.array, SPACING, CPU, workers=workers), one)


def test_slabs_without_their_halo_would_differ(scene: Volume) -> None:
    """The scene is sensitive to slab edges: cut naively, the bone changes."""
    s = BoneSettings()
    dense = scene.array >= s.bone_hu
    whole = _opened_bone(scene.array, dense, SPACING, s, 1.0, 10_000, None)
    halves = np.concatenate([_opened_bone(scene.array[a:b], dense[a:b], SPACING, s, 1.0, 10_000, None)
                             for a, b in ((0, 32), (32, 64))])
    assert not np.array_equal(whole, halves)


def _fields(lesion) -> dict:
    return {f.name: getattr(lesion, f.name) for f in dataclasses.fields(lesion)}


def _assert_same_lesions(a, b) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        fx, fy = _fields(x), _fields(y)
        for key in fx:
            if isinstance(fx[key], np.ndarray):
                np.testing.assert_array_equal(fx[key], fy[key])
            else:
                assert fx[key] == fy[key], key


@pytest.mark.parametrize("workers", [2, 4])
def test_candidates_do_not_depend_on_the_worker_count(scene: Volume, workers: int) -> None:
    one = find_candidates(scene, CPU, workers=1)
    many = find_candidates(scene, CPU, workers=workers)
    np.testing.assert_array_equal(one.labels, many.labels)
    np.testing.assert_array_equal(one.bone_mask, many.bone_mask)
    _assert_same_lesions(one.lesions, many.lesions)
    assert one.noise_sd_hu == many.noise_sd_hu


def test_a_noise_estimate_passed_in_is_the_one_used(scene: Volume) -> None:
    own = find_candidates(scene, CPU, workers=1)
    given = find_candidates(scene, CPU, workers=1, noise_sd_hu=own.noise_sd_hu)
    _assert_same_lesions(own.lesions, given.lesions)
    louder = find_candidates(scene, CPU, workers=1, noise_sd_hu=80.0)
    assert louder.noise_gate_hu == pytest.approx(40.0 + 6.0 * 80.0)


def test_measurement_on_threads_keeps_label_order(scene: Volume) -> None:
    labels = find_candidates(scene, CPU, workers=1).labels
    one = measure_components(scene, labels, CPU, workers=1)
    _assert_same_lesions(one, measure_components(scene, labels, CPU, workers=3))
    assert [les.label for les in one] == sorted(les.label for les in one)


def test_worker_count_resolution() -> None:
    assert resolve_workers(None) == available_cpus() >= 1
    assert resolve_workers(3) == 3
    with pytest.raises(ValueError, match="workers must be >= 1"):
        resolve_workers(0)
    assert thread_map(lambda x: x * x, range(7), 3) == [x * x for x in range(7)]


def test_worker_count_in_the_run_config(tmp_path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("workers: 1\n")
    assert load_run_settings(cfg, device="cpu").workers == 1
    assert load_run_settings(device="cpu").workers is None  # default: all available CPUs
    cfg.write_text("workers: 0\n")
    with pytest.raises(ConfigError, match="workers"):
        load_run_settings(cfg, device="cpu")
    with pytest.raises(ValueError, match="workers"):
        RunSettings(workers=0)
