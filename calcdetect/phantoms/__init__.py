"""Synthetic phantoms with exact ground truth: abdominal/spine CT and the QRM
calcium calibration phantom (radiographs live in ``radiograph.py`` when present).

Public API::

    from calcdetect.phantoms import CTPhantomSettings, generate_ct_phantom, write_ct_phantom
    from calcdetect.phantoms import generate_qrm_phantom, write_qrm_phantom, make_sample_study
"""

from __future__ import annotations

from calcdetect.phantoms.ct import (
    CTPhantom,
    CTPhantomSettings,
    cli_phantom_ct,
    generate_ct_phantom,
    make_sample_study,
    random_settings,
    write_ct_phantom,
)
from calcdetect.phantoms.qrm import QRMPhantom, cli_phantom_qrm, generate_qrm_phantom, write_qrm_phantom
from calcdetect.phantoms.truth import TRUTH_SCHEMA, TruthLesion, nifti_affine_from_kji

__all__ = [
    "CTPhantom",
    "CTPhantomSettings",
    "generate_ct_phantom",
    "write_ct_phantom",
    "random_settings",
    "make_sample_study",
    "cli_phantom_ct",
    "QRMPhantom",
    "generate_qrm_phantom",
    "write_qrm_phantom",
    "cli_phantom_qrm",
    "TRUTH_SCHEMA",
    "TruthLesion",
    "nifti_affine_from_kji",
]
