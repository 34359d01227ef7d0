"""Shared small phantoms (module-scoped: each is built once per test session)."""

from __future__ import annotations

import pytest

from calcdetect.phantoms.ct import CTPhantom, CTPhantomSettings, generate_ct_phantom

# Clinical-like resolution on a reduced field: T12 to the sacrum, 1.5 mm pixels,
# 2 mm slices; noise off so the truth checks see the blurred signal only.
SMALL = CTPhantomSettings(
    seed=11, matrix=224, pixel_mm=1.5, slice_thickness_mm=2.0, fov=("T12", "S1"),
    noise_sigma_hu=0.0, plaque_burden=0.8, renal_stones=3, nephrocalcinosis=True,
    ureteral_stone=True, lf_calcification="multilevel", metal=False, contrast=False,
)


@pytest.fixture(scope="session")
def small_phantom() -> CTPhantom:
    return generate_ct_phantom(SMALL)
