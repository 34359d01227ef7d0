"""Shared fixtures: small synthetic lateral radiographs (fast at 0.5 mm spacing)."""

from __future__ import annotations

import pytest

from calcdetect.radiograph.synthetic import SyntheticLateral, make_synthetic_lateral
from calcdetect.types import AcquisitionInfo, Radiograph


def as_radiograph(ph: SyntheticLateral, **kw) -> Radiograph:
    kw.setdefault("view", "lateral")
    return Radiograph(ph.image, (ph.spacing_mm, ph.spacing_mm), AcquisitionInfo("DX"), **kw)


@pytest.fixture(scope="session")
def lateral_left() -> SyntheticLateral:
    return make_synthetic_lateral(0, spacing_mm=0.5)


@pytest.fixture(scope="session")
def lateral_right() -> SyntheticLateral:
    return make_synthetic_lateral(1, spacing_mm=0.5, anterior_left=False, obesity=1.3, noise=1.5)


@pytest.fixture(scope="session")
def to_radiograph():
    """The helper above as a fixture (test modules here are not a package)."""
    return as_radiograph
