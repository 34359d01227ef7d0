"""The default mass calibration must follow the phantoms' HA-density-to-HU model."""

import numpy as np
import pytest

from calcdetect.candidates.threshold import mass_calibration_mg_per_hu_ml
from calcdetect.phantoms.physics import hu_per_mg_ha


@pytest.mark.parametrize("kvp", [70.0, 80.0, 100.0, 120.0, 135.0, 140.0, 150.0])
def test_default_calibration_is_the_inverse_of_the_phantom_physics(kvp: float) -> None:
    assert mass_calibration_mg_per_hu_ml(kvp) == pytest.approx(1.0 / hu_per_mg_ha(kvp), rel=1e-12)


def test_calibration_clamps_outside_the_modelled_range_and_defaults_to_120_kvp() -> None:
    assert mass_calibration_mg_per_hu_ml(40.0) == pytest.approx(1.0 / hu_per_mg_ha(70.0))
    assert mass_calibration_mg_per_hu_ml(200.0) == pytest.approx(1.0 / hu_per_mg_ha(150.0))
    assert mass_calibration_mg_per_hu_ml(None) == pytest.approx(1.0 / hu_per_mg_ha(120.0))
    assert np.isfinite(mass_calibration_mg_per_hu_ml(120.0))


def test_the_calibration_does_not_load_the_phantom_generator() -> None:
    import subprocess
    import sys

    code = ("import sys; from calcdetect.candidates.threshold import mass_calibration_mg_per_hu_ml as m; "
            "m(120.0); print(any(n in sys.modules for n in "
            "('calcdetect.phantoms.ct', 'calcdetect.phantoms.qrm', 'calcdetect.phantoms.ct_anatomy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
