"""Imaging physics for the synthetic CT phantoms: tissue HU, calcium HU per kVp,
point-spread / slice-sensitivity blur and correlated noise.

Numbers are round literature values, not fits to one scanner:

* Tissue attenuation at 120 kVp (unenhanced): air -1000, fat -100 to -90,
  water 0, CSF ~5-10, blood 40-45, muscle 40-55, kidney 30-35, liver 55-65,
  spleen 45-50, cancellous vertebral bone 150-250, cortical bone 800-1200 HU
  (Hounsfield units tables e.g. in Bushberg, *The Essential Physics of Medical
  Imaging*, 3rd ed., table 10-2; Lamba et al., *RadioGraphics* 2014, "CT
  Hounsfield numbers of soft tissues on unenhanced abdominal CT scans").
* Calcium hydroxyapatite (HA): CT number rises linearly with HA density at a
  fixed tube voltage, with a slope that falls as kVp rises because the
  photo-electric part of calcium's attenuation shrinks with energy. Calibration
  phantom work (QRM / Mindways HA inserts; e.g. McCollough et al., *Radiology*
  2007; Nakazato et al. 2009 for 80-140 kVp) gives roughly 1.0 HU per mg HA/cm3
  at 80 kVp and 0.65 HU per mg HA/cm3 at 140 kVp. We interpolate linearly in kVp
  between those anchors (0.767 HU per mg/cm3 at 120 kVp, so 130 HU ~ 170 mg/cm3).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

__all__ = [
    "TISSUE_HU",
    "hu_per_mg_ha",
    "density_to_hu",
    "iodine_scale",
    "blur",
    "correlated_noise",
    "add_correlated_noise",
    "kernel_fwhm_mm",
]

# Unenhanced tissue CT numbers at 120 kVp (see module docstring for sources).
TISSUE_HU: dict[str, float] = {
    "air": -1000.0,
    "lung": -850.0,
    "bowel_gas": -950.0,
    "fat": -100.0,
    "visceral_fat": -95.0,
    "sinus_fat": -85.0,
    "epidural_fat": -80.0,
    "water": 0.0,
    "urine": 5.0,
    "csf": 8.0,
    "bile_fluid": 12.0,
    "bowel_fluid": 18.0,
    "skin": 25.0,
    "kidney_medulla": 28.0,
    "kidney_cortex": 33.0,
    "spinal_cord": 35.0,
    "blood": 42.0,
    "vessel_wall": 45.0,
    "bowel_wall": 40.0,
    "spleen": 48.0,
    "muscle": 50.0,
    "ligament": 60.0,
    "liver": 58.0,
    "disc": 85.0,
    "cartilage": 110.0,
    "marrow": 20.0,  # red/yellow marrow mix inside cancellous bone, before the HA
}

# Anchors of the linear kVp model (HU per mg HA/cm3).
_SLOPE_80 = 1.00
_SLOPE_140 = 0.65


def hu_per_mg_ha(kvp: float) -> float:
    """HU increase per mg HA/cm3 at tube voltage ``kvp`` (linear 80-140 kVp model).

    Examples
    --------
    >>> round(hu_per_mg_ha(80), 3), round(hu_per_mg_ha(140), 3)
    (1.0, 0.65)
    """
    if not 70.0 <= float(kvp) <= 150.0:
        raise ValueError(f"kvp={kvp} is outside the modelled range 70-150 kVp")
    t = (float(kvp) - 80.0) / 60.0
    return _SLOPE_80 + t * (_SLOPE_140 - _SLOPE_80)


def iodine_scale(kvp: float) -> float:
    """Iodine enhancement at ``kvp`` relative to 120 kVp (linear model).

    Iodine's K-edge (33 keV) makes enhancement rise steeply at low tube voltage:
    about 1.6x at 80 kVp and 0.85x at 140 kVp relative to 120 kVp (e.g. Yu et al.,
    *AJR* 2011, "Dose-neutral iodine CNR at low kV").
    """
    if not 70.0 <= float(kvp) <= 150.0:
        raise ValueError(f"kvp={kvp} is outside the modelled range 70-150 kVp")
    k = float(kvp)
    if k <= 120.0:
        return 1.0 + (120.0 - k) / 40.0 * 0.6
    return 1.0 - (k - 120.0) / 20.0 * 0.15


def density_to_hu(density_mg_cm3: float | np.ndarray, kvp: float, base_hu: float = 0.0) -> float | np.ndarray:
    """CT number of HA at ``density_mg_cm3`` in a matrix of CT number ``base_hu``.

    The HA displaces nothing in this model (its volume fraction is small at
    plaque / bone densities), so ``HU = base_hu + slope(kVp) * density``.
    """
    return base_hu + hu_per_mg_ha(kvp) * np.asarray(density_mg_cm3, dtype=np.float64)


def kernel_fwhm_mm(kernel: str) -> float:
    """In-plane PSF FWHM (mm) typical of a reconstruction kernel name.

    Soft kernels (B20f, B30f, STANDARD) ~1.0-1.2 mm, sharp bone kernels (B60f,
    B70f, BONE) ~0.7 mm; unknown names get 1.0 mm.
    """
    digits = "".join(c for c in kernel if c.isdigit())
    name = kernel.upper()
    if "BONE" in name or "SHARP" in name:
        return 0.7
    if digits:
        sharpness = int(digits[:2]) if len(digits) >= 2 else int(digits) * 10
        return float(np.clip(1.3 - sharpness / 100.0, 0.6, 1.2))
    return 1.0


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _slabs(n: int, size: int) -> list[slice]:
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]


def blur(
    volume: np.ndarray,
    spacing: tuple[float, float, float],
    fwhm_inplane_mm: float,
    sigma_z_mm: float,
) -> np.ndarray:
    """Gaussian in-plane PSF and z slice-sensitivity blur, in place on float32.

    ``sigma_z_mm`` is the extra z blur on top of the voxel-box integration the
    caller already did (0 disables it). Slabs are filtered in threads (scipy
    releases the GIL), which is exact because each pass is separable.
    """
    sk, sj, si = spacing
    s_inplane = fwhm_inplane_mm / 2.3548
    sj_px, si_px, sk_px = s_inplane / sj, s_inplane / si, sigma_z_mm / sk

    def inplane(sl: slice) -> None:
        sub = volume[sl]
        for axis, s in ((1, sj_px), (2, si_px)):
            if s > 0.05:  # a narrower kernel is a no-op at voxel sampling
                sub[...] = ndimage.gaussian_filter1d(sub, s, axis=axis, mode="nearest", truncate=3.5)

    def along_z(sl: slice) -> None:
        sub = volume[:, sl]
        sub[...] = ndimage.gaussian_filter1d(sub, sk_px, axis=0, mode="nearest", truncate=3.5)

    with ThreadPoolExecutor(_workers()) as pool:
        list(pool.map(inplane, _slabs(volume.shape[0], 16)))
        if sk_px > 0.05:
            list(pool.map(along_z, _slabs(volume.shape[1], 32)))
    return volume


def _filter_gain2(sigmas: tuple[float, ...]) -> float:
    """Variance gain (sum of squared weights) of separable Gaussian filters."""
    gain2 = 1.0
    for s in sigmas:
        if s > 0.05:
            delta = np.zeros(int(8 * s + 9), np.float64)
            delta[len(delta) // 2] = 1.0
            w = ndimage.gaussian_filter1d(delta, s, mode="constant", truncate=3.5)
            gain2 *= float(np.sum(w**2))
    return gain2


def add_correlated_noise(
    volume: np.ndarray,
    sigma_hu: float,
    corr_pixels: float,
    seed: tuple[int, ...] | list[int],
    slab: int = 16,
) -> np.ndarray:
    """Add in-plane-correlated Gaussian noise of std ``sigma_hu`` to ``volume`` in place.

    Each slab of ``slab`` slices draws from its own generator seeded by
    ``(*seed, slab_index)``, so the result is identical whatever the number of
    threads, and no full-size noise array is ever allocated.
    """
    if sigma_hu <= 0:
        return volume
    scale = np.float32(sigma_hu / np.sqrt(_filter_gain2((corr_pixels, corr_pixels))))

    def work(args: tuple[int, slice]) -> None:
        n, sl = args
        rng = np.random.default_rng([*seed, n])
        noise = rng.standard_normal((sl.stop - sl.start, *volume.shape[1:]), dtype=np.float32)
        if corr_pixels > 0.05:
            for axis in (1, 2):
                noise = ndimage.gaussian_filter1d(noise, corr_pixels, axis=axis, mode="wrap", truncate=3.5)
        noise *= scale
        volume[sl] += noise

    with ThreadPoolExecutor(_workers()) as pool:
        list(pool.map(work, enumerate(_slabs(volume.shape[0], slab))))
    return volume


def correlated_noise(
    shape: tuple[int, int, int],
    sigma_hu: float,
    corr_pixels: float,
    rng: np.random.Generator,
    corr_slices: float = 0.0,
) -> np.ndarray:
    """Zero-mean Gaussian noise with in-plane correlation, std exactly ``sigma_hu``.

    White noise is low-pass filtered with a Gaussian of ``corr_pixels`` (and
    optionally ``corr_slices`` along z), then rescaled by the analytic gain of
    the filter so the output std is the requested one (CT noise is correlated
    over about a PSF width).
    """
    noise = rng.standard_normal(size=shape, dtype=np.float32)
    if sigma_hu <= 0:
        noise[...] = 0
        return noise
    gain2 = 1.0
    sigmas = (corr_slices, corr_pixels, corr_pixels)
    for axis, s in enumerate(sigmas):
        if s > 0.05:
            ndimage.gaussian_filter1d(noise, s, axis=axis, output=noise, mode="wrap", truncate=3.5)
            # Variance gain of a 1-D filter = sum of squared weights.
            delta = np.zeros(int(8 * s + 9), np.float64)
            delta[len(delta) // 2] = 1.0
            w = ndimage.gaussian_filter1d(delta, s, mode="constant", truncate=3.5)
            gain2 *= float(np.sum(w**2))
    noise *= np.float32(sigma_hu / np.sqrt(gain2))
    return noise
