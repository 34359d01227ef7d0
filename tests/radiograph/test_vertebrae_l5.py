"""The missing L5 (issue #6): a chain that ends at L4-L5 because L5 stands tilted against
the strip and its L5-S1 disc never dips on the strip's rows; every level would be named
one too low. What lies below the lowest disc tells L5 (an upright-ish body with a sharp
superior endplate) from the sacrum (its top tilted 30-40 deg and turned backwards)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from calcdetect.radiograph.vertebrae import STEP_MM, SpineStrip, Vertebra, _missed_l5

T_ANT, T_POST = 100, 180  # body edges on the strip (40 mm deep at 0.5 mm per pixel)
HEIGHT, DISC = 56, 16  # 28 mm bodies, 8 mm discs
TOP = 40


def _block(shape: tuple[int, int], centre: tuple[float, float], height: float, depth: float,
           tilt_deg: float) -> np.ndarray:
    """A rectangle of bone on the strip, turned by ``tilt_deg`` (anterior end lower when > 0)."""
    s, t = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    a = math.radians(tilt_deg)
    ds, dt = s - centre[0], t - centre[1]
    along = ds * math.cos(a) + dt * math.sin(a)
    across = -ds * math.sin(a) + dt * math.cos(a)
    return ((np.abs(along) <= height / 2) & (np.abs(across) <= depth / 2)).astype(float)


def _strip_with(lowest: np.ndarray, n_rows: int, seed: int) -> tuple[SpineStrip, list[Vertebra], list[int]]:
    """Four upright bodies (the chain, L1-L4) with ``lowest`` (bone below the L4-L5 disc) added."""
    shape = (n_rows, 300)
    image = np.full(shape, 0.2)
    verts, discs = [], []
    for k in range(4):
        sup = TOP + k * (HEIGHT + DISC)
        image = np.maximum(image, 1.0 * _block(shape, (sup + HEIGHT / 2, (T_ANT + T_POST) / 2), HEIGHT,
                                                T_POST - T_ANT, 0.0))
        verts.append(Vertebra(None, np.zeros((4, 2)), 0.8, float(sup), float(sup + HEIGHT), T_ANT, T_POST))
        discs.append(sup - DISC // 2)
    discs.append(int(verts[-1].s_inf + DISC // 2))
    image = np.maximum(image, lowest)
    image = ndimage.gaussian_filter(image, 1.5) + np.random.default_rng(seed).normal(0, 0.02, shape)
    path = np.column_stack([np.arange(n_rows, dtype=float), np.full(n_rows, 150.0)])
    normal = np.tile([0.0, 1.0], (n_rows, 1))
    strip = SpineStrip(image.astype(np.float32), path, normal, 150, STEP_MM, False, 400)
    return strip, verts, discs


def _below_l4(tilt_deg: float, shift_t: float, height: float, n_rows: int = 560) -> np.ndarray:
    d_l4l5 = TOP + 4 * (HEIGHT + DISC) - DISC // 2
    centre = (d_l4l5 + DISC / 2 + height / 2, (T_ANT + T_POST) / 2 + shift_t)
    return 1.0 * _block((n_rows, 300), centre, height, T_POST - T_ANT, tilt_deg)


def _wedge_l5(sup_deg: float, inf_deg: float, n_rows: int = 560) -> np.ndarray:
    """L5 as it stands below L4-L5: a wedge whose superior endplate is nearly parallel to
    L4's and whose inferior endplate (the L5-S1 disc's roof) is tilted ``inf_deg``, its
    anterior end lower; ``HEIGHT`` high at mid-depth."""
    s, t = np.mgrid[0:n_rows, 0:300].astype(float)
    s_sup = TOP + 4 * (HEIGHT + DISC)
    t_c = (T_ANT + T_POST) / 2
    below_sup = s >= s_sup - (t - t_c) * math.tan(math.radians(sup_deg))
    above_inf = s <= s_sup + HEIGHT - (t - t_c) * math.tan(math.radians(inf_deg))
    return 1.0 * (below_sup & above_inf & (t >= T_ANT) & (t <= T_POST))


def _sacrum_below_wedge(top_deg: float = 35.0, n_rows: int = 560) -> np.ndarray:
    """The sacrum below :func:`_wedge_l5`: its top (the promontory) ``DISC`` below L5's
    inferior endplate at mid-depth and tilted ``top_deg`` (anterior end lower), the bone
    reaching to the strip's end (every L5 stands on the sacrum across the L5-S1 disc)."""
    s, t = np.mgrid[0:n_rows, 0:300].astype(float)
    t_c = (T_ANT + T_POST) / 2
    s_top = TOP + 4 * (HEIGHT + DISC) + HEIGHT + DISC
    below_top = s >= s_top - (t - t_c) * math.tan(math.radians(top_deg))
    return 1.0 * (below_top & (t >= T_ANT) & (t <= T_POST + 20))


def test_a_tilted_l5_below_the_chain_is_added_where_it_stands():
    """L5's L5-S1 disc tilted 25 deg below L4-L5: L5 is found, centred on the body."""
    for seed in range(3):
        lowest = np.maximum(_wedge_l5(5.0, 25.0), _sacrum_below_wedge())
        strip, verts, discs = _strip_with(lowest, 560, seed)
        l5 = _missed_l5(strip, verts, discs, float(HEIGHT + DISC), T_ANT, T_POST)
        assert l5 is not None
        truth_s = TOP + 4 * (HEIGHT + DISC) + HEIGHT / 2
        assert abs(0.5 * (l5.s_sup + l5.s_inf) - truth_s) * STEP_MM < 4.0
        assert abs((l5.s_inf - l5.s_sup) - HEIGHT) * STEP_MM < 6.0


def test_the_sacrum_below_a_correct_chain_is_not_taken_for_l5():
    """Below L5-S1 the sacrum's top is tilted 35 deg and turned backwards: no body is added."""
    for seed in range(3):
        lowest = _below_l4(35.0, 25.0, 3 * HEIGHT)
        strip, verts, discs = _strip_with(lowest, 560, seed)
        assert _missed_l5(strip, verts, discs, float(HEIGHT + DISC), T_ANT, T_POST) is None


def test_no_body_is_added_without_room_below_the_chain():
    """The image ends just below the lowest disc: nothing to add (and nothing to index past)."""
    lowest = _below_l4(0.0, 0.0, HEIGHT, n_rows=TOP + 4 * (HEIGHT + DISC) + 40)
    strip, verts, discs = _strip_with(lowest, TOP + 4 * (HEIGHT + DISC) + 40, 0)
    assert _missed_l5(strip, verts, discs, float(HEIGHT + DISC), T_ANT, T_POST) is None
