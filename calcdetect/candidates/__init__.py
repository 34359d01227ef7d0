"""Calcium candidates: threshold, components, Agatston / volume / mass.

Public API::

    from calcdetect.candidates import (
        find_candidates, CandidateSettings, Candidates, calcium_threshold_hu,
        measure_components, mass_calibration_mg_per_hu_ml,
    )

See :mod:`calcdetect.candidates.core` for the recipe,
:mod:`calcdetect.candidates.measure` for the measurement definitions and
:mod:`calcdetect.candidates.threshold` for the kVp tables and their sources.
"""

from __future__ import annotations

from calcdetect.candidates.core import CandidateSettings, Candidates, find_candidates
from calcdetect.candidates.measure import measure_components
from calcdetect.candidates.threshold import (
    agatston_weight,
    calcium_threshold_hu,
    mass_calibration_mg_per_hu_ml,
)

__all__ = [
    "CandidateSettings",
    "Candidates",
    "find_candidates",
    "measure_components",
    "calcium_threshold_hu",
    "mass_calibration_mg_per_hu_ml",
    "agatston_weight",
]
