"""Shared synthetic volumes for the anatomy tests (built once per session)."""

from __future__ import annotations

import pytest
from anatomy_synth import make_ct

from calcdetect.anatomy import build_anatomy
from calcdetect.device import Device


@pytest.fixture(scope="session")
def trunk():
    """T11-T12 (ribs), L1-L5, sacrum, aorta bifurcating at L4, both kidneys."""
    return make_ct()


@pytest.fixture(scope="session")
def trunk_anatomy(trunk):
    return build_anatomy(trunk.volume, Device("cpu"))
