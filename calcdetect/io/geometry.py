"""Slice geometry: sort, check, correct gantry tilt, reorient to canonical LPS.

Decisions (documented because they change what a user gets)
-----------------------------------------------------------
* Slices are sorted by Image Position (Patient) projected on the slice normal
  (row x column direction cosines), never by file name or Instance Number.
* At least :data:`MIN_SLICES` (3) slices make a volume; fewer raise
  :class:`TooFewSlicesError` (two slices cannot show a missing or uneven slice).
* Duplicate positions (within 1 % of the spacing) raise
  :class:`DuplicateSlicesError`; a gap of about n x the spacing raises
  :class:`MissingSlicesError`; any other deviation from a uniform step of more
  than ``max(0.05 mm, 5 %)`` raises :class:`NonUniformSpacingError`.
* Gantry tilt (slice positions stepping along an axis that is not the slice
  normal) is repaired: each slice is shifted in its own plane with linear
  interpolation (``scipy.ndimage.shift``) so the stack becomes orthogonal, and a
  warning says so. The slices keep their tilted plane; that obliquity stays in
  the affine. Tilts above :data:`MAX_TILT_DEG` are refused with
  :class:`GantryTiltError`.
* Reorientation to canonical (i -> Left, j -> Posterior, k -> Superior) uses
  axis permutations and flips only, chosen as the permutation whose axes are
  best aligned with L, P, S; residual obliquity stays in the affine.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from calcdetect.errors import (
    DuplicateSlicesError,
    GantryTiltError,
    GeometryError,
    MissingSlicesError,
    MixedOrientationError,
    NonUniformSpacingError,
    TooFewSlicesError,
)

__all__ = [
    "MIN_SLICES",
    "MAX_TILT_DEG",
    "StackGeometry",
    "stack_geometry",
    "correct_tilt",
    "to_canonical",
]

MIN_SLICES = 3
MAX_TILT_DEG = 30.0
_ORIENTATION_TOL = 1e-3


@dataclass(frozen=True)
class StackGeometry:
    """Where the sorted slices are.

    ``order`` sorts the input frames; ``affine`` maps ``(k, row, column, 1)`` of the
    *sorted, tilt-corrected* stack to LPS mm; ``shifts`` are per-slice in-plane
    shifts (rows, columns) in pixels that :func:`correct_tilt` applies (all zero
    without tilt); ``tilt_deg`` is the gantry tilt found.
    """

    order: np.ndarray
    affine: np.ndarray
    shifts: np.ndarray
    tilt_deg: float
    spacing: float


def _fmt(v: float) -> str:
    return f"{v:.1f}" if abs(v - round(v, 1)) < 1e-6 or abs(v) >= 10 else f"{v:.2f}"


def stack_geometry(
    positions: np.ndarray,
    orientations: np.ndarray,
    pixel_spacing: tuple[float, float],
    *,
    min_slices: int = MIN_SLICES,
) -> StackGeometry:
    """Sort slices and check that they form a regular volume.

    Parameters
    ----------
    positions : (n, 3) array
        Image Position (Patient) of each frame, LPS mm.
    orientations : (n, 6) array
        Image Orientation (Patient) of each frame.
    pixel_spacing : (float, float)
        Pixel Spacing (row spacing, column spacing) in mm.
    min_slices : int
        Fewest slices accepted as a volume.

    Returns
    -------
    StackGeometry

    Raises
    ------
    TooFewSlicesError, MixedOrientationError, DuplicateSlicesError,
    MissingSlicesError, NonUniformSpacingError, GantryTiltError
        With a message that says what is wrong and where.
    """
    positions = np.asarray(positions, dtype=np.float64)
    orientations = np.asarray(orientations, dtype=np.float64)
    n = len(positions)
    if n < min_slices:
        raise TooFewSlicesError(
            f"the series has {n} slice(s); at least {min_slices} are needed for a volume; "
            "export the full series (a single image or a pair cannot be measured in 3-D)"
        )
    spread = float(np.abs(orientations - orientations[0]).max())
    if spread >= _ORIENTATION_TOL:
        distinct: list[np.ndarray] = []  # greedy clusters, for the message only
        for o in orientations:
            if not any(np.abs(o - d).max() < _ORIENTATION_TOL for d in distinct):
                distinct.append(o)
        shown = "; ".join("[" + ", ".join(f"{v:.3f}" for v in d) + "]" for d in distinct[:3])
        raise MixedOrientationError(
            f"the series mixes {len(distinct)} slice orientations (direction cosines differ "
            f"by up to {spread:.3f}: {shown}); a volume needs one orientation; load each "
            "orientation as its own series (discover() splits them by default)"
        )
    row = orientations[0, :3] / np.linalg.norm(orientations[0, :3])
    col = orientations[0, 3:] / np.linalg.norm(orientations[0, 3:])
    normal = np.cross(row, col)
    if np.linalg.norm(normal) < 0.5 or abs(float(row @ col)) > 0.01:
        raise GeometryError(
            f"Image Orientation (Patient) {orientations[0].round(4).tolist()} is not two "
            "orthogonal unit vectors; the header is damaged"
        )
    normal /= np.linalg.norm(normal)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    d = along[order]
    steps = np.diff(d)
    positive = steps[steps > 1e-3]
    step = float(np.median(positive)) if len(positive) else 0.0
    dup_tol = max(1e-3, 0.01 * step)
    dup = np.flatnonzero(steps <= dup_tol)
    if len(dup):
        values, counts = np.unique(np.round(d[dup], 2), return_counts=True)
        worst = int(np.argmax(counts))
        raise DuplicateSlicesError(
            f"{len(dup) + len(values)} of {n} slices share {len(values)} position(s) along the "
            f"slice normal (e.g. {_fmt(float(values[worst]))} mm holds {counts[worst] + 1} "
            "slices); the series probably holds several phases, echoes or acquisitions; "
            "export one of them as its own series"
        )
    gaps = np.flatnonzero(steps > 1.5 * step)
    if len(gaps):
        g = int(gaps[0])
        missing = int(round(steps[g] / step)) - 1
        total = int(sum(max(int(round(steps[i] / step)) - 1, 1) for i in gaps))
        raise MissingSlicesError(
            f"slice gap of {_fmt(steps[g])} mm between {_fmt(d[g])} and {_fmt(d[g + 1])} mm "
            f"(along the slice normal) where spacing is {_fmt(step)} mm: {missing} slice"
            f"{'s' if missing != 1 else ''} missing ({total} in all, {len(gaps)} gap(s)); "
            "re-export the complete series"
        )
    spacing = float((d[-1] - d[0]) / (n - 1))
    residual = np.abs(d - (d[0] + spacing * np.arange(n)))
    tol = max(0.05, 0.05 * spacing)
    if residual.max() > tol:
        w = int(np.argmax(residual))
        raise NonUniformSpacingError(
            f"slice spacing is not uniform: the slice at {_fmt(d[w])} mm is {residual[w]:.2f} mm "
            f"off a regular {spacing:.3f} mm grid (steps range {steps.min():.3f} to "
            f"{steps.max():.3f} mm); resample the series to uniform spacing first"
        )
    # Gantry tilt: in-plane drift of the slice origins along the stack.
    p = positions[order]
    rel = p - p[0]
    in_plane = np.stack([rel @ col, rel @ row], axis=1)  # mm along rows, columns
    per_step = (in_plane[-1] - in_plane[0]) / (n - 1)
    drift = np.linalg.norm(in_plane - np.outer(np.arange(n), per_step), axis=1).max()
    spacing_rc = np.asarray(pixel_spacing, dtype=np.float64)
    tilt = math.degrees(math.atan2(float(np.linalg.norm(per_step)), spacing))
    if drift > max(0.1, 0.05 * spacing) + 0.1 * float(spacing_rc.min()):
        raise GeometryError(
            f"slice origins wander in-plane irregularly (up to {drift:.2f} mm off a straight "
            "line); the series is not a single stack; re-export it"
        )
    shifts = np.zeros((n, 2))
    if float(np.abs(per_step).max()) * (n - 1) > 0.1 * float(spacing_rc.min()):
        if tilt > MAX_TILT_DEG:
            raise GantryTiltError(
                f"gantry tilt of {tilt:.1f} degrees exceeds the {MAX_TILT_DEG:.0f} degree limit "
                "for in-plane shear correction; reconstruct the series without tilt"
            )
        # Slice k's origin sits k * per_step off the normal through slice 0, so its
        # pixel (r, c) shows what the corrected grid holds at (r, c) + k * per_step;
        # ndimage.shift(x, s)[r] == x[r - s], hence a positive shift.
        shifts = np.outer(np.arange(n), per_step) / spacing_rc
    else:
        tilt = 0.0
    affine = np.eye(4)
    affine[:3, 0] = normal * spacing
    affine[:3, 1] = col * spacing_rc[0]
    affine[:3, 2] = row * spacing_rc[1]
    affine[:3, 3] = p[0]
    return StackGeometry(order=order, affine=affine, shifts=shifts, tilt_deg=tilt, spacing=spacing)


def correct_tilt(array: np.ndarray, shifts: np.ndarray, fill: float) -> None:
    """Shift each slice in-plane (in place) by ``shifts[k]`` pixels (rows, columns)."""
    for k in range(array.shape[0]):
        if np.any(np.abs(shifts[k]) > 1e-6):
            array[k] = ndimage.shift(array[k], shifts[k], order=1, mode="constant", cval=fill)


def to_canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permute and flip array axes so i -> Left, j -> Posterior, k -> Superior.

    Parameters
    ----------
    array : (a, b, c) array
        The volume on the grid described by ``affine``.
    affine : (4, 4) array
        Maps ``(index0, index1, index2, 1)`` to LPS mm.

    Returns
    -------
    array, affine
        A view (flips and transposes only, no resampling) and its affine, with
        axis 0 closest to S, axis 1 to P and axis 2 to L, each increasing.
    """
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    targets = (2, 1, 0)  # new axis 0 -> z (S), 1 -> y (P), 2 -> x (L)
    best = max(
        itertools.permutations(range(3)),
        key=lambda perm: sum(abs(directions[targets[a], perm[a]]) for a in range(3)),
    )
    out = np.transpose(array, best)
    new = np.eye(4)
    new[:3, :3] = affine[:3, :3][:, list(best)]
    new[:3, 3] = affine[:3, 3]
    for axis in range(3):
        if new[targets[axis], axis] < 0:
            out = np.flip(out, axis=axis)
            new[:3, 3] = new[:3, 3] + new[:3, axis] * (out.shape[axis] - 1)
            new[:3, axis] = -new[:3, axis]
    return out, new
