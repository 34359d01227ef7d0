"""Abdominal aortic calcification on a lateral spine image: detection and AAC-24 / AAC-8.

Scoring (Kauppila et al., *Atherosclerosis* 1997): the aorta anterior to L1-L4 is
split into four segments; in each the anterior and the posterior wall get

* 0 - no calcification,
* 1 - calcified length up to one third of the segment,
* 2 - more than one third up to two thirds,
* 3 - more than two thirds.

AAC-24 is the sum (0-24). Definitions used here (and by the synthetic generator):

* **segment** = the vertebral height of L1..L4 at mid-depth in image rows (the
  patient's long axis): from the mean row of the two superior corners to that of
  the two inferior corners, as the phantom truth cuts it in z (:func:`score_rows`).
* **calcified length** = union of the image rows covered by calcium of that wall
  inside that height (overlapping deposits are not counted twice).
* **walls** = the aortic zone (anterior vertebral line to one vertebral depth in
  front of it) is split by the aortic mid-line: a point nearer the spine than the
  mid-line is posterior wall, else anterior wall. The mid-line is estimated from the
  deposits themselves when they show two walls (the widest calcium-free gap),
  otherwise it is placed ``AORTA_MIDLINE_FRACTION`` of a vertebral depth in front of
  the spine.

AAC-8 (Schousboe et al., *J Clin Densitom* 2007): for each wall the total calcified
length over L1-L4 in units of the mean vertebral height, graded 0 (none), 1 (<= 1
height), 2 (<= 2), 3 (<= 3), 4 (> 3); the sum of both walls (0-8).

Severity groups: one constant, ``SEVERITY_GROUPING``, names the grouping used.
"""

from __future__ import annotations

from collections.abc import Sequence

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "AAC_LEVELS",
    "SEVERITY_GROUPING",
    "AORTA_MIDLINE_FRACTION",
    "WALL_SPLIT_GAP_MM",
    "kauppila_grade",
    "KAUPPILA_BOUNDARIES",
    "union_length",
    "aac8_grade",
    "severity_group",
    "severity_span",
    "AAC24_GROUPS",
    "Aac24ErrorBound",
    "detect_calcification",
    "across_spine",
    "WallExtent",
    "score_segments",
    "score_rows",
    "wall_of_pixels",
    "score_image_mask",
]

AAC_LEVELS: tuple[str, ...] = ("L1", "L2", "L3", "L4")

#: The one grouping of AAC-24 totals that calcdetect reports (three groups widely
#: used in cohort studies, e.g. Lewis et al., J Bone Miner Res 2018).
SEVERITY_GROUPING = "AAC-24 three groups: low 0-1, moderate 2-5, high >=6"

#: Default aortic mid-line, as a fraction of the vertebral depth in front of the
#: anterior vertebral line (aorta ~20-25 mm wide, lying on the spine).
AORTA_MIDLINE_FRACTION = 0.38
#: A deposit's row splits into separately walled runs across a calcium-free gap wider
#: than this (``wall_of_pixels``); the pipeline (``analyse.WALL_SPLIT_GAP_MM``) and the
#: evaluation's image-space scorer (``score_image_mask``) share it.
WALL_SPLIT_GAP_MM = 3.0
_TOL = 1e-9  # 1/3 and 2/3 are not exact in floating point


def union_length(intervals: Sequence[tuple[float, float]], lo: float, hi: float) -> float:
    """Length of the union of ``intervals`` clipped to ``[lo, hi]``.

    >>> union_length([(0, 2), (1, 3), (5, 6)], 0.5, 5.5)
    3.0
    """
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in (sorted(iv) for iv in intervals))
    total, cur_a, cur_b = 0.0, None, None
    for a, b in clipped:
        if b <= a:
            continue
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += cur_b - cur_a
    return float(total)


#: The calcified fractions of a segment at which the Kauppila grade steps from 1 to 2 and from 2 to 3.
KAUPPILA_BOUNDARIES: tuple[float, float] = (1 / 3, 2 / 3)


def kauppila_grade(fraction: float) -> int:
    """Kauppila wall grade (0-3) of a calcified length fraction of one segment.

    The project's convention (issue #6; the phantom truth in
    ``calcdetect.phantoms.radiograph`` uses this same function): 1 up to a third, 2 more than a third up to
    two thirds, 3 more than two thirds; boundaries inclusive downwards.

    >>> [kauppila_grade(f) for f in (0.0, 0.1, 1 / 3, 0.5, 2 / 3, 1.0)]
    [0, 1, 1, 2, 2, 3]
    """
    if not np.isfinite(fraction) or fraction <= _TOL:
        return 0
    if fraction <= KAUPPILA_BOUNDARIES[0] + _TOL:
        return 1
    if fraction <= KAUPPILA_BOUNDARIES[1] + _TOL:
        return 2
    return 3


def aac8_grade(length_in_heights: float) -> int:
    """AAC-8 wall grade (0-4) from the calcified length in vertebral heights.

    >>> [aac8_grade(x) for x in (0, 0.5, 1.0, 1.5, 2.5, 3.5)]
    [0, 1, 1, 2, 3, 4]
    """
    if length_in_heights <= _TOL:
        return 0
    return int(min(4, np.ceil(length_in_heights - _TOL)))


#: The groups as (label, low, high), half-open: the one place they live.
AAC24_GROUPS: tuple[tuple[str, float, float], ...] = (
    ("low", -float("inf"), 2.0),
    ("moderate", 2.0, 6.0),
    ("high", 6.0, float("inf")),
)


def severity_group(aac24: float) -> str:
    """``"low"`` (0-1), ``"moderate"`` (2-5) or ``"high"`` (>= 6); see ``SEVERITY_GROUPING``."""
    for label, lo, hi in AAC24_GROUPS:
        if lo <= aac24 < hi:
            return label
    raise ValueError(f"AAC-24 total {aac24!r} is outside every group")


def severity_span(low: float, high: float) -> str:
    """The severity groups an AAC-24 range ``low``-``high`` touches, in words.

    >>> severity_span(3, 7), severity_span(8, 12), severity_span(0, 6)
    ('moderate to high', 'high', 'low to high')
    """
    first, last = severity_group(low), severity_group(high)
    return first if first == last else f"{first} to {last}"


@dataclass(frozen=True)
class Aac24ErrorBound:
    """How far a calcium net's AAC-24 readings lay from the truth where it was measured:
    ``coverage`` of the readings of ``measured_on`` (held-out phantom radiographs) were
    within ``points`` of the true total.

    Why: the shipped net misses the issue's accuracy target (MAE about 1.5 on the film
    rendering), and a bare total reads as more exact than it is. The bound travels with the
    weights (metadata ``aac24_error_bound``), since each net errs by its own amount.

    >>> b = Aac24ErrorBound(0.8, 2, "phantoms")
    >>> b.interval(7), b.interval(1), b.interval(23)
    ((5, 9), (0, 3), (21, 24))
    """

    coverage: float
    points: int
    measured_on: str

    def __post_init__(self) -> None:
        if not 0.0 < self.coverage < 1.0 or self.points < 0:
            raise ValueError(f"an AAC-24 error bound needs 0 < coverage < 1 and points >= 0, got "
                             f"coverage {self.coverage!r}, points {self.points!r}")

    def interval(self, total: int) -> tuple[int, int]:
        """The range of totals within ``points`` of ``total``, inside AAC-24's 0-24."""
        return max(0, total - self.points), min(24, total + self.points)

    def as_json(self, total: int) -> dict[str, object]:
        """The ``aac24["interval"]`` entry of findings.json for a reading of ``total``."""
        low, high = self.interval(total)
        return {"low": low, "high": high, "coverage": self.coverage, "points": self.points,
                "severity": severity_span(low, high), "measured_on": self.measured_on}


def across_spine(ss: np.ndarray, tt: np.ndarray, max_angle_deg: float = 40.0) -> bool:
    """Whether a component (strip rows ``ss``, columns ``tt``) is an elongated band whose
    long axis lies more than ``max_angle_deg`` off the spine axis (1.5 times longer
    than wide): a rib edge crossing the aortic zone, not a wall deposit."""
    if ss.size < 3:
        return False
    evals, evecs = np.linalg.eigh(np.cov(np.vstack([ss, tt]).astype(float)))
    major = evecs[:, 1]
    angle = float(np.degrees(np.arctan2(abs(major[1]), abs(major[0]))))
    return angle > max_angle_deg and evals[1] > 2.25 * max(evals[0], 1e-9)


def detect_calcification(
    strip: np.ndarray,
    zone: np.ndarray,
    step_mm: float,
    *,
    k_seed: float = 1.3,
    k_grow: float = 0.8,
    opening_mm: tuple[float, float] = (3.0, 9.0),
    min_length_mm: float = 4.0,
    min_area_mm2: float = 2.0,
    max_angle_deg: float = 40.0,
) -> np.ndarray:
    """Calcified pixels inside ``zone`` of a straightened strip (rows along the spine).

    Background subtraction, then a noise-adaptive hysteresis threshold:

    * the background is a grey opening with a rectangle ``opening_mm`` (along x
      across the spine) wider than a wall deposit seen edge-on (1-3 mm) or a
      punctate focus, so soft tissue, bowel and bone edges stay in the background
      and thin or small bright deposits are what is left (a white top-hat). The
      residual is smoothed 1.5 mm along the spine (deposits run along it, noise
      does not).
    * the noise reference is the *black* top-hat filtered the same way: quantum
      noise makes dark and bright specks alike, calcium only bright ones, so its
      upper percentiles set the threshold for this image's noise (and bowel gas,
      which is dark, only raises it). Seeds exceed ``k_seed`` times its 99.5th
      percentile, grown down to ``k_grow`` times its 99th.
    * components shorter than ``min_length_mm`` along the spine or smaller than
      ``min_area_mm2`` are noise grains; a component whose axis is more than
      ``max_angle_deg`` off the spine (and 1.5 times longer than wide) is a rib
      edge crossing the zone.

    Parameters
    ----------
    strip
        Straightened image ``[s, t]`` (s along the spine, t across), bright = dense.
    zone
        Boolean mask of the aortic zone on the strip grid.
    step_mm
        Sampling step of the strip (mm, both axes).
    """
    if not zone.any():
        return np.zeros_like(zone)
    rows = np.flatnonzero(zone.any(axis=1))
    cols = np.flatnonzero(zone.any(axis=0))
    pad = int(round(max(opening_mm) / step_mm)) + 2
    r0, r1 = max(0, rows[0] - pad), min(strip.shape[0], rows[-1] + pad + 1)
    c0, c1 = max(0, cols[0] - pad), min(strip.shape[1], cols[-1] + pad + 1)
    sub = strip[r0:r1, c0:c1]
    z = zone[r0:r1, c0:c1]
    sm = ndimage.gaussian_filter(sub, 0.35 / step_mm)
    size = (max(1, int(round(opening_mm[0] / step_mm)) | 1), max(3, int(round(opening_mm[1] / step_mm)) | 1))
    win = max(1, int(round(1.5 / step_mm)))
    raw = sm - ndimage.grey_opening(sm, size=size)
    resp = ndimage.uniform_filter1d(raw, win, axis=0)
    black = ndimage.uniform_filter1d(ndimage.grey_closing(sm, size=size) - sm, win, axis=0)[z]
    high = z & (resp > k_seed * float(np.percentile(black, 99.5)))
    low = z & (resp > k_grow * float(np.percentile(black, 99.0)))
    lab, n = ndimage.label(low)
    out = np.zeros_like(zone)
    if n == 0:
        return out
    keep = np.zeros(n + 1, bool)
    keep[np.unique(lab[high])] = True
    keep[0] = False
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None or not keep[i]:
            continue
        ss, tt = np.nonzero(lab[sl] == i)
        length = (ss.max() - ss.min() + 1) * step_mm
        if length < min_length_mm or ss.size * step_mm**2 < min_area_mm2:
            keep[i] = False
            continue
        if across_spine(ss, tt, max_angle_deg):
            keep[i] = False  # an elongated band across the spine axis: a rib edge
    out[r0:r1, c0:c1] = keep[lab]
    return out


def wall_of_pixels(calc: np.ndarray, midline_t: float | np.ndarray, split_gap_px: float = float("inf")) -> np.ndarray:
    """Per calcified pixel: ``True`` for the posterior wall, ``False`` for the anterior.

    Decided per deposit and strip row by the deposit's mean column on that row
    against the aortic mid-line (as the phantom truth decides per CT slice), so a
    broad plaque seen across the lumen counts on one wall per row, not on both.

    ``split_gap_px``: a deposit's row is cut into runs where its pixels are more than
    this many columns apart, and each run is decided on its own. Why: a detected mask
    can join a posterior- and an anterior-wall deposit through a short bridge
    elsewhere; their common mean column on a row then lies between the walls and the
    row counts on one wall only. A broad plaque is one contiguous run and still
    counts once. The default (infinite) keeps one decision per deposit and row.
    """
    lab, n = ndimage.label(calc)
    post = np.zeros(calc.shape, bool)
    if n == 0:
        return post
    ss, tt = np.nonzero(calc)
    ll = lab[ss, tt].astype(np.int64)
    order = np.lexsort((tt, ss, ll))  # by deposit, then row, then column
    ss, tt, ll = ss[order], tt[order], ll[order]
    new_run = np.ones(ss.size, bool)
    new_run[1:] = (ll[1:] != ll[:-1]) | (ss[1:] != ss[:-1]) | (np.diff(tt) > split_gap_px)
    run = np.cumsum(new_run) - 1
    mean_t = np.bincount(run, weights=tt) / np.bincount(run)
    mid = np.broadcast_to(np.asarray(midline_t, float), (calc.shape[0],))  # one value, or one per row
    post[ss, tt] = mean_t[run] >= mid[ss]
    return post


def score_rows(
    rows_by_wall: dict[str, np.ndarray],
    segments: dict[str, tuple[float, float]],
    row_mm: float,
) -> list[WallExtent]:
    """Kauppila grades from calcified image rows per wall.

    Parameters
    ----------
    rows_by_wall
        ``{"anterior": bool[rows], "posterior": bool[rows]}``: image rows (head to
        foot) where that wall is calcified (union of all deposits).
    segments
        Level -> ``(row_top, row_bottom)`` of the vertebral height at mid-depth
        (mean row of the two superior and of the two inferior corners), as the
        phantom truth measures the segment in z.
    row_mm
        Row spacing (mm).
    """
    out: list[WallExtent] = []
    for level, (a, b) in segments.items():
        lo, hi = min(a, b), max(a, b)
        length = max(hi - lo, 1e-6)
        for wall in ("anterior", "posterior"):
            rows = rows_by_wall[wall]
            idx = np.flatnonzero(rows)
            # each calcified row covers [r - 0.5, r + 0.5)
            covered = float(np.clip(np.minimum(idx + 0.5, hi) - np.maximum(idx - 0.5, lo), 0, None).sum())
            frac = min(covered / length, 1.0)
            out.append(WallExtent(level=level, wall=wall, grade=kauppila_grade(frac), fraction=frac,
                                  length_mm=covered * row_mm, area_mm2=0.0, s_range=(float(lo), float(hi))))
    return out


@dataclass(frozen=True)
class WallExtent:
    """Calcified extent of one wall in one segment (strip coordinates)."""

    level: str
    wall: str  # "anterior" | "posterior"
    grade: int
    fraction: float
    length_mm: float
    area_mm2: float
    s_range: tuple[float, float]  # segment rows on the strip (float)


def estimate_midline(t_calc: np.ndarray, t_ant_line: float, depth_px: float) -> float:
    """The aortic mid-line (strip column) from the deposits' columns.

    When the deposits form two separate walls (a calcium-free gap of at least a
    quarter of the vertebral depth between them), the mid-line is the centre of the
    widest gap; otherwise the default ``AORTA_MIDLINE_FRACTION`` of a depth in front
    of the anterior vertebral line (t decreases anteriorly).
    """
    default = t_ant_line - AORTA_MIDLINE_FRACTION * depth_px
    if t_calc.size < 4:
        return default
    cols = np.sort(np.unique(np.round(t_calc).astype(int)))
    gaps = np.diff(cols)
    if gaps.size == 0:
        return default
    i = int(np.argmax(gaps))
    if gaps[i] < 0.25 * depth_px:
        return default
    return float(cols[i] + cols[i + 1]) / 2


def score_segments(
    calc: np.ndarray,
    segments: dict[str, tuple[float, float]],
    midline_t: float,
    step_mm: float,
) -> list[WallExtent]:
    """Kauppila grades per segment and wall from a calcification mask on the strip.

    Parameters
    ----------
    calc
        Boolean mask ``[s, t]`` (anterior = small ``t``).
    segments
        Level -> ``(s_top, s_bottom)`` rows of the vertebral height on the strip.
    midline_t
        Strip column of the aortic mid-line; columns >= it are the posterior wall.
    step_mm
        Strip sampling step (mm).
    """
    out: list[WallExtent] = []
    t_idx = np.arange(calc.shape[1])
    for level, (s0, s1) in segments.items():
        r0, r1 = max(0, int(np.floor(s0))), min(calc.shape[0], int(np.ceil(s1)))
        length = max(s1 - s0, 1e-6)
        for wall in ("anterior", "posterior"):
            cols = t_idx >= midline_t if wall == "posterior" else t_idx < midline_t
            sub = calc[r0:r1][:, cols]
            rows = sub.any(axis=1)
            frac = float(rows.sum()) / length if r1 > r0 else 0.0
            frac = min(frac, 1.0)
            out.append(
                WallExtent(
                    level=level,
                    wall=wall,
                    grade=kauppila_grade(frac),
                    fraction=frac,
                    length_mm=float(rows.sum()) * step_mm,
                    area_mm2=float(sub.sum()) * step_mm**2,
                    s_range=(float(s0), float(s1)),
                )
            )
    return out


def score_image_mask(
    calc: np.ndarray,
    corners_by_level: dict[str, np.ndarray],
    row_mm: float,
    *,
    zone_margin_mm: float | None = None,
    zone_min_depth_mm: float = 32.0,
    split_gap_mm: float = WALL_SPLIT_GAP_MM,
) -> list[WallExtent]:
    """Kauppila grades of an image-space calcification mask against given L1-L4 corners.

    The same rules as the strip scorer of ``analyse.py`` (aortic mid-line from the
    deposits, wall per deposit and row, segment = height at mid-depth in image
    rows), but in image coordinates with the corners handed in: this lets an
    evaluation score the *true* calcium against *detected* vertebrae, or the
    *detected* calcium against the *true* vertebrae, and so split the error into
    its vertebra and its calcium parts.

    Parameters
    ----------
    calc
        Boolean image mask of aortic calcium.
    corners_by_level
        ``{"L1": (4, 2) array, ...}`` (row, col) corners in the order
        superior-anterior, superior-posterior, inferior-posterior, inferior-anterior;
        L1-L4 at least.
    row_mm
        Row spacing (mm).
    zone_margin_mm
        When given, only calcium from this far in front of the anterior vertebral
        line to one vertebral depth (at least ``zone_min_depth_mm``) counts, as the
        detector's aortic zone does; ``None`` counts all of ``calc``.
    split_gap_mm
        A deposit's row is walled in runs split across calcium-free gaps wider than
        this (:func:`wall_of_pixels`), as the pipeline does with ``WALL_SPLIT_GAP_MM``;
        columns are taken to have the row spacing (square pixels).
    """
    k = {lv: np.asarray(corners_by_level[lv], float) for lv in AAC_LEVELS}
    ant = np.array(sorted([k[lv][0] for lv in AAC_LEVELS] + [k[lv][3] for lv in AAC_LEVELS], key=lambda p: p[0]))
    # anterior = the side of the anterior corners (column 0 anterior in the usual display)
    sign = 1.0 if np.mean([k[lv][1, 1] - k[lv][0, 1] for lv in AAC_LEVELS]) > 0 else -1.0
    rows = np.arange(calc.shape[0])
    line = np.interp(rows, ant[:, 0], ant[:, 1])
    depth_px = float(np.mean([np.linalg.norm(k[lv][1] - k[lv][0]) for lv in AAC_LEVELS]))
    mask = np.asarray(calc, bool)
    if zone_margin_mm is not None:
        u = sign * (line[:, None] - np.arange(calc.shape[1])[None, :]) * row_mm
        mask = mask & (u >= zone_margin_mm) & (u <= max(depth_px * row_mm, zone_min_depth_mm))
    rr, cc = np.nonzero(mask)
    # distance in front of the line in pixels, as a strip column that decreases anteriorly
    t = -sign * (line[rr] - cc)
    mid = estimate_midline(t, 0.0, depth_px)
    by_wall = {"anterior": np.zeros(calc.shape[0], bool), "posterior": np.zeros(calc.shape[0], bool)}
    if rr.size:
        # wall_of_pixels calls the larger column posterior: mirror the image when the
        # patient faces right (the spine at the smaller columns)
        mirror = sign < 0
        mid_col = line + sign * mid  # the mid-line's column on each row
        m = mask[:, ::-1] if mirror else mask
        post = wall_of_pixels(m, (calc.shape[1] - 1 - mid_col) if mirror else mid_col, split_gap_mm / row_mm)
        post = post[:, ::-1] if mirror else post
        by_wall["posterior"] = (post & mask).any(axis=1)
        by_wall["anterior"] = (~post & mask).any(axis=1)
    segments = {lv: (float(k[lv][:2, 0].mean()), float(k[lv][2:, 0].mean())) for lv in AAC_LEVELS}
    return score_rows(by_wall, segments, row_mm)
