"""Level-assignment failures found on the development phantoms (issue #6): a body chain on
the posterior elements, and L5 counted on the sacrum below a deep pelvic line."""

from __future__ import annotations

import numpy as np

from calcdetect.radiograph.synthetic import make_synthetic_lateral
from calcdetect.radiograph.vertebrae import (
    POSTERIOR_BAND_TRIGGER,
    STEP_MM,
    Vertebra,
    _bodies_along,
    _body_column_path,
    _coarse,
    _column_path,
    _drop_sacral_segments,
    _normalise,
    _onto_bodies_in_front,
    bone_beside,
)


def _mean_col_offset_mm(found, truth_col: float, spacing_mm: float) -> float:
    cols = [float(np.mean(np.asarray(v.corners_rc)[:, 1])) for v in found.verts]
    return (float(np.mean(cols)) - truth_col) * spacing_mm


def test_a_chain_on_the_posterior_elements_is_moved_onto_the_bodies():
    """A column path 25 mm behind the bodies makes a regular chain on the pedicles and
    facets (every corner ~18 mm too posterior); bone then lies in front of the chain,
    and the chain along a path further anterior, on the bodies, is taken instead."""
    ph = make_synthetic_lateral(1, spacing_mm=0.5)
    sp = (0.5, 0.5)
    img = _normalise(ph.image.astype(np.float32))
    c = _coarse(img, sp)
    cols, resp = _column_path(c, 38.0)
    path_resp = resp[np.arange(len(cols)), cols]
    rows = np.arange(len(cols))
    cols = _body_column_path(c, cols)
    truth_col = float(np.mean([ph.corners[lv][:, 1].mean() for lv in ("L1", "L2", "L3", "L4", "L5")]))

    on_bodies = _bodies_along(img, sp, cols, rows, path_resp, False)
    assert bone_beside(on_bodies) < POSTERIOR_BAND_TRIGGER  # bodies: darker all round
    assert _onto_bodies_in_front(on_bodies, img, sp, cols, rows, path_resp, False) is on_bodies

    behind = cols + int(round(25.0 / 2.0))  # coarse pixels are 2 mm
    posterior = _bodies_along(img, sp, behind, rows, path_resp, False)
    assert _mean_col_offset_mm(posterior, truth_col, 0.5) > 10.0  # the failure being fixed
    assert bone_beside(posterior) > POSTERIOR_BAND_TRIGGER
    moved = _onto_bodies_in_front(posterior, img, sp, behind, rows, path_resp, False)
    assert len(moved.verts) >= 5
    assert abs(_mean_col_offset_mm(moved, truth_col, 0.5)) < 5.0


def _vert(s_sup: float, s_inf: float) -> Vertebra:
    return Vertebra(None, np.zeros((4, 2)), 1.0, s_sup, s_inf, 100.0, 170.0)


def test_a_deep_line_below_the_sacrum_does_not_put_l5_on_s1():
    """Five lumbar bodies (posterior wall on the column's line), S1 below the deep L5-S1
    disc with a fainter wall, a faint fused S1-S2 line, then pelvic content without a
    wall whose lower edge (a femoral head rim) dips like a disc. Taking the lowest deep
    line as L5-S1 named S1 "L5" (development phantom 77); the walk down the chain
    stops at the body without a wall, so L5-S1 is the disc below the fifth body."""
    discs = [60, 180, 300, 420, 540, 660, 780, 900]
    S = np.full((1000, 260), 1.0, np.float32)
    half = int(4 / STEP_MM)
    for d, depth in zip(discs, [0.5] * 6 + [0.08, 0.5]):
        S[d - half: d + half, :] -= depth
    t_a, t_b = 110, 160  # central half of a 100-pixel-deep column: posterior line at column 185
    for a, b in zip(discs[:5], discs[1:6]):  # L1-L5: bone up to the posterior line
        S[a + 10: b - 10, 85:186] += 0.3
    S[670:770, 85:160] += 0.3  # S1: bone in the central band ...
    S[670:770, 160:186] += 0.2  # ... and a fainter posterior wall (above half the lumbar one)
    S[790:890, 85:160] += 0.3  # pelvic content: nothing at the back
    verts = [_vert(a + 10, b - 10) for a, b in zip(discs[:-1], discs[1:])]
    kept, kept_discs = _drop_sacral_segments(verts, discs, S, t_a, t_b)
    assert len(kept) == 5 and kept[-1].s_inf < 660
    assert kept_discs[-1] == 660


def test_a_shallow_l5_s1_disc_with_the_sacrum_behind_the_band_keeps_l5():
    """Below L5-S1 the sacrum turns backwards: on the strip its dense part lies behind
    the column's posterior line, the central band below the disc holds soft tissue and
    the disc's two-sided dip is shallow. L5 was then dropped as "sacrum" and every
    level named one too high (development phantoms 40 and 12); L5 stays when the
    region below the disc has its bone behind the posterior line."""
    discs = [60, 180, 300, 420, 540, 660, 780]
    S = np.full((900, 260), 1.0, np.float32)
    half = int(4 / STEP_MM)
    for d in discs[:5]:  # T12-L1 ... L4-L5: deep, dark discs
        S[d - half: d + half, :] -= 0.5
    t_a, t_b = 110, 160  # posterior line at column 185
    for a, b in zip(discs[:5], discs[1:6]):  # L1-L5 up to the posterior line
        S[a + 10: b - 10, 85:186] += 0.3
    S[545:655, 85:186] += 0.3  # L5: a whole body down to the disc at 660 ...
    S[655:665, 85:160] -= 0.15  # ... whose disc dips shallowly in the central band
    S[670:900, 188:250] += 0.5  # the sacrum, turned backwards: bone behind the posterior line
    S[775:785, :] -= 0.3  # a line further down (the sacrum's lower edge)
    verts = [_vert(a + 10, b - 10) for a, b in zip(discs[:-1], discs[1:])]
    kept, kept_discs = _drop_sacral_segments(verts, discs, S, t_a, t_b)
    assert kept_discs[-1] == 660, kept_discs
    assert len(kept) == 5 and kept[-1].s_inf < 660

    S[670:900, 188:250] -= 0.5  # no bone behind: the shallow line is no disc, L5 is dropped
    kept, kept_discs = _drop_sacral_segments(verts, discs, S, t_a, t_b)
    assert kept_discs[-1] == 540
