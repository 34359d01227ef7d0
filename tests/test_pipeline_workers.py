"""analyse_ct gives the same analysis on one thread and on several (overlapped stages)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from calcdetect.config import RunSettings
from calcdetect.phantoms import CTPhantomSettings, generate_ct_phantom
from calcdetect.pipeline import analyse_ct
from calcdetect.types import AcquisitionInfo, Volume


@pytest.fixture(scope="module")
def phantom_volume() -> Volume:
    ph = generate_ct_phantom(CTPhantomSettings(
        seed=7, matrix=160, pixel_mm=2.0, slice_thickness_mm=2.0, fov=("L1", "L5"),
        noise_sigma_hu=20.0, plaque_burden=0.8, renal_stones=1, distractors=True,
    ))
    return Volume(ph.hu.astype(np.float32), ph.spacing, ph.affine, AcquisitionInfo("CT", kvp=120.0))


def _fields(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _assert_equal(a, b, where: str) -> None:
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif dataclasses.is_dataclass(a):
        for key, value in _fields(a).items():
            _assert_equal(value, getattr(b, key), f"{where}.{key}")
    elif isinstance(a, (list, tuple)) and a and not isinstance(a[0], (int, float, str)):
        assert len(a) == len(b), where
        for n, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{where}[{n}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("contrast_header", [None, "IV contrast"])
def test_one_thread_and_several_give_the_same_analysis(phantom_volume: Volume, contrast_header) -> None:
    # A contrast header skips the early candidate pass: the anatomy then gets
    # every thread, and no background thread for its kidneys.
    volume = dataclasses.replace(phantom_volume,
                                 info=dataclasses.replace(phantom_volume.info, contrast_agent=contrast_header))
    one = analyse_ct(volume, RunSettings(overlays=False, workers=1))
    many = analyse_ct(volume, RunSettings(overlays=False, workers=3))
    assert len(one.candidates.lesions) > 5  # a scene with something to get wrong
    np.testing.assert_array_equal(one.anatomy.labels, many.anatomy.labels)
    assert one.anatomy.slice_levels == many.anatomy.slice_levels and one.anatomy.notes == many.anatomy.notes
    np.testing.assert_array_equal(one.candidates.labels, many.candidates.labels)
    _assert_equal(one.candidates.lesions, many.candidates.lesions, "lesions")
    _assert_equal(one.findings, many.findings, "findings")
    assert one.report == many.report
    assert one.candidates.noise_sd_hu == many.candidates.noise_sd_hu


def test_a_failing_early_candidate_search_does_not_fail_the_analysis(phantom_volume, monkeypatch) -> None:
    import calcdetect.pipeline as pipeline

    def broken(*args, **kwargs):
        raise MemoryError("simulated")

    reference = analyse_ct(phantom_volume, RunSettings(overlays=False, workers=1))
    monkeypatch.setattr(pipeline, "_candidates_without_anatomy", broken)
    analysis = analyse_ct(phantom_volume, RunSettings(overlays=False, workers=2))
    _assert_equal(reference.candidates.lesions, analysis.candidates.lesions, "lesions")
