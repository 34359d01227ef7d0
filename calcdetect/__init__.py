"""calcdetect: find, measure, locate and describe calcifications on spine CT and
lateral spine radiographs, and draft the report sentence for a radiologist to review.

A research and draft-writing aid, not a diagnosis. Start at ``calcdetect.pipeline``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from calcdetect.device import Device, resolve_device
from calcdetect.errors import CalcdetectError
from calcdetect.types import (
    AcquisitionInfo,
    AnatomyMap,
    Finding,
    Kind,
    Lesion,
    Morphology,
    Radiograph,
    Report,
    Volume,
)

__all__ = [
    "__version__",
    "AcquisitionInfo",
    "AnatomyMap",
    "CalcdetectError",
    "Device",
    "Finding",
    "Kind",
    "Lesion",
    "Morphology",
    "Radiograph",
    "Report",
    "Volume",
    "resolve_device",
]
