"""Rules added for issue #6: the body column, sacral segments, row-based AAC scoring, walls."""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.radiograph.aac import detect_calcification, score_rows, wall_of_pixels
from calcdetect.radiograph.vertebrae import COARSE_MM, STEP_MM, Vertebra, _body_column_path, _drop_sacral_segments


def _two_band_spine(rows: int = 200, cols: int = 140, seed: int = 0) -> np.ndarray:
    """Coarse (2 mm) lateral spine: a body band (cols 40-58) and a posterior-element band
    (cols 70-84), both repeating every 34 mm, on a noisy soft-tissue background."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0.3, 0.02, (rows, cols)).astype(np.float32)
    period = int(34 / COARSE_MM)
    on = (np.arange(rows) % period) < int(0.75 * period)  # bodies, then a disc
    img[:, 40:58] += np.where(on, 0.5, 0.15)[:, None]
    img[:, 70:84] += np.where(np.roll(on, period // 3), 0.5, 0.15)[:, None]  # pedicles / foramina
    return img


def test_body_column_path_moves_from_posterior_elements_to_the_bodies():
    c = _two_band_spine()
    start = np.full(c.shape[0], 77)  # a first path locked onto the posterior elements
    path = _body_column_path(c, start)
    middle = path[30:-30]
    assert np.all((middle >= 36) & (middle <= 60)), middle  # on the body band, anterior one


def test_body_column_path_stays_when_already_on_the_bodies():
    c = _two_band_spine(seed=1)
    path = _body_column_path(c, np.full(c.shape[0], 49))
    assert np.all((path[30:-30] >= 36) & (path[30:-30] <= 60))


def _vert(s_sup: float, s_inf: float) -> Vertebra:
    return Vertebra(None, np.zeros((4, 2)), 1.0, s_sup, s_inf, 100.0, 170.0)


def _strip_with_discs(disc_rows: list[int], depths: list[float]) -> np.ndarray:
    S = np.full((900, 260), 1.0, np.float32)
    half = int(4 / STEP_MM)
    for d, depth in zip(disc_rows, depths):
        S[d - half : d + half, :] -= depth
    return S


def test_sacral_segments_below_the_lumbosacral_disc_are_dropped():
    # five mobile discs (deep) then two fused sacral lines (faint): the bodies below
    # the last deep disc are sacrum, not L5 / L4
    discs = [60, 180, 300, 420, 540, 660, 780]
    S = _strip_with_discs(discs, [0.5, 0.5, 0.5, 0.5, 0.45, 0.08, 0.08])
    verts = [_vert(a + 10, b - 10) for a, b in zip(discs[:-1], discs[1:])]
    kept, kept_discs = _drop_sacral_segments(verts, discs, S, 110, 160)
    assert len(kept) == 4 and kept[-1].s_inf < 540
    assert kept_discs[-1] == 540


def test_a_tilted_lumbosacral_disc_still_counts_as_a_disc():
    discs = [60, 180, 300, 420, 540]
    S = _strip_with_discs(discs[:-1], [0.5] * 4)
    t = np.arange(S.shape[1])
    for col in t:  # the L5-S1 disc tilted by ~20 degrees across the body
        r = int(540 + 0.36 * (col - 135))
        S[r - 8 : r + 8, col] -= 0.5
    verts = [_vert(a + 10, b - 10) for a, b in zip(discs[:-1], discs[1:])]
    kept, _ = _drop_sacral_segments(verts, discs, S, 110, 160)
    assert len(kept) == 4  # nothing dropped


def test_pelvic_content_below_the_promontory_is_not_counted_as_l5():
    """Below L5-S1 the sacrum turns backwards off the strip; bowel gas and the iliac
    wings there can dip like discs as deep as lumbar ones. Such a lowest "body" has no
    posterior cortex on the column's posterior line, so it is dropped (else every
    level above is named one too high); the lumbar bodies, which have it, stay."""
    discs = [60, 180, 300, 420, 540, 660]
    S = _strip_with_discs(discs, [0.5] * 6)
    t_a, t_b = 110, 160  # central half of a 100-pixel-deep column: posterior line at column 185
    for a, b in zip(discs[:-2], discs[1:-1]):  # four lumbar bodies: bone in front of the canal
        S[a + 10: b - 10, 85:186] += 0.3
    S[550:650, 85:160] += 0.3  # pelvic content: bright in the central band, nothing at the back
    verts = [_vert(a + 10, b - 10) for a, b in zip(discs[:-1], discs[1:])]
    kept, kept_discs = _drop_sacral_segments(verts, discs, S, t_a, t_b)
    assert len(kept) == 4 and kept[-1].s_inf < 540
    assert kept_discs[-1] == 540

    S[550:650, 160:186] += 0.3  # the same "body" with a posterior wall is a lumbar body
    kept, _ = _drop_sacral_segments(verts, discs, S, t_a, t_b)
    assert len(kept) == 5


def test_score_rows_grades_segment_fractions_in_image_rows():
    n = 400
    rows = {"anterior": np.zeros(n, bool), "posterior": np.zeros(n, bool)}
    rows["anterior"][100:130] = True  # 30 of 90 rows: exactly a third -> grade 1
    rows["posterior"][100:131] = True  # just over a third -> 2
    rows["anterior"][210:280] = True  # 70 of 90 -> 3
    segs = {"L1": (99.5, 189.5), "L2": (199.5, 289.5)}
    out = {(w.level, w.wall): w for w in score_rows(rows, segs, 0.2)}
    assert out[("L1", "anterior")].grade == 1
    assert out[("L1", "posterior")].grade == 2
    assert out[("L2", "anterior")].grade == 3 and out[("L2", "posterior")].grade == 0
    assert out[("L2", "anterior")].length_mm == pytest.approx(70 * 0.2)


def test_a_broad_plaque_counts_on_one_wall_per_row():
    calc = np.zeros((50, 60), bool)
    calc[10:30, 18:34] = True  # straddles the mid-line at 30, mostly in front of it
    post = wall_of_pixels(calc, 30.0)
    assert not post[10:30].any()  # mean column 25.5 < 30: anterior wall on every row
    calc2 = np.zeros((50, 60), bool)
    calc2[5:15, 40:43] = True
    assert wall_of_pixels(calc2, np.full(50, 30.0))[5:15, 40:43].all()


def test_detector_finds_faint_wall_line_in_noise_and_nothing_in_noise_alone():
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 0.01, (300, 160)).astype(np.float32)
    zone = np.zeros(noise.shape, bool)
    zone[20:280, 30:130] = True
    assert not detect_calcification(noise, zone, 0.5).any()
    img = noise.copy()
    img[80:130, 60:64] += 0.03  # a 25 mm, 2 mm thick deposit, CNR 3 per pixel
    calc = detect_calcification(img, zone, 0.5)
    rows = np.flatnonzero(calc.any(axis=1))
    assert rows.size and rows.min() <= 85 and rows.max() >= 125
    assert not calc[:, :55].any() and not calc[:, 70:].any()
