"""QRM-style calcium calibration phantom (after the QRM thorax phantom with the
cardiac calcification insert): nine HA cylinders, diameter = length = 1, 3 and
5 mm, at 200, 400 and 800 mg HA/cm3, in a water-equivalent elliptical body of
300 x 200 mm.

The truth is analytic: volume = pi r^2 L and mass = volume x density. The image
gets the same physics as the CT phantom (kVp-dependent HU, PSF, slice profile,
correlated noise), so measured volume and mass can be compared with the truth
at any slice thickness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calcdetect.io.dicom_write import write_ct_series
from calcdetect.phantoms import physics
from calcdetect.phantoms.geometry import Canvas, Grid
from calcdetect.phantoms.truth import TruthLesion, write_label_nifti, write_truth_json

__all__ = ["QRMPhantom", "QRM_DENSITIES", "QRM_SIZES_MM", "generate_qrm_phantom", "write_qrm_phantom",
           "cli_phantom_qrm"]

QRM_DENSITIES = (200.0, 400.0, 800.0)  # mg HA/cm3
QRM_SIZES_MM = (1.0, 3.0, 5.0)  # diameter = length
_BODY_SEMI_AXES = (150.0, 100.0)  # mm: 300 x 200 mm ellipse
_WATER_EQUIVALENT_HU = 0.0


@dataclass(frozen=True)
class QRMPhantom:
    hu: np.ndarray  # float32 [k, j, i]
    affine: np.ndarray
    spacing: tuple[float, float, float]
    lesion_labels: np.ndarray  # uint16, insert ids
    inserts: list[TruthLesion]
    acquisition: dict[str, Any]
    seed: int

    def truth_document(self) -> dict[str, Any]:
        return {
            "kind": "qrm",
            "seed": self.seed,
            "acquisition": self.acquisition,
            "phantom": {"body_semi_axes_mm": list(_BODY_SEMI_AXES), "body_hu": _WATER_EQUIVALENT_HU,
                        "densities_mg_cm3": list(QRM_DENSITIES), "sizes_mm": list(QRM_SIZES_MM)},
            "lesions": [ins.to_json() for ins in self.inserts],
            "label_files": {"lesions": "lesions.nii.gz"},
        }


@dataclass(frozen=True)
class _CylRaster:
    box: tuple[slice, slice, slice]
    fraction: np.ndarray


def _cylinder_raster(grid: Grid, cx: float, cy: float, radius: float, length: float, sub: int = 16) -> _CylRaster:
    """Exact-in-z voxel coverage of a z-axis cylinder centred at z = 0.

    Along z the covered fraction of each slab is the analytic overlap of
    ``[-L/2, L/2]`` with the voxel; in-plane it is a ``sub x sub`` supersampled
    disc. This keeps the image's integrated calcium equal to the analytic truth
    at any slice thickness (to ~0.5 %).
    """
    sk, sj, si = grid.spacing
    box = grid.box((cx - radius - si, cx + radius + si), (cy - radius - sj, cy + radius + sj),
                   (-length / 2 - sk, length / 2 + sk))
    ks, js, is_ = box
    z = grid.z[ks]
    zov = np.clip(np.minimum(z + sk / 2, length / 2) - np.maximum(z - sk / 2, -length / 2), 0, None) / sk
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    ys = (grid.y[js][:, None] + offs[None, :] * sj).reshape(-1)
    xs = (grid.x[is_][:, None] + offs[None, :] * si).reshape(-1)
    disc = ((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2) <= radius**2
    inplane = disc.reshape(len(ys) // sub, sub, len(xs) // sub, sub).mean(axis=(1, 3))
    frac = (zov[:, None, None] * inplane[None, :, :]).astype(np.float32)
    return _CylRaster(box, frac)


def _insert_centre(size_index: int, density_index: int) -> tuple[float, float]:
    """Inserts on a 3 x 3 grid, 25 mm apart: size along x, density along y."""
    return (25.0 * (size_index - 1), 25.0 * (density_index - 1))


def generate_qrm_phantom(
    slice_thickness_mm: float,
    kvp: float = 120.0,
    noise_sigma_hu: float = 10.0,
    seed: int = 0,
    *,
    matrix: int = 512,
    pixel_mm: float = 0.65,
    slice_spacing_mm: float | None = None,
    kernel: str = "B35f",
    z_extent_mm: float = 40.0,
) -> QRMPhantom:
    """Generate the calibration phantom scanned at ``slice_thickness_mm`` (0.5-5 mm).

    The inserts are centred at z = 0; slices cover ``z_extent_mm`` around them.
    """
    if not 0.5 <= slice_thickness_mm <= 5.0:
        raise ValueError(f"slice_thickness_mm={slice_thickness_mm} out of range; use 0.5-5 mm")
    if not 0.2 <= pixel_mm <= 2.0 or not 32 <= matrix <= 1024:
        raise ValueError(f"pixel_mm={pixel_mm} / matrix={matrix} out of range (0.2-2.0 mm, 32-1024)")
    if matrix * pixel_mm < 2 * _BODY_SEMI_AXES[0]:
        raise ValueError(
            f"field of view {matrix * pixel_mm:.0f} mm is smaller than the 300 mm phantom; "
            "raise matrix or pixel_mm"
        )
    step = slice_spacing_mm or slice_thickness_mm
    n_k = int(math.ceil(z_extent_mm / step)) + 1
    # A random sub-slice offset: inserts do not always sit centred on a slice.
    rng = np.random.default_rng([seed, 7])
    z0 = -0.5 * (n_k - 1) * step + rng.uniform(-0.5, 0.5) * step
    coords = (np.arange(matrix) - (matrix - 1) / 2) * pixel_mm
    grid = Grid(x=coords, y=coords.copy(), z=z0 + step * np.arange(n_k))
    canvas = Canvas(grid)
    box = tuple(slice(0, n) for n in grid.shape)
    X, Y, _ = grid.coords(box)
    a, b = _BODY_SEMI_AXES
    canvas.paint(box, (X / a) ** 2 + (Y / b) ** 2 <= 1.0, _WATER_EQUIVALENT_HU, None)
    labels = np.zeros(grid.shape, np.uint16)
    inserts: list[TruthLesion] = []
    for di, density in enumerate(QRM_DENSITIES):
        for si, size in enumerate(QRM_SIZES_MM):
            cx, cy = _insert_centre(si, di)
            r = _cylinder_raster(grid, cx, cy, size / 2, size)
            hu_insert = float(physics.density_to_hu(density, kvp, _WATER_EQUIVALENT_HU))
            sub = canvas.hu[r.box]
            sub += r.fraction * (np.float32(hu_insert) - sub)
            new_id = len(inserts) + 1
            own = r.fraction >= 0.5
            if not own.any():
                own = r.fraction == r.fraction.max()
            np.copyto(labels[r.box], np.uint16(new_id), where=own)
            idx = np.argwhere(r.fraction > 0)
            off = np.array([s.start for s in r.box])
            lo, hi = idx.min(0) + off, idx.max(0) + 1 + off
            volume = math.pi * (size / 2) ** 2 * size
            inserts.append(TruthLesion(
                id=new_id, region="other", kind="calibration_insert", side=None, level=None, segment=None,
                volume_mm3=volume, density_mg_cm3=density, mass_mg=volume * density / 1000,
                centroid_lps_mm=(cx, cy, 0.0), bbox_kji=tuple(int(v) for v in (*lo, *hi)),  # type: ignore[arg-type]
                bbox_mm=(cx - size / 2, cy - size / 2, -size / 2, cx + size / 2, cy + size / 2, size / 2),
                morphology="plaque", diameter_mm=size,
                extra={"length_mm": size, "hu_unblurred": round(hu_insert, 2),
                       "fine_model_volume_mm3": round(float(r.fraction.sum()) * float(np.prod(grid.spacing)), 4),
                       "name": f"HA{int(density)}-D{int(size)}"},
            ))
    fwhm = physics.kernel_fwhm_mm(kernel)
    sigma_z = math.sqrt(max(slice_thickness_mm**2 - step**2, 0.0) / 12.0)
    hu = physics.blur(canvas.hu, grid.spacing, fwhm, sigma_z)
    if noise_sigma_hu > 0:
        physics.add_correlated_noise(hu, noise_sigma_hu, 0.45 * fwhm / pixel_mm, (seed, 20))
    np.maximum(hu, np.float32(-1024.0), out=hu)
    acquisition = {"kvp": kvp, "kernel": kernel, "psf_fwhm_mm": fwhm, "noise_sigma_hu": noise_sigma_hu,
                   "slice_thickness_mm": slice_thickness_mm, "slice_spacing_mm": step, "pixel_mm": pixel_mm,
                   "matrix": matrix, "spacing_kji_mm": list(grid.spacing), "shape_kji": list(grid.shape),
                   "hu_per_mg_ha_cm3": round(physics.hu_per_mg_ha(kvp), 5)}
    return QRMPhantom(hu=hu, affine=grid.affine, spacing=grid.spacing, lesion_labels=labels,
                      inserts=inserts, acquisition=acquisition, seed=seed)


def write_qrm_phantom(phantom: QRMPhantom, out_dir: Path, *, overwrite: bool = False) -> Path:
    """Write ``DIR/dicom/`` and ``DIR/truth/`` (truth.json, lesions.nii.gz)."""
    out_dir = Path(out_dir)
    acq = phantom.acquisition
    write_ct_series(phantom.hu, phantom.spacing, phantom.affine, out_dir / "dicom", kvp=acq["kvp"],
                    kernel=acq["kernel"], series_description=f"calcdetect QRM phantom {acq['slice_thickness_mm']} mm",
                    slice_thickness_mm=acq["slice_thickness_mm"], seed=phantom.seed, overwrite=overwrite,
                    extra_tags={"BodyPartExamined": "PHANTOM"})
    write_label_nifti(phantom.lesion_labels, phantom.affine, out_dir / "truth" / "lesions.nii.gz")
    write_truth_json(out_dir / "truth" / "truth.json", phantom.truth_document())
    return out_dir


def cli_phantom_qrm(out_dir: Path, slice_thickness: float, *, kvp: float = 120.0, noise_sigma_hu: float = 10.0,
                    seed: int = 0, overwrite: bool = False, **options: Any) -> Path:
    """CLI entry: ``calcdetect phantom qrm -o DIR --slice-thickness MM``."""
    ph = generate_qrm_phantom(slice_thickness, kvp=kvp, noise_sigma_hu=noise_sigma_hu, seed=seed, **options)
    return write_qrm_phantom(ph, out_dir, overwrite=overwrite)
