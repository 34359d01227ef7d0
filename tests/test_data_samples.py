"""data_samples/ is exactly what the phantom code makes from its fixed seeds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_samples import make_samples  # noqa: E402

SAMPLES = ROOT / "data_samples"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    make_samples(out)
    return out


@pytest.mark.parametrize("study", ["ct_phantom", "radiograph_phantom"])
def test_samples_are_reproducible_from_seed(regenerated, study):
    committed = sorted((SAMPLES / study / "dicom").iterdir())
    fresh = sorted((regenerated / study / "dicom").iterdir())
    assert [p.name for p in committed] == [p.name for p in fresh]
    for a, b in zip(committed, fresh):
        da, db = pydicom.dcmread(a), pydicom.dcmread(b)
        assert np.array_equal(da.pixel_array, db.pixel_array), a.name
        assert da.SeriesInstanceUID == db.SeriesInstanceUID
    truth_a = json.loads((SAMPLES / study / "truth" / "truth.json").read_text())
    truth_b = json.loads((regenerated / study / "truth" / "truth.json").read_text())
    assert truth_a == truth_b


def test_ct_sample_has_every_target_region():
    truth = json.loads((SAMPLES / "ct_phantom" / "truth" / "truth.json").read_text())
    regions = {lesion["region"] for lesion in truth["lesions"]}
    assert {"aorta", "iliac", "renal", "ligamentum_flavum", "other"} <= regions
