"""The early candidate pass is an optimisation: memory trouble falls back, bugs do not hide."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from calcdetect.pipeline import _early_candidates


def _failed(exc: BaseException) -> Future:
    fut: Future = Future()
    fut.set_exception(exc)
    return fut


def test_an_early_pass_out_of_memory_falls_back_to_the_final_pass() -> None:
    assert _early_candidates(_failed(MemoryError())) is None


def test_an_early_pass_bug_is_raised_not_swallowed() -> None:
    with pytest.raises(ValueError, match="broken"):
        _early_candidates(_failed(ValueError("broken")))


def test_no_early_pass_means_no_early_candidates() -> None:
    assert _early_candidates(None) is None
