"""Analytic shapes and supersampled rasterisation: the truth volumes are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calcdetect.phantoms.geometry import Ellipsoid, Grid, Tube, TubeWallArc, rasterize, rotation


def _grid(step=(1.25, 0.7, 0.7), n=(40, 64, 64)) -> Grid:
    sk, sj, si = step
    return Grid(x=(np.arange(n[2]) - n[2] / 2) * si, y=(np.arange(n[1]) - n[1] / 2) * sj,
                z=(np.arange(n[0]) - n[0] / 2) * sk)


@pytest.mark.parametrize("radii", [(1.5, 1.5, 1.5), (3.0, 2.0, 4.5)])
def test_ellipsoid_volume_and_centroid(radii) -> None:
    g = _grid()
    centre = (1.13, -2.37, 0.41)
    r = rasterize(Ellipsoid(centre, radii, rotation(30, 20, 10)), g)
    assert r is not None
    assert r.volume_mm3 == pytest.approx(4 / 3 * math.pi * np.prod(radii), rel=0.03)
    np.testing.assert_allclose(r.centroid_lps, centre, atol=0.1)
    # The covered fractions integrate to the same volume.
    assert float(r.fraction.sum()) * float(np.prod(g.spacing)) == pytest.approx(r.volume_mm3, rel=1e-5)


def test_tube_distance_on_an_oblique_straight_tube() -> None:
    # Axis through the origin with direction (1, 0, 2)/sqrt(5); radius 4.
    tube = Tube(np.array([(-10.0, 0.0, -20.0), (0.0, 0.0, 0.0), (10.0, 0.0, 20.0)]), 4.0)
    p = np.array([3.0, 2.0, 1.0])
    d, _, _ = tube.dist(np.float32(p[0]), np.float32(p[1]), np.array([p[2]], np.float32))
    u = np.array([1.0, 0.0, 2.0]) / math.sqrt(5)
    expected = np.linalg.norm(p - (p @ u) * u)
    assert float(d[0]) == pytest.approx(expected, abs=1e-3)


def test_full_wall_ring_volume() -> None:
    """A 360-degree wall arc on a straight vertical tube is an annulus."""
    g = _grid(step=(1.0, 0.6, 0.6))
    tube = Tube(np.array([(0.0, 0.0, -30.0), (0.0, 0.0, 30.0)]), 8.0)
    arc = TubeWallArc(tube, -5.0, 5.0, 0.0, math.pi, -0.5, 1.5)
    r = rasterize(arc, g)
    assert r is not None
    expected = math.pi * (9.5**2 - 7.5**2) * 10.0
    assert r.volume_mm3 == pytest.approx(expected, rel=0.03)
    # Half the circle (posterior wall, theta = +pi/2) has half the volume, on the +y side.
    half = rasterize(TubeWallArc(tube, -5.0, 5.0, math.pi / 2, math.pi / 2, -0.5, 1.5), g)
    assert half is not None and half.volume_mm3 == pytest.approx(expected / 2, rel=0.04)
    assert half.centroid_lps[1] > 5.0


def test_shape_outside_grid_is_none() -> None:
    assert rasterize(Ellipsoid((500.0, 0.0, 0.0), (2.0, 2.0, 2.0)), _grid()) is None
