"""Rule-based aorta and iliac arteries on CT (non-contrast or contrast-enhanced).

The aorta is a round soft-tissue tube (blood 30-50 HU without contrast, up to a
few hundred HU with it) in front of and left of the vertebral bodies. Per slice,
circles are fitted with a Hough transform on an edge map of a window anterior of
the body (bone is masked out so the vertebral cortex casts no votes); every slice
keeps its best few circles, and one path through the slices is chosen by dynamic
programming (Viterbi), trading circle quality against jumps between slices.

The bifurcation is the lowest slice of that path. Below it two smaller tubes are
tracked the same way, one on each side, starting at the aorta's last position:
the common iliac arteries. A common iliac artery is about 40 mm long, so the
tracked tube below the division level is labelled external iliac. The common
iliac artery divides in front of the sacro-iliac joint, at the upper sacrum:
``division_below_sacrum_mm`` below the top of the sacrum when the spine gives it,
else ``common_iliac_mm`` of path length below the aortic bifurcation. The
tube below the division is labelled external iliac, and the internal iliac is
approximated by a tube running posteriorly and laterally from the division
point into the pelvis (a coarse zone, documented as such; its branches are not
tracked).

Calcified plaque sits in the wall, so every lumen disk is grown by
``wall_mm`` (default 3 mm) before it is labelled.

What keeps the paths on the arteries (each measured on phantoms):

* each slice also gets its neighbours' best circles at a reduced score, so a
  slice with a weak wall does not force the path off the tube (where the
  absent state would forget its position and let it resume on a neighbour);
* the aorta ends where its radius, walking down, halves, or where it leaves
  the distance from the vertebral midline it kept above (the path may slide
  into one common iliac for centimetres);
* calcified plaque inside a lumen's disk is left out of its blood-likeness and
  homogeneity (pixels above the blood pool's range): heavy plaque made the
  aorta look inhomogeneous and the path took the psoas;
* a change of fitted radius between slices costs at most
  ``radius_change_cap_mm`` of jump: a calcified ring in the wall gives
  concentric circles and the fit flips between them (6.5 <-> 14 mm at 3 mm
  slices); at full cost the path took the steady left psoas instead;
* a detour of the path onto a neighbour does not end the aorta: the runs
  before and after it are joined where they continue one course
  (:func:`_join_aorta_runs`);
* an iliac path is one run from the bifurcation (no restarts after 15 mm),
  and its common part is expected on the line from the bifurcation to the front
  of the sacro-iliac joint: a Gaussian prior on the circles' scores, and the
  course filled in along that line where tracking stopped short;
* the external iliac becomes the femoral artery in front of the femoral head
  (:func:`find_femoral_heads`: the thickest bone of each half of the pelvis):
  below the division it is expected on the line from there to the front of
  the head, and filled in along it where tracking stopped short (inside the
  iliopsoas its wall casts almost no edge; without the prior the path drifted
  onto the abdominal wall). Without a whole femoral head in the field of view
  the external iliac is tracked without prior and not filled in.

On contrast-enhanced scans the lumen passes the bone threshold:
:func:`enhanced_lumen` finds it in the bone mask (round, homogeneous, at
blood-pool HU, continuous along z) so that it can be removed from the bone.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import fftconvolve
from skimage.feature import canny
from skimage.transform import hough_circle

from calcdetect.candidates._voxel import fill_holes_per_slice
from calcdetect.workers import resolve_workers, result_unless_queued, thread_map

__all__ = ["VesselSettings", "Tube", "Vessels", "find_vessels", "EnhancedLumenSettings", "enhanced_lumen",
           "LumenChains", "find_lumen_chains", "enhanced_aorta", "enhanced_aorta_mask"]


@dataclass(frozen=True)
class VesselSettings:
    aorta_radius_mm: tuple[float, float] = (6.5, 17.0)
    iliac_radius_mm: tuple[float, float] = (3.0, 8.0)
    wall_mm: float = 3.0
    common_iliac_mm: float = 50.0
    division_below_sacrum_mm: float = 20.0
    cia_end_lateral_mm: float = 42.0  # the division, in front of the sacro-iliac joint
    cia_end_anterior_mm: float = 12.0  # ... this far in front of the sacrum
    cia_fill_radius_mm: float = 5.0  # common iliac lumen where its course is filled in
    internal_iliac_mm: float = 50.0
    # The external iliac becomes the femoral artery in front of the femoral head:
    # at the head's centre it lies about this far medial (x head radius) and in
    # front of the head's surface (acetabular rim, capsule and iliopsoas between).
    eia_target_medial_r: float = 0.5
    eia_target_anterior_mm: float = 21.0
    eia_fill_radius_mm: float = 4.0  # external iliac lumen where its course is filled in
    eia_below_head_mm: float = 40.0  # how far below the head's centre the course is filled
    femoral_head_radius_mm: tuple[float, float] = (15.0, 32.0)
    femoral_head_lateral_mm: tuple[float, float] = (55.0, 140.0)
    n_candidates: int = 6
    jump_cost_per_mm: float = 0.08
    # A radius change between slices costs jump_cost_per_mm per mm beyond 2 mm,
    # counted up to this cap: a calcified ring in the wall gives concentric
    # circles (its inner edge, the lumen, its outer edge) and the fit flips
    # between them from slice to slice (6.5 <-> 14 mm on a 3 mm phantom). At
    # full cost (0.44 a flip) the path left such an aorta over L2-L4 for the
    # steady left psoas and the aorta ended at L1; it is one vessel.
    radius_change_cap_mm: float = 2.0
    absent_score: float = 0.25
    blood_hu: tuple[float, float] = (-20.0, 450.0)
    # Lumen pixels above the blood pool's level + this are calcium, left out of
    # the lumen statistics: unenhanced blood (30-50 HU) + 3 x the noisiest
    # scans' noise SD (~35 HU) gives 150 HU, below any kVp's calcium threshold.
    pool_margin_hu: float = 110.0
    unenhanced_blood_hu: float = 40.0


@dataclass(frozen=True)
class Tube:
    """A tracked tube: per slice centre ``(j, i)`` and radius in mm (NaN = absent)."""

    centre: np.ndarray  # (nk, 2)
    radius_mm: np.ndarray  # (nk,)
    score: np.ndarray  # (nk,)

    @property
    def present(self) -> np.ndarray:
        return np.isfinite(self.radius_mm)


@dataclass(frozen=True)
class Vessels:
    """Vessel masks (bool ``[k, j, i]``, wall included) and the tracked centre lines."""

    aorta: np.ndarray
    iliac: dict[str, np.ndarray]  # Structure name -> mask
    aorta_tube: Tube
    bifurcation_k: int | None
    notes: tuple[str, ...] = ()


def _circle_candidates(img: np.ndarray, allowed: np.ndarray, radii_px: np.ndarray, n: int,
                       hu: np.ndarray, bone: np.ndarray, blood_hu: tuple[float, float],
                       near: np.ndarray | None, px_mm: float, prefer_mm: tuple[float, float],
                       midline_i: float | None = None, blood_pool: tuple[float, float] | None = None,
                       ) -> list[tuple[float, float, float, float]]:
    """Best ``n`` circles ``(score, j, i, r_px)`` in a window image.

    ``allowed`` marks where a centre may lie. A circle's score is the fraction of
    its circumference on edges, times how much of its disk looks like homogeneous
    blood, times priors: the expected radius range ``prefer_mm`` and, when
    ``near`` (the vertebral bodies) is given, lying against the body -- the aorta
    and iliacs run along the spine, mesenteric vessels and bowel do not.
    """
    edges = canny(img, sigma=1.5, low_threshold=15.0, high_threshold=40.0)
    edges &= ~ndi.binary_erosion(bone, iterations=1)
    if not edges.any() or not allowed.any():
        return []
    acc = hough_circle(edges, radii_px, normalize=True)
    acc *= allowed[None]
    # Peaks of the best radius per centre: local maxima over 5 x 5 pixels
    # (peak_local_max's min_distance=2; hough_circle_peaks is ~50x slower).
    best = acc.max(axis=0)
    arg = acc.argmax(axis=0)
    is_peak = (best > 0) & (best == ndi.maximum_filter(best, size=5, mode="constant"))
    cy, cx = np.nonzero(is_peak)
    if cy.size == 0:
        return []
    top = np.argsort(-best[cy, cx], kind="stable")[: 5 * n]
    cy, cx = cy[top], cx[top]
    r = radii_px[arg[cy, cx]]
    a = best[cy, cx]
    # Disk statistics of every peak at once from summed-area tables, over the
    # square of the same area as the disk of 0.8 r (the lumen without its rim).
    blood, var = _lumen_stats(hu, bone, blood_hu, blood_pool, cy, cx,
                              np.maximum(np.round(0.8 * r * np.sqrt(np.pi) / 2.0 - 0.5), 0).astype(int))
    # A lumen is homogeneous: penalise disks that straddle fat and tissue.
    homog = 1.0 / (1.0 + np.sqrt(var) / 60.0)
    r_mm = r * px_mm
    size = np.where((r_mm >= prefer_mm[0]) & (r_mm <= prefer_mm[1]), 1.0, 0.7)
    pos = np.ones(cy.size)
    if near is not None and near.any():
        gap = np.maximum(_distance_to_mask_px(near, cy, cx) * px_mm - r_mm - 8.0, 0.0)
        pos = np.exp(-0.5 * (gap / 10.0) ** 2)
    side = np.ones(cy.size)
    if midline_i is not None:
        side = np.where((cx - midline_i) * px_mm < -5.0, 0.5, 1.0)
    score = a * blood * (0.5 + 0.5 * homog) * size * pos * side
    out = [(float(sc), float(y), float(x), float(rr)) for sc, y, x, rr in zip(score, cy, cx, r)]
    out.sort(reverse=True)
    return out[:n]


def _lumen_stats(hu: np.ndarray, bone: np.ndarray, blood_hu: tuple[float, float],
                 blood_pool: tuple[float, float] | None, cy: np.ndarray, cx: np.ndarray,
                 half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blood-likeness (fraction of blood-HU pixels) and HU variance of the squares
    ``[c - half, c + half]`` around the circle centres ``(cy, cx)``.

    Calcified plaque is not lumen: with it, a heavily calcified aorta looked
    inhomogeneous and little like blood, the path took the left psoas instead
    and the aorta's and iliacs' plaque was called "other" (80 and 120 kVp
    phantoms, 10 HU noise). Pixels brighter than the blood pool's range
    (``blood_pool``: its level and upper limit, HU) that are not bone count as
    blood at the pool's level -- unless they are most of the square: then the square is a
    bright lumen (an enhanced pool brighter than assumed) or a bright
    structure, judged on its own pixels.
    """
    clipped = np.clip(hu, -200.0, 500.0).astype(np.float64)
    in_range = (hu > blood_hu[0]) & (hu < blood_hu[1]) & ~bone

    def of_all_pixels(y: np.ndarray, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        blood, mean, mean_sq = _box_mean(np.stack([in_range.astype(np.float64), clipped, clipped * clipped]),
                                         y, x, h)
        return blood, mean_sq - mean * mean

    calcium = None if blood_pool is None else (hu > blood_pool[1]) & ~bone
    if calcium is None or not calcium.any():
        blood, var = of_all_pixels(cy, cx, half)
        return blood, np.maximum(var, 0.0)
    # One summed-area table more than without calcium (the search is on the
    # critical path): calcium enters as pool-level blood rather than being
    # counted out of every statistic.
    as_pool = np.where(calcium, blood_pool[0], clipped)
    blood, mean, mean_sq, n_calcium = _box_mean(np.stack([(in_range | calcium).astype(np.float64), as_pool,
                                                          as_pool * as_pool, calcium.astype(np.float64)]),
                                                cy, cx, half)
    var = mean_sq - mean * mean
    bright = n_calcium > 0.5  # calcium fills a minority of a lumen's square
    if bright.any():
        blood[bright], var[bright] = of_all_pixels(cy[bright], cx[bright], half[bright])
    return blood, np.maximum(var, 0.0)


def _distance_to_mask_px(mask: np.ndarray, cy: np.ndarray, cx: np.ndarray) -> np.ndarray:
    """Distance (pixels) from each point ``(cy, cx)`` to the nearest ``True`` pixel of ``mask``.

    Exactly ``ndi.distance_transform_edt(~mask)[cy, cx]`` (the same integer sums of
    squares, then the square root), for the few circle peaks of a slice only: the
    whole window's transform was ~40 % of the aorta search.
    """
    my, mx = np.nonzero(mask)
    d2 = (cy[:, None] - my[None, :]) ** 2 + (cx[:, None] - mx[None, :]) ** 2
    return np.sqrt(d2.min(axis=1).astype(np.float64))


def _box_mean(imgs: np.ndarray, cy: np.ndarray, cx: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Mean of each image of ``imgs`` (``(n, nj, ni)``) over the squares
    ``[c - half, c + half]`` (clipped to the image), ``(n, len(cy))``.

    One summed-area table for the stack: per slice the search is mostly call
    overhead on small windows (and holds the GIL), so three images share it.
    """
    sat = np.zeros((imgs.shape[0], imgs.shape[1] + 1, imgs.shape[2] + 1))
    sat[:, 1:, 1:] = imgs.cumsum(axis=1).cumsum(axis=2)
    y0, y1 = np.maximum(cy - half, 0), np.minimum(cy + half + 1, imgs.shape[1])
    x0, x1 = np.maximum(cx - half, 0), np.minimum(cx + half + 1, imgs.shape[2])
    total = sat[:, y1, x1] - sat[:, y0, x1] - sat[:, y1, x0] + sat[:, y0, x0]
    return total / np.maximum((y1 - y0) * (x1 - x0), 1)


def _viterbi(cands: list[list[tuple[float, float, float, float]]], spacing: tuple[float, float, float],
             s: VesselSettings, start: tuple[float, float] | None = None) -> Tube:
    """Choose one circle (or none) per slice maximising quality minus jumps."""
    sk, sj, si = spacing
    nk = len(cands)
    # state 0 = absent, 1.. = candidates
    best: list[np.ndarray] = []
    back: list[np.ndarray] = []
    for k in range(nk):
        c = cands[k]
        emit = np.array([s.absent_score] + [x[0] for x in c])
        if k == 0:
            score = emit.copy()
            if start is not None:
                for n, x in enumerate(c, start=1):
                    d = np.hypot((x[1] - start[0]) * sj, (x[2] - start[1]) * si)
                    score[n] -= s.jump_cost_per_mm * max(d - 15.0, 0.0)
            best.append(score)
            back.append(np.zeros(len(emit), dtype=int))
            continue
        prev = cands[k - 1]
        trans = np.zeros((len(prev) + 1, len(c) + 1))
        if prev and c:
            # every (previous, current) pair at once; same arithmetic, same order
            pa, cb = np.array(prev)[:, None, :], np.array(c)[None, :, :]
            d = np.hypot((pa[..., 1] - cb[..., 1]) * sj, (pa[..., 2] - cb[..., 2]) * si)
            # radius changes within 2 mm are the quantisation of the radius
            # steps (one step is a pixel), not a change of vessel; larger ones
            # count up to a cap (a plaque ring's concentric circles, see
            # VesselSettings.radius_change_cap_mm)
            dr = np.clip(np.abs(pa[..., 3] - cb[..., 3]) * si - 2.0, 0.0, s.radius_change_cap_mm)
            trans[1:, 1:] = -s.jump_cost_per_mm * (np.maximum(d - 0.5 * sk - 2.0, 0.0) + dr)
        trans[1:, 0] = -0.1  # ending a tube costs a little
        # (re)starting one costs more: the absent state forgets the position,
        # so cheap restarts would let the path teleport to a neighbour tube
        trans[0, 1:] = -0.1 if k == 1 or not any(len(x) for x in cands[: k - 1]) else -0.6
        if start is not None and k * sk > 15.0:
            # A branch tracked from a known start is one run: once it has ended
            # (or not begun within 15 mm) a later "restart" is another vessel.
            trans[0, 1:] = -1e6
        tot = best[-1][:, None] + trans
        back.append(np.argmax(tot, axis=0))
        best.append(tot.max(axis=0) + emit)
    centre = np.full((nk, 2), np.nan)
    radius = np.full(nk, np.nan)
    score = np.zeros(nk)
    state = int(np.argmax(best[-1]))
    for k in range(nk - 1, -1, -1):
        if state > 0:
            sc, j, i, r = cands[k][state - 1]
            centre[k] = (j, i)
            radius[k] = r * si
            score[k] = sc
        state = int(back[k][state]) if k > 0 else 0
    return Tube(centre, radius, score)


def _slice_window(hu2d: np.ndarray, bone2d: np.ndarray, j_range: tuple[float, float],
                  i_range: tuple[float, float]) -> tuple[slice, slice] | None:
    nj, ni = hu2d.shape
    j0, j1 = int(max(np.floor(j_range[0]), 0)), int(min(np.ceil(j_range[1]), nj))
    i0, i1 = int(max(np.floor(i_range[0]), 0)), int(min(np.ceil(i_range[1]), ni))
    if j1 - j0 < 8 or i1 - i0 < 8:
        return None
    return slice(j0, j1), slice(i0, i1)


def _track(hu: np.ndarray, bone: np.ndarray, windows: list[tuple[slice, slice] | None],
           radius_mm: tuple[float, float], spacing: tuple[float, float, float], s: VesselSettings,
           start: tuple[float, float] | None = None, forbid: np.ndarray | None = None,
           prefer_mm: tuple[float, float] | None = None, use_near: bool = True,
           midline_i: np.ndarray | None = None, blood_hu: tuple[float, float] | None = None,
           expected: np.ndarray | None = None, expected_sd_mm: float = 15.0, workers: int = 1,
           blood_pool: tuple[float, float] | None = None) -> Tube:
    """Candidates per slice, then one path (see :func:`_viterbi`).

    ``expected`` (``(len(windows), 2)`` ``(j, i)``, NaN where unknown) is where
    the vessel should run; a circle's score is weighted by a Gaussian of its
    distance from there (floored at 0.2: a prior, not a fence).
    """
    sk, sj, si = spacing
    radii_px = np.arange(max(radius_mm[0] / si, 2.0), radius_mm[1] / si + 0.5, 1.0)
    blood = blood_hu or s.blood_hu

    def slice_candidates(k: int) -> list[tuple[float, float, float, float]]:
        w = windows[k]
        if w is None:
            return []
        img = np.clip(ndi.gaussian_filter(hu[k][w].astype(np.float32), 0.7), -200.0, 300.0)
        allowed = ~ndi.binary_dilation(bone[k][w], iterations=2)
        near = None
        if forbid is not None:
            allowed &= ~forbid[k][w]
            near = forbid[k][w] if use_near else None
        mid = None if midline_i is None else float(midline_i[k]) - w[1].start
        c = _circle_candidates(img, allowed, radii_px, s.n_candidates, hu[k][w], bone[k][w], blood,
                               near, si, prefer_mm or radius_mm, mid, blood_pool)
        c = [(a, j + w[0].start, i + w[1].start, r) for a, j, i, r in c]
        if expected is not None and np.isfinite(expected[k]).all():
            ej, ei = expected[k]
            c = [(a * max(float(np.exp(-0.5 * (((j - ej) * sj) ** 2 + ((i - ei) * si) ** 2) / expected_sd_mm**2)),
                          0.2), j, i, r) for a, j, i, r in c]
            c.sort(reverse=True)
        return c

    # Slices are independent until the path search, so they run on threads;
    # the filters and the Hough transform release the GIL for part of each
    # slice (small windows: much of it is Python, so the gain is partial).
    cands = thread_map(slice_candidates, range(len(windows)), workers)
    return _viterbi(_with_neighbours(cands, spacing), spacing, s, start)


def _with_neighbours(cands: list[list[tuple[float, float, float, float]]], spacing: tuple[float, float, float],
                     n_carry: int = 2, weight: float = 0.6) -> list[list[tuple[float, float, float, float]]]:
    """Add each slice's neighbours' best circles, at a reduced score, to its candidates.

    A slice where the wall's edge is weak (noise, a plaque, a branch) may miss the
    vessel among its own circles; the path would then have to leave the tube,
    and the absent state forgets where it was -- so it could come back on a
    neighbouring round structure. A carried circle keeps the path on the tube
    through such a slice.
    """
    _, sj, si = spacing
    out = [list(c) for c in cands]
    for k in range(len(cands)):
        for nb in (k - 1, k + 1):
            if not 0 <= nb < len(cands):
                continue
            for sc, j, i, r in cands[nb][:n_carry]:
                if any(np.hypot((j - c[1]) * sj, (i - c[2]) * si) < 3.0 for c in cands[k]):
                    continue
                out[k].append((sc * weight, j, i, r))
    return [sorted(c, reverse=True) for c in out]


def _paint(tube: Tube, shape: tuple[int, int, int], spacing: tuple[float, float, float],
           wall_mm: float, ks: Iterable[int] | None = None) -> np.ndarray:
    _, sj, si = spacing
    out = np.zeros(shape, dtype=bool)
    nj, ni = shape[1:]
    for k in (ks if ks is not None else range(shape[0])):
        if not np.isfinite(tube.radius_mm[k]):
            continue
        jc, ic = tube.centre[k]
        r = tube.radius_mm[k] + wall_mm
        j0, j1 = int(max(jc - r / sj - 1, 0)), int(min(jc + r / sj + 2, nj))
        i0, i1 = int(max(ic - r / si - 1, 0)), int(min(ic + r / si + 2, ni))
        jj, ii = np.mgrid[j0:j1, i0:i1]
        out[k, j0:j1, i0:i1] |= ((jj - jc) * sj) ** 2 + ((ii - ic) * si) ** 2 <= r * r
    return out


def find_vessels(hu: np.ndarray, spacing: tuple[float, float, float], body_centre: np.ndarray,
                 body_front: np.ndarray, bone: np.ndarray, *, spine_mask: np.ndarray | None = None,
                 settings: VesselSettings | None = None, sacrum_top_k: int | None = None,
                 workers: int | None = None, blood_pool_hu: float | None = None,
                 heads_beside: Future[dict[str, FemoralHead]] | None = None) -> Vessels:
    """Find the aorta and iliac arteries.

    Parameters
    ----------
    hu : ndarray
        CT in HU ``[k, j, i]`` (k superior, j posterior, i left).
    spacing : tuple of float
        ``(sk, sj, si)`` mm.
    body_centre : ndarray
        ``(nk, 2)`` vertebral body centre ``(j, i)`` per slice (from the spine).
    body_front : ndarray
        ``(nk,)`` row index of the body's anterior edge per slice.
    bone : ndarray of bool
        Bone mask (excluded from the lumen and the edge map).
    spine_mask : ndarray of bool, optional
        The vertebral column (bodies filled): no centre may lie in it, and the
        aorta is expected against it.
    workers : int, optional
        Threads for the per-slice circle search (default: every available CPU,
        :func:`calcdetect.workers.resolve_workers`); the result does not depend on it.
    blood_pool_hu : float, optional
        The blood pool's measured level (median HU of an enhanced lumen); pixels
        above it by ``settings.pool_margin_hu`` are calcium, not lumen. Default:
        unenhanced blood.
    heads_beside : Future, optional
        The femoral heads being found on another thread
        (:func:`femoral_heads_beside`, with this ``bone``, ``spine_mask``,
        ``sacrum_top_k`` and settings); found here instead if that thread has not
        started them by the time they are needed. The result does not depend on it.
    """
    s = settings or VesselSettings()
    pool_hu = blood_pool_hu if blood_pool_hu is not None else s.unenhanced_blood_hu
    blood_pool = (pool_hu, max(pool_hu, s.unenhanced_blood_hu) + s.pool_margin_hu)
    workers = resolve_workers(workers)
    sk, sj, si = spacing
    nk = hu.shape[0]
    # Aorta: 60 mm in front of the body to 10 mm behind its centre (the thoracic
    # aorta lies beside the body), 40 mm right to 60 mm left of the centre line.
    windows = []
    for k in range(nk):
        jc, ic = body_centre[k]
        windows.append(_slice_window(hu[k], bone[k], (body_front[k] - 60.0 / sj, jc + 10.0 / sj),
                                     (ic - 40.0 / si, ic + 60.0 / si)))
    division_k = _division_k(sacrum_top_k, sk, s)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The femoral heads need only the bone: their 3-D distance transform
        # (GIL released) runs beside the aorta's per-slice search, and is
        # dropped if no bifurcation is found.
        heads_later = heads_beside
        if heads_later is None and division_k is not None and workers > 1:
            heads_later = pool.submit(find_femoral_heads, bone, spacing, body_centre, spine_mask, division_k, s)
        aorta_tube = _track(hu, bone, windows, s.aorta_radius_mm, spacing, s, forbid=spine_mask,
                            prefer_mm=(8.0, 15.0), midline_i=body_centre[:, 1], workers=workers,
                            blood_pool=blood_pool)
        heads_early = result_unless_queued(heads_later)
    notes: list[str] = []
    present = np.flatnonzero(aorta_tube.present)
    shape = hu.shape
    empty = {n: np.zeros(shape, dtype=bool) for n in (
        "common_iliac_artery_left", "common_iliac_artery_right", "external_iliac_artery_left",
        "external_iliac_artery_right", "internal_iliac_artery_left", "internal_iliac_artery_right")}
    if present.size == 0:
        return Vessels(np.zeros(shape, dtype=bool), empty, aorta_tube, None, ("aorta not found",))
    aorta_tube = _bridge_gaps(_drop_outliers(aorta_tube, spacing), spacing)
    # Keep the longest run of present slices (the tube is continuous along z),
    # joined with the runs that continue its course past a detour.
    aorta_tube, (k0, k1) = _join_aorta_runs(aorta_tube, spacing)
    # At the bifurcation the path may slip into one common iliac and follow it
    # down: the aorta ends where, walking down, its radius halves, its centre
    # leaves the line it kept above or its distance from the vertebral midline;
    # and never below the top of the sacrum.
    k0 = max(_bifurcation_cut(aorta_tube.radius_mm, k0, k1, centre=aorta_tube.centre, spacing=spacing),
             _lateral_departure_cut(aorta_tube.centre, k0, k1, spacing),
             _midline_departure_cut(aorta_tube.centre, body_centre[:, 1], k0, k1, spacing))
    if sacrum_top_k is not None and k0 <= sacrum_top_k < k1:
        k0 = sacrum_top_k + 1
    radius = np.full(nk, np.nan)
    radius[k0 : k1 + 1] = aorta_tube.radius_mm[k0 : k1 + 1]
    aorta_tube = Tube(aorta_tube.centre, radius, aorta_tube.score)
    aorta = _paint(aorta_tube, shape, spacing, s.wall_mm)
    bif = None
    iliac = empty
    if k0 > 0:
        bif = k0
        heads = heads_early
        if division_k is not None and heads is None:
            heads = find_femoral_heads(bone, spacing, body_centre, spine_mask, division_k, s)
        iliac = _iliacs(hu, bone, aorta_tube, bif, body_centre, spacing, s, aorta, spine_mask, division_k,
                        body_front, heads, workers=workers, blood_pool=blood_pool)
        if not any(m.any() for m in iliac.values()):
            bif = None
    return Vessels(aorta, iliac, aorta_tube, bif, tuple(notes))


def _division_k(sacrum_top_k: int | None, sk: float, s: VesselSettings) -> int | None:
    """The slice where the common iliacs divide (a set distance below the top of
    the sacrum); None without a sacrum."""
    if sacrum_top_k is None:
        return None
    return int(round(sacrum_top_k - s.division_below_sacrum_mm / sk))


def femoral_heads_beside(executor: Executor, bone: np.ndarray, spacing: tuple[float, float, float],
                         body_centre: np.ndarray, spine_mask: np.ndarray | None, sacrum_top_k: int | None,
                         settings: VesselSettings | None = None) -> Future[dict[str, FemoralHead]] | None:
    """:func:`find_femoral_heads` as :func:`find_vessels` would call it, submitted to
    ``executor`` (pass the future as ``find_vessels(heads_beside=...)``); None
    without a sacrum (no division level: the heads are not searched)."""
    s = settings or VesselSettings()
    division_k = _division_k(sacrum_top_k, spacing[0], s)
    if division_k is None:
        return None
    return executor.submit(find_femoral_heads, bone, spacing, body_centre, spine_mask, division_k, s)


def _bifurcation_cut(radius_mm: np.ndarray, k0: int, k1: int, ratio: float = 0.75, *,
                     centre: np.ndarray | None = None, spacing: tuple[float, float, float] | None = None,
                     recover_mm: float = 30.0, max_shift_mm: float = 8.0, leave_slices: int = 3) -> int:
    """Lowest slice of the aorta in the run ``k0..k1`` (k grows cranially).

    At the bifurcation the path may slip into one common iliac artery and follow
    it for centimetres; its radius is about half the aorta's. Walking down from
    the middle of the run (the top may hold the arch or the scan's edge), the
    aorta ends above the first slice where the radius, median of three slices,
    falls under ``ratio`` x the run's median and does not come back.

    The fitted radius moves in steps of one work-grid pixel (~1.9 mm), and the
    aorta's own fit dips by a step or two over a few centimetres (plaque, a
    weak wall): on the tuning phantoms such dips of 5-27 mm ended the aorta
    35-60 mm above the bifurcation, and its plaque was called iliac. With
    ``spacing``, a dip is the aorta when the radius is back above the limit on
    two slices in a row within ``recover_mm`` below it, on the aorta's course:
    with ``centre`` given, within ``max_shift_mm`` of the centre line just
    above the dip (a common iliac can be fitted as wide, but it has left the
    midline by then).

    With ``centre`` and ``spacing``, the course decides both ways, walking down
    from the dip. A narrow stretch that keeps to the course for the whole
    ``recover_mm`` is the aorta: a calcified ring's inner edge fits two radius
    steps small (10.3 mm under a 14 mm median on dev phantom 1732, 80 kV / 40 HU / 3 mm
    phantom, 45 mm long) and the aorta ended 78 mm above the bifurcation, its
    plaque at L3-L5 called iliac; a common iliac leaves the course within
    centimetres. ``leave_slices`` slices in a row off the course before the
    radius comes back are a common iliac: the aorta ends above the dip, and a
    "recovery" further down is no longer the aorta (there, two iliacs side by
    side fitted as one wide circle on the aortic line, 24-48 mm below the
    bifurcation). A narrow stretch cut short by the run's end is the end of the
    aorta, as before.
    """
    r = radius_mm[k0 : k1 + 1]
    med = float(np.median(r))
    smooth = ndi.median_filter(r, size=3, mode="nearest") if r.size >= 3 else r
    wide = smooth >= ratio * med
    reach = 0 if spacing is None else int(np.ceil(recover_mm / spacing[0]))
    for n in range(r.size // 2, -1, -1):
        if wide[n]:
            continue
        if centre is None or spacing is None:
            back = wide[max(n - reach, 0) : n]
            if not (back[1:] & back[:-1]).any():
                return min(k0 + n + 1, k1)
            continue
        c = centre[k0 : k1 + 1]
        above = np.nanmedian(c[n + 1 : n + 1 + max(reach // 3, 1)], axis=0)
        below = np.arange(n, max(n - reach, 0) - 1, -1)  # walking down from the dip
        on_course = np.hypot((c[below, 0] - above[0]) * spacing[1],
                             (c[below, 1] - above[1]) * spacing[2]) <= max_shift_mm
        if _narrow_stretch_is_aorta(wide[below], on_course, leave_slices, whole_reach=n >= reach):
            continue
        return min(k0 + n + 1, k1)
    return k0


def _narrow_stretch_is_aorta(wide: np.ndarray, on_course: np.ndarray, leave_slices: int, *,
                             whole_reach: bool) -> bool:
    """Whether a narrow stretch of the aortic path (slices walking down from its
    first narrow slice) is still the aorta: the radius comes back (two wide
    slices in a row) on the course before ``leave_slices`` slices in a row
    leave it, or the path keeps to the course over the whole reach."""
    off_run = 0
    for m in range(wide.size):
        if not on_course[m]:
            off_run += 1
            if off_run >= leave_slices:
                return False
            continue
        off_run = 0
        if m >= 1 and wide[m] and wide[m - 1] and on_course[m - 1]:
            return True
    return whole_reach


def _lateral_departure_cut(centre: np.ndarray, k0: int, k1: int, spacing: tuple[float, float, float],
                           window_mm: float = 40.0, max_mm: float = 12.0) -> int:
    """Lowest slice of the aorta judged by its course: walking down the lower
    half of the run, the first
    slice whose centre lies more than ``max_mm`` sideways from the median centre
    of the ``window_mm`` above it (three slices in a row) is a common iliac
    artery diverging from the midline; the aorta's own bends are slower."""
    sk, _, si = spacing
    win = max(int(round(window_mm / sk)), 3)
    # the lower half only: the arch bends sideways at the top of a chest scan
    top = min(k1 - win, k0 + (k1 - k0) // 2)
    off = np.zeros(k1 + 1)
    for k in range(top, k0 - 1, -1):
        ref = float(np.median(centre[k + 1 : k + 1 + win, 1]))
        off[k] = abs(centre[k, 1] - ref) * si
    run = 0
    for k in range(top, k0 - 1, -1):
        run = run + 1 if off[k] > max_mm else 0
        if run == 3:
            return min(k + 3, k1)
    return k0


def _midline_departure_cut(centre: np.ndarray, midline_i: np.ndarray, k0: int, k1: int,
                           spacing: tuple[float, float, float], ref_mm: float = 100.0, min_ref_mm: float = 30.0,
                           max_mm: float = 8.0, onset_mm: float = 3.0, sustain_mm: float = 9.0,
                           tail_mm: float = 5.0) -> int:
    """Lowest slice of the aorta judged by its distance from the vertebral midline.

    Below the bifurcation the path can slide on into one common iliac artery,
    which leaves the midline at ~0.3 mm per mm: too slowly for
    :func:`_lateral_departure_cut`, whose 40 mm reference window follows the
    drift (dev phantoms: the aorta ran 47-80 mm into the left common iliac and
    its plaque was called aortic). The aorta keeps its distance from the
    midline; here the reference is the median sideways offset over the
    ``ref_mm`` above (robust while the drift is under half of it). Walking
    down the lower half of the run, the tube has left the aorta where it lies
    more than ``max_mm`` off that reference for ``sustain_mm``; the aorta ends
    at the onset of that drift, the lowest slice above it that starts three
    in a row within ``onset_mm`` of the reference.

    A drift that runs off the run's lower end counts after ``tail_mm`` (at
    least two slices): the tracked path can stop in the common iliac before the
    drift has lasted ``sustain_mm`` (dev phantoms: 2-3 slices 8-12 mm off at
    2.5 mm a slice, 12.5 mm of iliac called aortic); the aorta itself does not
    step 8 mm sideways from its course at its lowest slices.
    """
    sk, _, si = spacing
    off = (centre[:, 1] - midline_i) * si
    ref_n = max(int(round(ref_mm / sk)), 1)
    min_ref = max(int(round(min_ref_mm / sk)), 3)
    sustain = max(int(round(sustain_mm / sk)), 3)
    tail = max(int(round(tail_mm / sk)), 2)

    def reference(k: int) -> float | None:
        above = off[k + 1 : min(k + 1 + ref_n, k1 + 1)]
        above = above[np.isfinite(above)]
        return float(np.median(above)) if above.size >= min_ref else None

    run = 0
    for k in range(k0 + (k1 - k0) // 2, k0 - 1, -1):
        ref = reference(k)
        run = run + 1 if ref is not None and np.isfinite(off[k]) and abs(off[k] - ref) > max_mm else 0
        if run == sustain or (k == k0 and run >= tail):
            first = k + run - 1  # the first slice off the course
            ref_first = reference(first)
            ref = ref_first if ref_first is not None else ref
            # the onset: walking up, the first of three slices in a row back on
            # the course (one slice's fit can touch it by chance mid-drift)
            near = np.abs(off - ref) <= onset_mm
            on = first + 1
            while on < k1 and not near[on : on + 3].all():
                on += 1
            return on
    return k0


def _drop_outliers(tube: Tube, spacing: tuple[float, float, float], window_mm: float = 30.0,
                   max_mm: float = 10.0) -> Tube:
    """Remove detections far from the running median of the centre line (a few
    slices where the path strayed onto a neighbouring round structure)."""
    sk, sj, si = spacing
    present = tube.present
    if present.sum() < 3:
        return tube
    half = max(int(round(window_mm / sk / 2)), 1)
    radius = tube.radius_mm.copy()
    ks = np.flatnonzero(present)
    for k in ks:
        near = ks[np.abs(ks - k) <= half]
        med = np.median(tube.centre[near], axis=0)
        if np.hypot((tube.centre[k, 0] - med[0]) * sj, (tube.centre[k, 1] - med[1]) * si) > max_mm:
            radius[k] = np.nan
    centre = tube.centre.copy()
    centre[~np.isfinite(radius)] = np.nan
    return Tube(centre, radius, tube.score)


def _bridge_gaps(tube: Tube, spacing: tuple[float, float, float], max_gap_mm: float = 12.0) -> Tube:
    """Interpolate short gaps between nearby detections (a slice with a weak edge
    does not interrupt a tube)."""
    sk, sj, si = spacing
    centre, radius = tube.centre.copy(), tube.radius_mm.copy()
    ks = np.flatnonzero(np.isfinite(radius))
    for a, b in zip(ks, ks[1:]):
        if b - a < 2 or (b - a) * sk > max(max_gap_mm, 3 * sk):
            continue
        if np.hypot((centre[a, 0] - centre[b, 0]) * sj, (centre[a, 1] - centre[b, 1]) * si) > 10.0:
            continue
        for k in range(a + 1, b):
            f = (k - a) / (b - a)
            centre[k] = (1 - f) * centre[a] + f * centre[b]
            radius[k] = (1 - f) * radius[a] + f * radius[b]
    return Tube(centre, radius, tube.score)


def _join_aorta_runs(tube: Tube, spacing: tuple[float, float, float], max_gap_mm: float = 60.0,
                     max_offset_mm: float = 12.0, min_run_mm: float = 9.0) -> tuple[Tube, tuple[int, int]]:
    """The longest run of present slices, joined with the runs above and below it
    that continue its course; the tube with the joined gaps filled in, and the run.

    On noisy thick-slice scans the path can leave the aorta for a few centimetres
    (a detour onto the psoas or a bowel loop, 33 mm off the line on a held-out
    80 kVp / 40 HU / 3 mm phantom) and come back: the detour is dropped as an
    outlier, and the longest run then ended at L1 -- the aorta below it and both
    iliac trees were lost. A run is joined when it lies within ``max_gap_mm`` of
    the current end, spans at least ``min_run_mm``, and its near end lies within
    ``max_offset_mm`` of the current end's centre; the nearest such run wins (a
    detour between them is skipped), the gap is filled by interpolating the
    centre and radius, as :func:`_bridge_gaps` does for short gaps, and the run
    is kept as far as it stays within ``max_offset_mm`` of that end.
    """
    sk, sj, si = spacing
    runs = _present_runs(tube.present)
    k0, k1 = max(runs, key=lambda r: r[1] - r[0])
    centre, radius = tube.centre.copy(), tube.radius_mm.copy()

    def fill(a: int, b: int) -> None:
        for k in range(a + 1, b):
            f = (k - a) / (b - a)
            centre[k] = (1 - f) * centre[a] + f * centre[b]
            radius[k] = (1 - f) * radius[a] + f * radius[b]

    def offset_mm(a: int, b: int) -> float:
        return float(np.hypot((centre[a, 0] - centre[b, 0]) * sj, (centre[a, 1] - centre[b, 1]) * si))

    def joinable(r: tuple[int, int], near_end: int, end: int) -> bool:
        return ((r[1] - r[0] + 1) * sk >= min_run_mm and abs(end - near_end) * sk <= max_gap_mm
                and offset_mm(near_end, end) <= max_offset_mm)

    def on_course(ks: Iterable[int], end: int) -> int:
        # A joined run is kept while it stays on the course: near the bifurcation
        # the path may slide on into one common iliac artery, and a run that
        # resumes there drifts sideways too slowly for the lateral cut.
        last = end
        for k in ks:
            if offset_mm(k, end) > max_offset_mm:
                break
            last = k
        return last

    while True:
        below = [r for r in runs if r[1] < k0 and joinable(r, r[1], k0)]
        if not below:
            break
        r = max(below, key=lambda x: x[1])
        fill(r[1], k0)
        k0, end = on_course(range(r[1], r[0] - 1, -1), k0), r[0]
        if k0 != end:
            break
    while True:
        above = [r for r in runs if r[0] > k1 and joinable(r, r[0], k1)]
        if not above:
            break
        r = min(above, key=lambda x: x[0])
        fill(k1, r[0])
        k1, end = on_course(range(r[0], r[1] + 1), k1), r[1]
        if k1 != end:
            break
    return Tube(centre, radius, tube.score), (k0, k1)


def _present_runs(present: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], present, [False]]).astype(np.int8)
    d = np.diff(padded)
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


@dataclass(frozen=True)
class FemoralHead:
    """Centre ``(k, j, i)`` (work-grid index) and radius (mm) of one femoral head."""

    k: float
    j: float
    i: float
    radius_mm: float


def find_femoral_heads(bone: np.ndarray, spacing: tuple[float, float, float], body_centre: np.ndarray,
                       spine_mask: np.ndarray | None, below_k: int,
                       s: VesselSettings | None = None) -> dict[str, FemoralHead]:
    """The femoral heads: on each side, the thickest bone of the pelvis below ``below_k``.

    A femoral head is a ball of ~20-25 mm radius; the iliac wings, the
    acetabular rim and the pubic rami are plates and bars, so the largest ball
    that fits in the (per-slice hole-filled) bone mask of each half of the
    pelvis, away from the column, is the head. Slices beyond the scan count as
    soft tissue, so a head cut by the field of view is too small and is not
    returned (the external iliac then has no prior). Sides without a ball of
    plausible radius and lateral offset are left out.
    """
    s = s or VesselSettings()
    si = spacing[2]
    top = min(max(below_k, 0), bone.shape[0] - 1)
    if top < 2:
        return {}
    # The pelvic bone's box with a one-voxel background margin holds every
    # distance of the full volume exactly: the background voxel nearest to a
    # bone voxel is never farther out than that margin (clamping a voxel onto
    # the box brings it closer, and the margin is background). The 3-D
    # distance transform is the costliest step here; the box is a fraction of it.
    box = _bounding_box(bone[: top + 1], margin=1)
    if box is None:
        return {}
    sub = fill_holes_per_slice(np.ascontiguousarray(bone[: top + 1][box]))
    if spine_mask is not None:
        sub &= ~spine_mask[: top + 1][box]
    padded = np.pad(sub, ((1, 1), (0, 0), (0, 0)))
    dist = ndi.distance_transform_edt(padded, sampling=spacing)[1:-1]
    k0, j0, i0 = (sl.start for sl in box)
    mid = float(np.nanmedian(body_centre[: top + 1, 1]))
    off_mm = (np.arange(i0, i0 + sub.shape[2]) - mid) * si
    out: dict[str, FemoralHead] = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lateral = (sign * off_mm >= s.femoral_head_lateral_mm[0]) & (sign * off_mm <= s.femoral_head_lateral_mm[1])
        d = np.where(lateral[None, None, :], dist, 0.0)
        k, j, i = np.unravel_index(int(np.argmax(d)), d.shape)
        r = float(d[k, j, i])
        if not s.femoral_head_radius_mm[0] <= r <= s.femoral_head_radius_mm[1]:
            continue
        fit = _head_sphere_fit(sub, spacing, (int(k), int(j), int(i)), r, s.femoral_head_radius_mm)
        if fit is not None:
            (k, j, i), r = fit
        out[side] = FemoralHead(float(k + k0), float(j + j0), float(i + i0), r)
    return out


def _head_sphere_fit(bone: np.ndarray, spacing: tuple[float, float, float], ball: tuple[int, int, int],
                     ball_mm: float, radius_mm: tuple[float, float], search_mm: float = 16.0,
                     ) -> tuple[tuple[float, float, float], float] | None:
    """The femoral head as the sphere that best matches the bone surface near the
    largest inscribed ball (``ball``, radius ``ball_mm``); None if no sphere of
    ``radius_mm`` fits there.

    At 3 mm slices the 2 mm joint space under the acetabular roof is lost to
    partial volume: head and acetabulum merge, and the largest ball in the
    merged bone sits 8-10 mm medial of and 6-8 mm above the head's centre
    (tuning phantoms; the external iliac zone, placed from the head, then ran
    10-16 mm medial of the artery). The head's lateral and inferior surface is
    free of the acetabulum at any slice thickness, and the acetabulum's own
    surfaces are concentric with the head: a sphere Hough transform of the
    bone surface (each surface voxel votes for the centres at one radius from
    it) peaks on the head's centre.
    """
    step = np.asarray(spacing, dtype=float)
    lo_r = max(radius_mm[0], ball_mm - 4.0)
    hi_r = min(radius_mm[1], ball_mm + 2.0)
    if lo_r > hi_r:
        return None
    half = np.ceil((hi_r + search_mm + 2.0) / step).astype(int)
    lo = np.maximum(np.asarray(ball) - half, 0)
    hi = np.minimum(np.asarray(ball) + half + 1, bone.shape)
    local = bone[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    # the box's cut faces are not surfaces: erosion with a bone border
    surface = (local & ~ndi.binary_erosion(local, border_value=1)).astype(np.float32)
    grid = np.meshgrid(*[(np.arange(n) + l - b) * d for n, l, b, d in zip(local.shape, lo, ball, step)],
                       indexing="ij")
    near = (sum(g**2 for g in grid) <= search_mm**2) & local  # the centre lies in the bone
    if not near.any():
        return None
    shell_mm = 0.5 * float(step.max())  # a surface voxel lies within half a voxel of the surface
    best: tuple[float, tuple[int, int, int], float] | None = None
    for r in np.arange(lo_r, hi_r + 1e-6, 1.0):
        kh = np.ceil((r + shell_mm) / step).astype(int)
        kz, kj, ki = np.meshgrid(*[np.arange(-h, h + 1) * d for h, d in zip(kh, step)], indexing="ij")
        shell = (np.abs(np.sqrt(kz**2 + kj**2 + ki**2) - r) <= shell_mm).astype(np.float32)
        # the share of the sphere's surface that is bone surface
        votes = fftconvolve(surface, shell, mode="same") / shell.sum()
        votes[~near] = -1.0
        at = np.unravel_index(int(np.argmax(votes)), votes.shape)
        if best is None or votes[at] > best[0]:
            best = float(votes[at]), tuple(int(v) for v in at), float(r)  # type: ignore[assignment]
    assert best is not None
    score, at, r = best
    if score <= 0.0:
        return None
    return (float(at[0] + lo[0]), float(at[1] + lo[1]), float(at[2] + lo[2])), r


def _bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice, slice] | None:
    """Bounding box of a 3-D mask grown by ``margin`` voxels (clipped to the array); None if empty."""
    box = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + margin + 1, mask.shape[axis])))
    return box[0], box[1], box[2]


def _external_iliac_target(head: FemoralHead, sign: float, spacing: tuple[float, float, float],
                           s: VesselSettings) -> tuple[float, float, float]:
    """``(k, j, i)`` where the external iliac should pass at the level of the femoral head's centre."""
    _, sj, si = spacing
    j = head.j - (head.radius_mm + s.eia_target_anterior_mm) / sj
    i = head.i - sign * s.eia_target_medial_r * head.radius_mm / si
    return head.k, j, i


def _iliacs(hu: np.ndarray, bone: np.ndarray, aorta: Tube, bif: int, body_centre: np.ndarray,
            spacing: tuple[float, float, float], s: VesselSettings, aorta_mask: np.ndarray,
            spine_mask: np.ndarray | None, division_k: int | None = None,
            body_front: np.ndarray | None = None,
            heads: dict[str, FemoralHead] | None = None, workers: int = 1,
            blood_pool: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """Track both iliac arteries caudally from the bifurcation and split them.

    When the division level is known, each common iliac is expected on the
    straight line from the bifurcation to the front of its sacro-iliac joint
    (``cia_end_lateral_mm`` from the midline, ``cia_end_anterior_mm`` in front of
    the sacrum): the iliac veins and bowel loops beside it are round and of
    blood density too on a plain CT, and this prior keeps the path on the artery.
    Below the division the external iliac is expected on the line from there to
    the front of the femoral head (``heads``), when the head was found: without
    it the tracker drifted onto the iliopsoas and the abdominal wall.
    """
    sk, sj, si = spacing
    nk = hu.shape[0]
    # The aorta's last slices may already lean into one common iliac: start
    # from its median centre over the lowest 10 mm.
    top = min(bif + max(int(round(10.0 / sk)), 1), nk)
    jb, ib = np.nanmedian(aorta.centre[bif:top], axis=0)
    # The iliacs carry the aorta's blood: their lumen has its HU (contrast or
    # not), which tells them from bowel loops and muscle of other density.
    ks = np.flatnonzero(aorta.present)
    lumen = float(np.median([hu[k, int(round(aorta.centre[k, 0])), int(round(aorta.centre[k, 1]))] for k in ks]))
    iliac_hu = (lumen - 60.0, lumen + 60.0)
    out: dict[str, np.ndarray] = {}
    taken: np.ndarray | None = None
    for side, sign in (("left", 1.0), ("right", -1.0)):
        windows: list[tuple[slice, slice] | None] = [None] * nk
        for k in range(bif - 1, -1, -1):
            # Drift allowance grows with distance from the bifurcation: the iliacs
            # run laterally (up to ~90 mm) and anteriorly along the pelvic brim.
            down = (bif - k) * sk
            lat = min(25.0 + 0.8 * down, 100.0)
            # relative to the aorta's end: the right common iliac crosses the
            # midline when the aorta lies left of it
            lo, hi = (ib - 5.0 / si, ib + lat / si) if sign > 0 else (ib - lat / si, ib + 5.0 / si)
            windows[k] = _slice_window(hu[k], bone[k], (jb - (25.0 + 0.4 * down) / sj, jb + 25.0 / sj), (lo, hi))
        order = list(range(bif - 1, -1, -1))
        forbid = np.zeros((len(order),) + hu.shape[1:], dtype=bool)
        if spine_mask is not None:
            forbid |= spine_mask[order]
        if taken is not None:
            # the other side's tube is not this side's artery
            forbid |= taken[order]
        expected = None
        if division_k is not None and body_front is not None and 0 <= division_k < bif:
            # The midline from L5 and the upper sacrum: the body-centre estimate
            # on the sacrum itself drifts sideways with the alae (9 mm on a tuning
            # phantom), which shifted one side's zones medially.
            midline_i = float(np.nanmedian(body_centre[division_k : bif + 1, 1]))
            end = (body_front[division_k] - s.cia_end_anterior_mm / sj,
                   midline_i + sign * s.cia_end_lateral_mm / si)
            f = np.clip((bif - np.asarray(order, dtype=float)) / (bif - division_k), 0.0, 1.0)
            expected = np.column_stack([jb + f * (end[0] - jb), ib + f * (end[1] - ib)])
            below = np.asarray(order) < division_k
            expected[below] = np.nan  # the external iliac: no prior without a femoral head
            head = (heads or {}).get(side)
            if head is not None and head.k < division_k:
                tk, tj, ti = _external_iliac_target(head, sign, spacing, s)
                g = np.clip((division_k - np.asarray(order, dtype=float)) / (division_k - tk), 0.0, 1.0)[below]
                expected[below] = np.column_stack([end[0] + g * (tj - end[0]), end[1] + g * (ti - end[1])])
        sub = _track(hu[order], bone[order], [windows[k] for k in order], s.iliac_radius_mm,
                     spacing, s, start=(jb, ib), forbid=forbid, use_near=False, prefer_mm=(3.5, 8.0),
                     blood_hu=iliac_hu, expected=expected, workers=workers,
                     blood_pool=None if blood_pool is None else (blood_pool[0], max(blood_pool[1], iliac_hu[1])))
        centre = np.full((nk, 2), np.nan)
        radius = np.full(nk, np.nan)
        for n, k in enumerate(order):
            centre[k] = sub.centre[n]
            radius[k] = sub.radius_mm[n]
        # bridge short gaps (a weak edge on a slice, a branching point), then
        # keep only the run attached to the bifurcation
        bridged = _bridge_gaps(_drop_outliers(Tube(centre, radius, np.zeros(nk)), spacing), spacing)
        centre, radius = bridged.centre.copy(), bridged.radius_mm.copy()
        present = np.isfinite(radius)
        started = False
        for k in order:
            # the run may begin a few slices down (the tracker allows 15 mm)
            if present[k]:
                started = True
            elif started:
                radius[: k + 1] = np.nan
                break
        if expected is not None:
            # Down to the division the common iliac's course is known: where the
            # tracking stopped short (a weak wall, a vein beside it), the rest
            # of the way is the expected line, painted at a typical radius.
            # So is the external iliac's down to the femoral head (when it was
            # found): inside the iliopsoas its wall casts almost no edge.
            head = (heads or {}).get(side)
            floor_k = -1 if head is None else head.k - s.eia_below_head_mm / sk
            for n, k in enumerate(order):
                if np.isfinite(radius[k]) or not np.isfinite(expected[n]).all():
                    continue
                if k > division_k:
                    centre[k], radius[k] = expected[n], s.cia_fill_radius_mm
                elif k >= floor_k:
                    centre[k], radius[k] = expected[n], s.eia_fill_radius_mm
        tube = Tube(centre, radius, np.zeros(nk))
        # path length along the centre line from the bifurcation
        length = np.zeros(nk)
        prev, acc = (jb, ib), 0.0
        for k in order:
            if not np.isfinite(radius[k]):
                acc += sk  # not tracked (yet): count the slice straight down
                continue
            acc += float(np.sqrt(sk**2 + ((centre[k, 0] - prev[0]) * sj) ** 2 + ((centre[k, 1] - prev[1]) * si) ** 2))
            length[k] = acc
            prev = tuple(centre[k])
        tracked = [k for k in order if np.isfinite(radius[k])]
        if division_k is not None and division_k < bif:
            common_ks = [k for k in tracked if k > division_k]
        else:
            common_ks = [k for k in tracked if length[k] <= s.common_iliac_mm]
        ext_ks = [k for k in tracked if k not in set(common_ks)]
        taken = _paint(tube, hu.shape, spacing, 2.0)
        out[f"common_iliac_artery_{side}"] = _paint(tube, hu.shape, spacing, s.wall_mm, common_ks)
        out[f"external_iliac_artery_{side}"] = _paint(tube, hu.shape, spacing, s.wall_mm, ext_ks)
        internal = np.zeros(hu.shape, dtype=bool)
        division = None
        if expected is not None and division_k in order:
            division = division_k, expected[order.index(division_k)]
        elif ext_ks:
            division = ext_ks[0], centre[ext_ks[0]]
        if division is not None and division[1] is not None:
            # Internal iliac: a coarse zone from the division point descending
            # posteriorly and a little laterally towards the greater sciatic
            # foramen (40 mm back, 10 mm out over internal_iliac_mm); its
            # branches are not tracked.
            kd = division[0]
            jd, id_ = division[1]
            n_sl = int(round(s.internal_iliac_mm / sk))
            ic_t = np.full((hu.shape[0], 2), np.nan)
            r_t = np.full(hu.shape[0], np.nan)
            for n in range(n_sl):
                k = kd - n
                if k < 0:
                    break
                f = (n + 1) / n_sl
                ic_t[k] = (jd + f * 40.0 / sj, id_ + sign * f * 10.0 / si)
                r_t[k] = 4.5
            internal = _paint(Tube(ic_t, r_t, np.zeros(hu.shape[0])), hu.shape, spacing, s.wall_mm)
        out[f"internal_iliac_artery_{side}"] = internal & ~aorta_mask
    return out


@dataclass(frozen=True)
class EnhancedLumenSettings:
    """An iodine-filled aorta passes the bone threshold; these tell it from bone."""

    area_mm2: tuple[float, float] = (40.0, 1000.0)  # radius ~3.5-18 mm: aorta and iliac arteries
    hu: tuple[float, float] = (130.0, 650.0)  # mean of the cross-section (iodinated blood)
    max_sd_hu: float = 70.0  # a lumen is homogeneous; cortex + marrow is not
    min_fill: float = 0.6  # area / disk of its largest extent: round
    min_run_mm: float = 30.0  # z span of a chain (or half of a short scan)
    max_step_mm: float = 10.0  # centre movement between neighbouring slices
    max_gap_slices: int = 2  # slices a chain may skip (lumen out of the mask there)
    max_mad_hu: float = 40.0  # robust homogeneity when plaque inflates the SD
    aorta_max_right_mm: float = 5.0  # the aorta's chain is not further right of the midline


def enhanced_lumen(hu: np.ndarray, bone: np.ndarray, spacing: tuple[float, float, float],
                   settings: EnhancedLumenSettings | None = None) -> np.ndarray:
    """Contrast-filled round tubes inside a bone mask (the enhanced aorta), as a mask.

    Per slice, every bone blob that is round, of aortic size and homogeneous at
    the HU of iodinated blood is a lumen candidate; candidates that line up
    slice after slice (centre moving < ``max_step_mm``) over ``min_run_mm`` are
    kept. Vertebral bodies are larger or not homogeneous (cortex around
    marrow), ribs are not round, kidneys are larger: they stay bone.
    """
    return find_lumen_chains(hu, bone, spacing, settings).mask()


@dataclass(frozen=True)
class LumenChains:
    """Enhanced-lumen candidates chained along z (see :func:`enhanced_lumen`).

    ``labels``: per-slice bone blob ids; ``chains``: ``(blob id, j mm, i mm, k)``
    per member; ``area_mm2``: blob area by id. Computed once per scan and used
    both to carve the lumen out of bone and to place the enhanced aorta.
    """

    labels: np.ndarray
    chains: list[list[tuple[int, float, float, int]]]
    area_mm2: np.ndarray

    def mask(self) -> np.ndarray:
        keep = np.zeros(int(self.labels.max()) + 1, dtype=bool)
        for c in self.chains:
            keep[[b[0] for b in c]] = True
        return keep[self.labels]


def find_lumen_chains(hu: np.ndarray, bone: np.ndarray, spacing: tuple[float, float, float],
                      settings: EnhancedLumenSettings | None = None) -> LumenChains:
    """The lumen candidates of :func:`enhanced_lumen`, chained along z."""
    s = settings or EnhancedLumenSettings()
    sk, sj, si = spacing
    nk = hu.shape[0]
    lab, n = ndi.label(bone, structure=_PLANE4_3D)
    if n == 0:
        return LumenChains(lab, [], np.zeros(1))
    # per-blob statistics with bincount over the bone voxels (ndimage's
    # per-label statistics are several times slower)
    lb, vals = lab[bone], hu[bone].astype(np.float64)
    count = np.bincount(lb, minlength=n + 1)[1:].astype(np.float64)
    total = np.bincount(lb, weights=vals, minlength=n + 1)[1:]
    total_sq = np.bincount(lb, weights=vals * vals, minlength=n + 1)[1:]
    area = count * sj * si
    mean = total / np.maximum(count, 1.0)
    sd = np.sqrt(np.maximum(total_sq / np.maximum(count, 1.0) - mean * mean, 0.0))
    boxes = ndi.find_objects(lab)
    blobs: list[list[tuple[int, float, float]]] = [[] for _ in range(nk)]
    for n_, (a, m, d, box) in enumerate(zip(area, mean, sd, boxes), start=1):
        if box is None or not (s.area_mm2[0] <= a <= s.area_mm2[1]):
            continue
        ext_j, ext_i = (box[1].stop - box[1].start) * sj, (box[2].stop - box[2].start) * si
        extent = max(ext_j, ext_i)
        if a / (np.pi * (extent / 2.0) ** 2) < s.min_fill:
            continue
        if not (s.hu[0] <= m <= s.hu[1] and d <= s.max_sd_hu):
            # A calcified plaque in the wall inflates a real lumen's mean and SD
            # (ct_abdomen_petct_siemens: SD 163 HU, MAD 19 HU); the median and
            # MAD are robust to it, and marrow inside cortex is not homogeneous
            # by either measure (MAD 70-90 HU there).
            vals = hu[box][lab[box] == n_].astype(np.float64)
            med = float(np.median(vals))
            if not (s.hu[0] <= med <= s.hu[1]) or 1.4826 * float(np.median(np.abs(vals - med))) > s.max_mad_hu:
                continue
        blobs[box[0].start].append((n_, 0.5 * (box[1].start + box[1].stop) * sj,
                                    0.5 * (box[2].start + box[2].stop) * si))
    return LumenChains(lab, _chain_blobs(blobs, nk, sk, s), np.concatenate([[0.0], area]))


def enhanced_aorta(lumen: LumenChains, spacing: tuple[float, float, float], body_centre: np.ndarray,
                   settings: EnhancedLumenSettings | None = None) -> Tube | None:
    """The contrast-filled aorta as a tube, from the lumen chains; ``None`` without one.

    Of the chains in front of the vertebral body centre, the aorta is the
    longest one not right of the midline by more than ``aorta_max_right_mm``
    (the enhanced IVC, right of the spine, passes the lumen tests too). Slices
    the chain skipped get a centre and radius interpolated from its members.
    """
    s = settings or EnhancedLumenSettings()
    _, sj, si = spacing
    area = lumen.area_mm2
    best = None
    for c in lumen.chains:
        ks = np.array([b[3] for b in c])
        dj = np.array([b[1] / sj - body_centre[k, 0] for b, k in zip(c, ks)]) * sj
        di = np.array([b[2] / si - body_centre[k, 1] for b, k in zip(c, ks)]) * si
        # +i is patient left; j grows posteriorly
        if np.nanmedian(di) < -s.aorta_max_right_mm or np.nanmedian(dj) > 0:
            continue
        if best is None or len(c) > len(best):
            best = c
    if best is None:
        return None
    nk = lumen.labels.shape[0]
    ks = np.array([b[3] for b in best], dtype=float)
    span = np.arange(int(ks.min()), int(ks.max()) + 1)
    centre = np.full((nk, 2), np.nan)
    radius = np.full(nk, np.nan)
    centre[span, 0] = np.interp(span, ks, [b[1] / sj for b in best])
    centre[span, 1] = np.interp(span, ks, [b[2] / si for b in best])
    radius[span] = np.interp(span, ks, [np.sqrt(area[b[0]] / np.pi) for b in best])
    return Tube(centre, radius, np.where(np.isfinite(radius), 1.0, 0.0))


def enhanced_aorta_mask(lumen: LumenChains, spacing: tuple[float, float, float],
                        body_centre: np.ndarray, tracked: Tube) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`enhanced_aorta` painted with the wall (``VesselSettings.wall_mm``) on the
    slices where the ``tracked`` aorta is missing or off the enhanced lumen (its
    centre farther than the lumen radius), and those slices; ``None`` if none.

    Where the tracker sits on the lumen its circle (fitted to the edges, wall
    included) is kept: on contrast phantoms it matches the truth better.
    """
    tube = enhanced_aorta(lumen, spacing, body_centre)
    if tube is None:
        return None
    _, sj, si = spacing
    # Below the bifurcation the chain runs on into one common iliac, about half
    # as wide: the aorta is where the lumen is near its widest.
    ks = np.flatnonzero(tube.present & (tube.radius_mm >= 0.75 * np.nanmax(tube.radius_mm)))
    off = []
    for k in ks:
        if not tracked.present[k]:
            off.append(k)
            continue
        dj, di = (tracked.centre[k] - tube.centre[k]) * (sj, si)
        if np.hypot(dj, di) > tube.radius_mm[k]:
            off.append(k)
    if not off:
        return None
    ks = np.asarray(off)
    return _paint(tube, lumen.labels.shape, spacing, VesselSettings().wall_mm, ks), ks


def _chain_blobs(blobs: list[list[tuple[int, float, float]]], nk: int, sk: float,
                 s: EnhancedLumenSettings) -> list[list[tuple[int, float, float, int]]]:
    """Chains of lumen candidates along z: ``(blob id, j mm, i mm, k)`` per member.

    A chain may skip up to ``max_gap_slices`` slices (the lumen dips below the
    bone threshold or touches the spine there, so its blob fails the tests);
    chains whose z span is shorter than ``min_run_mm`` (half of a short scan:
    a PET/CT bed of 40 mm) are dropped.
    """
    min_run = min(s.min_run_mm, 0.5 * nk * sk)
    closed: list[list[tuple[int, float, float, int]]] = []
    open_: list[list[tuple[int, float, float, int]]] = []
    for k in range(nk):
        alive = [c for c in open_ if k - c[-1][3] <= s.max_gap_slices + 1]
        closed += [c for c in open_ if k - c[-1][3] > s.max_gap_slices + 1]
        nxt, used = [], set()
        for b in blobs[k]:
            near = [n for n, c in enumerate(alive)
                    if n not in used and np.hypot(c[-1][1] - b[1], c[-1][2] - b[2]) <= s.max_step_mm]
            if near:
                best = max(near, key=lambda n: len(alive[n]))
                used.add(best)
                nxt.append(alive[best] + [(*b, k)])
            else:
                nxt.append([(*b, k)])
        open_ = nxt + [c for n, c in enumerate(alive) if n not in used]
    closed += open_
    return [c for c in closed if (c[-1][3] - c[0][3] + 1) * sk >= min_run]


_PLANE4_3D = np.zeros((3, 3, 3), dtype=bool)
_PLANE4_3D[1] = ndi.generate_binary_structure(2, 1)
