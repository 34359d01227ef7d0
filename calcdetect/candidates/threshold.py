"""Calcium threshold, Agatston density weights and mass calibration by tube voltage.

Sources and assumptions
-----------------------
* Threshold: 130 HU is the Agatston threshold at 120 kVp (Agatston et al., JACC
  1990). At other tube voltages the same calcium density reads higher (low kV) or
  lower (high kV) in HU; the kVp-adapted thresholds used here are the published
  ones (~207 / 177 / 145 / 130 / 119 HU at 70 / 80 / 100 / 120 / 135 kV), linearly
  interpolated between table points and clamped outside 70-135 kV.
* Agatston density weights keep the classic 120 kVp cut-offs (peak 130-199 HU -> 1,
  200-299 -> 2, 300-399 -> 3, >= 400 -> 4) at every kVp; scores from other kVp are
  an approximation, as in the literature that uses kVp-adapted thresholds only.
* Mass: ``mass_mg = c x mean_HU x volume_mL`` (Hong et al., Radiology 2002) with
  ``c`` in mg hydroxyapatite per (HU x mL) from a calibration phantom. A site
  calibration (``CandidateSettings.mass_calibration_mg_per_hu_ml``) always wins.
  Without one, ``c(kVp) = 1 / hu_per_mg_ha(kVp)`` from
  :mod:`calcdetect.phantoms.physics`, the one HA-density-to-HU model of the
  project, so measured masses are consistent with the phantoms' truth (kVp
  clamped to that model's 70-150 kV range; 120 kV when unknown). That model gives
  c = 1.30 at 120 kV (1.00 at 80, 1.54 at 140). Caveat: calibration-phantom
  literature usually quotes c_HA ~ 0.7-0.8 mg/(cm3 x HU) at 120 kVp (130 HU ~
  100 mg HA/cm3); if the physics model is revised, the default here follows it.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "KVP_THRESHOLD_TABLE",
    "AGATSTON_CUTOFFS_HU",
    "AGATSTON_REFERENCE_SLICE_MM",
    "calcium_threshold_hu",
    "mass_calibration_mg_per_hu_ml",
    "agatston_weight",
]

# (kVp, threshold HU); increasing kVp.
KVP_THRESHOLD_TABLE: tuple[tuple[float, float], ...] = (
    (70.0, 207.0),
    (80.0, 177.0),
    (100.0, 145.0),
    (120.0, 130.0),
    (135.0, 119.0),
)
REFERENCE_THRESHOLD_HU = 130.0
AGATSTON_CUTOFFS_HU: tuple[float, float, float] = (200.0, 300.0, 400.0)
AGATSTON_REFERENCE_SLICE_MM = 3.0
_PHYSICS_KVP_RANGE = (70.0, 150.0)  # where calcdetect.phantoms.physics is defined


def calcium_threshold_hu(kvp: float | None) -> float:
    """Calcium threshold in HU for a tube voltage (130 HU at 120 kVp).

    Parameters
    ----------
    kvp : float or None
        Peak tube voltage. ``None`` (unknown) gives 130 HU; the caller is
        expected to warn that the 120 kVp threshold was assumed.

    Returns
    -------
    float
        Piecewise-linear interpolation of :data:`KVP_THRESHOLD_TABLE`, clamped
        outside 70-135 kV.

    Examples
    --------
    >>> calcium_threshold_hu(120)
    130.0
    >>> calcium_threshold_hu(90)
    161.0
    """
    if kvp is None:
        return REFERENCE_THRESHOLD_HU
    kvp = float(kvp)
    if not np.isfinite(kvp) or kvp <= 0:
        raise ValueError(f"kvp must be a positive number of kilovolts, got {kvp!r}")
    xs, ys = zip(*KVP_THRESHOLD_TABLE)
    return float(np.interp(kvp, xs, ys))


def mass_calibration_mg_per_hu_ml(kvp: float | None) -> float:
    """Default calcium-mass calibration ``c`` (mg HA per HU per mL) at ``kvp``.

    ``c = 1 / hu_per_mg_ha(kVp)`` of :mod:`calcdetect.phantoms.physics` (see the
    module docstring); ``None`` gives the 120 kVp value.

    >>> round(mass_calibration_mg_per_hu_ml(80), 3)
    1.0
    """
    # The physics module is light (the phantoms package loads its generator lazily).
    from calcdetect.phantoms.physics import hu_per_mg_ha

    k = 120.0 if kvp is None else float(np.clip(float(kvp), *_PHYSICS_KVP_RANGE))
    return 1.0 / hu_per_mg_ha(k)


def agatston_weight(peak_hu: np.ndarray | float) -> np.ndarray:
    """Classic Agatston density weight of a slice region from its peak HU.

    1 below 200 HU (the region already passed the threshold), 2 for 200-299,
    3 for 300-399 and 4 from 400 HU.

    >>> agatston_weight(np.array([150.0, 250.0, 399.9, 400.0])).tolist()
    [1, 2, 3, 4]
    """
    peak = np.asarray(peak_hu, dtype=np.float64)
    return 1 + np.searchsorted(np.asarray(AGATSTON_CUTOFFS_HU), peak, side="right")
