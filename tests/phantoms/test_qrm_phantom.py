"""QRM calibration phantom: analytic truth, and an image that conserves the calcium."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from calcdetect.phantoms import physics
from calcdetect.phantoms.qrm import QRM_DENSITIES, QRM_SIZES_MM, generate_qrm_phantom, write_qrm_phantom

# A 256 matrix at 1.2 mm covers the 300 mm body and keeps the test fast.
FAST = dict(matrix=256, pixel_mm=1.2, z_extent_mm=20.0)


def test_truth_is_analytic() -> None:
    ph = generate_qrm_phantom(3.0, noise_sigma_hu=0.0, **FAST)
    assert len(ph.inserts) == 9
    seen = set()
    for ins in ph.inserts:
        d = ins.diameter_mm
        assert ins.volume_mm3 == pytest.approx(math.pi * (d / 2) ** 2 * d, rel=0.01)
        assert ins.mass_mg == pytest.approx(ins.volume_mm3 * ins.density_mg_cm3 / 1000, rel=1e-6)
        seen.add((d, ins.density_mg_cm3))
    assert seen == {(s, rho) for s in QRM_SIZES_MM for rho in QRM_DENSITIES}


@pytest.mark.parametrize("thickness", [0.5, 3.0, 5.0])
def test_image_conserves_calcium_mass(thickness: float) -> None:
    """Blur moves calcium around but keeps its integral: mass from HU matches truth."""
    ph = generate_qrm_phantom(thickness, kvp=100, noise_sigma_hu=0.0, **FAST)
    slope = physics.hu_per_mg_ha(100)
    vox = float(np.prod(ph.spacing))
    for ins in ph.inserts:
        if ins.diameter_mm < 3:
            continue
        k0, j0, i0, k1, j1, i1 = ins.bbox_kji
        sub = ph.hu[max(k0 - 3, 0):k1 + 3, j0 - 5:j1 + 5, i0 - 5:i1 + 5]
        mass = float(sub.sum()) * vox / slope / 1000  # water background = 0 HU
        assert mass == pytest.approx(ins.mass_mg, rel=0.03), ins.extra["name"]


def test_thick_slices_lower_the_peak_of_small_inserts() -> None:
    thin = generate_qrm_phantom(0.5, noise_sigma_hu=0.0, **FAST)
    thick = generate_qrm_phantom(5.0, noise_sigma_hu=0.0, **FAST)

    def peak(ph, name):
        ins = next(i for i in ph.inserts if i.extra["name"] == name)
        return float(ph.hu[ph.lesion_labels == ins.id].max())

    assert peak(thick, "HA800-D1") < 0.5 * peak(thin, "HA800-D1")
    assert peak(thin, "HA800-D5") > peak(thin, "HA400-D5") > peak(thin, "HA200-D5") > 100


def test_noise_level_and_write(tmp_path: Path) -> None:
    ph = generate_qrm_phantom(2.0, noise_sigma_hu=15.0, seed=3, **FAST)
    roi = ph.hu[:, 165:190, 165:210]  # water (y, x ~ +45..+75 mm), away from the inserts
    assert float(roi.std()) == pytest.approx(15.0, rel=0.15)
    assert abs(float(roi.mean())) < 2.0
    out = write_qrm_phantom(ph, tmp_path / "qrm")
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == ph.hu.shape[0]
    ds = pydicom.dcmread(files[0])
    assert float(ds.SliceThickness) == 2.0 and ds.Modality == "CT"
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert truth["kind"] == "qrm" and len(truth["lesions"]) == 9
    assert (out / "truth" / "lesions.nii.gz").exists()


def test_errors() -> None:
    with pytest.raises(ValueError, match="slice_thickness"):
        generate_qrm_phantom(8.0)
    with pytest.raises(ValueError, match="field of view"):
        generate_qrm_phantom(1.0, matrix=128, pixel_mm=1.0)
