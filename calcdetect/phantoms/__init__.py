"""Synthetic phantoms with exact ground truth: abdominal/spine CT and the QRM
calcium calibration phantom (radiographs live in ``radiograph.py`` when present).

Public API::

    from calcdetect.phantoms import CTPhantomSettings, generate_ct_phantom, write_ct_phantom
    from calcdetect.phantoms import generate_qrm_phantom, write_qrm_phantom, make_sample_study

The names are imported lazily: the detector imports the light
``calcdetect.phantoms.physics`` (its default mass calibration) without loading
the phantom generator.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any


_HOMES = {
    **dict.fromkeys(("CTPhantom", "CTPhantomSettings", "generate_ct_phantom", "write_ct_phantom",
                     "random_settings", "make_sample_study", "cli_phantom_ct"), "calcdetect.phantoms.ct"),
    **dict.fromkeys(("QRMPhantom", "generate_qrm_phantom", "write_qrm_phantom", "cli_phantom_qrm"),
                    "calcdetect.phantoms.qrm"),
    **dict.fromkeys(("TRUTH_SCHEMA", "TruthLesion", "nifti_affine_from_kji"), "calcdetect.phantoms.truth"),
}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'calcdetect.phantoms' has no attribute {name!r}")
