"""Image noise of a CT volume, and the significance of a small candidate against it.

Why: at 130 HU the calcium threshold is only ~2-4 noise standard deviations above
soft tissue (noise 10-40 HU in abdominal CT), so a noisy thin-slice scan has
thousands of noise specks of one or two voxels above threshold. The Agatston
minimum area (1 mm2) removes many but not all of them. A true calcification of
clinically relevant size (>= 3 mm) reaches a peak well above the threshold, or
is large; a noise speck does neither. The rule lives here so that it is measured
against the scan's own noise, not a fixed HU margin.

Noise estimate: the local standard deviation in 5 x 5 in-plane windows over
soft tissue and fat (local mean -150..120 HU), on up to 24 evenly spaced
slices; its lower quartile, divided by 0.9 (the lower quartile of the sample SD
of 25 Gaussian values is ~0.9 sigma). The lower quartile, not the median: in a
small body at coarse pixels more than half of the windows straddle an organ
edge or carry tissue texture. Correlated (kernel-filtered) noise is measured as
it appears at the scale of a small lesion, which is what the significance test
needs.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["estimate_noise_hu", "NOISE_WINDOW_PX"]

NOISE_WINDOW_PX = 5
_QUARTILE_TO_SIGMA = 0.9
_SOFT_TISSUE_HU = (-150.0, 120.0)
_MAX_SLICES = 24


def estimate_noise_hu(array: np.ndarray) -> float | None:
    """Robust noise standard deviation (HU) of a CT volume ``[k, j, i]``.

    Returns ``None`` when the volume holds too little soft tissue to measure
    (fewer than 200 windows), e.g. a calibration phantom in air.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> vol = 40 + 20 * rng.standard_normal((6, 64, 64))
    >>> round(estimate_noise_hu(vol))
    20
    """
    nk = array.shape[0]
    ks = np.unique(np.linspace(0, nk - 1, min(nk, _MAX_SLICES)).round().astype(int))
    sds: list[np.ndarray] = []
    for k in ks:
        sl = array[k].astype(np.float64)
        mean = ndi.uniform_filter(sl, NOISE_WINDOW_PX, mode="nearest")
        sq = ndi.uniform_filter(sl * sl, NOISE_WINDOW_PX, mode="nearest")
        sd = np.sqrt(np.maximum(sq - mean * mean, 0.0))
        ok = (mean > _SOFT_TISSUE_HU[0]) & (mean < _SOFT_TISSUE_HU[1])
        sds.append(sd[ok])
    vals = np.concatenate(sds) if sds else np.zeros(0)
    if vals.size < 200:
        return None
    n = NOISE_WINDOW_PX**2  # n/(n-1): the window SD above is the population SD
    return float(np.percentile(vals, 25) * np.sqrt(n / (n - 1)) / _QUARTILE_TO_SIGMA)
