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
tracked tube more than ``common_iliac_mm`` (path length) below the bifurcation
is labelled external iliac, and the internal iliac is approximated by a tube
running posteriorly and medially from the division point into the pelvis (a
coarse zone, documented as such; its branches are not tracked).

Calcified plaque sits in the wall, so every lumen disk is grown by
``wall_mm`` (default 3 mm) before it is labelled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import canny, peak_local_max
from skimage.transform import hough_circle

__all__ = ["VesselSettings", "Tube", "Vessels", "find_vessels"]


@dataclass(frozen=True)
class VesselSettings:
    aorta_radius_mm: tuple[float, float] = (6.5, 17.0)
    iliac_radius_mm: tuple[float, float] = (3.0, 8.0)
    wall_mm: float = 3.0
    common_iliac_mm: float = 40.0
    internal_iliac_mm: float = 40.0
    n_candidates: int = 6
    jump_cost_per_mm: float = 0.08
    absent_score: float = 0.25
    blood_hu: tuple[float, float] = (-20.0, 450.0)


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
                       midline_i: float | None = None) -> list[tuple[float, float, float, float]]:
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
    # Peaks of the best radius per centre (hough_circle_peaks is ~50x slower).
    best = acc.max(axis=0)
    arg = acc.argmax(axis=0)
    peaks = peak_local_max(best, min_distance=2, num_peaks=5 * n, exclude_border=False)
    cy, cx = peaks[:, 0], peaks[:, 1]
    rr = radii_px[arg[cy, cx]]
    dist = None
    if near is not None and near.any():
        dist = ndi.distance_transform_edt(~near) * px_mm
    out = []
    nj, ni = img.shape
    radii = list(radii_px)
    for x, y, r in zip(cx, cy, rr):
        a = acc[radii.index(r), y, x]
        rb = int(np.ceil(0.8 * r))
        y0, y1, x0, x1 = max(y - rb, 0), min(y + rb + 1, nj), max(x - rb, 0), min(x + rb + 1, ni)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        m = (yy - y) ** 2 + (xx - x) ** 2 <= (0.8 * r) ** 2
        if m.sum() == 0:
            continue
        inside = hu[y0:y1, x0:x1][m]
        blood = np.mean((inside > blood_hu[0]) & (inside < blood_hu[1]) & ~bone[y0:y1, x0:x1][m])
        # A lumen is homogeneous: penalise disks that straddle fat and tissue.
        homog = 1.0 / (1.0 + float(np.std(np.clip(inside, -200, 500))) / 60.0)
        r_mm = r * px_mm
        size = 1.0 if prefer_mm[0] <= r_mm <= prefer_mm[1] else 0.7
        pos = 1.0
        if dist is not None:
            gap = max(float(dist[y, x]) - r_mm - 8.0, 0.0)
            pos = float(np.exp(-0.5 * (gap / 10.0) ** 2))
        side = 0.5 if midline_i is not None and (x - midline_i) * px_mm < -5.0 else 1.0
        score = float(a) * blood * (0.5 + 0.5 * homog) * size * pos * side
        out.append((score, float(y), float(x), float(r)))
    out.sort(reverse=True)
    return out[:n]


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
        for a, pa in enumerate(prev, start=1):
            for b, cb in enumerate(c, start=1):
                d = np.hypot((pa[1] - cb[1]) * sj, (pa[2] - cb[2]) * si)
                dr = abs(pa[3] - cb[3]) * si
                trans[a, b] = -s.jump_cost_per_mm * (max(d - 0.5 * sk - 2.0, 0.0) + dr)
            trans[a, 0] = -0.1  # ending a tube costs a little
        # (re)starting one costs more: the absent state forgets the position,
        # so cheap restarts would let the path teleport to a neighbour tube
        trans[0, 1:] = -0.1 if k == 1 or not any(len(x) for x in cands[: k - 1]) else -0.6
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
           midline_i: np.ndarray | None = None, blood_hu: tuple[float, float] | None = None) -> Tube:
    sk, sj, si = spacing
    radii_px = np.arange(max(radius_mm[0] / si, 2.0), radius_mm[1] / si + 0.5, 1.0)
    cands: list[list[tuple[float, float, float, float]]] = []
    for k, w in enumerate(windows):
        if w is None:
            cands.append([])
            continue
        img = np.clip(ndi.gaussian_filter(hu[k][w].astype(np.float32), 0.7), -200.0, 300.0)
        allowed = ~ndi.binary_dilation(bone[k][w], iterations=2)
        near = None
        if forbid is not None:
            allowed &= ~forbid[k][w]
            near = forbid[k][w] if use_near else None
        mid = None if midline_i is None else float(midline_i[k]) - w[1].start
        c = _circle_candidates(img, allowed, radii_px, s.n_candidates, hu[k][w], bone[k][w], blood_hu or s.blood_hu,
                               near, si, prefer_mm or radius_mm, mid)
        cands.append([(a, j + w[0].start, i + w[1].start, r) for a, j, i, r in c])
    return _viterbi(cands, spacing, s, start)


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
                 settings: VesselSettings | None = None) -> Vessels:
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
    """
    s = settings or VesselSettings()
    sk, sj, si = spacing
    nk = hu.shape[0]
    # Aorta: 60 mm in front of the body to 10 mm behind its centre (the thoracic
    # aorta lies beside the body), 40 mm right to 60 mm left of the centre line.
    windows = []
    for k in range(nk):
        jc, ic = body_centre[k]
        windows.append(_slice_window(hu[k], bone[k], (body_front[k] - 60.0 / sj, jc + 10.0 / sj),
                                     (ic - 40.0 / si, ic + 60.0 / si)))
    aorta_tube = _track(hu, bone, windows, s.aorta_radius_mm, spacing, s, forbid=spine_mask,
                        prefer_mm=(8.0, 15.0), midline_i=body_centre[:, 1])
    notes: list[str] = []
    present = np.flatnonzero(aorta_tube.present)
    shape = hu.shape
    empty = {n: np.zeros(shape, dtype=bool) for n in (
        "common_iliac_artery_left", "common_iliac_artery_right", "external_iliac_artery_left",
        "external_iliac_artery_right", "internal_iliac_artery_left", "internal_iliac_artery_right")}
    if present.size == 0:
        return Vessels(np.zeros(shape, dtype=bool), empty, aorta_tube, None, ("aorta not found",))
    aorta_tube = _bridge_gaps(_drop_outliers(aorta_tube, spacing), spacing)
    # Keep the longest run of present slices (the tube is continuous along z).
    runs = _present_runs(aorta_tube.present)
    k0, k1 = max(runs, key=lambda r: r[1] - r[0])
    # At the bifurcation the path may slip into one common iliac for a few
    # slices: trim the caudal end while the radius is under 75 % of the median.
    med_r = float(np.median(aorta_tube.radius_mm[k0 : k1 + 1]))
    while k0 < k1 and aorta_tube.radius_mm[k0] < 0.75 * med_r:
        k0 += 1
    radius = np.full(nk, np.nan)
    radius[k0 : k1 + 1] = aorta_tube.radius_mm[k0 : k1 + 1]
    aorta_tube = Tube(aorta_tube.centre, radius, aorta_tube.score)
    aorta = _paint(aorta_tube, shape, spacing, s.wall_mm)
    bif = None
    iliac = empty
    if k0 > 0:
        bif = k0
        iliac = _iliacs(hu, bone, aorta_tube, bif, body_centre, spacing, s, aorta, spine_mask)
        if not any(m.any() for m in iliac.values()):
            bif = None
    return Vessels(aorta, iliac, aorta_tube, bif, tuple(notes))


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


def _present_runs(present: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], present, [False]]).astype(np.int8)
    d = np.diff(padded)
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def _iliacs(hu: np.ndarray, bone: np.ndarray, aorta: Tube, bif: int, body_centre: np.ndarray,
            spacing: tuple[float, float, float], s: VesselSettings, aorta_mask: np.ndarray,
            spine_mask: np.ndarray | None) -> dict[str, np.ndarray]:
    """Track both iliac arteries caudally from the bifurcation and split them."""
    sk, sj, si = spacing
    nk = hu.shape[0]
    jb, ib = aorta.centre[bif]
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
            lat = min(15.0 + 0.8 * down, 100.0)
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
        sub = _track(hu[order], bone[order], [windows[k] for k in order], s.iliac_radius_mm,
                     spacing, s, start=(jb, ib), forbid=forbid, use_near=False, prefer_mm=(4.5, 8.0),
                     blood_hu=iliac_hu)
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
        for k in order:
            if not present[k]:
                radius[: k + 1] = np.nan
                break
        tube = Tube(centre, radius, np.zeros(nk))
        # path length along the centre line from the bifurcation
        length = np.zeros(nk)
        prev, acc = (jb, ib), 0.0
        for k in order:
            if not np.isfinite(radius[k]):
                break
            acc += float(np.sqrt(sk**2 + ((centre[k, 0] - prev[0]) * sj) ** 2 + ((centre[k, 1] - prev[1]) * si) ** 2))
            length[k] = acc
            prev = tuple(centre[k])
        common_ks = [k for k in order if np.isfinite(radius[k]) and length[k] <= s.common_iliac_mm]
        ext_ks = [k for k in order if np.isfinite(radius[k]) and length[k] > s.common_iliac_mm]
        taken = _paint(tube, hu.shape, spacing, 2.0)
        out[f"common_iliac_artery_{side}"] = _paint(tube, hu.shape, spacing, s.wall_mm, common_ks)
        out[f"external_iliac_artery_{side}"] = _paint(tube, hu.shape, spacing, s.wall_mm, ext_ks)
        internal = np.zeros(hu.shape, dtype=bool)
        if ext_ks:
            # Internal iliac: a coarse tube from the division point running 25 mm
            # posteriorly and 10 mm medially over internal_iliac_mm caudally.
            kd = ext_ks[0]
            jd, id_ = centre[kd]
            n_sl = int(round(s.internal_iliac_mm / sk))
            ic_t = np.full((hu.shape[0], 2), np.nan)
            r_t = np.full(hu.shape[0], np.nan)
            for n in range(n_sl):
                k = kd - n
                if k < 0:
                    break
                f = (n + 1) / n_sl
                ic_t[k] = (jd + f * 25.0 / sj, id_ - sign * f * 10.0 / si)
                r_t[k] = 4.0
            internal = _paint(Tube(ic_t, r_t, np.zeros(hu.shape[0])), hu.shape, spacing, s.wall_mm)
        out[f"internal_iliac_artery_{side}"] = internal & ~aorta_mask
    return out
