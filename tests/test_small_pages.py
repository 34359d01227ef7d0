"""The CT analysis runs without numpy's huge-page requests (a speed setting) and
leaves numpy's process-wide setting as it found it."""

from __future__ import annotations

import numpy as np
import pytest

import calcdetect.pipeline as pipeline

_set_huge = getattr(getattr(np, "_core", None) or getattr(np, "core", None), "multiarray")._set_madvise_hugepage


def _huge_pages_now() -> bool:
    """numpy's current setting (the setter returns the previous one)."""
    current = _set_huge(False)
    _set_huge(current)
    return bool(current)


@pytest.mark.parametrize("before", [True, False])
def test_analysis_runs_on_small_pages_and_restores_the_setting(monkeypatch, before) -> None:
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    seen = []
    monkeypatch.setattr(pipeline, "_analyse_ct", lambda volume, settings: seen.append(_huge_pages_now()))
    previous = _set_huge(before)
    try:
        pipeline.analyse_ct(None, None)  # type: ignore[arg-type]
        assert seen == [False]
        assert _huge_pages_now() == before
    finally:
        _set_huge(previous)


def test_setting_is_restored_when_the_analysis_fails(monkeypatch) -> None:
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)

    def fail(volume, settings):
        raise ValueError("broken input")

    monkeypatch.setattr(pipeline, "_analyse_ct", fail)
    previous = _set_huge(True)
    try:
        with pytest.raises(ValueError, match="broken input"):
            pipeline.analyse_ct(None, None)  # type: ignore[arg-type]
        assert _huge_pages_now()
    finally:
        _set_huge(previous)


def test_a_users_explicit_choice_is_left_alone(monkeypatch) -> None:
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    seen = []
    monkeypatch.setattr(pipeline, "_analyse_ct", lambda volume, settings: seen.append(_huge_pages_now()))
    previous = _set_huge(True)
    try:
        pipeline.analyse_ct(None, None)  # type: ignore[arg-type]
        assert seen == [True]
    finally:
        _set_huge(previous)
