"""Synthetic abdominal / spine CT phantom with exact ground truth (issue #3).

The phantom is built analytically on the voxel grid: every structure is an
ellipse column, ellipsoid, tube along a centreline or elliptic band, evaluated
vectorised over its bounding box (see :mod:`calcdetect.phantoms.geometry`).
Anatomy (T10 to the femoral heads by default): body wall with skin,
subcutaneous and visceral fat, muscles (psoas, paraspinal, quadratus, iliacus,
gluteal), bowel with gas and content, liver, spleen, bladder; the spine with a
lordotic curve (vertebral bodies with cortical shell, discs, pedicles, laminae,
articular pillars, spinous and transverse processes, canal with thecal sac and
cord, ligamentum flavum), sacrum, ribs T10-T12 with costal cartilage, iliac
wings, acetabula, femora; the aorta bifurcating at L3-L5 into common, external
and internal iliac arteries; IVC and iliac veins; kidneys with cortex, pyramids,
sinus fat, calyces and pelvis; ureters.

Calcifications (and look-alikes) are rasterised with supersampling, so their
partial-volume appearance and true volume / mass are exact up to a 0.2 mm
sub-sample; then the whole image gets the PSF / slice profile blur and
correlated noise (:mod:`calcdetect.phantoms.physics`).

Code map: this module holds the public API (settings, generate, write, CLI
helpers, sample study); :mod:`calcdetect.phantoms.ct_anatomy` the random layout
and the anatomy painters; :mod:`calcdetect.phantoms.ct_lesions` the lesions and
their truth records. Tissue values were tuned against two real series with
``scripts/realism.py``.

Example
-------
>>> from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom
>>> ph = generate_ct_phantom(CTPhantomSettings(seed=1, matrix=96, pixel_mm=3.0,
...     slice_thickness_mm=5.0, fov=("L3", "L4")))
>>> ph.hu.shape[1:]
(96, 96)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calcdetect.io.dicom_write import write_ct_series
from calcdetect.phantoms import physics
from calcdetect.phantoms.ct_anatomy import (
    _FOV_BOTTOMS,
    _LABEL,
    _SIDES,
    SPINE_LEVELS,
    _grid,
    _kidneys,
    _layout,
    _paint_body,
    _paint_kidneys,
    _paint_muscles,
    _paint_organs,
    _paint_pelvis,
    _paint_ribs,
    _paint_spine,
    _paint_table,
    _paint_vessels,
    _vessel_tubes,
)
from calcdetect.phantoms.ct_lesions import (
    _add_contrast,
    _add_distractors,
    _add_lf,
    _add_metal,
    _add_plaques,
    _add_renal,
    _LesionPainter,
    _vertebra_truth,
)
from calcdetect.phantoms.geometry import Canvas, Grid
from calcdetect.phantoms.truth import TruthLesion, level_span, write_label_nifti, write_truth_json

__all__ = [
    "CTPhantomSettings",
    "CTPhantom",
    "generate_ct_phantom",
    "write_ct_phantom",
    "random_settings",
    "make_sample_study",
    "cli_phantom_ct",
    "SAMPLE_SETTINGS",
    "SPINE_LEVELS",
]

# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class CTPhantomSettings:
    """What to generate. Acquisition ranges follow clinical abdominal CT.

    Parameters
    ----------
    seed : int
        Everything random (anatomy, lesions, noise) derives from it.
    matrix : int
        In-plane matrix (512 clinically; smaller for tests).
    pixel_mm : float
        In-plane pixel size (0.6-1.0 mm clinically; up to 3 mm accepted for fast tests).
    slice_thickness_mm : float
        Reconstructed thickness (0.625-5 mm): the slice sensitivity profile.
    slice_spacing_mm : float, optional
        Distance between slices; defaults to the thickness.
    kvp : float
        80-140 kVp; sets the HU of calcium and bone.
    noise_sigma_hu : float
        Noise std (10-40 clinically; 0 gives a noiseless image for tests).
    kernel : str
        Reconstruction kernel name; sets the in-plane PSF width.
    fov : (str, str)
        Top vertebra (T10..L5) and bottom: a vertebra, ``"S1"`` or ``"FH"``
        (through the femoral heads).
    bifurcation_level : str, optional
        Level of the aortic bifurcation (L3, L4 or L5); random (mostly L4) when None.
    aorta_diameter_mm : float, optional
        15-25 mm; random when None.
    ectatic : bool
        Fusiform infrarenal dilatation of the aorta (x1.5).
    contrast : bool
        Arterial-phase iodinated contrast in the aorta and iliac arteries
        (250-400 HU at 120 kVp, scaled by :func:`physics.iodine_scale` at other kVp).
    metal : bool
        Left hip prosthesis and L4/L5 pedicle screws.
    distractors : bool
        Phleboliths, costal cartilage calcification, a calcified lymph node and
        dense bowel content.
    plaque_burden : float
        0 (none) to 1 (heavy) aortic and iliac wall calcification.
    renal_stones : int
        Number of calculi in calyces / renal pelvis.
    nephrocalcinosis : bool
        Medullary calcification clusters in the pyramids of one kidney.
    ureteral_stone : bool
        One stone in a ureter.
    lf_calcification : str
        Ligamentum flavum calcification: "none", "focal", "segmental",
        "multilevel" or "random".
    table : bool
        A curved carbon-fibre patient table under the back (dense thin shells
        around foam), outside the body: not anatomy, not a lesion.
    anatomy_dz_mm : float
        The anatomy (not the lesions, which have exact coverage) is painted at
        this z step or finer and box-averaged into each slice (at most 16
        sub-slices). 1.25 mm gives thick slices their partial volume; 0.25 mm
        keeps tilted endplates from stepping slice by slice in a lateral
        projection (costs ~3x the time and memory).
    """

    seed: int = 0
    matrix: int = 512
    pixel_mm: float = 0.78
    slice_thickness_mm: float = 1.25
    slice_spacing_mm: float | None = None
    kvp: float = 120.0
    noise_sigma_hu: float = 14.0
    kernel: str = "B30f"
    fov: tuple[str, str] = ("T10", "FH")
    bifurcation_level: str | None = None
    aorta_diameter_mm: float | None = None
    ectatic: bool = False
    contrast: bool = False
    metal: bool = False
    distractors: bool = True
    plaque_burden: float = 0.5
    renal_stones: int = 2
    nephrocalcinosis: bool = True
    ureteral_stone: bool = True
    lf_calcification: str = "random"
    table: bool = False
    anatomy_dz_mm: float = 1.25

    def validate(self) -> None:
        """Raise ValueError naming the setting, value and accepted range."""
        checks: list[tuple[str, Any, bool, str]] = [
            ("matrix", self.matrix, 32 <= self.matrix <= 1024, "32-1024"),
            ("pixel_mm", self.pixel_mm, 0.3 <= self.pixel_mm <= 3.0, "0.3-3.0 (0.6-1.0 clinical)"),
            ("slice_thickness_mm", self.slice_thickness_mm, 0.5 <= self.slice_thickness_mm <= 5.0, "0.5-5"),
            ("kvp", self.kvp, 70 <= self.kvp <= 150, "80-140"),
            ("noise_sigma_hu", self.noise_sigma_hu, 0 <= self.noise_sigma_hu <= 100, "0-100 (10-40 clinical)"),
            ("plaque_burden", self.plaque_burden, 0 <= self.plaque_burden <= 1, "0-1"),
            ("renal_stones", self.renal_stones, 0 <= self.renal_stones <= 10, "0-10"),
            ("anatomy_dz_mm", self.anatomy_dz_mm, 0.1 <= self.anatomy_dz_mm <= 1.25, "0.1-1.25"),
        ]
        if self.slice_spacing_mm is not None:
            checks.append(("slice_spacing_mm", self.slice_spacing_mm,
                           0.3 <= self.slice_spacing_mm <= 10, "0.3-10"))
        if self.aorta_diameter_mm is not None:
            checks.append(("aorta_diameter_mm", self.aorta_diameter_mm,
                           10 <= self.aorta_diameter_mm <= 35, "10-35 (15-25 typical)"))
        for name, value, ok, rng in checks:
            if not ok:
                raise ValueError(f"CTPhantomSettings.{name}={value!r} is out of range; use {rng}")
        top, bottom = self.fov
        if top not in SPINE_LEVELS or bottom not in _FOV_BOTTOMS:
            raise ValueError(
                f"CTPhantomSettings.fov={self.fov!r}: top must be one of {SPINE_LEVELS}, "
                f"bottom one of {_FOV_BOTTOMS}"
            )
        if _FOV_BOTTOMS.index(bottom) < SPINE_LEVELS.index(top):
            raise ValueError(f"CTPhantomSettings.fov={self.fov!r}: bottom is above top")
        if self.bifurcation_level not in (None, "L3", "L4", "L5"):
            raise ValueError(f"bifurcation_level={self.bifurcation_level!r}; use L3, L4, L5 or None")
        if self.lf_calcification not in ("none", "focal", "segmental", "multilevel", "random"):
            raise ValueError(
                f"lf_calcification={self.lf_calcification!r}; use none, focal, segmental, multilevel or random"
            )


def random_settings(seed: int, **overrides: Any) -> CTPhantomSettings:
    """Settings with acquisition parameters drawn from clinical ranges by ``seed``.

    pixel 0.6-1.0 mm, thickness 0.625-5 mm, kVp 80-140, noise 10-40 HU; any
    keyword overrides the drawn value.
    """
    rng = np.random.default_rng([seed, 99])
    thickness = float(rng.choice([0.625, 1.0, 1.25, 2.0, 3.0, 5.0]))
    params = dict(
        seed=seed,
        pixel_mm=float(np.round(rng.uniform(0.6, 1.0), 3)),
        slice_thickness_mm=thickness,
        kvp=float(rng.choice([80, 100, 120, 140])),
        noise_sigma_hu=float(np.round(rng.uniform(10, 40), 1)),
        kernel=str(rng.choice(["B30f", "B31f", "B40f", "STANDARD", "B60f"])),
        plaque_burden=float(rng.uniform(0, 1)),
        renal_stones=int(rng.integers(0, 4)),
        nephrocalcinosis=bool(rng.random() < 0.3),
        ureteral_stone=bool(rng.random() < 0.3),
        contrast=bool(rng.random() < 0.2),
        metal=bool(rng.random() < 0.1),
    )
    params.update(overrides)
    return CTPhantomSettings(**params)


@dataclass(frozen=True)
class CTPhantom:
    """A generated phantom: image, geometry, anatomy and lesion truth."""

    hu: np.ndarray  # float32 [k, j, i]
    affine: np.ndarray  # (k, j, i, 1) -> LPS mm
    spacing: tuple[float, float, float]
    anatomy_labels: np.ndarray  # uint8, Structure label ids
    lesion_labels: np.ndarray  # uint16, == TruthLesion.id
    lesions: list[TruthLesion]
    anatomy: dict[str, Any]
    acquisition: dict[str, Any]
    settings: CTPhantomSettings

    def truth_document(self) -> dict[str, Any]:
        """The truth.json payload (without the schema string)."""
        return {
            "kind": "ct",
            "seed": self.settings.seed,
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.settings).items()},
            "acquisition": self.acquisition,
            "anatomy": self.anatomy,
            "lesions": [les.to_json() for les in self.lesions],
            "label_files": {"lesions": "lesions.nii.gz", "anatomy": "anatomy.nii.gz"},
        }


# --------------------------------------------------------------------------- public API


# Sub-slices per slice at most: 16 keeps the fine canvas of a 5 mm slice at 0.31 mm.
_MAX_SUB_SLICES = 16


def _box_average(fine: Canvas, grid: Grid, n_sub: int) -> Canvas:
    """Average ``n_sub`` fine slices into each output slice (the slice box profile).

    Labels take the fine slice nearest the slice centre.
    """
    if n_sub == 1:
        return fine
    nk, nj, ni = grid.shape
    hu = fine.hu.reshape(nk, n_sub, nj, ni).mean(axis=1, dtype=np.float32)
    labels = np.ascontiguousarray(fine.labels.reshape(nk, n_sub, nj, ni)[:, n_sub // 2])
    return Canvas.from_arrays(grid, hu, labels)


def generate_ct_phantom(settings: CTPhantomSettings) -> CTPhantom:
    """Generate a CT phantom (image + anatomy + lesion truth) from ``settings``.

    Deterministic: the same settings give identical arrays and truth.
    """
    settings.validate()
    s = settings
    lay = _layout(s)
    g = _grid(s, lay)
    rng = lambda n: np.random.default_rng([s.seed, n])  # noqa: E731 - one stream per component
    contrast_hu = None
    if s.contrast:
        # Arterial phase: 250-400 HU at 120 kVp, scaled for iodine at other kVp.
        blood = physics.TISSUE_HU["blood"]
        contrast_hu = blood + (float(rng(2).uniform(250, 400)) - blood) * physics.iodine_scale(s.kvp)

    # Anatomy is point-sampled, so for thick slices it is painted on a finer z grid
    # and box-averaged over each slice: bone edges and endplates get the partial
    # volume of a real thick reconstruction. Lesions are rasterised on the output
    # grid with their own exact sub-voxel coverage.
    step = s.slice_spacing_mm or s.slice_thickness_mm
    n_sub = min(_MAX_SUB_SLICES, max(1, math.ceil(step / s.anatomy_dz_mm - 1e-6)))
    offsets = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * step
    fine = Canvas(Grid(x=g.x, y=g.y, z=(g.z[:, None] + offsets[None, :]).reshape(-1)))
    _paint_body(fine, lay)
    _paint_organs(fine, lay, rng(3))
    _paint_muscles(fine, lay)
    _kidneys(lay, rng(4))
    _vessel_tubes(lay)
    _paint_kidneys(fine, lay)
    _paint_vessels(fine, lay, contrast_hu)
    _paint_spine(fine, lay, s.kvp, rng(5))
    _paint_pelvis(fine, lay, s.kvp, rng(6))
    _paint_ribs(fine, lay, s.kvp)
    if s.table:
        _paint_table(fine, lay)
    canvas = _box_average(fine, g, n_sub)
    del fine

    lumen = None
    if contrast_hu is not None:
        lumen = np.abs(canvas.hu - np.float32(contrast_hu)) < 0.5
        lumen &= np.isin(canvas.labels, [_LABEL["aorta"]] + [_LABEL[n] for n in _LABEL if "iliac_artery" in n])

    painter = _LesionPainter(canvas, lay, s)
    _add_plaques(painter, rng(10))
    _add_renal(painter, rng(11))
    _add_lf(painter, rng(12))
    if s.distractors:
        _add_distractors(painter, rng(13))
    if s.metal:
        _add_metal(painter, rng(14))
    if lumen is not None and contrast_hu is not None:
        _add_contrast(painter, lumen, contrast_hu)

    hu = canvas.hu
    fwhm = physics.kernel_fwhm_mm(s.kernel)
    # The voxel-box integration already applied a box of width `step` along z;
    # the remaining slice profile is a box of the thickness (variance t^2/12).
    sigma_z = math.sqrt(max(s.slice_thickness_mm**2 - step**2, 0.0) / 12.0)
    physics.blur(hu, g.spacing, fwhm, sigma_z)
    if s.noise_sigma_hu > 0:
        corr = 0.45 * fwhm / s.pixel_mm
        physics.add_correlated_noise(hu, s.noise_sigma_hu, corr, (s.seed, 20))
    np.maximum(hu, np.float32(-1024.0), out=hu)

    vert = _vertebra_truth(lay)
    anatomy = {
        "vertebrae": [{"level": v.level, "z_top_mm": v.z_top_mm, "z_bottom_mm": v.z_bottom_mm} for v in vert],
        "bifurcation": {"level": lay.bif_level, "z_mm": round(lay.z_bif, 3),
                        "level_by_z": level_span(lay.z_bif, lay.z_bif, vert)},
        "aorta_diameter_mm": round(2 * lay.aorta_r, 3),
        "kidneys": {
            _SIDES[sx]: {"z_top_mm": round(k["z_range"][1], 3), "z_bottom_mm": round(k["z_range"][0], 3),
                         "centre_lps_mm": [round(float(c), 3) for c in k["centre"]],
                         "hilum_lps_mm": [round(float(c), 3) for c in k["hilum"]]}
            for sx, k in lay.kidneys.items()
        },
        "renal_hilum_z_mm": round(max(k["hilum"][2] for k in lay.kidneys.values()), 3),
        "femoral_heads_z_mm": round(lay.z_fh, 3),
        "ligamentum_flavum_zones": [
            {"levels": f"{z['upper']}-{z['lower']}", "z0_mm": round(z["z0"], 3), "z1_mm": round(z["z1"], 3)}
            for z in lay.lf_zones
        ],
        "fov_z_mm": [round(float(g.z[0]), 3), round(float(g.z[-1]), 3)],
    }
    acquisition = {
        "kvp": s.kvp, "kernel": s.kernel, "psf_fwhm_mm": fwhm, "noise_sigma_hu": s.noise_sigma_hu,
        "slice_thickness_mm": s.slice_thickness_mm, "slice_spacing_mm": step,
        "pixel_mm": s.pixel_mm, "matrix": s.matrix, "spacing_kji_mm": list(g.spacing),
        "shape_kji": list(g.shape), "hu_per_mg_ha_cm3": round(physics.hu_per_mg_ha(s.kvp), 5),
        "contrast_hu": contrast_hu,
    }
    return CTPhantom(hu=hu, affine=g.affine, spacing=g.spacing, anatomy_labels=canvas.labels,
                     lesion_labels=painter.labels, lesions=painter.records, anatomy=anatomy,
                     acquisition=acquisition, settings=s)


def write_ct_phantom(
    phantom: CTPhantom, out_dir: Path, *, overwrite: bool = False, transfer_syntax: str | None = None
) -> Path:
    """Write ``DIR/dicom/`` (CT series) and ``DIR/truth/`` (truth.json + NIfTI labels).

    ``transfer_syntax``: a lossless transfer syntax UID to compress the DICOM with
    (default uncompressed). Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    s = phantom.settings
    extra = {"ContrastBolusAgent": "IODINATED (synthetic)"} if s.contrast else None
    write_ct_series(
        phantom.hu, phantom.spacing, phantom.affine, out_dir / "dicom",
        kvp=s.kvp, kernel=s.kernel, series_description=f"calcdetect CT phantom seed {s.seed}",
        slice_thickness_mm=s.slice_thickness_mm, seed=s.seed, extra_tags=extra, overwrite=overwrite,
        transfer_syntax=transfer_syntax,
    )
    truth = out_dir / "truth"
    write_label_nifti(phantom.lesion_labels, phantom.affine, truth / "lesions.nii.gz")
    write_label_nifti(phantom.anatomy_labels, phantom.affine, truth / "anatomy.nii.gz")
    write_truth_json(truth / "truth.json", phantom.truth_document())
    return out_dir


def cli_phantom_ct(out_dir: Path, seed: int = 0, *, overwrite: bool = False, **options: Any) -> Path:
    """CLI entry: ``calcdetect phantom ct -o DIR --seed N [--kvp ...]``.

    ``options`` are :class:`CTPhantomSettings` fields; unknown names raise a
    ValueError listing the valid ones.
    """
    valid = set(CTPhantomSettings.__dataclass_fields__)
    unknown = set(options) - valid
    if unknown:
        raise ValueError(f"unknown phantom option(s) {sorted(unknown)}; valid: {sorted(valid - {'seed'})}")
    settings = CTPhantomSettings(seed=seed, **{k: v for k, v in options.items() if v is not None})
    return write_ct_phantom(generate_ct_phantom(settings), out_dir, overwrite=overwrite)


# The README demo study: L1 to the femoral heads (the sacrum anchors the level
# count), 3 mm slices, 256 x 256 at 1.5 mm, JPEG 2000 lossless (a few MB, and the
# demo exercises a compressed transfer syntax); every truth region present.
SAMPLE_SETTINGS = CTPhantomSettings(
    seed=2024, matrix=256, pixel_mm=1.5, slice_thickness_mm=3.0, fov=("L1", "FH"),
    noise_sigma_hu=12.0, plaque_burden=0.6, renal_stones=2, nephrocalcinosis=False,
    ureteral_stone=True, lf_calcification="multilevel",
)


def make_sample_study(out_dir: Path, *, overwrite: bool = False) -> Path:
    """Write the small deterministic sample study (``DIR/dicom``, ``DIR/truth``).

    Same bytes on every run (fixed seed, fixed UIDs and dates); used to build
    ``data_samples/``.
    """
    from pydicom.uid import JPEG2000Lossless

    return write_ct_phantom(
        generate_ct_phantom(SAMPLE_SETTINGS), out_dir, overwrite=overwrite, transfer_syntax=JPEG2000Lossless
    )
