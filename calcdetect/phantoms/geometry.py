"""Analytic shapes on a voxel grid: the building blocks of the phantoms.

Everything works on coordinate arrays in LPS mm that broadcast against each
other (``Z`` shaped ``(nk, 1, 1)``, ``Y`` ``(1, nj, 1)``, ``X`` ``(1, 1, ni)``),
so a structure costs one vectorised evaluation over its bounding box and never a
Python loop over voxels.

Shapes used for lesions also support supersampled rasterisation
(:func:`rasterize`): the fraction of each voxel covered by the shape, which is
what makes partial-volume effects and the true volume exact up to the
sub-sample spacing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "Grid",
    "Canvas",
    "Tube",
    "Shape",
    "Ellipsoid",
    "Capsule",
    "HollowEllipsoid",
    "TubeWallArc",
    "EllipticRingArc",
    "Union",
    "Cylinder",
    "Raster",
    "rasterize",
    "rotation",
]

Box = tuple[slice, slice, slice]


def rotation(z_deg: float = 0.0, y_deg: float = 0.0, x_deg: float = 0.0) -> np.ndarray:
    """Rotation matrix R = Rz @ Ry @ Rx (degrees); local -> world is ``R @ p``."""
    a, b, c = (math.radians(v) for v in (z_deg, y_deg, x_deg))
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Grid:
    """An axis-aligned LPS voxel grid: ``x[i]``, ``y[j]``, ``z[k]`` voxel centres (mm)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.z), len(self.y), len(self.x))

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (
            float(self.z[1] - self.z[0]) if len(self.z) > 1 else 1.0,
            float(self.y[1] - self.y[0]),
            float(self.x[1] - self.x[0]),
        )

    @property
    def affine(self) -> np.ndarray:
        sk, sj, si = self.spacing
        aff = np.zeros((4, 4))
        aff[2, 0], aff[1, 1], aff[0, 2] = sk, sj, si
        aff[:3, 3] = (self.x[0], self.y[0], self.z[0])
        aff[3, 3] = 1.0
        return aff

    def _axis_slice(self, coords: np.ndarray, lo: float, hi: float) -> slice:
        step = float(coords[1] - coords[0]) if len(coords) > 1 else 1.0
        a = int(math.floor((lo - coords[0]) / step))
        b = int(math.ceil((hi - coords[0]) / step)) + 1
        return slice(max(a, 0), max(min(b, len(coords)), 0))

    def box(self, xlim: tuple[float, float], ylim: tuple[float, float], zlim: tuple[float, float]) -> Box:
        """Index box ``(k, j, i)`` covering the mm limits (clipped to the grid)."""
        return (
            self._axis_slice(self.z, *zlim),
            self._axis_slice(self.y, *ylim),
            self._axis_slice(self.x, *xlim),
        )

    def coords(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable ``X, Y, Z`` (float32) for a box."""
        ks, js, is_ = box
        return (
            self.x[is_].astype(np.float32)[None, None, :],
            self.y[js].astype(np.float32)[None, :, None],
            self.z[ks].astype(np.float32)[:, None, None],
        )

    @staticmethod
    def empty(box: Box) -> bool:
        return any(s.stop <= s.start for s in box)


class Canvas:
    """The HU volume and anatomy label volume being painted (later paint wins)."""

    def __init__(self, grid: Grid, background_hu: float = -1000.0) -> None:
        self.grid = grid
        self.hu = np.full(grid.shape, background_hu, dtype=np.float32)
        self.labels = np.zeros(grid.shape, dtype=np.uint8)

    @classmethod
    def from_arrays(cls, grid: Grid, hu: np.ndarray, labels: np.ndarray) -> "Canvas":
        """A canvas over existing arrays (shapes must match the grid)."""
        if hu.shape != grid.shape or labels.shape != grid.shape:
            raise ValueError(f"arrays {hu.shape}/{labels.shape} do not match the grid {grid.shape}")
        out = cls.__new__(cls)
        out.grid, out.hu, out.labels = grid, hu, labels
        return out

    def paint(self, box: Box, mask: np.ndarray, hu: float | np.ndarray, label: int | None = None) -> None:
        """Set HU (and the label, when given) where ``mask`` is true inside ``box``."""
        if Grid.empty(box):
            return
        sub = self.hu[box]
        mask = np.broadcast_to(mask, sub.shape)
        np.copyto(sub, np.asarray(hu, dtype=np.float32), where=mask)
        if label is not None:
            np.copyto(self.labels[box], np.uint8(label), where=mask)


class Tube:
    """A tube along a centreline that runs mostly cranio-caudally.

    The centreline ``x(z), y(z)`` and radius ``r(z)`` are interpolated from
    control points; the distance of a voxel to the axis is measured to the local
    tangent line, which is exact for straight pieces and good for tubes that are
    less than ~70 degrees from the z axis (aorta, iliac vessels, ureters, canal).
    """

    def __init__(self, points: np.ndarray, radii: np.ndarray | float, step_mm: float = 0.5) -> None:
        pts = np.asarray(points, dtype=np.float64)
        order = np.argsort(pts[:, 2])
        pts = pts[order]
        if np.any(np.diff(pts[:, 2]) <= 0):
            raise ValueError("tube control points need strictly monotonic z")
        r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(pts),))[order]
        self.z0, self.z1 = float(pts[0, 2]), float(pts[-1, 2])
        n = max(int((self.z1 - self.z0) / step_mm) + 2, 3)
        zt = np.linspace(self.z0, self.z1, n)
        # Smooth the polyline a little so joints do not kink.
        from scipy.interpolate import PchipInterpolator

        self._zt = zt
        self._xt = PchipInterpolator(pts[:, 2], pts[:, 0])(zt)
        self._yt = PchipInterpolator(pts[:, 2], pts[:, 1])(zt)
        self._rt = np.interp(zt, pts[:, 2], r)
        self._txt = np.gradient(self._xt, zt)
        self._tyt = np.gradient(self._yt, zt)

    def at(self, z: np.ndarray) -> tuple[np.ndarray, ...]:
        """Centre ``cx, cy``, radius and tangent slopes ``dx/dz, dy/dz`` at ``z``."""
        z = np.asarray(z, dtype=np.float64)
        f = lambda t: np.interp(z, self._zt, t).astype(np.float32)  # noqa: E731
        return f(self._xt), f(self._yt), f(self._rt), f(self._txt), f(self._tyt)

    def dist(self, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distance to the axis, in-plane offset ``dx, dy`` from the centre."""
        cx, cy, _, tx, ty = self.at(Z)
        dx = X - cx
        dy = Y - cy
        n2 = tx * tx + ty * ty + 1.0
        dot = dx * tx + dy * ty
        d2 = dx * dx + dy * dy - dot * dot / n2
        return np.sqrt(np.maximum(d2, 0.0)), dx, dy

    def radius(self, Z: np.ndarray) -> np.ndarray:
        return self.at(Z)[2]

    def bounds(self, margin: float) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """mm bounding box (x, y, z) of the tube plus ``margin``."""
        sec = np.sqrt(1 + self._txt**2 + self._tyt**2)
        reach = float(np.max(self._rt * sec)) + margin
        return (
            (float(self._xt.min()) - reach, float(self._xt.max()) + reach),
            (float(self._yt.min()) - reach, float(self._yt.max()) + reach),
            (self.z0, self.z1),
        )

    def point(self, z: float) -> np.ndarray:
        cx, cy, *_ = self.at(np.array([z]))
        return np.array([float(cx[0]), float(cy[0]), z])

    def paint(self, canvas: Canvas, hu: float, label: int | None, extra_radius: float = 0.0) -> None:
        """Paint the solid tube of radius ``r(z) + extra_radius``."""
        xl, yl, zl = self.bounds(extra_radius + 1.0)
        box = canvas.grid.box(xl, yl, zl)
        if Grid.empty(box):
            return
        X, Y, Z = canvas.grid.coords(box)
        d, _, _ = self.dist(X, Y, Z)
        canvas.paint(box, d <= self.radius(Z) + extra_radius, hu, label)


class Shape(Protocol):
    """A solid defined analytically in LPS mm."""

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lo_xyz, hi_xyz)`` mm."""
        ...

    def inside(self, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Ellipsoid:
    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    rot: np.ndarray | None = None  # local -> world rotation

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(self.centre)
        r = np.asarray(self.radii)
        if self.rot is not None:
            # Exact half-extent of a rotated ellipsoid along each world axis.
            r = np.sqrt(((self.rot * r[None, :]) ** 2).sum(axis=1))
        return c - r, c + r

    def inside(self, X, Y, Z):
        dx, dy, dz = X - self.centre[0], Y - self.centre[1], Z - self.centre[2]
        if self.rot is not None:
            R = self.rot.astype(np.float32)
            lx = R[0, 0] * dx + R[1, 0] * dy + R[2, 0] * dz
            ly = R[0, 1] * dx + R[1, 1] * dy + R[2, 1] * dz
            lz = R[0, 2] * dx + R[1, 2] * dy + R[2, 2] * dz
            dx, dy, dz = lx, ly, lz
        rx, ry, rz = self.radii
        return (dx / rx) ** 2 + (dy / ry) ** 2 + (dz / rz) ** 2 <= 1.0


@dataclass(frozen=True)
class HollowEllipsoid:
    """An ellipsoid with a central lucent core (phleboliths)."""

    outer: Ellipsoid
    core_fraction: float = 0.4

    def bounds(self):
        return self.outer.bounds()

    def inside(self, X, Y, Z):
        o = self.outer
        core = Ellipsoid(o.centre, tuple(r * self.core_fraction for r in o.radii), o.rot)
        return o.inside(X, Y, Z) & ~core.inside(X, Y, Z)


@dataclass(frozen=True)
class Capsule:
    """All points within ``radius`` of the segment a-b (any orientation)."""

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radius: float

    def bounds(self):
        a, b = np.asarray(self.a), np.asarray(self.b)
        return np.minimum(a, b) - self.radius, np.maximum(a, b) + self.radius

    def inside(self, X, Y, Z):
        a = np.asarray(self.a, np.float32)
        ab = np.asarray(self.b, np.float32) - a
        L2 = float(ab @ ab) or 1e-9
        px, py, pz = X - a[0], Y - a[1], Z - a[2]
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / L2, 0.0, 1.0)
        ex, ey, ez = px - t * ab[0], py - t * ab[1], pz - t * ab[2]
        return ex * ex + ey * ey + ez * ez <= self.radius**2


def _within_angle(dx: np.ndarray, dy: np.ndarray, theta: float, half_angle: float) -> np.ndarray:
    """Whether the direction (dx, dy) lies within ``half_angle`` of ``theta`` (radians).

    Uses cos(difference) = (d . u) / |d| instead of arctan2: no transcendental
    per sample.
    """
    if half_angle >= np.pi:
        return np.ones(np.broadcast_shapes(np.shape(dx), np.shape(dy)), bool)
    dot = dx * np.float32(math.cos(theta)) + dy * np.float32(math.sin(theta))
    return dot >= np.float32(math.cos(half_angle)) * np.sqrt(dx * dx + dy * dy)


@dataclass(frozen=True)
class TubeWallArc:
    """A curvilinear calcification in a vessel wall.

    Points whose distance to the axis lies in ``[r(z) + r_in, r(z) + r_out]``,
    whose in-plane angle about the centre is within ``half_angle`` of ``theta``
    (radians; LPS: 0 = +x = patient left, pi/2 = +y = posterior) and whose z is
    in ``[z0, z1]``.
    """

    tube: Tube
    z0: float
    z1: float
    theta: float
    half_angle: float
    r_in: float
    r_out: float

    def bounds(self):
        zs = np.linspace(self.z0, self.z1, 8)
        cx, cy, r, tx, ty = self.tube.at(zs)
        sec = np.sqrt(1 + tx**2 + ty**2)
        reach = float(np.max((r + self.r_out) * sec)) + 0.5
        lo = np.array([cx.min() - reach, cy.min() - reach, self.z0])
        hi = np.array([cx.max() + reach, cy.max() + reach, self.z1])
        return lo, hi

    def inside(self, X, Y, Z):
        d, dx, dy = self.tube.dist(X, Y, Z)
        r = self.tube.radius(Z)
        z0, z1 = max(self.z0, self.tube.z0), min(self.z1, self.tube.z1)
        return (
            (Z >= z0) & (Z <= z1)
            & (d >= r + self.r_in) & (d <= r + self.r_out)
            & _within_angle(dx, dy, self.theta, self.half_angle)
        )


@dataclass(frozen=True)
class EllipticRingArc:
    """Part of the band between two offset ellipses around a z-varying centre.

    Used for the ligamentum flavum: the canal is an ellipse of semi-axes
    ``(a, b)`` centred on ``centre(z)``; the band spans offsets ``s0..s1`` mm
    outside it, the angles ``theta +- half_angle`` and ``z0..z1``.
    """

    centre: Tube
    a: float
    b: float
    s0: float
    s1: float
    theta: float
    half_angle: float
    z0: float
    z1: float

    def bounds(self):
        zs = np.linspace(self.z0, self.z1, 8)
        cx, cy, *_ = self.centre.at(zs)
        reach = max(self.a, self.b) + self.s1 + 0.5
        return (np.array([cx.min() - reach, cy.min() - reach, self.z0]),
                np.array([cx.max() + reach, cy.max() + reach, self.z1]))

    def inside(self, X, Y, Z):
        cx, cy, *_ = self.centre.at(Z)
        dx, dy = X - cx, Y - cy
        q_out = (dx / (self.a + self.s1)) ** 2 + (dy / (self.b + self.s1)) ** 2
        q_in = (dx / (self.a + self.s0)) ** 2 + (dy / (self.b + self.s0)) ** 2
        return (
            (Z >= self.z0) & (Z <= self.z1) & (q_out <= 1.0) & (q_in > 1.0)
            & _within_angle(dx, dy, self.theta, self.half_angle)
        )


@dataclass(frozen=True)
class Union:
    parts: tuple

    def bounds(self):
        los, his = zip(*(p.bounds() for p in self.parts))
        return np.min(los, axis=0), np.max(his, axis=0)

    def inside(self, X, Y, Z):
        out = self.parts[0].inside(X, Y, Z)
        for p in self.parts[1:]:
            out = out | p.inside(X, Y, Z)
        return out


@dataclass(frozen=True)
class Raster:
    """A shape rasterised on the grid: covered fraction per voxel in ``box``."""

    box: Box
    fraction: np.ndarray  # float32, shape of the box
    volume_mm3: float
    centroid_lps: tuple[float, float, float]
    lo_mm: tuple[float, float, float]
    hi_mm: tuple[float, float, float]


def rasterize(shape: Shape, grid: Grid, sub_mm: float = 0.2, max_sub: int = 6) -> Raster | None:
    """Fraction of every voxel inside ``shape``, by regular supersampling.

    Each voxel is split into ``ceil(spacing / sub_mm)`` (at most ``max_sub``)
    sub-samples per axis; the volume, centroid and extent come from the inside
    sub-samples (the "fine model"). Returns ``None`` when the shape misses the
    grid or is smaller than one sub-sample.
    """
    lo, hi = shape.bounds()
    sk, sj, si = grid.spacing
    box = grid.box((lo[0] - si, hi[0] + si), (lo[1] - sj, hi[1] + sj), (lo[2] - sk, hi[2] + sk))
    if Grid.empty(box):
        return None
    ks, js, is_ = box
    n = [min(max_sub, max(1, math.ceil(s / sub_mm))) for s in (sk, sj, si)]

    def sub_coords(centres: np.ndarray, step: float, m: int) -> np.ndarray:
        offs = (np.arange(m) + 0.5) / m - 0.5
        return (centres[:, None] + offs[None, :] * step).reshape(-1).astype(np.float32)

    z = sub_coords(grid.z[ks], sk, n[0])
    y = sub_coords(grid.y[js], sj, n[1])
    x = sub_coords(grid.x[is_], si, n[2])
    inside = shape.inside(x[None, None, :], y[None, :, None], z[:, None, None])
    inside = np.broadcast_to(inside, (len(z), len(y), len(x)))
    count = int(inside.sum())
    if count == 0:
        return None
    nk, nj, ni = ks.stop - ks.start, js.stop - js.start, is_.stop - is_.start
    frac = inside.reshape(nk, n[0], nj, n[1], ni, n[2]).mean(axis=(1, 3, 5), dtype=np.float32)
    sub_vol = sk * sj * si / (n[0] * n[1] * n[2])
    kk = np.flatnonzero(inside.any(axis=(1, 2)))
    jj = np.flatnonzero(inside.any(axis=(0, 2)))
    ii = np.flatnonzero(inside.any(axis=(0, 1)))
    wz = inside.sum(axis=(1, 2))
    wy = inside.sum(axis=(0, 2))
    wx = inside.sum(axis=(0, 1))
    centroid = (float(wx @ x) / count, float(wy @ y) / count, float(wz @ z) / count)
    lo_mm = (float(x[ii[0]]), float(y[jj[0]]), float(z[kk[0]]))
    hi_mm = (float(x[ii[-1]]), float(y[jj[-1]]), float(z[kk[-1]]))
    return Raster(box, frac, count * sub_vol, centroid, lo_mm, hi_mm)


@dataclass(frozen=True)
class Cylinder:
    """A solid cylinder with its axis along z (the QRM calcium inserts)."""

    centre: tuple[float, float, float]
    radius: float
    length: float

    def bounds(self):
        c = np.asarray(self.centre)
        h = np.array([self.radius, self.radius, self.length / 2])
        return c - h, c + h

    def inside(self, X, Y, Z):
        dx, dy, dz = X - self.centre[0], Y - self.centre[1], Z - self.centre[2]
        return (dx * dx + dy * dy <= self.radius**2) & (np.abs(dz) <= self.length / 2)
