"""Lateral lumbar radiograph phantoms projected from a synthetic CT phantom.

Geometry (a left lateral)
-------------------------
The patient's left side is against the detector and the beam runs right to left,
along the CT ``i`` axis (LPS ``x``). The source sits at
``x_mid - SOD`` and the detector at ``x_mid + (SID - SOD)``, where ``x_mid`` is the
midsagittal plane (the centre of the lumbar vertebrae when the CT phantom has
them) and ``SOD = SID - midplane_to_detector_mm``. A point at ``(x, y, z)``
lands on the detector at ``M(x) * (y - y_c, -(z - z_c))`` with
``M(x) = SID / (x - x_source)``: planes nearer the source are magnified more.
``(y_c, z_c)`` lies on the central ray: ``y`` of the centroid of the lumbar
vertebrae (else the field centre) and ``z`` of the middle of the CT field, so the
whole field, sacrum included, reaches the detector.

Image layout: row 0 is the most superior row (rows run head to foot) and
column 0 the most anterior column (the patient faces the viewer's left, the
usual display of a lateral spine); ``PatientOrientation`` is ``["P", "F"]``.

Physics (first order, stated so nobody mistakes it for more)
------------------------------------------------------------
* HU -> linear attenuation at ``effective_kev``: ``mu = mu_w (1 + HU/1000)`` for
  ``HU <= 0`` and ``mu = mu_w (1 + r(E) HU/1000)`` above, where ``r(E)`` is the
  ratio of bone's CT number at ``E`` to that at the CT's effective energy
  (70 keV at 120 kVp; :func:`ct_effective_kev` for the phantom's
  ``acquisition["kvp"]``): calcium attenuates relatively more at lower energy.
  ``mu_w`` and ``r`` come from approximate NIST XCOM mass attenuation
  coefficients of water and ICRU cortical bone (``_ATTENUATION_TABLE``),
  log-log interpolated.
* Divergent beam: the volume is cut into ``divergent_groups`` slabs along ``x``;
  each slab's parallel line integral is placed on the detector with the slab
  centre's magnification. The ``1/cos`` lengthening of oblique rays (< 2 % at
  SID >= 1000 mm for a spine-sized field) is ignored; ``divergent_groups=1`` is a
  parallel beam magnified by the midplane factor. An edge that is wide along the
  beam (an endplate, a rib) is spread over a band of rows by the divergence; with
  few slabs that band is drawn as one line per slab (8 slabs of a 400 mm field:
  lines ~5 mm apart 100 mm from the central ray). ``FILM_DIVERGENT_GROUPS`` (128,
  the default since session 29) slabs fill it, as on a film. The evaluation
  recipes ``standard`` and ``sharp`` (``scripts/eval_radiograph.py``) keep 8,
  because their cached phantoms and the shipped nets' training data were drawn
  with it.
* Detector: Gaussian blur (``blur_fwhm_mm``) of the transmitted fluence, then
  Poisson quantum noise, the exposure set by automatic exposure control so that
  the median body pixel detects ``photons_per_pixel`` quanta (``None``:
  noise-free). No heel effect, no beam hardening, no grid lines.
* Scatter: a convolution model,
  ``S = scatter_per_attenuation x G_sigma * (P x L)`` with ``P`` the primary
  fluence, ``L`` the line integral and ``G_sigma`` a wide Gaussian
  (``scatter_sigma_mm``): air makes no scatter, and a uniform slab gives
  ``SPR = scatter_per_attenuation x L`` (about 0.7 for a gridded lateral lumbar
  view at ``0.1`` and ``L ~ 7``).
* Obesity: ``obesity_fat_mm`` of extra fat path wherever the body projects.
* Vessel-wall calcium is projected sharp: the CT phantom's PSF and slice
  profile smear a 1-2 mm plaque over several voxels, which a radiograph would
  not do, so each atherosclerotic lesion's blurred line integral is swapped for
  its unblurred one on its truth voxels (:func:`_calcium_correction`).
* Stored image (12 bits, ``MONOCHROME2``, bright = dense): by default the
  log-attenuation after unsharp-mask equalisation and windowing, as a DX system
  sends it "for presentation" (:func:`equalise`); with ``presentation="log"``
  the raw log-attenuation x ``4095 / log_full_scale``. ``RadiographPhantom.image``
  is always the raw log-attenuation.

Truth
-----
Projected lesion masks (a label image of lesion ids, each lesion's whole mask,
per-lesion pixel centroid / box / area), vertebral body outlines and the four
body corners of T12-L5 in pixel coordinates, and the Kauppila AAC-24 (and AAC-8)
score computed in 3-D from the lesion truth (see :func:`aac24_from_intervals`):
for L1-L4, the segment is the body's height at mid-depth (mean z of its two
superior and two inferior corners); a slice of an aortic lesion is on the
anterior (posterior) wall when one of its voxels lies within 45 degrees of
straight anterior (posterior) of the aorta's centre on that slice: the walls a
lateral view sees in profile, which are what Kauppila grades. Plaque on the
left and right walls, seen en face over the lumen, is not graded
(``aac24_all_walls`` grades it on the wall it leans to, the definition before
session 18); the calcified length is the union of the slices' z-intervals inside
the segment. The vertebral body is
the part of the vertebra label in front of the spinal canal, slice by slice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from calcdetect.anatomy.regions import Region, structure, vertebra_label
from calcdetect.errors import ConfigError
from calcdetect.export.atomic import atomic_write_json, atomic_write_with
from calcdetect.ids import hash_uid
from calcdetect.radiograph.aac import kauppila_grade, union_length  # one AAC definition for truth and prediction

__all__ = [
    "FILM_DIVERGENT_GROUPS",
    "RadiographSettings",
    "RadiographPhantom",
    "hu_to_mu",
    "equalise",
    "ct_effective_kev",
    "line_integral_lateral",
    "kauppila_grade",
    "union_length",
    "aac24_from_intervals",
    "aortic_wall_quadrants",
    "aortic_profile_volume",
    "aac24_by_visibility",
    "aac8_from_intervals",
    "generate_lateral_radiograph",
    "write_radiograph_phantom",
    "cli_phantom_radiograph",
    "RADIOGRAPH_CT_DEFAULTS",
]

# (keV, water mu/rho cm2/g, ICRU cortical bone mu/rho cm2/g); approximate NIST XCOM.
_ATTENUATION_TABLE: tuple[tuple[float, float, float], ...] = (
    (40.0, 0.2683, 0.6655),
    (50.0, 0.2269, 0.4242),
    (60.0, 0.2059, 0.3148),
    (80.0, 0.1837, 0.2229),
    (100.0, 0.1707, 0.1855),
)
_BONE_DENSITY_G_CM3 = 1.92
_CT_EFFECTIVE_KEV = 70.0  # effective energy of a 120 kVp CT beam, where the HU were defined
# (kVp, effective keV) of typical filtered CT beams, for CT phantoms made at other kVp.
_CT_KEV_BY_KVP: tuple[tuple[float, float], ...] = ((80.0, 53.0), (100.0, 62.0), (120.0, 70.0), (140.0, 77.0))
_FAT_HU = -100.0
_AAC_LEVELS: tuple[str, ...] = ("L1", "L2", "L3", "L4")
_OUTLINE_LEVELS: tuple[str, ...] = ("T12", "L1", "L2", "L3", "L4", "L5")
_UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root, as in calcdetect.io.dicom_write
_DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
_BODY_LINE_INTEGRAL = 0.05  # line integral above which a ray is taken to cross the patient
_TOL = 1e-9  # boundary tolerance for score fractions (1/3 and 2/3 are not exact in floats)


# --------------------------------------------------------------------------- settings


#: Divergent slabs that draw a wide edge as the band a film shows, not one line per slab
#: (module docstring, "Divergent beam").
FILM_DIVERGENT_GROUPS = 128


@dataclass(frozen=True)
class RadiographSettings:
    """Acquisition settings of a simulated lateral lumbar radiograph.

    Parameters
    ----------
    seed : int
        Seeds the quantum noise and the DICOM UIDs.
    effective_kev : float
        Effective photon energy (40-100 keV) for HU -> attenuation.
    source_to_detector_mm : float
        SID.
    midplane_to_detector_mm : float
        Distance of the midsagittal plane from the detector; the midplane
        magnification is ``SID / (SID - this)`` (150 of 1150 mm -> 1.15).
    detector_pixel_mm : float
        Detector pixel pitch (ImagerPixelSpacing).
    blur_fwhm_mm : float
        Detector blur FWHM at the detector (0 disables it).
    photons_per_pixel : float or None
        Detected quanta per pixel (primary + scatter) at the median body pixel:
        the automatic exposure control target, after detector efficiency
        (~4e4 incident x DQE 0.5 for 0.175 mm pixels at a few uGy); ``None`` is
        noise-free.
    obesity_fat_mm : float
        Extra fat path (mm) added wherever the body projects.
    scatter_per_attenuation : float
        Scatter-to-primary ratio per unit line integral (0 = no scatter; the
        default 0.1 gives SPR ~0.7 through a lateral abdomen, a gridded exam).
    scatter_sigma_mm : float
        Width (Gaussian sigma at the detector) of the scatter kernel.
    image_shape : (rows, columns) or None
        Detector size in pixels; ``None``: the fully covered z range of the CT
        field (symmetric about the central ray) by its whole ``y`` width.
    detector_size_mm : (height, width) or None
        Largest detector when ``image_shape`` is ``None`` (a 43 x 35 cm
        cassette, portrait, by default); ``None``: no limit.
    divergent_groups : int
        Slabs along the beam with their own magnification (1 = parallel beam).
    log_full_scale : float
        Line integral stored as 4095 with ``presentation="log"`` (higher values clip).
    presentation : {"equalised", "log"}
        What the DX file stores: the equalised image a DX system would send
        (default; see :func:`equalise`) or the raw log-attenuation.
    equalise_sigma_mm, equalise_gain : float
        Low-pass width (at the detector) and gain of the equalisation.
    kvp : float
        Nominal tube voltage written to the DICOM header only.
    """

    seed: int = 0
    effective_kev: float = 60.0
    source_to_detector_mm: float = 1150.0
    midplane_to_detector_mm: float = 150.0
    detector_pixel_mm: float = 0.175
    blur_fwhm_mm: float = 0.35
    photons_per_pixel: float | None = 2.0e4
    obesity_fat_mm: float = 0.0
    scatter_per_attenuation: float = 0.1
    scatter_sigma_mm: float = 40.0
    image_shape: tuple[int, int] | None = None
    detector_size_mm: tuple[float, float] | None = (430.0, 350.0)
    divergent_groups: int = FILM_DIVERGENT_GROUPS
    log_full_scale: float = 10.0
    presentation: str = "equalised"
    equalise_sigma_mm: float = 25.0
    equalise_gain: float = 3.0
    kvp: float = 90.0

    def __post_init__(self) -> None:
        checks = [
            (40.0 <= self.effective_kev <= 100.0, "effective_kev must be within 40-100 keV"),
            (self.source_to_detector_mm > 0, "source_to_detector_mm must be positive"),
            (0 < self.midplane_to_detector_mm < self.source_to_detector_mm,
             "midplane_to_detector_mm must be positive and smaller than source_to_detector_mm"),
            (self.detector_pixel_mm > 0, "detector_pixel_mm must be positive"),
            (self.blur_fwhm_mm >= 0, "blur_fwhm_mm must be >= 0"),
            (self.photons_per_pixel is None or self.photons_per_pixel > 0,
             "photons_per_pixel must be positive or None (noise-free)"),
            (self.obesity_fat_mm >= 0, "obesity_fat_mm must be >= 0"),
            (self.scatter_per_attenuation >= 0, "scatter_per_attenuation must be >= 0"),
            (self.scatter_sigma_mm > 0, "scatter_sigma_mm must be positive"),
            (self.divergent_groups >= 1, "divergent_groups must be >= 1"),
            (self.log_full_scale > 0, "log_full_scale must be positive"),
            (self.presentation in ("equalised", "log"), "presentation must be 'equalised' or 'log'"),
            (self.equalise_sigma_mm > 0 and self.equalise_gain >= 0,
             "equalise_sigma_mm must be positive and equalise_gain >= 0"),
            (self.image_shape is None or (len(self.image_shape) == 2 and min(self.image_shape) > 0),
             "image_shape must be (rows, columns) with positive sizes, or None"),
            (self.detector_size_mm is None or (len(self.detector_size_mm) == 2 and min(self.detector_size_mm) > 0),
             "detector_size_mm must be (height, width) in mm with positive sizes, or None"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"RadiographSettings: {message} (got {self!r})")

    @property
    def magnification(self) -> float:
        """Magnification of the midsagittal plane, SID / SOD."""
        return self.source_to_detector_mm / (self.source_to_detector_mm - self.midplane_to_detector_mm)


# --------------------------------------------------------------------------- physics


def _attenuation_at(kev: float) -> tuple[float, float]:
    """(water mu per mm, bone CT number in HU) at ``kev``, log-log interpolated."""
    e = np.log([row[0] for row in _ATTENUATION_TABLE])
    w = np.log([row[1] for row in _ATTENUATION_TABLE])
    b = np.log([row[2] for row in _ATTENUATION_TABLE])
    mw = float(np.exp(np.interp(np.log(kev), e, w)))
    mb = float(np.exp(np.interp(np.log(kev), e, b))) * _BONE_DENSITY_G_CM3
    return mw / 10.0, 1000.0 * (mb - mw) / mw  # cm2/g x 1 g/cm3 -> 1/cm -> 1/mm


def ct_effective_kev(kvp: float | None) -> float:
    """Approximate effective energy of a CT beam at ``kvp`` (70 keV at 120 kVp).

    Interpolated in ``_CT_KEV_BY_KVP`` (typical filtered CT spectra); ``None``
    gives the 120 kVp value.
    """
    if kvp is None:
        return _CT_EFFECTIVE_KEV
    k, e = zip(*_CT_KEV_BY_KVP)
    return float(np.interp(float(kvp), k, e))


def hu_to_mu(hu: np.ndarray, kev: float = 60.0, ct_kev: float = _CT_EFFECTIVE_KEV) -> np.ndarray:
    """Linear attenuation (1/mm) at ``kev`` of CT numbers defined at ``ct_kev``.

    Bilinear: soft tissue scales with water, the excess above water with bone's
    energy dependence (see the module docstring). Air (-1000 HU) maps to 0.

    Examples
    --------
    >>> mu = hu_to_mu(np.array([-1000.0, 0.0]), 60.0)
    >>> float(mu[0]), round(float(mu[1]), 5)
    (0.0, 0.02059)
    """
    mu_w, bone_hu = _attenuation_at(kev)
    _, bone_hu_ct = _attenuation_at(ct_kev)
    ratio = bone_hu / bone_hu_ct
    hu = np.asarray(hu, dtype=np.float32)
    scale = np.where(hu > 0, np.float32(ratio), np.float32(1.0))
    return np.maximum(np.float32(mu_w) * (1.0 + scale * hu / 1000.0), 0.0).astype(np.float32)


def line_integral_lateral(mu: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Parallel-beam line integral along ``i`` (LPS x): ``sum_i mu[k, j, i] * si``.

    Returns the ``[k, j]`` sagittal projection (dimensionless).
    """
    return (np.asarray(mu, dtype=np.float64).sum(axis=2) * float(spacing[2])).astype(np.float32)


def _interp_axis(a: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``a`` at fractional indices ``coords`` along ``axis``; 0 outside."""
    n = a.shape[axis]
    x0 = np.floor(coords).astype(np.int64)
    w = (coords - x0).astype(np.float32)
    w0 = (1.0 - w) * ((x0 >= 0) & (x0 < n))
    w1 = w * ((x0 + 1 >= 0) & (x0 + 1 < n))
    shape = [1] * a.ndim
    shape[axis] = coords.size
    a0 = np.take(a, np.clip(x0, 0, n - 1), axis=axis)
    a1 = np.take(a, np.clip(x0 + 1, 0, n - 1), axis=axis)
    return a0 * w0.reshape(shape) + a1 * w1.reshape(shape)


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Geometry:
    """Where CT points land on the detector (see the module docstring)."""

    sid: float
    x_source: float
    y_c: float
    z_c: float
    pixel: float
    rows: int
    cols: int
    origin_kji_mm: tuple[float, float, float]  # (z0, y0, x0) of voxel [0, 0, 0]
    spacing: tuple[float, float, float]  # (sk, sj, si)

    def magnification(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.sid / (np.asarray(x, dtype=np.float64) - self.x_source)

    def to_pixel(self, xyz: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` -> detector ``(row, col)`` fractional pixels."""
        xyz = np.asarray(xyz, dtype=np.float64)
        m = self.magnification(xyz[..., 0])
        col = (xyz[..., 1] - self.y_c) * m / self.pixel + (self.cols - 1) / 2.0
        row = -(xyz[..., 2] - self.z_c) * m / self.pixel + (self.rows - 1) / 2.0
        return np.stack([row, col], axis=-1)

    def to_kj(self, rows: np.ndarray, cols: np.ndarray, m: float) -> tuple[np.ndarray, np.ndarray]:
        """Detector rows / columns -> fractional CT ``k`` / ``j`` for a plane of magnification ``m``."""
        z = self.z_c - (rows - (self.rows - 1) / 2.0) * self.pixel / m
        y = self.y_c + (cols - (self.cols - 1) / 2.0) * self.pixel / m
        return (z - self.origin_kji_mm[0]) / self.spacing[0], (y - self.origin_kji_mm[1]) / self.spacing[1]

    def x_of_i(self, i: float | np.ndarray) -> float | np.ndarray:
        return self.origin_kji_mm[2] + np.asarray(i, dtype=np.float64) * self.spacing[2]


def _check_canonical(affine: np.ndarray, spacing: Sequence[float]) -> tuple[float, float, float]:
    """Origin (z0, y0, x0) of an axis-aligned canonical affine; errors on anything else."""
    a = np.asarray(affine, dtype=np.float64)
    expected = np.zeros((3, 3))
    expected[2, 0], expected[1, 1], expected[0, 2] = spacing[0], spacing[1], spacing[2]
    if a.shape != (4, 4) or not np.allclose(a[:3, :3], expected, atol=1e-3 * max(spacing)):
        raise ValueError(
            "the lateral projector needs an axis-aligned canonical CT affine "
            "(k -> +z, j -> +y, i -> +x with the given spacing); got\n"
            f"{a}\nresample the phantom onto an axial LPS grid first"
        )
    return float(a[2, 3]), float(a[1, 3]), float(a[0, 3])


def _lumbar_centre_kji(anatomy: np.ndarray | None) -> tuple[float, float, float] | None:
    """Voxel-index centroid ``(k, j, i)`` of the labelled L1-L5 vertebrae, if any."""
    if anatomy is None:
        return None
    lumbar = np.isin(anatomy, [vertebra_label(lv) for lv in ("L1", "L2", "L3", "L4", "L5")])
    if not lumbar.any():
        return None
    centre = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        counts = lumbar.sum(axis=other)
        centre.append(float(np.average(np.arange(counts.size), weights=counts)))
    return centre[0], centre[1], centre[2]


def _make_geometry(shape: tuple[int, int, int], spacing: Sequence[float], affine: np.ndarray,
                   anatomy: np.ndarray | None, settings: RadiographSettings) -> tuple[_Geometry, float]:
    """Source, central ray and detector size for a CT grid.

    The midsagittal plane (``x``) and the central ray's ``y`` go through the
    centroid of the lumbar vertebrae when they are labelled, else through the
    centre of the CT field; the central ray's ``z`` is the middle of the field.
    Without ``image_shape`` the detector spans the z range that every ray
    crosses in full and the whole ``y`` field, up to ``detector_size_mm``.
    """
    z0, y0, x0 = _check_canonical(affine, spacing)
    sk, sj, si = (float(s) for s in spacing)
    nk, nj, ni = shape
    centre = _lumbar_centre_kji(anatomy) or ((nk - 1) / 2.0, (nj - 1) / 2.0, (ni - 1) / 2.0)
    # z: the middle of the CT field, so that the whole field (down to the sacrum,
    # which the radiograph level counting needs) is on the detector.
    z_c, y_c, x_mid = z0 + (nk - 1) * sk / 2.0, y0 + centre[1] * sj, x0 + centre[2] * si
    sod = settings.source_to_detector_mm - settings.midplane_to_detector_mm
    x_source = x_mid - sod
    if x0 - si / 2.0 <= x_source:
        raise ConfigError(
            f"the CT field reaches the X-ray source (SOD {sod:.0f} mm); increase "
            "source_to_detector_mm or reduce midplane_to_detector_mm"
        )
    if settings.image_shape is not None:
        rows, cols = (int(v) for v in settings.image_shape)
    else:
        m_max = settings.source_to_detector_mm / (x0 - si / 2.0 - x_source)
        m_min = settings.source_to_detector_mm / (x0 + (ni - 0.5) * si - x_source)
        half_z = min(z_c - (z0 - sk / 2.0), z0 + (nk - 0.5) * sk - z_c)
        half_y = max(y_c - (y0 - sj / 2.0), y0 + (nj - 0.5) * sj - y_c)
        # Rows: only the z range every ray crosses in full (the CT cuts the body
        # off at its ends; beyond that, slabs would end in magnification steps).
        # Columns: the whole field (air surrounds the body left and right).
        half_rows, half_cols = half_z * m_min, half_y * m_max
        if settings.detector_size_mm is not None:  # a real cassette stops there
            half_rows = min(half_rows, settings.detector_size_mm[0] / 2.0)
            half_cols = min(half_cols, settings.detector_size_mm[1] / 2.0)
        rows = 2 * int(math.floor(half_rows / settings.detector_pixel_mm)) + 1
        cols = 2 * int(math.ceil(half_cols / settings.detector_pixel_mm)) + 1
    geom = _Geometry(settings.source_to_detector_mm, x_source, y_c, z_c, settings.detector_pixel_mm,
                     rows, cols, (z0, y0, x0), (sk, sj, si))
    return geom, x_mid


# --------------------------------------------------------------------------- projection


def _project(hu: np.ndarray, geom: _Geometry, settings: RadiographSettings, ct_kev: float) -> np.ndarray:
    """Noise-free detector line integral: slab sums placed with their own magnification."""
    ni = hu.shape[2]
    edges = np.linspace(0, ni, min(settings.divergent_groups, ni) + 1).round().astype(int)
    rows = np.arange(geom.rows, dtype=np.float64)
    cols = np.arange(geom.cols, dtype=np.float64)
    out = np.zeros((geom.rows, geom.cols), np.float32)
    for i0, i1 in zip(edges[:-1], edges[1:]):
        if i1 <= i0:
            continue
        mu = hu_to_mu(hu[:, :, i0:i1], settings.effective_kev, ct_kev)
        slab = line_integral_lateral(mu, geom.spacing)
        if settings.divergent_groups == 1:
            m = settings.magnification  # parallel beam, magnified as the midplane
        else:
            m = float(geom.magnification(geom.x_of_i((i0 + i1 - 1) / 2.0)))
        k, j = geom.to_kj(rows, cols, m)
        # Separable: k depends only on the row, j only on the column.
        out += _interp_axis(_interp_axis(slab, k, axis=0), j, axis=1)
    return out


def _place(proj: np.ndarray, k0: int, j0: int, geom: _Geometry, m: float, out: np.ndarray, sign: float,
           nearest: bool) -> None:
    """Add ``sign x proj`` (a ``[k, j]`` projection whose voxel [0, 0] is CT ``[k0, j0]``) to the detector."""
    rows = np.arange(geom.rows, dtype=np.float64)
    cols = np.arange(geom.cols, dtype=np.float64)
    kf, jf = geom.to_kj(rows, cols, m)
    kf, jf = kf - k0, jf - j0
    nk, nj = proj.shape
    r_ok = np.nonzero((kf > -1.0) & (kf < nk))[0]
    c_ok = np.nonzero((jf > -1.0) & (jf < nj))[0]
    if r_ok.size == 0 or c_ok.size == 0:
        return
    r0, r1, c0, c1 = r_ok[0], r_ok[-1] + 1, c_ok[0], c_ok[-1] + 1
    kk, jj = kf[r0:r1], jf[c0:c1]
    if nearest:
        ki, ji = np.rint(kk).astype(int), np.rint(jj).astype(int)
        ok = ((ki >= 0) & (ki < nk))[:, None] & ((ji >= 0) & (ji < nj))[None, :]
        vals = proj[np.clip(ki, 0, nk - 1)][:, np.clip(ji, 0, nj - 1)] * ok
    else:
        vals = _interp_axis(_interp_axis(proj, kk, axis=0), jj, axis=1)
    out[r0:r1, c0:c1] += np.float32(sign) * vals.astype(np.float32)


def _calcium_correction(
    ct_phantom: Any, hu: np.ndarray, geom: _Geometry, settings: RadiographSettings, ct_kev: float
) -> np.ndarray | None:
    """Detector line-integral correction that re-sharpens the calcified lesions.

    The CT phantom paints each calcified lesion (plaque, stone ...) at its
    density and then blurs the whole HU field with the CT's PSF and slice
    profile, so in the projected CT a 1-2 mm calcified wall is smeared over
    several millimetres and several CT voxels: its line integral survives, but
    spread thin under the quantum noise. A radiograph has no CT blur: the film
    sees the calcium sharp. This returns ``sharp - blurred``: for each
    vessel-wall (atherosclerotic) calcification, its excess attenuation over the surrounding tissue
    (``mu(HU_lesion) - mu(HU_around)``, unblurred, on its truth voxels) is
    projected along ``x`` and placed nearest-neighbour with the magnification of
    the lesion's own plane (exactly where its truth mask lies), and the same
    excess blurred as the CT blurred it is subtracted where :func:`_project`
    put it (its slab's magnification). ``None`` when the phantom carries no
    lesion labels or no CT blur description (``acquisition``).
    """
    labels = getattr(ct_phantom, "lesion_labels", None)
    acq = getattr(ct_phantom, "acquisition", None)
    lesions = [_as_dict(les) for les in (getattr(ct_phantom, "lesions", None) or [])]
    if labels is None or not isinstance(acq, Mapping) or not lesions:
        return None
    labels = np.asarray(labels)
    if labels.shape != hu.shape or labels.max() == 0:
        return None
    sk, sj, si = geom.spacing
    fwhm = float(acq.get("psf_fwhm_mm") or 0.0)
    thick = float(acq.get("slice_thickness_mm") or sk)
    step = float(acq.get("slice_spacing_mm") or sk)
    sigma_z = math.sqrt(max(thick**2 - step**2, 0.0) / 12.0)
    s_in = fwhm / 2.3548
    sig = (sigma_z / sk, s_in / sj, s_in / si)
    pad = [int(math.ceil(3.5 * s)) + 2 for s in sig]
    ni = hu.shape[2]
    edges = np.linspace(0, ni, min(settings.divergent_groups, ni) + 1).round().astype(int)
    boxes = ndimage.find_objects(labels)
    out = np.zeros((geom.rows, geom.cols), np.float32)
    for les in lesions:
        lid = int(les.get("id", 0))
        dens = les.get("density_mg_cm3")
        extra = les.get("extra") or {}
        lesion_hu = extra.get("hu_unblurred")
        if les.get("kind") != "atherosclerotic":
            continue  # vessel-wall calcium only
        if dens is None or lesion_hu is None or not 0 < lid <= len(boxes) or boxes[lid - 1] is None:
            continue
        box = tuple(slice(max(b.start - p, 0), min(b.stop + p, n))
                    for b, p, n in zip(boxes[lid - 1], pad, hu.shape))
        own = labels[box] == lid
        if not own.any():
            continue
        d_mu = _excess_mu(hu[box], labels[box], own, float(lesion_hu), settings, ct_kev)
        if d_mu <= 0:
            continue
        excess = own.astype(np.float32) * np.float32(d_mu)
        blurred = excess.copy()
        for axis, s in enumerate(sig):
            if s > 0.05:
                blurred = ndimage.gaussian_filter1d(blurred, s, axis=axis, mode="constant", truncate=3.5)
        k0, j0 = box[0].start, box[1].start
        ii = np.nonzero(own)[2] + box[2].start
        m_own = float(geom.magnification(geom.x_of_i(ii.mean())))
        _place(excess.sum(axis=2) * np.float32(si), k0, j0, geom, m_own, out, 1.0, nearest=True)
        # The blurred copy, slab by slab as _project placed it.
        for i0, i1 in zip(edges[:-1], edges[1:]):
            lo, hi = max(i0, box[2].start), min(i1, box[2].stop)
            if hi <= lo:
                continue
            slab = blurred[:, :, lo - box[2].start: hi - box[2].start].sum(axis=2) * np.float32(si)
            if settings.divergent_groups == 1:
                m = settings.magnification
            else:
                m = float(geom.magnification(geom.x_of_i((i0 + i1 - 1) / 2.0)))
            _place(slab, k0, j0, geom, m, out, -1.0, nearest=False)
    return out


def _excess_mu(hu: np.ndarray, labels: np.ndarray, own: np.ndarray, lesion_hu: float,
               settings: RadiographSettings, ct_kev: float) -> float:
    """Linear attenuation (1/mm) of a lesion at ``lesion_hu`` above the tissue around it:
    the median of a shell 2-4 voxels out, outside every lesion (``hu``, ``labels`` and the
    lesion's mask ``own`` on one box)."""
    near = ndimage.binary_dilation(own, iterations=2)
    shell = ndimage.binary_dilation(near, iterations=2) & ~near & (labels == 0)
    around = float(np.median(hu[shell])) if shell.any() else 40.0
    mu = hu_to_mu(np.array([lesion_hu, around]), settings.effective_kev, ct_kev)
    return float(mu[0] - mu[1])


def _lowpass(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Wide Gaussian low-pass, run on a grid decimated to ~8 coarse pixels per sigma."""
    f = max(1, int(sigma_px // 8))
    rows, cols = image.shape
    padded = np.pad(image, ((0, (-rows) % f), (0, (-cols) % f)), mode="edge")
    coarse = padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).mean(axis=(1, 3))
    coarse = ndimage.gaussian_filter(coarse, sigma_px / f, mode="nearest", truncate=3.0)
    fine = np.repeat(np.repeat(coarse, f, axis=0), f, axis=1)[:rows, :cols]
    if f > 1:  # smooth the block edges of the nearest upsampling
        fine = ndimage.uniform_filter(fine, f, mode="nearest")
    return fine


def _scatter(source: np.ndarray, settings: RadiographSettings) -> np.ndarray:
    """Wide-kernel scatter of ``source`` (= P x L)."""
    sigma_px = settings.scatter_sigma_mm / settings.detector_pixel_mm
    return settings.scatter_per_attenuation * _lowpass(source, sigma_px)


def equalise(log_image: np.ndarray, pixel_mm: float, sigma_mm: float, gain: float) -> np.ndarray:
    """Unsharp-mask equalisation: ``L + gain x (L - G_sigma * L)``.

    One band of the multi-scale processing every DX system applies: it damps
    the large soft-tissue gradients and lifts edges and small dense structures
    (endplates, calcified aortic walls) the way clinical lateral spine images
    look.
    """
    low = _lowpass(log_image.astype(np.float64), sigma_mm / pixel_mm)
    return (log_image + gain * (log_image - low)).astype(np.float32)


def _detect(line_integral: np.ndarray, settings: RadiographSettings) -> np.ndarray:
    """Obesity, scatter, detector blur and quantum noise; returns the measured log-attenuation."""
    li = line_integral.astype(np.float32)
    if settings.obesity_fat_mm > 0:
        body = li > _BODY_LINE_INTEGRAL
        mu_fat = float(hu_to_mu(np.array([_FAT_HU]), settings.effective_kev)[0])
        li = li + body * np.float32(mu_fat * settings.obesity_fat_mm)
    fluence = np.exp(-li.astype(np.float64))
    if settings.scatter_per_attenuation > 0:
        fluence = fluence + _scatter(fluence * li, settings)
    if settings.blur_fwhm_mm > 0:
        sigma = settings.blur_fwhm_mm / 2.3548 / settings.detector_pixel_mm
        fluence = ndimage.gaussian_filter(fluence, sigma, mode="nearest", truncate=3.5)
    if settings.photons_per_pixel is not None:
        rng = np.random.default_rng(settings.seed)
        # Automatic exposure control: the dose is set so that the median body pixel
        # detects ``photons_per_pixel`` quanta (primary + scatter), as an AEC
        # chamber behind the patient would; bigger patients get more mAs.
        body = li > _BODY_LINE_INTEGRAL
        reference = float(np.median(fluence[body])) if body.any() else 1.0
        n0 = settings.photons_per_pixel / reference
        # Half a quantum floor: a zero count has no finite log.
        fluence = np.maximum(rng.poisson(fluence * n0), 0.5) / n0
    return (-np.log(fluence)).astype(np.float32)


# --------------------------------------------------------------------------- AAC scoring


def _wall_fractions(
    segments: Mapping[str, tuple[float, float]],
    anterior: Sequence[tuple[float, float]],
    posterior: Sequence[tuple[float, float]],
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for level, (a, b) in segments.items():
        lo, hi = min(a, b), max(a, b)
        if hi - lo <= 0:
            raise ValueError(f"segment {level} has zero length ({a}, {b})")
        out[level] = {
            wall: union_length(ivs, lo, hi) / (hi - lo)
            for wall, ivs in (("anterior", anterior), ("posterior", posterior))
        }
    return out


def aac24_from_intervals(
    segments: Mapping[str, tuple[float, float]],
    anterior: Sequence[tuple[float, float]],
    posterior: Sequence[tuple[float, float]],
) -> dict[str, Any]:
    """Kauppila AAC-24 from calcified z-intervals of the aortic walls.

    Parameters
    ----------
    segments : mapping level -> (z_low, z_high)
        The aortic segment in front of each vertebra (its body's z-range, mm),
        normally L1-L4.
    anterior, posterior : sequence of (z_low, z_high)
        z-intervals (mm) where the anterior / posterior aortic wall is calcified;
        overlaps are merged, parts outside a segment ignored.

    Returns
    -------
    dict
        ``{"total": int, "segments": {level: {"anterior": g, "posterior": g}},
        "calcified_fraction": {level: {"anterior": f, "posterior": f}}}`` with
        grades ``g`` from :func:`kauppila_grade`.

    Examples
    --------
    >>> s = aac24_from_intervals({"L1": (0.0, 30.0)}, [(0.0, 15.0)], [])
    >>> s["total"], s["segments"]["L1"]
    (2, {'anterior': 2, 'posterior': 0})
    """
    fractions = _wall_fractions(segments, anterior, posterior)
    grades = {lv: {w: kauppila_grade(f) for w, f in walls.items()} for lv, walls in fractions.items()}
    total = sum(g for walls in grades.values() for g in walls.values())
    return {"total": int(total), "segments": grades, "calcified_fraction": fractions}


def aac8_from_intervals(
    segments: Mapping[str, tuple[float, float]],
    anterior: Sequence[tuple[float, float]],
    posterior: Sequence[tuple[float, float]],
) -> dict[str, Any]:
    """Schousboe AAC-8: each wall graded 0-4 by calcified length in vertebral heights.

    The per-segment calcified fractions are summed over the segments (so 1.0 is
    one vertebral height): 0 none; 1 up to 1; 2 more than 1 up to 2; 3 more than 2
    up to 3; 4 more than 3. Total 0-8.

    >>> aac8_from_intervals({"L1": (0, 10), "L2": (10, 20)}, [(0, 15)], [])["walls"]
    {'anterior': 2, 'posterior': 0}
    """
    fractions = _wall_fractions(segments, anterior, posterior)
    walls = {}
    for wall in ("anterior", "posterior"):
        length = sum(f[wall] for f in fractions.values())
        walls[wall] = 0 if length <= _TOL else min(4, int(math.ceil(length - _TOL)))
    return {"total": int(sum(walls.values())), "walls": walls}


# --------------------------------------------------------------------------- truth


def _as_dict(lesion: Any) -> dict[str, Any]:
    if hasattr(lesion, "to_json"):
        return dict(lesion.to_json())
    if is_dataclass(lesion):
        return asdict(lesion)
    return dict(lesion)


def _body_mask(vert: np.ndarray, canal: np.ndarray | None) -> np.ndarray:
    """The vertebral body: the part of the vertebra anterior to the spinal canal.

    Slice by slice, the body is what lies in front of the canal's anterior edge on
    that slice (so a lordotic, tilted spine is cut correctly); slices without
    canal use the nearest slice that has it. Without a canal label the anterior
    40 % of the vertebra's ``j`` extent is used (a lumbar body is about 35 of
    85-90 mm sagittal depth).
    """
    ks = np.nonzero(vert.any(axis=(1, 2)))[0]
    body = np.zeros_like(vert)
    if canal is not None:
        k_lo, k_hi = ks.min(), ks.max() + 1
        has = canal[k_lo:k_hi].any(axis=2)  # [k, j]
        rows = np.nonzero(has.any(axis=1))[0]
        if rows.size:
            fronts = {int(r): int(np.argmax(has[r])) for r in rows}
            for r in range(k_hi - k_lo):
                nearest = rows[np.argmin(np.abs(rows - r))]
                front = fronts[int(nearest)]
                body[k_lo + r, :front] = vert[k_lo + r, :front]
            if body.any():
                return body
    js = np.nonzero(vert.any(axis=(0, 2)))[0]
    cut = js.min() + max(1, int(round(0.4 * (js.max() - js.min() + 1))))
    body[:, :cut] = vert[:, :cut]
    return body


def _vertebra_truth(
    anatomy: np.ndarray, geom: _Geometry
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[float, float]]]:
    """Projected outline + corners of T12-L5 bodies, and the L1-L4 body z-ranges (mm)."""
    from skimage import measure  # only needed here

    canal_label = structure("spinal_canal").label
    canal = anatomy == canal_label if np.any(anatomy == canal_label) else None
    out: dict[str, dict[str, Any]] = {}
    z_ranges: dict[str, tuple[float, float]] = {}
    sk, sj, _ = geom.spacing
    z0, y0, _ = geom.origin_kji_mm
    for level in _OUTLINE_LEVELS:
        vert = anatomy == vertebra_label(level)
        if not vert.any():
            continue
        body = _body_mask(vert, canal)
        kk, jj, ii = np.nonzero(body)
        x_c = float(geom.x_of_i(ii.mean()))
        z = z0 + kk * sk
        y = y0 + jj * sj
        # Corners: extreme points of the sagittal silhouette (y grows posterior, z superior).
        pts = np.stack([np.full(z.shape, x_c), y, z], axis=1)
        picks = {
            "anterior_superior": np.argmax(z - y),
            "posterior_superior": np.argmax(z + y),
            "anterior_inferior": np.argmin(z + y),
            "posterior_inferior": np.argmin(z - y),
        }
        corners = {name: geom.to_pixel(pts[n]).round(2).tolist() for name, n in picks.items()}
        # Segment = body height at mid-depth: the mean z of the two superior and of
        # the two inferior corners (voxel edges, not centres), as the radiograph
        # scorer measures it between endplates.
        z_sup = 0.5 * (z[picks["anterior_superior"]] + z[picks["posterior_superior"]]) + sk / 2.0
        z_inf = 0.5 * (z[picks["anterior_inferior"]] + z[picks["posterior_inferior"]]) - sk / 2.0
        z_ranges[level] = (float(z_inf), float(z_sup))
        silhouette = np.pad(body.any(axis=2), 1).astype(np.float32)
        contours = measure.find_contours(silhouette, 0.5)
        contour = max(contours, key=len) - 1.0  # undo the pad
        step = max(1, len(contour) // 64)
        c = contour[::step]
        xyz = np.stack([np.full(len(c), x_c), y0 + c[:, 1] * sj, z0 + c[:, 0] * sk], axis=1)
        out[level] = {
            "corners_px": corners,
            "outline_px": geom.to_pixel(xyz).round(2).tolist(),
            "centroid_px": geom.to_pixel(np.array([x_c, y.mean(), z.mean()])).round(2).tolist(),
            "z_range_mm": list(z_ranges[level]),
        }
    return out, {lv: z_ranges[lv] for lv in _AAC_LEVELS if lv in z_ranges}


def _aorta_centres(anatomy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The aorta label's mean ``j`` and ``i`` per slice ``k`` (NaN on slices without it)."""
    ak, aj, ai = np.nonzero(anatomy == structure("aorta").label)
    counts = np.bincount(ak, minlength=anatomy.shape[0])
    safe = np.maximum(counts, 1)
    mean = lambda w: np.where(counts > 0, np.bincount(ak, weights=w, minlength=anatomy.shape[0]) / safe, np.nan)  # noqa: E731
    return mean(aj), mean(ai)


def aortic_wall_quadrants(lesion_labels: np.ndarray, aortic_ids: Sequence[int], anatomy: np.ndarray,
                          spacing: Sequence[float], centres: tuple[np.ndarray, np.ndarray] | None = None
                          ) -> dict[int, str]:
    """Which quadrant of the aortic wall each of these lesions lies in:
    ``"anterior"`` / ``"posterior"`` (seen in profile on a lateral view) or ``"lateral"``
    (left or right wall: seen en face, projected over the lumen), by the direction of the
    lesion's centroid from the aorta's centre on the lesion's middle slice (the sectors
    of ``PROFILE_SECTOR_DEG`` that the AAC-24 truth grades). Lesions on slices without aorta are left out.

    Why: a lateral radiograph shows the anterior and posterior walls edge-on, where
    calcium has a long path through it; plaque on a lateral wall is seen face-on and
    faint. The evaluation reports detection by quadrant (issue #6 notes, session 17: the
    calcium net finds 23% of lateral-quadrant lesions, 63-75% of the others).
    ``centres``: ``_aorta_centres(anatomy)`` when the caller has it already.
    """
    centre_j, centre_i = centres if centres is not None else _aorta_centres(anatomy)
    boxes = ndimage.find_objects(lesion_labels)
    out: dict[int, str] = {}
    for lid in aortic_ids:
        box = boxes[lid - 1] if 0 < lid <= len(boxes) else None
        if box is None:
            continue
        kk, jj, ii = np.nonzero(lesion_labels[box] == lid)
        k = int(np.median(kk)) + box[0].start
        if not np.isfinite(centre_j[k]):
            continue
        # the lesion's centroid on its middle slice, sorted by the truth's own sectors
        ant, post = _profile_sectors(np.array([k]), np.array([jj.mean() + box[1].start]),
                                     np.array([ii.mean() + box[2].start]), centre_j, centre_i,
                                     (float(spacing[1]), float(spacing[2])))
        out[lid] = "anterior" if ant[0] else "posterior" if post[0] else "lateral"
    return out


#: Half-angle (degrees) of the anterior and posterior sectors of the aortic wall that a
#: lateral view sees in profile. Plaque outside them (the left and right walls) is seen
#: en face, projected over the lumen, and is not graded by the walls-in-profile truth.
PROFILE_SECTOR_DEG = 45.0


def _aortic_wall_intervals(
    lesion_labels: np.ndarray, aortic_ids: Sequence[int], anatomy: np.ndarray | None, geom: _Geometry,
    walls: str = "profile", centres: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Per lesion and slice, the slice's z-interval on the anterior or posterior wall.

    ``walls="profile"`` (the AAC-24 truth): a voxel is on the anterior wall when its
    direction from the aorta's centre on its slice is within ``PROFILE_SECTOR_DEG`` of
    straight anterior, on the posterior wall within that of straight posterior, and on
    neither otherwise (left / right wall); a lesion's slice counts for every wall that
    one of its voxels is on. This is what a reader grades on a lateral film: Kauppila
    scores the anterior and posterior walls, which the beam meets edge-on.

    ``walls="all"`` (the definition before session 18, kept for comparison): each
    lesion's slice goes to the anterior wall when the lesion's mean ``y`` is in front of
    the centre, else to the posterior wall, so left- and right-wall plaque is graded on
    whichever wall the lesion leans to.

    The centre is the mean of the aorta label on the slice; on slices without it (or
    without ``anatomy``), the mean ``y`` of all aortic lesion voxels splits the lesion
    by ``walls="all"``'s rule.
    """
    if walls not in ("profile", "all"):
        raise ValueError(f"walls must be 'profile' or 'all', got {walls!r}")
    sk, sj, si = geom.spacing
    z0, _, _ = geom.origin_kji_mm
    if centres is None and anatomy is not None:
        centres = _aorta_centres(anatomy)
    centre_j, centre_i = centres if centres is not None else (None, None)
    boxes = ndimage.find_objects(lesion_labels)
    anterior: list[tuple[float, float]] = []
    posterior: list[tuple[float, float]] = []
    voxels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for lid in aortic_ids:
        if lid < 1 or lid > len(boxes) or boxes[lid - 1] is None:
            continue
        box = boxes[lid - 1]
        kk, jj, ii = np.nonzero(lesion_labels[box] == lid)
        voxels.append((kk + box[0].start, jj + box[1].start, ii + box[2].start))
    if not voxels:
        return anterior, posterior
    fallback = float(np.concatenate([j for _, j, _ in voxels]).mean())
    for kk, jj, ii in voxels:
        ant_vox, post_vox = _profile_sectors(kk, jj, ii, centre_j, centre_i, (sj, si))
        for k in np.unique(kk):
            on = kk == k
            z = (z0 + k * sk - sk / 2.0, z0 + k * sk + sk / 2.0)
            has_centre = centre_j is not None and np.isfinite(centre_j[k])
            if walls == "all" or not has_centre:
                c = centre_j[k] if has_centre else fallback
                (anterior if jj[on].mean() < c else posterior).append(z)
                continue
            if ant_vox[on].any():
                anterior.append(z)
            if post_vox[on].any():
                posterior.append(z)
    return anterior, posterior


def _profile_sectors(kk: np.ndarray, jj: np.ndarray, ii: np.ndarray, centre_j: np.ndarray | None,
                     centre_i: np.ndarray | None, spacing_ji: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel: in the anterior / the posterior sector (``PROFILE_SECTOR_DEG`` around
    straight anterior / posterior of the aorta's centre on its slice). Voxels on slices
    without a centre are in neither."""
    if centre_j is None or centre_i is None:
        none = np.zeros(kk.shape, bool)
        return none, none.copy()
    cj, ci = centre_j[kk], centre_i[kk]
    dy = (jj - cj) * spacing_ji[0]  # + posterior
    dx = (ii - ci) * spacing_ji[1]
    r = np.hypot(dy, dx)
    ok = np.isfinite(r) & (r > 0)
    cos_post = np.divide(dy, r, out=np.zeros(r.shape), where=ok)
    cos_sector = math.cos(math.radians(PROFILE_SECTOR_DEG))
    return ok & (cos_post <= -cos_sector), ok & (cos_post >= cos_sector)


def aortic_profile_volume(lesion_labels: np.ndarray, aortic_ids: Sequence[int], anatomy: np.ndarray,
                          spacing: Sequence[float], centres: tuple[np.ndarray, np.ndarray] | None = None
                          ) -> np.ndarray:
    """The aortic lesions' voxels on the walls in profile (the anterior and posterior
    sectors of ``_profile_sectors``), as a lesion-id volume: the calcium the AAC-24 truth
    grades, for projecting a 2-D target that matches it. ``centres``: ``_aorta_centres(anatomy)``
    when the caller has it already."""
    centre_j, centre_i = centres if centres is not None else _aorta_centres(anatomy)
    mask = np.isin(lesion_labels, np.asarray(list(aortic_ids), dtype=lesion_labels.dtype))
    kk, jj, ii = np.nonzero(mask)
    ant, post = _profile_sectors(kk, jj, ii, centre_j, centre_i, (float(spacing[1]), float(spacing[2])))
    keep = ant | post | ~np.isfinite(centre_j[kk])  # no centre: the truth grades the whole slice too
    out = np.zeros_like(lesion_labels)
    out[kk[keep], jj[keep], ii[keep]] = lesion_labels[kk[keep], jj[keep], ii[keep]]
    return out


def aac24_by_visibility(ct_phantom: Any, settings: RadiographSettings, min_excess: Sequence[float]
                        ) -> dict[float, dict[str, Any]]:
    """The AAC-24 truth counting only calcium that shows: per threshold ``tau`` in
    ``min_excess``, the Kauppila score of :func:`generate_lateral_radiograph`'s truth with
    every lesion slice dropped from a wall when the lesion's voxels on that wall (its
    in-profile sector, as the truth sorts them) add less than ``tau`` to the detector's
    log-attenuation on their densest ray: the excess attenuation over the tissue around
    (:func:`_excess_mu`) times the longest run of the slice's voxels along the beam.

    Why: the truth counts every voxel of an aortic lesion in a profile sector, however
    faint; this says how much of a score rests on calcium a radiograph barely shows, so
    that a detector's agreement can be read against what an oracle that finds everything
    above ``tau`` (and nothing else) would reach. ``tau`` 0 gives the truth itself.
    Quantum noise is not considered: ``tau`` is in log-attenuation units (about 0.01 is one
    noise SD of a 0.3 mm pixel at 1e4 detected quanta).
    """
    hu, spacing, anatomy, labels, lesions, geom, _, ct_kev = _phantom_frame(ct_phantom, settings)
    if anatomy is None or labels is None:
        raise ValueError("aac24_by_visibility needs a CT phantom with anatomy and lesion labels")
    anatomy, labels = np.asarray(anatomy), np.asarray(labels)
    _, segments = _vertebra_truth(anatomy, geom)
    if len(segments) != len(_AAC_LEVELS):
        raise ValueError(f"vertebrae {', '.join(_AAC_LEVELS)} not all labelled: no AAC-24 truth")
    centres = _aorta_centres(anatomy)
    aortic = [les for les in lesions if les.get("region") == Region.AORTA.value]
    ids = [int(les["id"]) for les in aortic]
    boxes = ndimage.find_objects(labels) if labels.max() > 0 else []
    # (voxel indices, peak excess) of each lesion slice on each wall
    runs: list[tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]] = []
    for les in aortic:
        lid = int(les["id"])
        if not 0 < lid <= len(boxes) or boxes[lid - 1] is None:
            continue
        box = tuple(slice(max(b.start - 5, 0), min(b.stop + 5, n)) for b, n in zip(boxes[lid - 1], hu.shape))
        own = labels[box] == lid
        lesion_hu = (les.get("extra") or {}).get("hu_unblurred")
        d_mu = _excess_mu(hu[box], labels[box], own, float(lesion_hu if lesion_hu is not None
                                                              else np.median(hu[box][own])), settings, ct_kev)
        kk, jj, ii = (a + b.start for a, b in zip(np.nonzero(own), box))
        for sector in _profile_sectors(kk, jj, ii, *centres, (spacing[1], spacing[2])):
            for k in np.unique(kk[sector]):
                on = sector & (kk == k)
                longest = np.bincount(jj[on] - jj[on].min()).max()  # voxels along the beam (i) per row j
                runs.append(((kk[on], jj[on], ii[on]), float(longest * spacing[2] * max(d_mu, 0.0))))
    # A higher threshold drops a superset of the slices a lower one drops: one copy, emptied
    # in order of rising excess, serves every threshold.
    runs.sort(key=lambda run: run[1])
    kept, n_dropped = labels.copy(), 0
    out: dict[float, dict[str, Any]] = {}
    for tau in sorted({float(t) for t in min_excess}):
        while n_dropped < len(runs) and runs[n_dropped][1] < tau:
            kept[runs[n_dropped][0]] = 0
            n_dropped += 1
        ant, post = _aortic_wall_intervals(kept, ids, anatomy, geom, centres=centres)
        out[tau] = aac24_from_intervals(segments, ant, post)
    return out


def _project_lesions(
    lesion_labels: np.ndarray, lesions: list[dict[str, Any]], geom: _Geometry
) -> tuple[np.ndarray, list[dict[str, Any]], dict[int, np.ndarray]]:
    """Projected lesion label image, per-lesion pixel truth and per-lesion mask crops.

    Each lesion's sagittal footprint is placed with the magnification of its own
    centroid plane (a lesion is a few mm thick, so the spread is < 1 %), sampled
    nearest-neighbour onto the detector. Larger lesions are drawn first so that
    small ones stay visible where projections overlap.
    """
    label_img = np.zeros((geom.rows, geom.cols), np.uint16)
    boxes = ndimage.find_objects(lesion_labels) if lesion_labels.max() > 0 else []
    records = []
    order = sorted(range(len(lesions)), key=lambda n: -float(lesions[n].get("volume_mm3") or 0.0))
    masks: dict[int, tuple[tuple[slice, slice], np.ndarray]] = {}
    crops: dict[int, np.ndarray] = {}  # full projected mask of each lesion, cropped to bbox_px
    for n in order:
        les = lesions[n]
        lid = int(les["id"])
        rec = dict(les)
        rec["centroid_px"] = geom.to_pixel(np.array(les["centroid_lps_mm"], float)).round(2).tolist()
        rec.update(bbox_px=None, area_px=0)
        box = boxes[lid - 1] if 0 < lid <= len(boxes) else None
        if box is not None:
            sub = lesion_labels[box] == lid
            foot = sub.any(axis=2)
            ii = np.nonzero(sub)[2] + box[2].start
            m = float(geom.magnification(geom.x_of_i(ii.mean())))
            k0, k1, j0, j1 = box[0].start, box[0].stop, box[1].start, box[1].stop
            z0, y0, _ = geom.origin_kji_mm
            sk, sj, _ = geom.spacing
            # Detector window of the footprint's corners, one pixel of margin.
            corners = np.array(
                [[0.0, y0 + (j - 0.5) * sj, z0 + (k - 0.5) * sk] for k in (k0, k1) for j in (j0, j1)]
            )
            rc = (corners[:, 1:] - [geom.y_c, geom.z_c]) * m / geom.pixel
            c_lo = int(math.floor(rc[:, 0].min() + (geom.cols - 1) / 2.0)) - 1
            c_hi = int(math.ceil(rc[:, 0].max() + (geom.cols - 1) / 2.0)) + 2
            r_lo = int(math.floor(-rc[:, 1].max() + (geom.rows - 1) / 2.0)) - 1
            r_hi = int(math.ceil(-rc[:, 1].min() + (geom.rows - 1) / 2.0)) + 2
            r_lo, c_lo = max(r_lo, 0), max(c_lo, 0)
            r_hi, c_hi = min(r_hi, geom.rows), min(c_hi, geom.cols)
            if r_hi > r_lo and c_hi > c_lo:
                kf, jf = geom.to_kj(np.arange(r_lo, r_hi, dtype=float), np.arange(c_lo, c_hi, dtype=float), m)
                ki = np.rint(kf).astype(int) - k0
                ji = np.rint(jf).astype(int) - j0
                ok_k = (ki >= 0) & (ki < foot.shape[0])
                ok_j = (ji >= 0) & (ji < foot.shape[1])
                mask = foot[np.clip(ki, 0, foot.shape[0] - 1)][:, np.clip(ji, 0, foot.shape[1] - 1)]
                mask &= ok_k[:, None] & ok_j[None, :]
                if mask.any():
                    win = (slice(r_lo, r_hi), slice(c_lo, c_hi))
                    label_img[win][mask] = lid
                    masks[lid] = (win, mask)
                    rr, cc = np.nonzero(mask)
                    rec["bbox_px"] = [int(rr.min() + r_lo), int(cc.min() + c_lo), int(rr.max() + r_lo + 1),
                                      int(cc.max() + c_lo + 1)]
                    rec["area_px"] = int(mask.sum())
                    crops[lid] = mask[rr.min(): rr.max() + 1, cc.min(): cc.max() + 1].copy()
        rec["area_mm2_detector"] = rec["area_px"] * geom.pixel**2
        records.append(rec)
    # Visible area after overlaps are resolved (what a reader could still see as this lesion).
    for rec in records:
        lid = int(rec["id"])
        if lid in masks:
            win, mask = masks[lid]
            rec["visible_area_px"] = int((label_img[win][mask] == lid).sum())
        else:
            rec["visible_area_px"] = 0
    records.sort(key=lambda r: int(r["id"]))
    return label_img, records, crops


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class RadiographPhantom:
    """A simulated left-lateral lumbar radiograph with its ground truth.

    ``image`` is the measured log-attenuation (float32 ``[row, col]``, bright =
    dense; row 0 superior, column 0 anterior). ``pixel_spacing_mm`` is at the
    detector; divide by ``magnification`` for the midsagittal plane.
    """

    image: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    magnification: float
    settings: RadiographSettings
    lesion_labels: np.ndarray  # uint16 [row, col] projected lesion ids (0 = none)
    lesions: tuple[dict[str, Any], ...]
    vertebrae: dict[str, dict[str, Any]]
    aac24: dict[str, Any] | None
    aac8: dict[str, Any] | None
    geometry: dict[str, Any]
    study_uid: str
    series_uid: str
    sop_uid: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Each lesion's whole projected mask (also where others overlap it), cropped
    # to its ``bbox_px`` (row0, col0, row1, col1), keyed by lesion id.
    lesion_masks: dict[int, np.ndarray] = field(default_factory=dict)
    # AAC-24 with left- and right-wall plaque graded on the wall it leans to (the truth
    # before session 18), for comparison with ``aac24`` (walls in profile only).
    aac24_all_walls: dict[str, Any] | None = None
    # Where the aortic calcium the AAC-24 truth grades projects (the lesions' voxels on the
    # walls in profile, ``aortic_profile_volume``): a training target that matches ``aac24``.
    aortic_profile_mask: np.ndarray | None = None

    def stored_pixels(self) -> np.ndarray:
        """The 12-bit stored values (uint16) written to the DX file.

        ``presentation="log"``: log-attenuation x 4095 / ``log_full_scale``.
        ``presentation="equalised"``: :func:`equalise` of the log-attenuation,
        windowed to the 0.5-99.5 percentiles of the body pixels (what a DX
        workstation does before an image is sent "for presentation").
        """
        s = self.settings
        if s.presentation == "log":
            scaled = np.rint(self.image * (4095.0 / s.log_full_scale))
            return np.clip(scaled, 0, 4095).astype(np.uint16)
        shown = equalise(self.image, s.detector_pixel_mm, s.equalise_sigma_mm, s.equalise_gain)
        body = self.image > _BODY_LINE_INTEGRAL
        lo, hi = np.percentile(shown[body] if body.any() else shown, [0.5, 99.5])
        lo = max(float(lo), 0.0)  # air (log-attenuation 0) stays black
        scaled = np.rint((shown - lo) * (4095.0 / max(float(hi - lo), 1e-6)))
        return np.clip(scaled, 0, 4095).astype(np.uint16)


def _uid(source: str, part: str) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(prefix=_UID_PREFIX, entropy_srcs=["calcdetect-radiograph", source, part]))


def _source_tag(ct_phantom: Any, hu: np.ndarray) -> str:
    """A stable identity of the CT phantom: its settings, else a checksum of a voxel subsample."""
    ct_settings = getattr(ct_phantom, "settings", None)
    if ct_settings is not None:
        return repr(ct_settings)
    import hashlib

    sample = np.ascontiguousarray(hu[::7, ::7, ::7], dtype=np.float32)
    return hashlib.sha256(sample.tobytes() + repr(hu.shape).encode()).hexdigest()


def _noise_free_hu(ct_phantom: Any) -> np.ndarray:
    """The CT phantom's noise-free HU when it offers one, else its ``hu``."""
    for name in ("hu_clean", "hu_noise_free", "hu_noiseless", "clean_hu", "hu_true"):
        value = getattr(ct_phantom, name, None)
        if value is not None:
            return np.asarray(value)
    return np.asarray(ct_phantom.hu)


def _phantom_frame(ct_phantom: Any, settings: RadiographSettings) -> tuple[
        np.ndarray, tuple[float, ...], Any, Any, list[dict[str, Any]], _Geometry, float, float]:
    """What projecting a CT phantom starts from: its noise-free HU ``[k, j, i]``, spacing,
    anatomy and lesion labels (``None`` when absent), lesion records as dicts, the detector
    geometry with the midplane ``x``, and the effective keV of the CT's beam."""
    hu = _noise_free_hu(ct_phantom)
    if hu.ndim != 3:
        raise ValueError(f"ct_phantom.hu must be 3-D [k, j, i], got shape {hu.shape}")
    spacing = tuple(float(s) for s in ct_phantom.spacing)
    anatomy = getattr(ct_phantom, "anatomy_labels", None)
    lesion_labels = getattr(ct_phantom, "lesion_labels", None)
    lesions = [_as_dict(les) for les in (getattr(ct_phantom, "lesions", None) or [])]
    geom, x_mid = _make_geometry(hu.shape, spacing, np.asarray(ct_phantom.affine), anatomy, settings)
    acquisition = getattr(ct_phantom, "acquisition", None) or {}
    ct_kev = ct_effective_kev(acquisition.get("kvp") if isinstance(acquisition, Mapping) else None)
    return hu, spacing, anatomy, lesion_labels, lesions, geom, x_mid, ct_kev


def generate_lateral_radiograph(
    ct_phantom: Any, settings: RadiographSettings = RadiographSettings()
) -> RadiographPhantom:
    """Project a CT phantom into a left-lateral lumbar radiograph with truth.

    Parameters
    ----------
    ct_phantom : object
        Has ``hu`` (float32 ``[k, j, i]``, canonical LPS), ``affine``, ``spacing``
        ``(sk, sj, si)``, ``anatomy_labels`` (Structure ids, may be ``None``),
        ``lesion_labels`` (lesion ids, may be ``None``) and ``lesions`` (truth
        records: dicts or dataclasses with ``id``, ``region``,
        ``centroid_lps_mm`` ...). A noise-free HU field is used when offered
        (``hu_clean`` / ``hu_noise_free``).
    settings : RadiographSettings

    Returns
    -------
    RadiographPhantom
    """
    hu, spacing, anatomy, lesion_labels, lesions, geom, x_mid, ct_kev = _phantom_frame(ct_phantom, settings)
    line_integral = _project(hu, geom, settings, ct_kev)
    correction = _calcium_correction(ct_phantom, hu, geom, settings, ct_kev)
    if correction is not None:
        line_integral = np.maximum(line_integral + correction, 0.0)
    image = _detect(line_integral, settings)

    notes: list[str] = []
    if lesion_labels is not None and lesions:
        label_img, records, crops = _project_lesions(np.asarray(lesion_labels), lesions, geom)
    else:
        label_img, crops = np.zeros(image.shape, np.uint16), {}
        records = [dict(les, centroid_px=geom.to_pixel(np.array(les["centroid_lps_mm"], float)).tolist())
                   for les in lesions]
        if lesions:
            notes.append("no lesion label volume: lesion masks not projected")

    aortic_ids = [int(les["id"]) for les in lesions if les.get("region") == Region.AORTA.value]
    profile_mask = None
    centres = _aorta_centres(np.asarray(anatomy)) if anatomy is not None else None  # one scan of the volume
    if anatomy is not None and lesion_labels is not None:
        walls = aortic_wall_quadrants(np.asarray(lesion_labels), aortic_ids, np.asarray(anatomy), spacing, centres)
        records = [dict(rec, aortic_wall=walls[int(rec["id"])]) if int(rec["id"]) in walls else rec
                   for rec in records]
        profile = aortic_profile_volume(np.asarray(lesion_labels), aortic_ids, np.asarray(anatomy), spacing,
                                        centres)
        aortic_lesions = [les for les in lesions if int(les["id"]) in aortic_ids]
        profile_mask = (_project_lesions(profile, aortic_lesions, geom)[0] > 0 if aortic_lesions
                        else np.zeros(image.shape, bool))

    vertebrae: dict[str, dict[str, Any]] = {}
    aac24 = aac8 = aac24_all_walls = None
    if anatomy is not None:
        vertebrae, segments = _vertebra_truth(np.asarray(anatomy), geom)
        if len(segments) == len(_AAC_LEVELS):
            ant, post, ant_all, post_all = [], [], [], []
            if lesion_labels is not None:
                ant, post = _aortic_wall_intervals(np.asarray(lesion_labels), aortic_ids, anatomy, geom,
                                                   centres=centres)
                ant_all, post_all = _aortic_wall_intervals(np.asarray(lesion_labels), aortic_ids, anatomy, geom,
                                                           walls="all", centres=centres)
            elif aortic_ids:
                notes.append("no lesion label volume: AAC-24 scored as 0")
            aac24 = aac24_from_intervals(segments, ant, post)
            aac8 = aac8_from_intervals(segments, ant, post)
            aac24_all_walls = aac24_from_intervals(segments, ant_all, post_all)
        else:
            notes.append(f"vertebrae {', '.join(_AAC_LEVELS)} not all labelled: no AAC-24 truth")
    else:
        notes.append("no anatomy labels: no vertebral or AAC-24 truth")

    # UIDs derive from everything that makes this image, so different CT phantoms
    # (or settings) never share a series UID, and the same inputs always do.
    source = f"{settings!r}|{_source_tag(ct_phantom, hu)}"
    geometry = {
        "view": "left lateral (beam right to left, patient's left on the detector)",
        "row_direction": "superior to inferior (row 0 most superior)",
        "column_direction": "anterior to posterior (column 0 most anterior)",
        "source_to_detector_mm": settings.source_to_detector_mm,
        "source_to_midplane_mm": settings.source_to_detector_mm - settings.midplane_to_detector_mm,
        "midplane_x_mm": x_mid,
        "central_ray_yz_mm": [geom.y_c, geom.z_c],
        "divergent_groups": settings.divergent_groups,
    }
    return RadiographPhantom(
        image=image,
        pixel_spacing_mm=(settings.detector_pixel_mm, settings.detector_pixel_mm),
        magnification=settings.magnification,
        settings=settings,
        lesion_labels=label_img,
        lesion_masks=crops,
        lesions=tuple(records),
        vertebrae=vertebrae,
        aac24=aac24,
        aac8=aac8,
        aac24_all_walls=aac24_all_walls,
        aortic_profile_mask=profile_mask,
        geometry=geometry,
        study_uid=_uid(source, "study"),
        series_uid=_uid(source, "series"),
        sop_uid=_uid(source, "sop"),
        notes=tuple(notes),
    )


def _dx_dataset(ph: RadiographPhantom) -> Any:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _DX_STORAGE
    meta.MediaStorageSOPInstanceUID = ph.sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    s = ph.settings
    pixels = ph.stored_pixels()
    ds.SOPClassUID = _DX_STORAGE
    ds.SOPInstanceUID = ph.sop_uid
    ds.StudyInstanceUID = ph.study_uid
    ds.SeriesInstanceUID = ph.series_uid
    # Synthetic, anonymous patient tags only.
    ds.PatientName = "PHANTOM^DX"
    ds.PatientID = f"PHANTOM-DX-{s.seed}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.Modality = "DX"
    ds.Manufacturer = "calcdetect"
    ds.ManufacturerModelName = "synthetic lateral radiograph phantom"
    ds.SeriesDescription = "calcdetect synthetic lateral lumbar radiograph"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "LSPINE"
    ds.ViewPosition = "LL"
    ds.PatientOrientation = ["P", "F"]  # increasing column -> posterior, increasing row -> feet
    ds.KVP = s.kvp
    ds.DistanceSourceToDetector = s.source_to_detector_mm
    ds.DistanceSourceToPatient = s.source_to_detector_mm - s.midplane_to_detector_mm
    ds.EstimatedRadiographicMagnificationFactor = round(ph.magnification, 6)
    ds.ImagerPixelSpacing = [s.detector_pixel_mm, s.detector_pixel_mm]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(v) for v in pixels.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1  # higher values = less beam intensity (bright = dense)
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PixelData = pixels.tobytes()
    assert isinstance(ds, pydicom.Dataset)
    return ds


def write_radiograph_phantom(ph: RadiographPhantom, out_dir: Path, *, overwrite: bool = False) -> Path:
    """Write the phantom as ``DIR/dicom/DX000.dcm`` plus ``DIR/truth/`` (atomically per file).

    Truth files: ``truth.json`` (kind ``"radiograph"``, ``series_uid_hash``,
    ``aac24``, ``aac8``, vertebrae in pixel coordinates, projected lesions),
    ``calcification_labels.png`` (16-bit PNG of the projected lesion ids, targets
    and distractors; where projections overlap the smaller lesion is on top),
    ``lesion_masks.npz`` (each lesion's whole mask cropped to its ``bbox_px``,
    key = lesion id), ``calcification_mask.png`` (255 where a target
    calcification, region not ``"other"``, projects) and, with anatomy labels,
    ``aortic_profile_mask.png`` (255 where the aortic calcium that ``aac24`` grades,
    on the walls in profile, projects).

    Returns
    -------
    Path
        ``out_dir``.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    dcm = out_dir / "dicom" / "DX000.dcm"
    if dcm.exists() and not overwrite:
        raise FileExistsError(f"{dcm} exists; pass overwrite=True or choose an empty folder")
    ds = _dx_dataset(ph)
    atomic_write_with(dcm, lambda p: ds.save_as(p, enforce_file_format=True), suffix=".dcm")
    truth = out_dir / "truth"
    # 16-bit PNG: lossless, compressed (the labels are mostly zero) and viewable.
    labels = np.ascontiguousarray(ph.lesion_labels, dtype=np.uint16)
    atomic_write_with(
        truth / "calcification_labels.png", lambda p: Image.fromarray(labels).save(p, format="PNG"), suffix=".png"
    )
    masks = {str(lid): m for lid, m in ph.lesion_masks.items()}
    atomic_write_with(truth / "lesion_masks.npz", lambda p: np.savez_compressed(p, **masks), suffix=".npz")
    targets = [int(r["id"]) for r in ph.lesions if r.get("region") != Region.OTHER.value]
    mask = (np.isin(ph.lesion_labels, targets) * 255).astype(np.uint8)
    atomic_write_with(truth / "calcification_mask.png", lambda p: Image.fromarray(mask).save(p, format="PNG"),
                      suffix=".png")
    files = {"labels": "calcification_labels.png", "target_mask": "calcification_mask.png",
             "lesion_masks": "lesion_masks.npz (key = lesion id, mask cropped to bbox_px)"}
    if ph.aortic_profile_mask is not None:
        profile = (np.asarray(ph.aortic_profile_mask, bool) * 255).astype(np.uint8)
        atomic_write_with(truth / "aortic_profile_mask.png",
                          lambda p: Image.fromarray(profile).save(p, format="PNG"), suffix=".png")
        files["aortic_profile_mask"] = "aortic_profile_mask.png (the aortic calcium aac24 grades)"
    payload = {
        "schema": "calcdetect-truth/1",
        "kind": "radiograph",
        "series_uid_hash": hash_uid(ph.series_uid),
        "image": {
            "rows": int(ph.image.shape[0]),
            "columns": int(ph.image.shape[1]),
            "imager_pixel_spacing_mm": list(ph.pixel_spacing_mm),
            "magnification": ph.magnification,
            "presentation": ph.settings.presentation,
            "stored_value_per_unit_log_attenuation": (
                4095.0 / ph.settings.log_full_scale if ph.settings.presentation == "log" else None
            ),
            "coordinates": "pixel (row, col), row 0 superior, column 0 anterior",
        },
        "geometry": ph.geometry,
        "settings": asdict(ph.settings),
        "aac24": ph.aac24,
        "aac8": ph.aac8,
        "aac24_all_walls": ph.aac24_all_walls,
        "vertebrae": ph.vertebrae,
        "lesions": list(ph.lesions),
        "files": files,
        "notes": list(ph.notes),
    }
    atomic_write_json(truth / "truth.json", payload)
    return out_dir


# CT settings for projection: noise-free (quantum noise is added on the detector),
# 1 mm voxels (finer than the radiograph's ~0.15 mm patient-plane pixels cannot
# be had cheaply, coarser blurs the endplates), T11 to the femoral heads.
RADIOGRAPH_CT_DEFAULTS: dict[str, Any] = {
    "matrix": 384, "pixel_mm": 1.0, "slice_thickness_mm": 1.25, "fov": ("T11", "FH"), "noise_sigma_hu": 0.0,
}


def cli_phantom_radiograph(
    out_dir: Path, seed: int = 0, *, overwrite: bool = False, ct_options: dict[str, Any] | None = None,
    **options: Any,
) -> Path:
    """CLI entry: ``calcdetect phantom radiograph -o DIR --seed N [--effective-kev ...]``.

    Generates a CT phantom (``RADIOGRAPH_CT_DEFAULTS`` updated by ``ct_options``,
    same seed), projects it and writes the radiograph study to ``out_dir``.
    ``options`` are :class:`RadiographSettings` fields; unknown names raise a
    ValueError listing the valid ones.
    """
    from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom

    valid = set(RadiographSettings.__dataclass_fields__) - {"seed"}
    unknown = set(options) - valid
    if unknown:
        raise ValueError(f"unknown radiograph option(s) {sorted(unknown)}; valid: {sorted(valid)}")
    ct_valid = set(CTPhantomSettings.__dataclass_fields__) - {"seed"}
    ct_unknown = set(ct_options or {}) - ct_valid
    if ct_unknown:
        raise ValueError(f"unknown CT phantom option(s) {sorted(ct_unknown)}; valid: {sorted(ct_valid)}")
    ct_settings = CTPhantomSettings(seed=seed, **{**RADIOGRAPH_CT_DEFAULTS, **(ct_options or {})})
    settings = RadiographSettings(seed=seed, **{k: v for k, v in options.items() if v is not None})
    ph = generate_lateral_radiograph(generate_ct_phantom(ct_settings), settings)
    return write_radiograph_phantom(ph, out_dir, overwrite=overwrite)
