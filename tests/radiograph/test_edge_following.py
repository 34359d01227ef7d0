"""Vertebral levels where the spine curves away from the strip (issue #6 accuracy work).

The strip path is smoothed over ~15 mm, so at the thoracolumbar junction the bodies
can lie 10-25 mm off the strip's straight line; the detector follows the bodies'
anterior edge and re-straightens the strip there. And a sacral line that dips two
thirds as deep as a disc must not be counted as the L5-S1 disc (S1 named L5 shifts
every level by one).
"""

from __future__ import annotations

import numpy as np

from calcdetect.radiograph.vertebrae import (
    STEP_MM,
    SpineStrip,
    Vertebra,
    _drop_sacral_segments,
    _drop_short_top_body,
    _extrapolate_l1,
    _follow_anterior_edge,
    anterior_edge_line,
)

T_ANT = 120  # strip column of the lower bodies' anterior edge


def _edge_of_row(n_rows: int, drift_mm: float, until_row: int) -> np.ndarray:
    """Anterior edge per strip row: ``drift_mm`` anterior at the top, straight below ``until_row``."""
    s = np.arange(n_rows)
    return np.rint(T_ANT - (drift_mm / STEP_MM) * np.clip((until_row - s) / until_row, 0, 1)).astype(int)


def _curved_strip(edge: np.ndarray, seed: int = 0) -> np.ndarray:
    """Bodies (bright, 30 mm deep) with discs every 38 mm, posterior elements behind a
    dark canal, soft tissue in front; each row's bodies start at ``edge[row]``."""
    rng = np.random.default_rng(seed)
    n_rows, n_cols = len(edge), 320
    S = np.full((n_rows, n_cols), 0.3, np.float32)
    depth, canal, post = int(30 / STEP_MM), int(12 / STEP_MM), int(25 / STEP_MM)
    disc = (np.arange(n_rows) % int(38 / STEP_MM)) < int(8 / STEP_MM)
    for s, e in enumerate(edge):
        S[s, e : e + depth] = 0.75 if disc[s] else 1.0
        S[s, e + depth + canal : e + depth + canal + post] = 0.8
    return S + rng.normal(0, 0.03, S.shape).astype(np.float32)


def test_anterior_edge_is_followed_where_the_bodies_drift_off_the_strip():
    edge = _edge_of_row(640, drift_mm=22.0, until_row=300)
    line = anterior_edge_line(_curved_strip(edge), T_ANT)
    err_mm = np.abs(line - edge)[20:-20] * STEP_MM
    assert np.percentile(err_mm, 90) <= 1.5, np.percentile(err_mm, 90)


def test_refollowed_strip_puts_the_edge_on_one_column_and_maps_back_to_the_image():
    edge = _edge_of_row(640, drift_mm=22.0, until_row=300)
    S = _curved_strip(edge, seed=1)
    n = len(edge)
    # a vertical path at image column 400, 1 image px per strip px (0.5 mm both)
    path = np.column_stack([np.arange(n, dtype=float), np.full(n, 400.0)])
    normal = np.tile([0.0, 1.0], (n, 1))
    strip = SpineStrip(S, path, normal, t0=160, step_mm=STEP_MM, flipped=False, width=800)
    keep_below = 450.0
    out = _follow_anterior_edge(strip, T_ANT, keep_below)
    # rows below keep_below (the lower lumbar bodies, the sacrum) are not moved
    np.testing.assert_array_equal(out.image[470:], S[470:])
    # above, the bodies' anterior edge now lies at T_ANT ...
    rows = np.arange(40, 260)
    new_edge = np.array([np.argmax(np.diff(out.image[r, :200])) + 1 for r in rows])
    assert np.median(np.abs(new_edge - T_ANT)) * STEP_MM <= 1.0
    # ... and a strip point still maps to the image point it shows
    moved = out.to_image(rows.astype(float), np.full(rows.size, float(T_ANT)))
    truth = strip.to_image(rows.astype(float), edge[rows].astype(float))
    assert np.median(np.abs(moved[:, 1] - truth[:, 1])) <= 2.0


def _vert(s_sup: float, s_inf: float) -> Vertebra:
    return Vertebra(None, np.zeros((4, 2)), 1.0, s_sup, s_inf, 100.0, 170.0)


def test_a_sacral_line_two_thirds_as_deep_as_a_disc_is_not_the_lumbosacral_disc():
    discs = [60, 180, 300, 420, 540, 660, 780]
    S = np.full((900, 260), 1.0, np.float32)
    half = int(4 / STEP_MM)
    for d, dip in zip(discs, [0.5, 0.5, 0.5, 0.5, 0.45, 0.32, 0.08]):
        S[d - half : d + half, :] -= dip
    verts = [_vert(a + 10, b - 10) for a, b in zip(discs[:-1], discs[1:])]
    kept, kept_discs = _drop_sacral_segments(verts, discs, S, 110, 160)
    assert kept_discs[-1] == 540  # L5-S1; 660 (S1-S2) dips 0.64 of a typical disc
    assert len(kept) == 4


def test_a_sliver_at_the_top_of_the_chain_is_not_a_body():
    # a rib edge under the crura dips like a disc and cuts a 6 mm "body" off L1
    sliver = [_vert(40, 52)] + [_vert(a, a + 60) for a in (80, 160, 240, 320)]
    assert len(_drop_short_top_body(sliver)) == 4
    # a top body a few mm lower than the rest is a body
    normal = [_vert(30, 80)] + [_vert(a, a + 60) for a in (80, 160, 240, 320)]
    assert len(_drop_short_top_body(normal)) == 5


def test_extrapolated_l1_continues_the_column_course_in_the_image():
    # the bodies step 10 px anteriorly (towards column 0) per level going up while
    # the strip rows above L2 found nothing to follow: L1 must continue the step
    verts = []
    for k, (lv, top) in enumerate(zip(("L2", "L3", "L4", "L5"), (200, 290, 380, 470))):
        c = 360.0 + 10 * k  # anterior edge column of this body in the image
        corners = np.array([[top, c], [top, c + 60], [top + 70, c + 60], [top + 70, c]], float)
        verts.append(Vertebra(lv, corners, 1.0, top, top + 70, 100.0, 160.0))
    l1 = _extrapolate_l1(verts)
    assert l1 is not None and l1.level == "L1"
    k = np.asarray(l1.corners_rc)
    assert abs(k[:, 1].min() - 350.0) <= 1.0  # one more 10 px step anterior
    assert k[:, 0].max() < 200  # above L2
