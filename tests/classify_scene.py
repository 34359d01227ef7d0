"""Small constructed scenes for classify() tests: label maps of discs, box lesions,
and lesions with their axes measured as calcdetect.candidates measures them."""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.regions import structure
from calcdetect.types import AcquisitionInfo, AnatomyMap, Lesion, Volume

Shape = tuple[int, int, int]
Spacing = tuple[float, float, float]


def label(name: str) -> int:
    return structure(name).label


def affine(spacing: Spacing) -> np.ndarray:
    """Axis-aligned LPS affine for a (k, j, i) grid: i along x, j along y, k along z."""
    a = np.zeros((4, 4))
    a[0, 2], a[1, 1], a[2, 0] = spacing[2], spacing[1], spacing[0]
    a[3, 3] = 1.0
    return a


def disk(shape: Shape, jc: float, ic: float, r: float) -> np.ndarray:
    jj, ii = np.mgrid[: shape[1], : shape[2]]
    return (jj - jc) ** 2 + (ii - ic) ** 2 <= r * r


def tube_scene(shape: Shape, spacing: Spacing,
               tubes: list[tuple[str, float, float, float]]) -> tuple[Volume, AnatomyMap]:
    """An empty 120 kVp CT of body with structures drawn as tubes along z, each
    ``(name, j centre, i centre, radius)`` in voxels; later tubes overwrite earlier."""
    labels = np.full(shape, label("body"), dtype=np.uint8)
    for name, jc, ic, r in tubes:
        labels[:, disk(shape, jc, ic, r)] = label(name)
    am = AnatomyMap(labels=labels, affine=affine(spacing), slice_levels=(None,) * shape[0])
    vol = Volume(np.zeros(shape, np.float32), spacing, affine(spacing), AcquisitionInfo("CT", kvp=120.0))
    return vol, am


def box(shape: Shape, k0: int, k1: int, j0: int, j1: int, i0: int, i1: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[k0:k1, j0:j1, i0:i1] = True
    return m


def measured_lesion(vol: Volume, mask: np.ndarray, peak: float = 900.0) -> Lesion:
    """A lesion with its axes as calcdetect.candidates measures them (each voxel a box)."""
    sp = np.array(vol.spacing, dtype=float)
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    pts = idx * sp
    cov = np.cov((pts - pts.mean(0)).T) + np.diag(sp**2 / 12.0)
    axes = np.sqrt(12.0 * np.sort(np.linalg.eigvalsh(cov))[::-1])
    cen = idx.mean(0)
    return Lesion(
        label=1, bbox=(*lo.tolist(), *hi.tolist()), mask=mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]],
        voxel_count=len(idx), volume_mm3=len(idx) * float(np.prod(sp)), agatston=0.0, mass_mg=0.0, peak_hu=peak,
        mean_hu=peak, centroid_lps_mm=tuple(vol.index_to_lps(cen).tolist()), centroid_kji=tuple(cen.tolist()),
        max_diameter_mm=float(axes[0]), axes_mm=tuple(axes.tolist()),
        elongation=float(1 - axes[1] / axes[0]), central_lucency=False,
    )
