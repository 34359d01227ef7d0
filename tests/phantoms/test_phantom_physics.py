"""Physics helpers: calcium HU per kVp, noise level, blur conserves the integral."""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.phantoms import physics


def test_hu_per_mg_anchor_values_and_monotonic() -> None:
    assert physics.hu_per_mg_ha(80) == pytest.approx(1.0)
    assert physics.hu_per_mg_ha(140) == pytest.approx(0.65)
    values = [physics.hu_per_mg_ha(k) for k in (80, 100, 120, 140)]
    assert values == sorted(values, reverse=True)
    assert physics.density_to_hu(400, 120, base_hu=40) == pytest.approx(40 + 400 * physics.hu_per_mg_ha(120))
    with pytest.raises(ValueError, match="kvp"):
        physics.hu_per_mg_ha(200)


@pytest.mark.parametrize("corr", [0.0, 0.6, 1.5])
def test_correlated_noise_has_requested_sigma(corr: float) -> None:
    n = physics.correlated_noise((8, 128, 128), 25.0, corr, np.random.default_rng(0))
    assert n.dtype == np.float32
    assert float(n.std()) == pytest.approx(25.0, rel=0.05)
    if corr > 1:
        # Neighbouring pixels are correlated.
        c = np.corrcoef(n[:, :, :-1].ravel(), n[:, :, 1:].ravel())[0, 1]
        assert c > 0.5


def test_blur_conserves_integral_and_lowers_peak() -> None:
    vol = np.zeros((20, 40, 40), np.float32)
    vol[10, 20, 20] = 1000.0
    total = vol.sum()
    physics.blur(vol, (2.0, 0.7, 0.7), 1.0, 1.0)
    assert float(vol.sum()) == pytest.approx(float(total), rel=1e-4)
    assert vol.max() < 1000.0


def test_kernel_fwhm() -> None:
    assert physics.kernel_fwhm_mm("B70f") < physics.kernel_fwhm_mm("B30f") <= 1.2
    assert physics.kernel_fwhm_mm("BONE") == pytest.approx(0.7)


def test_add_correlated_noise_in_place_and_deterministic() -> None:
    a = np.zeros((40, 64, 64), np.float32)
    b = np.zeros((40, 64, 64), np.float32)
    physics.add_correlated_noise(a, 20.0, 0.8, (1, 2))
    physics.add_correlated_noise(b, 20.0, 0.8, (1, 2))
    np.testing.assert_array_equal(a, b)
    assert float(a.std()) == pytest.approx(20.0, rel=0.05)
    c = np.zeros_like(a)
    physics.add_correlated_noise(c, 20.0, 0.8, (1, 3))
    assert not np.array_equal(a, c)


def test_iodine_enhancement_rises_at_low_kvp() -> None:
    assert physics.iodine_scale(120) == pytest.approx(1.0)
    assert physics.iodine_scale(80) == pytest.approx(1.6)
    assert physics.iodine_scale(80) > physics.iodine_scale(100) > 1.0 > physics.iodine_scale(140)
