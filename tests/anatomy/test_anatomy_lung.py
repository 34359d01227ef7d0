"""Lung fields mark the chest: no iliac arteries there, and the aorta is thoracic."""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.build import _lung_fields


def test_lung_fields_found_on_chest_slices_not_on_bowel_gas():
    hu = np.full((4, 100, 100), -1000.0, np.float32)  # air around the patient
    body = np.zeros(hu.shape, bool)
    body[:, 10:90, 10:90] = True
    hu[body] = 40.0
    hu[2:, 20:80, 15:45] = -850.0  # two lungs on the upper slices
    hu[2:, 20:80, 55:85] = -850.0
    hu[0, 40:50, 40:50] = -900.0  # a bowel gas pocket on a lower slice
    lung = _lung_fields(hu, body)
    assert lung[2:].any(axis=(1, 2)).all()
    assert not lung[:2].any()
