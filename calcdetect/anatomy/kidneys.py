"""Rule-based kidneys on CT: parenchyma, collecting system (renal sinus), medulla.

Kidneys are bean-shaped soft-tissue organs lying in perirenal fat on each side of
the spine, posteriorly, from about T12 to L3. Per side:

1. soft tissue (``soft_hu``; the upper bound rises for contrast-enhanced scans)
   inside a posterior-lateral window beside the column (and between T11 and L4
   when the levels are known);
2. a 3-D erosion (4, then 6, then 8 mm until a candidate appears) cuts the
   thin bridges to the liver, spleen, psoas and bowel; the most compact
   plausible component is kept (centroid 45-95 mm from the midline, extent
   under 180 mm cranio-caudally and 90 mm in plane, not cut by the search
   window's faces) and grown back inside the soft-tissue mask.

**Partial field of view.** When the search reaches (within ``scan_edge_mm``)
the scan's first or last slice, that face is the field of view's edge, not a
cut through known anatomy: the search runs on to the scan's edge, and a
component reaching it may be a kidney whose pole lies outside the scan (a
lumbar spine CT starting at L1). It is then kept only if what is in view is
kidney-like by itself: it must not touch the window's other faces, its centroid
must be beside the column in the renal fossa (not in front of the vertebral
body, where the liver, bowel and the psoas's front lie: ``cut_min_posterior_mm``),
and its cross-section where the scan cuts it must be no larger than a kidney's
(``cut_max_area_cm2``; the liver and spleen cut by the scan are wider).

The **collecting system** is the renal sinus: the part of the kidney's per-slice
convex hull that is not parenchyma (fat, urine, a stone) -- so a stone in the
pelvis or a calyx falls in it. **Medulla** vs cortex is by depth from the
kidney's outer surface: parenchyma deeper than ``cortex_mm`` (default 6 mm) is
medulla. Ureters are not traced: ``ureter_zone`` gives a coarse zone along
their usual course from the renal pelvis to the pelvic brim, and
``pelvic_ureter_zone`` its continuation down the pelvic side wall, anterior
to the internal iliac vessels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from calcdetect.workers import resolve_workers, thread_map

__all__ = ["KidneySettings", "Kidney", "find_kidneys", "subdivide_kidney", "ureter_zone", "pelvic_ureter_zone"]


@dataclass(frozen=True)
class KidneySettings:
    soft_hu: tuple[float, float] = (-20.0, 80.0)
    soft_hu_contrast: tuple[float, float] = (-20.0, 300.0)
    smooth_mm: float = 2.0
    erosion_mm: tuple[float, ...] = (4.0, 6.0, 8.0)
    cortex_mm: float = 6.0
    min_volume_ml: float = 20.0
    max_volume_ml: float = 450.0
    lateral_mm: tuple[float, float] = (45.0, 95.0)  # centroid from the midline; the spleen lies further out
    # A search face this close to the scan's first / last slice is the field of
    # view's edge (the levels of a partly seen vertebra at the edge are unknown,
    # so the level range stops a few slices short of it).
    scan_edge_mm: float = 12.0
    # A component cut by the scan's edge: centroid no further in front of the
    # vertebral body's centre than this (kidneys lie beside or behind it), and
    # its cross-section next to the cut no larger than this (a large kidney is
    # about 6.5 x 5.5 cm across, 28 cm2; phantom kidneys ~16 cm2).
    cut_min_posterior_mm: float = -10.0
    cut_max_area_cm2: float = 32.0


@dataclass(frozen=True)
class Kidney:
    """One kidney; masks bool ``[k, j, i]``; ``parenchyma`` = cortex | medulla."""

    side: str
    parenchyma: np.ndarray
    cortex: np.ndarray
    medulla: np.ndarray
    collecting_system: np.ndarray


def subdivide_kidney(mask: np.ndarray, spacing: tuple[float, float, float], side: str,
                     cortex_mm: float = 6.0, hu: np.ndarray | None = None) -> Kidney:
    """Split a kidney mask into cortex, medulla and collecting system (sinus).

    Works on a rule mask or an external (TotalSegmentator) mask alike. The sinus
    is the part of the per-slice convex hull that is not parenchyma; with ``hu``
    given, only its low-density part (fat / urine, < 10 HU smoothed), soft
    tissue within 2 mm of it, and calcium components with at least 75 % of their
    voxels within 2 mm of it count (a stone lies in fat or urine), while
    calcium enclosed by parenchyma stays parenchyma (nephrocalcinosis).
    """
    if not mask.any():
        e = np.zeros_like(mask)
        return Kidney(side, e, e, e, e)
    return _subdivide_in_box(mask, _margin_box(ndi.find_objects(mask.astype(np.uint8))[0]),
                             spacing, side, cortex_mm, hu)


def _margin_box(found: tuple[slice, ...], margin: int = 2) -> tuple[slice, ...]:
    """A mask's bounding box ``found`` widened by ``margin`` voxels (clipped at 0;
    slicing clips the far end)."""
    return tuple(slice(max(sl.start - margin, 0), sl.stop + margin) for sl in found)


def _subdivide_in_box(mask: np.ndarray, box: tuple[slice, ...], spacing: tuple[float, float, float],
                      side: str, cortex_mm: float, hu: np.ndarray | None) -> Kidney:
    """:func:`subdivide_kidney` of a non-empty ``mask`` whose bounding box plus
    2 voxels is ``box`` (the caller may know it without scanning the volume)."""
    full_shape = mask.shape
    mask = mask[box]
    hu = hu[box] if hu is not None else None
    _, sj, si = spacing
    sinus = np.zeros_like(mask)
    solid = np.zeros_like(mask)
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        m = mask[k]
        # The sinus opens medially at the hilum; the hull closes it.
        hull = convex_hull_image(m) if m.sum() >= 5 else m
        sinus[k] = hull & ~m
        solid[k] = hull
    parenchyma = mask.copy()
    if hu is not None and sinus.any():
        # Smoothed: single noisy voxels of medulla (~30 HU) must not pass for
        # urine (~0-15 HU) or sinus fat. Calcium is left out of the average
        # (normalised convolution), so a stone does not lift the fat around it.
        sig = (0.0, 1.5 / sj, 1.5 / si)
        w = (hu < 130.0).astype(np.float32)
        smooth = ndi.gaussian_filter(np.where(w > 0, hu, 0.0).astype(np.float32), sigma=sig)
        smooth /= np.maximum(ndi.gaussian_filter(w, sigma=sig), 1e-3)
        low = sinus & (smooth < 10.0)
        st = np.ones((1, 2 * max(int(round(2.0 / sj)), 1) + 1, 2 * max(int(round(2.0 / si)), 1) + 1), bool)
        near_low = ndi.binary_dilation(low, structure=st)
        # Soft tissue (hilar vessels) near the fat stays sinus voxel by voxel;
        # calcium is decided per component by the share of its voxels within
        # 2 mm of fat / urine: a stone sits in it (only its core is further),
        # papillary or medullary calcium touches a calyx on one side at most.
        soft = sinus & (smooth >= 10.0) & (hu < 130.0) & near_low
        calc = sinus & (hu >= 130.0)
        lab, n = ndi.label(calc)
        keep = low | soft
        if n:
            share = np.asarray(ndi.mean(near_low, lab, index=np.arange(1, n + 1)))
            keep |= np.isin(lab, np.flatnonzero(share >= 0.75) + 1)
        parenchyma |= sinus & ~keep
        sinus = keep
    # A thin sliver along a concave edge is not a sinus.
    if sinus.any():
        sinus &= ndi.binary_opening(sinus, structure=np.ones((1, 2, 2), bool)) | (hu is not None and (hu >= 130.0))
    parenchyma &= ~sinus
    depth = ndi.distance_transform_edt(np.pad(solid, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    medulla = parenchyma & (depth > cortex_mm)
    cortex = parenchyma & ~medulla

    def paste(m: np.ndarray) -> np.ndarray:
        out = np.zeros(full_shape, dtype=bool)
        out[box] = m
        return out

    return Kidney(side, paste(parenchyma), paste(cortex), paste(medulla), paste(sinus))


def _ball(r: float, spacing: tuple[float, float, float]) -> np.ndarray:
    sk, sj, si = spacing
    rk = max(int(round(r / sk)), 0)
    rj, ri = max(int(round(r / sj)), 1), max(int(round(r / si)), 1)
    zz, yy, xx = np.mgrid[-rk : rk + 1, -rj : rj + 1, -ri : ri + 1]
    return ((zz * sk) ** 2 + (yy * sj) ** 2 + (xx * si) ** 2) <= r * r


def _best_component(lab: np.ndarray, ball: np.ndarray, edge: np.ndarray, box: tuple[slice, ...],
                    body_centre: np.ndarray, sign: float, s: KidneySettings,
                    spacing: tuple[float, float, float],
                    scan_cut: tuple[bool, bool] = (False, False)) -> tuple[int, float]:
    """The most kidney-like component: size, extent, lateral position, not cut
    by the search window, compact.

    ``scan_cut`` = (caudal, cranial): whether that face of ``lab``'s box is the
    scan's edge; ``edge`` then leaves it out, and a component reaching it
    passes the stricter tests for a kidney cut by the field of view."""
    sk, sj, si = spacing
    nk = body_centre.shape[0]
    stats = cc3d.statistics(lab)
    best, best_score = 0, 0.0
    for cid in range(1, len(stats["voxel_counts"])):
        n = int(stats["voxel_counts"][cid])
        vol_ml = n * sk * sj * si / 1000.0
        if vol_ml < s.min_volume_ml * 0.3 or vol_ml > s.max_volume_ml:
            continue
        bb = stats["bounding_boxes"][cid]
        zext = (bb[0].stop - bb[0].start) * sk
        if zext > 180.0 or (bb[1].stop - bb[1].start) * sj > 90.0 or (bb[2].stop - bb[2].start) * si > 90.0:
            continue
        # The liver / spleen / muscles are cut by the search window; a kidney
        # floats in perirenal fat inside it. (Grow in a box padded by the ball,
        # or the growth could never reach the window's faces.)
        pad = tuple(slice(max(b.start - (n_ // 2) - 1, 0), b.stop + (n_ // 2) + 1)
                    for b, n_ in zip(bb, ball.shape))
        comp = lab[pad] == cid
        grown = ndi.binary_dilation(comp, structure=ball)
        touch = float((grown & edge[pad]).sum()) / max(float(grown.sum()), 1.0)
        # the cranial / caudal faces are cut planes: any contact means the
        # structure continues beyond the searched levels (psoas, liver)
        nk_box = lab.shape[0]
        at_caudal = pad[0].start == 0 and bool(grown[0].any())
        at_cranial = pad[0].stop >= nk_box and bool(grown[-1].any())
        z_cut = (at_caudal and not scan_cut[0]) or (at_cranial and not scan_cut[1])
        if touch > 0.03 or z_cut:
            continue
        ck, cj, ci = stats["centroids"][cid]
        kc = int(np.clip(round(ck) + box[0].start, 0, nk - 1))
        lat = (ci + box[2].start - body_centre[kc, 1]) * si * sign
        if not (s.lateral_mm[0] <= lat <= s.lateral_mm[1]):
            continue
        if at_caudal or at_cranial:
            # Cut by the field of view: what is in view must be kidney-like.
            posterior = (cj + box[1].start - body_centre[kc, 0]) * sj
            # The cross-section nearest the cut, grown back by the erosion
            # radius (the eroded core's would shrink with the radius).
            faces = [k for k, cut in ((bb[0].start, at_caudal), (bb[0].stop - 1, at_cranial)) if cut]
            face_cm2 = max(float(grown[k - pad[0].start].sum()) for k in faces) * sj * si / 100.0
            if posterior < s.cut_min_posterior_mm or face_cm2 > s.cut_max_area_cm2:
                continue
        # Compactness: a kidney fills its bounding box far better than a sheet
        # of muscle or bowel loops.
        vbox = (bb[0].stop - bb[0].start) * (bb[1].stop - bb[1].start) * (bb[2].stop - bb[2].start)
        score = n * (n / max(vbox, 1)) ** 0.5
        if score > best_score:
            best, best_score = cid, score
    return best, best_score


def _window_box(body_centre: np.ndarray, ks: np.ndarray, sign: float, s: KidneySettings,
                shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[slice, ...] | None:
    """Bounding box of the search window (see :func:`_window`) over the slices ``ks``."""
    if ks.size == 0:
        return None
    _, sj, si = spacing
    _, nj, ni = shape
    jc, ic = body_centre[ks, 0], body_centre[ks, 1]
    lat_lo, lat_hi = s.lateral_mm[0] - 30.0, s.lateral_mm[1] + 35.0
    i_a, i_b = ic + sign * lat_lo / si, ic + sign * lat_hi / si
    j0 = int(max(np.floor(np.min(jc - 50.0 / sj)), 0))
    j1 = int(min(np.ceil(np.max(jc + 60.0 / sj)) + 1, nj))
    i0 = int(max(np.floor(np.min(np.minimum(i_a, i_b))), 0))
    i1 = int(min(np.ceil(np.max(np.maximum(i_a, i_b))) + 1, ni))
    if j1 <= j0 or i1 <= i0:
        return None
    return slice(int(ks.min()), int(ks.max()) + 1), slice(j0, j1), slice(i0, i1)


def _window(body_centre: np.ndarray, box: tuple[slice, ...], sign: float, s: KidneySettings,
            spacing: tuple[float, float, float]) -> np.ndarray:
    """Where a kidney is searched, inside ``box``: beside the column (lateral_mm
    widened by 30 mm medially and 35 mm laterally), 50 mm in front of the body
    centre to 60 mm behind it."""
    _, sj, si = spacing
    kk = np.arange(box[0].start, box[0].stop)
    jc, ic = body_centre[kk, 0][:, None, None], body_centre[kk, 1][:, None, None]
    jj = np.arange(box[1].start, box[1].stop)[None, :, None]
    ii = np.arange(box[2].start, box[2].stop)[None, None, :]
    lat = (ii - ic) * si * sign
    ap = (jj - jc) * sj
    with np.errstate(invalid="ignore"):
        return ((lat > s.lateral_mm[0] - 30.0) & (lat < s.lateral_mm[1] + 35.0)
                & (ap > -50.0) & (ap < 60.0))


def _reach_scan_edges(ks: np.ndarray, body_centre: np.ndarray,
                      edge_slices: float) -> tuple[np.ndarray, tuple[bool, bool]]:
    """Extend the searched slices ``ks`` to the scan's first / last slice when
    they stop within ``edge_slices`` of it; returns the slices and whether the
    search's (caudal, cranial) face is then the scan's edge."""
    nk = body_centre.shape[0]
    if ks.size == 0:
        return ks, (False, False)
    lo, hi = int(ks.min()), int(ks.max())
    caudal, cranial = lo <= edge_slices, hi >= nk - 1 - edge_slices
    lo2 = 0 if caudal else lo
    hi2 = nk - 1 if cranial else hi
    ext = np.arange(lo2, hi2 + 1)
    ext = ext[np.isfinite(body_centre[ext, 0])]
    # A slice without a body centre between the searched ones stays out; the
    # face is the scan's edge only if the search really reaches it.
    return ext, (caudal and int(ext.min()) == 0, cranial and int(ext.max()) == nk - 1)


def _box_dilation(mask: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Binary dilation by a box of odd ``size`` (outside the array: False), as
    one 1-D pass per axis: the same voxels as the 3-D box, at a fraction of the cost."""
    out = mask
    for axis, n in enumerate(size):
        if n > 1:
            shape = [1] * mask.ndim
            shape[axis] = n
            out = ndi.binary_dilation(out, structure=np.ones(shape, bool))
    return out if out is not mask else mask.copy()


def _box_erosion(mask: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Binary erosion by a box of odd ``size`` (outside the array: False), one
    1-D pass per axis (see :func:`_box_dilation`)."""
    out = mask
    for axis, n in enumerate(size):
        if n > 1:
            shape = [1] * mask.ndim
            shape[axis] = n
            out = ndi.binary_erosion(out, structure=np.ones(shape, bool), border_value=0)
    return out if out is not mask else mask.copy()


def _window_edge(win: np.ndarray, scan_cut: tuple[bool, bool]) -> np.ndarray:
    """The window's boundary voxels, without the faces at the scan's edge: the
    window is padded there by copying its edge slice, so those faces erode only
    in-plane."""
    pad = ((1 if scan_cut[0] else 0, 1 if scan_cut[1] else 0), (0, 0), (0, 0))
    padded = np.pad(win, pad, mode="edge")
    inner = _box_erosion(padded, (3, 3, 3))
    inner = inner[pad[0][0] : inner.shape[0] - pad[0][1]]
    return win & ~inner


def _grow_ball(mask: np.ndarray, r: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """Dilation of a non-empty ``mask`` by a Euclidean ball of ``r`` mm
    (distance transform).

    Only in the mask's bounding box widened by more than ``r``: nothing further
    is within ``r`` of it, and every voxel of the mask -- the distances'
    targets -- lies inside, so the distances there are those of the whole
    array."""
    pad = [int(np.ceil(r / d)) + 1 for d in spacing]
    crop = tuple(slice(max(sl.start - p, 0), sl.stop + p)
                 for sl, p in zip(ndi.find_objects(mask.astype(np.uint8))[0], pad))
    out = np.zeros(mask.shape, dtype=bool)
    out[crop] = ndi.distance_transform_edt(~mask[crop], sampling=spacing) <= r
    return out


def find_kidneys(hu: np.ndarray, spacing: tuple[float, float, float], body_centre: np.ndarray,
                 spine_mask: np.ndarray, *, contrast: bool = False, k_range: tuple[int, int] | None = None,
                 settings: KidneySettings | None = None, workers: int | None = None) -> dict[str, Kidney]:
    """Segment both kidneys by rules (see module docstring).

    Parameters
    ----------
    hu : ndarray
        CT in HU ``[k, j, i]`` (k superior, j posterior, i left).
    spacing : tuple of float
        ``(sk, sj, si)`` mm.
    body_centre : ndarray
        ``(nk, 2)`` vertebral body centre per slice.
    spine_mask : ndarray of bool
        The vertebral column; excluded (with a margin) from the search.
    contrast : bool
        Widen the HU range for enhanced parenchyma.
    k_range : (int, int), optional
        Slices ``k0..k1`` (inclusive) to search, e.g. T11-L4 when levels are known;
        an end within ``settings.scan_edge_mm`` of the scan's edge is moved to
        the edge (see the module docstring: a kidney cut by the field of view).
    workers : int, optional
        Threads (default: every available CPU); the result does not depend on it.

    Returns
    -------
    dict
        ``"left"`` / ``"right"`` -> :class:`Kidney`, only for sides found.
    """
    s = settings or KidneySettings()
    sk, sj, si = spacing
    nk, nj, ni = hu.shape
    lo, hi = s.soft_hu_contrast if contrast else s.soft_hu
    ks = np.arange(nk) if k_range is None else np.arange(max(k_range[0], 0), min(k_range[1] + 1, nk))
    ks = ks[np.isfinite(body_centre[ks, 0])] if ks.size else ks
    ks, scan_cut = _reach_scan_edges(ks, body_centre, s.scan_edge_mm / sk)

    def one_side(side: str, sign: float) -> Kidney | None:
        # Work in the window's bounding box (3-D filters on the full CT are slow).
        box = _window_box(body_centre, ks, sign, s, (nk, nj, ni), spacing)
        if box is None:
            return None
        window = _window(body_centre, box, sign, s, spacing)
        if not window.any():
            return None
        # Smoothed over ~2 mm in 3-D: at 30-40 HU noise single voxels of
        # parenchyma (~25-40 HU) fall out of the soft-tissue range and the
        # erosion below then breaks the kidney into pieces.
        sub_hu = ndi.gaussian_filter(hu[box].astype(np.float32),
                                     sigma=(min(s.smooth_mm / sk, 1.0), s.smooth_mm / sj, s.smooth_mm / si))
        win = window
        soft = (sub_hu >= lo) & (sub_hu <= hi) & win & ~_box_dilation(spine_mask[box], (1, 7, 7))
        if not soft.any():
            return None
        # The window's faces, the cranial and caudal ones included: a component
        # cut by them continues outside (liver, spleen, psoas, bowel). A face
        # at the scan's edge is not one (see _best_component).
        edge = _window_edge(win, scan_cut)
        best, best_score, best_r, lab = 0, 0.0, 0.0, None
        # Erode more and more until the kidney separates from the liver,
        # spleen, psoas or bowel it touches; keep the best-scoring component.
        # Erosion by a ball of r mm = keep what lies deeper than r (exact
        # Euclidean distance; the pad makes the box's faces background, as
        # binary_erosion's border does).
        depth = ndi.distance_transform_edt(np.pad(soft, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
        for r in s.erosion_mm:
            ball = _ball(r, spacing)
            core = depth > r
            lab_r = cc3d.connected_components(core, connectivity=6)
            cid, score = _best_component(lab_r, ball, edge, box, body_centre, sign, s, spacing, scan_cut)
            if cid and score > best_score:
                best, best_score, best_r, lab = cid, score, r, lab_r
            if best:
                break
        if best == 0:
            return None
        sub = _grow_ball(lab == best, best_r, spacing) & soft
        lab2 = cc3d.connected_components(sub, connectivity=6)
        if lab2.max() > 1:
            counts = np.bincount(lab2.ravel())
            counts[0] = 0
            sub = lab2 == int(np.argmax(counts))
        if np.count_nonzero(sub) * sk * sj * si / 1000.0 < s.min_volume_ml:
            return None
        kid = np.zeros(hu.shape, dtype=bool)
        kid[box] = sub
        # Its box is known from the window's: no pass over the whole volume.
        found = tuple(slice(f.start + b.start, f.stop + b.start)
                      for f, b in zip(ndi.find_objects(sub.astype(np.uint8))[0], box))
        return _subdivide_in_box(kid, _margin_box(found), spacing, side, s.cortex_mm, hu)

    # The two sides share nothing: each runs on its own thread (the filters and
    # distance transforms release the GIL; the connected components do not).
    sides = (("left", 1.0), ("right", -1.0))
    found = thread_map(lambda side: one_side(*side), sides, resolve_workers(workers))
    return {side: kid for (side, _), kid in zip(sides, found) if kid is not None}


def ureter_zone(collecting_system: np.ndarray, side: str, body_centre: np.ndarray, body_front: np.ndarray,
                spacing: tuple[float, float, float], k_stop: int | None, radius_mm: float = 8.0,
                lateral_mm: float = 40.0, anterior_mm: float = 8.0,
                hold_front_at_promontory: bool = True) -> np.ndarray:
    """A coarse zone where the abdominal ureter runs (it is not traced).

    From the renal pelvis (the collecting system's lowest slices) the ureter runs
    caudally on the front of the psoas, about ``lateral_mm`` from the midline
    and just anterior of the vertebral bodies' front; the zone's centre moves
    linearly from the pelvis onto that line over 15 mm and follows it down to
    ``k_stop`` (the pelvic brim; 100 mm below the renal pelvis when unknown). It is a disk of ``radius_mm`` per slice.

    With ``hold_front_at_promontory`` the line never moves back with the
    column: below the sacral promontory the sacrum's front sweeps posteriorly,
    but the ureter stays on the psoas and crosses the iliac vessels at the brim
    in front of the sacral ala, so the zone keeps the most anterior front seen
    above it. (Following the sacrum put the zone 15-25 mm behind the ureter at
    S1: dev phantoms 1704, 1719 and 1744, stones there called phleboliths.)
    """
    out = np.zeros(collecting_system.shape, dtype=bool)
    ks = np.flatnonzero(collecting_system.any(axis=(1, 2)))
    if ks.size == 0:
        return out
    sk, sj, si = spacing
    k_top = int(ks.min())
    pj, pi = ndi.center_of_mass(collecting_system[k_top])
    sign = 1.0 if side == "left" else -1.0
    stop = max(k_top - int(100.0 / sk), 0) if k_stop is None else max(int(k_stop), 0)
    nj, ni = out.shape[1:]
    ramp = max(15.0 / sk, 1.0)
    front = np.inf
    for k in range(k_top - 1, stop - 1, -1):
        if not (np.isfinite(body_centre[k]).all() and np.isfinite(body_front[k])):
            continue
        # rows grow posteriorly: the running minimum is the most anterior front so far
        front = min(front, float(body_front[k])) if hold_front_at_promontory else float(body_front[k])
        tj = front - anterior_mm / sj
        ti = body_centre[k, 1] + sign * lateral_mm / si
        f = min((k_top - k) / ramp, 1.0)
        jc, ic = (1 - f) * pj + f * tj, (1 - f) * pi + f * ti
        j0, j1 = int(max(jc - radius_mm / sj - 1, 0)), int(min(jc + radius_mm / sj + 2, nj))
        i0, i1 = int(max(ic - radius_mm / si - 1, 0)), int(min(ic + radius_mm / si + 2, ni))
        jj, ii = np.mgrid[j0:j1, i0:i1]
        out[k, j0:j1, i0:i1] = ((jj - jc) * sj) ** 2 + ((ii - ic) * si) ** 2 <= radius_mm**2
    return out


def pelvic_ureter_zone(internal_iliac: np.ndarray, side: str, spacing: tuple[float, float, float],
                       anterior_mm: float = 12.0, lateral_mm: float = 3.0, radius_mm: float = 10.0,
                       length_mm: float = 35.0) -> np.ndarray:
    """A coarse zone where the pelvic ureter runs (it is not traced).

    Past the pelvic brim, where it crosses the division of the common iliac
    artery, the ureter descends on the pelvic side wall just in front of the
    internal iliac artery. Per slice holding the internal iliac zone (whatever
    estimated it), over ``length_mm`` below its top (the division), the zone is
    a disk of ``radius_mm`` centred ``anterior_mm`` in front of and
    ``lateral_mm`` lateral to that zone's centre. Lower down, towards the
    ischial spines and the bladder, it is not covered: the pelvic phleboliths
    lie there, and by position alone a distal ureteral stone cannot be told
    from one.
    """
    out = np.zeros(internal_iliac.shape, dtype=bool)
    sk, sj, si = spacing
    sign = 1.0 if side == "left" else -1.0
    nj, ni = out.shape[1:]
    ks = np.flatnonzero(internal_iliac.any(axis=(1, 2)))
    if ks.size == 0:
        return out
    for k in ks[ks >= ks.max() - length_mm / sk]:
        jj_, ii_ = np.nonzero(internal_iliac[k])
        jc = jj_.mean() - anterior_mm / sj
        ic = ii_.mean() + sign * lateral_mm / si
        j0, j1 = int(max(jc - radius_mm / sj - 1, 0)), int(min(jc + radius_mm / sj + 2, nj))
        i0, i1 = int(max(ic - radius_mm / si - 1, 0)), int(min(ic + radius_mm / si + 2, ni))
        if j1 <= j0 or i1 <= i0:
            continue
        jj, ii = np.mgrid[j0:j1, i0:i1]
        out[k, j0:j1, i0:i1] = ((jj - jc) * sj) ** 2 + ((ii - ic) * si) ** 2 <= radius_mm**2
    return out
