"""Rule-based spine anatomy on CT: column, bodies, canal, discs, levels, LF zone.

Works on the canonical ``[k, j, i]`` grid (k superior, j posterior, i left) in HU.
Everything is derived per axial slice from a bone mask and then made consistent
along z, because the vertebral column is the one bony structure that is present on
every slice near the midline of the posterior half of the body.

Levels are counted from anatomical anchors, never guessed:

* the **sacrum**: the lowest vertebral segment whose bone (after a small closing,
  which bridges the sacro-iliac joints) is much wider than a vertebral body;
* the **lowest rib-bearing vertebra** (T12): 3-D bone components that leave the
  column laterally are ribs; the segment where the lowest one attaches is T12,
  valid only when a rib-free segment is visible below it.

When only one anchor is visible the levels are counted from it; when both are
visible and the number of lumbar segments between them is not five, levels are
counted from the sacrum and a note says that transitional anatomy is suspected;
when neither is visible, ``levels`` is ``None`` and a note says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

import cc3d
import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from calcdetect.anatomy.regions import VERTEBRA_LEVELS
from calcdetect.candidates._voxel import distance_in_plane, fill_holes_per_slice  # re-exported: one implementation

__all__ = [
    "SpineSettings",
    "Spine",
    "Segment",
    "find_spine",
    "body_mask_2d",
    "body_masks",
    "fill_holes_per_slice",
    "disk",
    "dilate2d",
    "dilate_in_plane",
    "NO_ANCHOR_NOTE",
    "TRANSITIONAL_NOTE",
    "MIN_LEVEL_OVERLAP_MM",
    "LevelZone",
    "level_zones",
    "endplate_position",
    "refine_endplates",
    "level_of_extent",
    "ENDPLATE_MM",
    "STEEP_ENDPLATE_SLOPE",
    "STEEP_ENDPLATE_PERCENTILE",
]

NO_ANCHOR_NOTE = (
    "vertebral levels not assigned: neither the sacrum nor the lowest rib-bearing "
    "vertebra is in the field of view"
)
TRANSITIONAL_NOTE = "transitional lumbosacral anatomy suspected: levels counted from the sacrum"


@dataclass(frozen=True)
class SpineSettings:
    """Thresholds (HU) and sizes (mm) of the spine rules; defaults suit adult CT."""

    bone_hu: float = 200.0
    canal_max_hu: float = 60.0
    column_half_width_mm: float = 50.0
    column_anterior_mm: float = 45.0
    column_posterior_mm: float = 60.0
    seed_radius_mm: float = 25.0
    disc_ratio: float = 0.4  # body area / typical body area below which a slice is disc
    min_segment_mm: float = 8.0
    sacrum_width_mm: float = 95.0
    sacrum_tail_mm: float = 15.0
    rib_lateral_mm: float = 60.0
    lf_thickness_mm: float = 5.0
    lf_below_s1_top_mm: float = 12.0
    lf_max_angle_deg: float = 70.0
    lf_body_clearance_mm: float = 3.0


@dataclass(frozen=True)
class Segment:
    """One vertebral segment along z: slices ``k0..k1`` (inclusive), cranial last."""

    k0: int
    k1: int
    level: str | None = None
    sacrum: bool = False
    ribs: bool = False
    partial: bool = False  # touches the top or bottom of the scan


@dataclass(frozen=True)
class Spine:
    """The spine found in a volume; masks are bool ``[k, j, i]``."""

    column: np.ndarray  # bone of the vertebral column (bodies + posterior elements)
    bodies: np.ndarray
    canal: np.ndarray
    discs: np.ndarray
    lf_zone: np.ndarray
    body_centre: np.ndarray  # (nk, 2) (j, i) index per slice, interpolated
    canal_centre: np.ndarray  # (nk, 2) (j, i) index per slice, NaN where unknown
    segments: tuple[Segment, ...]
    slice_levels: tuple[str | None, ...]
    notes: tuple[str, ...] = ()
    found: bool = True
    vertebra_levels: dict[str, np.ndarray] = field(default_factory=dict)


def disk(radius_px: float) -> np.ndarray:
    """Boolean 2-D disk structuring element of the given radius in pixels."""
    r = max(int(np.ceil(radius_px)), 1)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y) <= radius_px * radius_px + 1e-9


def dilate2d(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Binary dilation by a disk, computed only in the mask's bounding box + radius
    (full-slice morphology with large disks dominates the run time otherwise)."""
    if not mask.any():
        return mask.copy()
    r = int(np.ceil(radius_px)) + 1
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    j0, j1 = max(rows[0] - r, 0), min(rows[-1] + r + 1, mask.shape[0])
    i0, i1 = max(cols[0] - r, 0), min(cols[-1] + r + 1, mask.shape[1])
    out = np.zeros_like(mask)
    out[j0:j1, i0:i1] = ndi.binary_dilation(mask[j0:j1, i0:i1], structure=disk(radius_px))
    return out


def dilate_in_plane(mask: np.ndarray, radius_mm: float, sj: float, si: float) -> np.ndarray:
    """Every slice of a ``[k, j, i]`` stack dilated by a disk of ``radius_mm``, at once.

    The same voxels as thresholding the exact in-plane distance
    (:func:`distance_in_plane`) at ``radius_mm``: the disk holds the offsets whose
    distance, computed as the distance transform computes it, passes that test.
    One dilation of the mask's box costs a third of a distance transform per slice.
    """
    out = np.zeros_like(mask)
    if not mask.any():
        return out
    rj, ri = int(np.ceil(radius_mm / sj)), int(np.ceil(radius_mm / si))
    dj, di = np.mgrid[-rj : rj + 1, -ri : ri + 1].astype(np.float64)
    # float64 offsets scaled, squared and summed, then stored as float32: as in
    # ndi.distance_transform_edt and distance_in_plane's float32 output
    offset_mm = np.sqrt((dj * sj) * (dj * sj) + (di * si) * (di * si)).astype(np.float32)
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    box = (slice(ks[0], ks[-1] + 1),) + _stack_box(mask, max(rj, ri) + 1)[1:]
    out[box] = ndi.binary_dilation(mask[box], structure=(offset_mm <= radius_mm + 1e-6)[None])
    return out


def bbox2d(mask: np.ndarray, margin_px: int) -> tuple[slice, slice]:
    """Bounding box of a non-empty 2-D mask grown by ``margin_px`` (clipped)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (slice(max(rows[0] - margin_px, 0), min(rows[-1] + margin_px + 1, mask.shape[0])),
            slice(max(cols[0] - margin_px, 0), min(cols[-1] + margin_px + 1, mask.shape[1])))


def body_mask_2d(slice_hu: np.ndarray, threshold_hu: float = -400.0) -> np.ndarray:
    """The patient's body on one slice: largest component above air, holes filled."""
    m = slice_hu > threshold_hu
    lab, n = ndi.label(m)
    if n == 0:
        return m
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return ndi.binary_fill_holes(lab == int(np.argmax(sizes)))


# In-plane connectivity for labelling a [k, j, i] stack slice by slice in one call:
# ndimage numbers labels in raster order, so each slice's labels form one
# contiguous range and never join across slices.
_PLANE4 = np.zeros((3, 3, 3), dtype=bool)
_PLANE4[1] = ndi.generate_binary_structure(2, 1)


def body_masks(hu: np.ndarray, threshold_hu: float = -400.0) -> np.ndarray:
    """The patient's body on every slice: the largest 3-D component above air,
    with the holes of each slice (lungs, bowel gas) filled.

    Like :func:`body_mask_2d` slice by slice, but with two 3-D labellings
    (cc3d) for the whole stack instead of two per slice. A hole is background
    not connected to the in-plane border of the stack.
    """
    m = hu > threshold_hu
    if not m.any():
        return m
    lab, n = cc3d.connected_components(m, connectivity=6, return_N=True)
    if n == 1:
        body = m  # one component (no table, no specks): counting it is the costliest step
    else:
        counts = np.bincount(lab.ravel())
        counts[0] = 0
        body = lab == int(np.argmax(counts))
    del lab
    # Background outside the body's in-plane box reaches the border along its
    # row or column, and a path from inside the box to the border crosses the
    # box's one-pixel rim: holes are found in the box grown by one pixel, its
    # rim standing for the border (same answer, a fraction of the voxels).
    _, nj, ni = body.shape
    rows, cols = np.flatnonzero(body.any(axis=(0, 2))), np.flatnonzero(body.any(axis=(0, 1)))
    box = (slice(None), slice(max(rows[0] - 1, 0), min(rows[-1] + 2, nj)),
           slice(max(cols[0] - 1, 0), min(cols[-1] + 2, ni)))
    bg = cc3d.connected_components(~body[box], connectivity=6)
    hole = np.ones(int(bg.max()) + 1, dtype=bool)
    hole[0] = False
    for edge in (bg[:, 0, :], bg[:, -1, :], bg[:, :, 0], bg[:, :, -1]):
        hole[edge.ravel()] = False
    body[box] |= hole[bg]
    return body


def _interp_nan(values: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaNs along axis 0 (constant beyond the ends)."""
    out = values.astype(np.float64).copy()
    idx = np.arange(out.shape[0])
    for c in range(out.shape[1]):
        good = np.isfinite(out[:, c])
        if good.any():
            out[:, c] = np.interp(idx, idx[good], out[good, c])
    return out


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(start, stop)`` index runs where ``flags`` is true."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    d = np.diff(padded.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    stops = np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), stops.tolist()))


def _seed(bone: np.ndarray, body_centres: np.ndarray,
          spacing: tuple[float, float, float]) -> tuple[float, float] | None:
    """(j, i) of the most persistent bone near the midline of the posterior body half.

    Ribs and the sternum move or lie anteriorly; the column is bone on nearly every
    slice at the same place, so the z-average of the bone mask peaks there.
    """
    _, sj, si = spacing
    persist = bone.mean(axis=0, dtype=np.float32)
    nj, ni = persist.shape
    jc, ic = np.nanmedian(body_centres, axis=0)
    jj, ii = np.mgrid[0:nj, 0:ni]
    window = (np.abs(ii - ic) * si < 40.0) & ((jj - jc) * sj > -30.0)
    smooth = ndi.gaussian_filter(persist, sigma=(5.0 / sj, 5.0 / si))
    smooth[~window] = 0
    if smooth.max() <= 0.05:
        return None
    j, i = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return float(j), float(i)


def _column_stack(lab: np.ndarray, bone: np.ndarray, centres: np.ndarray, s: SpineSettings,
                  sj: float, si: float) -> np.ndarray:
    """The column's bone on every slice: components crossing a midline strip.

    ``lab`` labels the bone after a 1-pixel closing, slice by slice. The strip
    (+-12 mm of ``centres[k]``, from 25 mm anterior to ``column_posterior_mm``
    posterior of it) crosses the body, the arch and the spinous process but not
    the ribs, the sternum or the aorta in front of the body; the result is
    clipped to a box around the column so that ribs or the pelvis joined at a
    joint do not drag half the skeleton in.
    """
    nk, nj, ni = bone.shape
    keep = np.zeros(int(lab.max()) + 1, dtype=bool)
    box = np.zeros(bone.shape, dtype=bool)
    for k in range(nk):
        jc, ic = centres[k]
        if not np.isfinite(jc):
            continue
        j0, j1 = int(max(jc - 25.0 / sj, 0)), int(min(jc + s.column_posterior_mm / sj + 1, nj))
        i0, i1 = int(max(ic - 12.0 / si, 0)), int(min(ic + 12.0 / si + 1, ni))
        keep[lab[k, j0:j1, i0:i1].ravel()] = True
        box[k, int(max(jc - s.column_anterior_mm / sj, 0)) : int(min(jc + s.column_posterior_mm / sj + 1, nj)),
            int(max(ic - s.column_half_width_mm / si, 0)) : int(min(ic + s.column_half_width_mm / si + 1, ni))] = True
    keep[0] = False
    return keep[lab] & bone & box


def find_spine(hu: np.ndarray, spacing: tuple[float, float, float], *,
               bone: np.ndarray | None = None, settings: SpineSettings | None = None,
               body: np.ndarray | None = None) -> Spine:
    """Find the vertebral column, canal, discs, levels and ligamentum flavum zone.

    Parameters
    ----------
    hu : ndarray
        CT in HU, ``[k, j, i]`` canonical (k superior, j posterior, i left).
    spacing : tuple of float
        ``(sk, sj, si)`` in mm.
    bone : ndarray of bool, optional
        A bone mask to use instead of ``hu >= settings.bone_hu``.
    settings : SpineSettings, optional
    body : ndarray of bool, optional
        The body mask (:func:`body_masks`) when the caller has it already.

    Returns
    -------
    Spine
        ``found`` is False (and all masks empty) when no column is visible.
    """
    s = settings or SpineSettings()
    sk, sj, si = (float(v) for v in spacing)
    nk, nj, ni = hu.shape
    if bone is None:
        bone = hu >= s.bone_hu
    bone = bone.astype(bool, copy=False)

    body_centres = body_centres_of(body if body is not None else body_masks(hu))
    empty = np.zeros(hu.shape, dtype=bool)
    seed = _seed(bone, body_centres, (sk, sj, si)) if np.isfinite(body_centres).any() else None
    if seed is None:
        return Spine(empty, empty, empty, empty, empty, np.full((nk, 2), np.nan), np.full((nk, 2), np.nan),
                     (), (None,) * nk, ("no vertebral column found",), found=False)
    # Everything up to the level count happens in a box around the seed that
    # holds the column with room for lordosis / scoliosis: a tenth of the slice,
    # so the per-slice morphology costs a tenth.
    full_shape, bone_full = hu.shape, bone
    box = _column_box(seed, hu.shape, s, sj, si)
    off = np.array([box[1].start, box[2].start], dtype=float)
    hu, bone = hu[box], bone[box]
    seed = (seed[0] - off[0], seed[1] - off[1])
    nj, ni = hu.shape[1:]

    def paste(m: np.ndarray) -> np.ndarray:
        # Only the slices that hold the mask are written: a level's mask spans a
        # few slices, and the untouched rest of the zeroed array costs nothing.
        out = np.zeros(full_shape, dtype=bool)
        ks = np.flatnonzero(m.any(axis=(1, 2)))
        if ks.size:
            out[ks[0] : ks[-1] + 1, box[1], box[2]] = m[ks[0] : ks[-1] + 1]
        return out

    # Pass 1: select the column around the fixed seed, pass 2 around a smoothed
    # per-slice track (follows lordosis / kyphosis).
    # One closing and one labelling of the whole stack serve both passes.
    closed_lab, _ = ndi.label(_closed_in_plane(bone, 1.0), structure=_PLANE4)
    col = _column_stack(closed_lab, bone, np.tile(seed, (nk, 1)), s, sj, si)
    area = col.sum(axis=(1, 2)) * sj * si
    track = np.where((area > 100.0)[:, None], body_centres_of(col, min_px=0), np.nan)
    if not np.isfinite(track).any():
        return Spine(empty, empty, empty, empty, empty, np.full((nk, 2), np.nan), np.full((nk, 2), np.nan),
                     (), (None,) * nk, ("no vertebral column found",), found=False)
    track = _interp_nan(track)
    win = max(int(round(30.0 / sk)) | 1, 1)
    track = ndi.median_filter(track, size=(win, 1), mode="nearest")
    column = _column_stack(closed_lab, bone, track, s, sj, si)

    canal, canal_centre = _find_canal(hu, column, track, s, (sk, sj, si))
    # A 3 mm closing bridges gaps in the cortex of osteoporotic or fatty bodies
    # so that filling holes gives the full cross-section.
    filled = _closed_filled_stack(column, 3.0 / si) & ~canal
    # Bodies: the filled column anterior to the canal's front edge.
    bodies = np.zeros_like(column)
    canal_r = _canal_radius(canal, canal_centre, sj, si)
    jj = np.arange(nj)[:, None]
    for k in range(nk):
        if np.isfinite(canal_centre[k, 0]):
            front = jj < canal_centre[k, 0] - canal_r / sj
            bodies[k] = filled[k] & front
            # A thin cortex seen at 1-3 mm thickness is often an open ring: the
            # convex hull of the bone in front of the canal is the body anyway.
            ant = column[k] & front
            if ant.sum() * sj * si >= 30.0:
                b = bbox2d(ant, 1)
                hull = np.zeros_like(ant)
                hull[b] = convex_hull_image(ant[b])
                bodies[k] |= hull & front & ~canal[k]
                filled[k] |= bodies[k]
    areas = bodies.sum(axis=(1, 2)) * sj * si
    body_centre = np.full((nk, 2), np.nan)
    typical = float(np.percentile(areas[areas > 0], 75)) if (areas > 0).any() else 0.0
    for k in range(nk):
        if typical > 0 and areas[k] >= s.disc_ratio * typical:
            body_centre[k] = ndi.center_of_mass(bodies[k])
    if not np.isfinite(body_centre).any():
        body_centre[:] = track
    body_centre = _interp_nan(body_centre)

    ratio = areas / typical if typical > 0 else np.zeros(nk)
    segments = _segments(ratio, s, sk)
    # The sacrum's alae and the ribs reach beyond the box: full slices there.
    column_full, centre_full = paste(column), body_centre + off
    segments = _mark_sacrum(segments, bone_full, column_full, centre_full, s, (sk, sj, si))
    segments = _mark_ribs(segments, bone_full, column_full, centre_full, s, (sk, sj, si))
    segments, notes = _assign_levels(segments, sk)
    slice_levels = _slice_levels(segments, nk, sk, edge_disc_shown=_edge_discs_shown(hu, bodies, segments))
    discs = _disc_mask(hu, bodies, segments, nk)
    # Off the vertebral bodies: where the canal estimate strays forward (S1) the
    # ring reached the body's posterior cortex, whose edge then passed for a
    # calcified ligament.
    lf = _lf_zone(canal, canal_centre, s, sj, si) & ~dilate_in_plane(bodies, s.lf_body_clearance_mm, sj, si)
    sacrum_top = max((g.k1 for g in segments if g.sacrum), default=None)
    if sacrum_top is not None:
        # The lowest ligamentum flavum (L5-S1) ends on the top of the S1 lamina,
        # about a third of a body below the S1 endplate; below, the "canal" is the
        # sacral canal, roofed by the fused sacral laminae.
        lf[: max(sacrum_top - int(round(s.lf_below_s1_top_mm / sk)), 0)] = False
    by_level: dict[str, np.ndarray] = {}
    for seg in segments:
        if seg.level is None:
            continue
        m = np.zeros_like(column)
        m[seg.k0 : seg.k1 + 1] = filled[seg.k0 : seg.k1 + 1]
        by_level[seg.level] = m
    _assign_disc_slices(by_level, filled, segments)
    return Spine(paste(filled), paste(bodies), paste(canal), paste(discs), paste(lf), centre_full,
                 canal_centre + off, tuple(segments), slice_levels, tuple(notes), True,
                 {lv: paste(m) for lv, m in by_level.items()})


def _closed_filled_stack(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Every slice of ``mask`` closed by a disk of ``radius_px`` (OR the mask) with
    its holes filled, in one call for the stack instead of one per slice.

    The same pixels as slice by slice in each slice's own box: the closing stays
    within ``radius_px`` of the mask, a hole within the mask's box, and the stack's
    box (grown by more than the radius) only moves the border further out.
    """
    out = np.zeros_like(mask)
    if not mask.any():
        return out
    box = _stack_box(mask, int(np.ceil(radius_px)) + 2)
    out[box] = _fill_holes_in_plane(_closed_in_plane(mask[box], radius_px))
    return out


_CROSS = ndi.generate_binary_structure(2, 1)


def _closed_in_plane(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Every slice closed by ``disk(radius_px)``, OR the mask (``ndi.binary_closing``,
    outside the stack counting as background).

    The 1-pixel disk is the 4-neighbour cross: its dilation and erosion are four
    shifted ORs / ANDs, several times cheaper than the generic morphology.
    """
    se = disk(radius_px)
    if se.shape != _CROSS.shape or not np.array_equal(se, _CROSS):
        return ndi.binary_closing(mask, structure=se[None]) | mask
    grown = mask.copy()
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    grown[:, :, 1:] |= mask[:, :, :-1]
    grown[:, :, :-1] |= mask[:, :, 1:]
    closed = grown.copy()
    closed[:, 1:] &= grown[:, :-1]
    closed[:, :-1] &= grown[:, 1:]
    closed[:, :, 1:] &= grown[:, :, :-1]
    closed[:, :, :-1] &= grown[:, :, 1:]
    # the cross reaches past the edge there, onto background: eroded away
    closed[:, [0, -1]] = False
    closed[:, :, [0, -1]] = False
    return closed | mask


def _fill_holes_in_plane(mask: np.ndarray) -> np.ndarray:
    """``ndi.binary_fill_holes`` of every slice (4-connected background), by one
    labelling: the slices are stacked with a foreground slice between each pair
    (no background path along k) and a one-pixel background ring around each
    (the slice's outside); background not joined to its slice's ring is a hole.
    A seventh of the cost of the iterative fill for the column's stack.
    """
    nk, nj, ni = mask.shape
    bg = np.zeros((2 * nk - 1, nj + 2, ni + 2), dtype=bool)
    bg[0::2] = True
    bg[0::2, 1:-1, 1:-1] = ~mask
    lab = cc3d.connected_components(bg, connectivity=6)
    outside = lab[0::2, :1, :1]
    return mask | (lab[0::2, 1:-1, 1:-1] != outside)


def _stack_box(mask: np.ndarray, margin_px: int) -> tuple[slice, slice, slice]:
    """In-plane box of a non-empty ``[k, j, i]`` mask over all its slices, grown by
    ``margin_px`` (clipped); all slices."""
    _, nj, ni = mask.shape
    rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
    return (slice(None), slice(max(rows[0] - margin_px, 0), min(rows[-1] + margin_px + 1, nj)),
            slice(max(cols[0] - margin_px, 0), min(cols[-1] + margin_px + 1, ni)))


def body_centres_of(body: np.ndarray, min_px: int = 100) -> np.ndarray:
    """``(nk, 2)`` centre of mass ``(j, i)`` of the body per slice (NaN if under ``min_px``)."""
    nk, nj, ni = body.shape
    area = body.sum(axis=(1, 2), dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cj = (body.sum(axis=2, dtype=np.int64) * np.arange(nj)).sum(axis=1) / area
        ci = (body.sum(axis=1, dtype=np.int64) * np.arange(ni)).sum(axis=1) / area
    out = np.column_stack([cj, ci]).astype(np.float64)
    out[area <= min_px] = np.nan
    return out


def _column_box(seed: tuple[float, float], shape: tuple[int, int, int], s: SpineSettings,
                sj: float, si: float, drift_mm: float = 40.0) -> tuple[slice, slice, slice]:
    """The column's box around the seed: its anterior / posterior / lateral reach plus
    ``drift_mm`` for curvature, clipped to the slice."""
    _, nj, ni = shape
    j0 = int(max(seed[0] - (s.column_anterior_mm + drift_mm) / sj, 0))
    j1 = int(min(seed[0] + (s.column_posterior_mm + drift_mm) / sj + 1, nj))
    i0 = int(max(seed[1] - (s.column_half_width_mm + drift_mm) / si, 0))
    i1 = int(min(seed[1] + (s.column_half_width_mm + drift_mm) / si + 1, ni))
    return slice(None), slice(j0, j1), slice(i0, i1)


# The canal's expected position on a slice: the median of the most posterior
# holes within this span along z (mm), and the largest offset from it (mm).
CANAL_REFERENCE_MM = 80.0
CANAL_MAX_OFFSET_MM = 12.0


def _find_canal(hu: np.ndarray, column: np.ndarray, track: np.ndarray, s: SpineSettings,
                spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Spinal canal: the low-density hole ringed by bone, interpolated along z.

    On slices through the pedicles and laminae the canal is a closed hole in the
    column; elsewhere (disc levels) its centre is interpolated from neighbours and
    the lumen is the low-density region within the typical canal radius there.
    """
    sk, sj, si = spacing
    nk = hu.shape[0]
    canal = np.zeros(hu.shape, dtype=bool)
    centre = np.full((nk, 2), np.nan)
    radii = []
    cands: list[list[tuple[np.ndarray, tuple[float, float], float]]] = [[] for _ in range(nk)]
    holes = _closed_filled_stack(column, 1.0) & ~column & (hu < s.canal_max_hu)
    # One in-plane labelling of the stack: labels run in raster order, so each
    # slice's holes keep the order (and the tie-breaks) of a per-slice labelling.
    lab, n = ndi.label(holes, structure=_PLANE4)
    if n:
        counts = np.bincount(lab.ravel(), minlength=n + 1)
        for lbl, bb in enumerate(ndi.find_objects(lab), start=1):
            area = float(counts[lbl]) * sj * si
            if bb is None or area < 40.0:  # mm2; smaller holes are vascular foramina
                continue
            k = bb[0].start
            m = np.zeros(hu.shape[1:], dtype=bool)
            m[bb[1:]] = lab[k][bb[1:]] == lbl
            cands[k].append((m, _centroid(m[bb[1:]], bb[1].start, bb[2].start), area))
    # The canal is the most posterior large hole (fatty marrow can leave holes in
    # the body, always anterior of it) and its centre moves smoothly along z.
    # The reference is local (CANAL_REFERENCE_MM along z): over a chest CT the
    # kyphosis moves the canal by more than the tolerance, and a scan-wide median
    # rejected the true canal in the upper thorax and kept an extrapolated one
    # ~30 mm behind it, at the spinous processes (real ct_thorax_philips). The
    # reference is taken both ways in-plane: beside the canal the hole between a
    # rib's neck and its transverse process can lie as far back as the canal.
    post = np.full((nk, 2), np.nan)
    for k in range(nk):
        if cands[k]:
            post[k] = max(cands[k], key=lambda t: t[1][0])[1]
    half = max(int(round(CANAL_REFERENCE_MM / 2 / sk)), 1)
    for k in range(nk):
        if not cands[k]:
            continue
        ref = np.nanmedian(post[max(k - half, 0) : k + half + 1], axis=0)
        near = [t for t in cands[k] if abs(t[1][0] - ref[0]) * sj <= CANAL_MAX_OFFSET_MM
                and abs(t[1][1] - ref[1]) * si <= CANAL_MAX_OFFSET_MM]
        if not near:
            continue
        m, c, area = max(near, key=lambda t: t[1][0])
        canal[k] = m
        centre[k] = c
        radii.append(np.sqrt(area / np.pi))
    if not np.isfinite(centre).any():
        return canal, centre
    r = float(np.median(radii))
    filled_centre = _interp_nan(centre)
    nj, ni = hu.shape[1:]
    for k in range(nk):
        if canal[k].any() or not column[k].any():
            continue
        jc, ic = filled_centre[k]
        j0, j1 = int(max(jc - r / sj - 1, 0)), int(min(jc + r / sj + 2, nj))
        i0, i1 = int(max(ic - r / si - 1, 0)), int(min(ic + r / si + 2, ni))
        jj, ii = np.mgrid[j0:j1, i0:i1]
        d = ((jj - jc) * sj) ** 2 + ((ii - ic) * si) ** 2 <= r * r
        canal[k, j0:j1, i0:i1] = d & ~column[k, j0:j1, i0:i1] & (hu[k, j0:j1, i0:i1] < s.canal_max_hu + 40)
        centre[k] = (jc, ic)
    return canal, centre


def _centroid(m: np.ndarray, j0: int, i0: int) -> tuple[float, float]:
    """``ndi.center_of_mass`` of a 2-D bool mask cut out at ``(j0, i0)``, bit for bit:
    both divide exact integer sums of the full slice's indices by the count."""
    jj, ii = np.nonzero(m)
    n = np.float64(jj.size)
    return (np.float64(int(jj.sum()) + j0 * jj.size) / n, np.float64(int(ii.sum()) + i0 * ii.size) / n)


def _canal_radius(canal: np.ndarray, centre: np.ndarray, sj: float, si: float) -> float:
    areas = canal.sum(axis=(1, 2))
    if not (areas > 0).any():
        return 8.0
    return float(np.sqrt(np.median(areas[areas > 0]) * sj * si / np.pi))


def _segments(ratio: np.ndarray, s: SpineSettings, sk: float) -> list[Segment]:
    """Vertebral segments = runs of slices with a full body cross-section."""
    nk = ratio.shape[0]
    is_body = ratio >= s.disc_ratio
    segs = []
    for a, b in _runs(is_body):
        if (b - a + 1) * sk < s.min_segment_mm and 0 < a and b < nk - 1:
            continue
        segs.append(Segment(a, b, partial=(a == 0 or b == nk - 1)))
    return segs


def _component_width_mm(bone2d: np.ndarray, centre: tuple[float, float], sj: float, si: float) -> float:
    """Lateral extent of the bone joined (3 mm closing) to the body at ``centre``.

    Restricted to rows within 40 mm of the body so that anterior structures do not
    count; the sacral alae plus the iliac bones make this far wider than a body.
    """
    jc, ic = centre
    nj = bone2d.shape[0]
    j0, j1 = int(max(jc - 40.0 / sj, 0)), int(min(jc + 40.0 / sj, nj))
    band = bone2d[j0:j1]
    closed = ndi.binary_closing(band, structure=disk(3.0 / si), iterations=1) | band
    lab, _ = ndi.label(closed)
    lj, li = int(round(jc)) - j0, int(round(ic))
    if not (0 <= lj < band.shape[0]) or not (0 <= li < band.shape[1]):
        return 0.0
    # The body centre may be cancellous (below threshold): take the label with
    # the most pixels within 25 mm.
    rj, ri = int(25.0 / sj), int(25.0 / si)
    win = lab[max(lj - rj, 0) : lj + rj + 1, max(li - ri, 0) : li + ri + 1]
    ids = win[win > 0]
    if ids.size == 0:
        return 0.0
    comp = lab == np.bincount(ids).argmax()
    cols = np.flatnonzero(comp.any(axis=0))
    return float((cols[-1] - cols[0] + 1) * si)


def _mark_sacrum(segs: list[Segment], bone: np.ndarray, column: np.ndarray, centre: np.ndarray,
                 s: SpineSettings, spacing: tuple[float, float, float]) -> list[Segment]:
    """Flag the sacrum; merge the (fused) segments below S1 into it.

    Two signs, either suffices:

    * the column **ends** inside the scan: no column bone in the scan's lowest
      ``sacrum_tail_mm`` -- the lowest full-size segment of a column that ends
      is the sacrum (the lower sacral segments and the coccyx below it taper
      and are too small to count as segments);
    * the segment is **wide**: its bone, joined by a 3 mm closing that
      bridges the sacro-iliac joints, spans at least ``sacrum_width_mm`` on
      most of its slices (alae + iliac bones).

    Among the lowest three segments the uppermost wide one is S1 when it sits
    directly on the sacral candidate (an S1-S2 remnant disc can split the
    sacrum in two).
    """
    if not segs:
        return segs
    sk, sj, si = spacing
    lowest = segs[0]
    tail = int(np.ceil(s.sacrum_tail_mm / sk))
    ends = lowest.k0 > tail and not column[:tail].any()
    cands = [0] if ends else []
    for n in range(min(3, len(segs))):
        seg = segs[n]
        w = [_component_width_mm(bone[k], tuple(centre[k]), sj, si) for k in range(seg.k0, seg.k1 + 1)]
        if float(np.median(w)) >= s.sacrum_width_mm and (not cands or n == max(cands) + 1):
            cands.append(n)
    if not cands:
        return segs
    top_n = max(cands)
    top = segs[top_n]
    k0 = segs[0].k0
    if ends:
        # the tapering lower sacrum (and coccyx) below S1 belong to it
        k0 = int(np.flatnonzero(column[: segs[0].k0 + 1].any(axis=(1, 2)))[0])
    sac = Segment(k0, top.k1, sacrum=True, partial=segs[0].partial or top.partial)
    return [sac] + segs[top_n + 1 :]


def _mark_ribs(segs: list[Segment], bone: np.ndarray, column: np.ndarray, centre: np.ndarray,
               s: SpineSettings, spacing: tuple[float, float, float]) -> list[Segment]:
    """Flag segments where a rib attaches (3-D bone leaving the column laterally)."""
    if not segs:
        return segs
    sk, sj, si = spacing
    dist = distance_in_plane(column, 10.0, sj, si)
    grown = dist <= 3.0
    rest = bone & ~grown
    if not rest.any():
        return segs
    lab = cc3d.connected_components(rest, connectivity=26)
    # Boxes only (cc3d.statistics also sums centroids, at twice the cost); a
    # component's voxels are counted in its box, for the few that touch.
    boxes = ndi.find_objects(lab)
    near = (dist <= 10.0) & ~grown
    touching = np.unique(lab[near & (lab > 0)])
    attach_k: list[float] = []
    sac_top = max((g.k1 for g in segs if g.sacrum), default=-1)
    for cid in touching:
        if cid == 0:
            continue
        sl = boxes[cid - 1]
        kz = (sl[0].stop - sl[0].start) * sk
        if kz > 120.0:
            continue
        sub = lab[sl] == cid
        count = int(np.count_nonzero(sub)) * sk * sj * si
        if count > 80_000.0 or count < 100.0:
            continue
        kk, jj, ii = np.nonzero(sub)
        kk = kk + sl[0].start
        ii = ii + sl[2].start
        lateral = np.max(np.abs(ii - centre[kk, 1])) * si
        if lateral < s.rib_lateral_mm:
            continue
        touch = near[sl] & sub
        k_att = float(np.nonzero(touch)[0].mean() + sl[0].start)
        if k_att <= sac_top:
            continue
        attach_k.append(k_att)
    if not attach_k:
        return segs
    out = []
    for seg in segs:
        ribs = any(seg.k0 - 0.5 <= k <= seg.k1 + 0.5 for k in attach_k)
        out.append(Segment(seg.k0, seg.k1, seg.level, seg.sacrum, ribs, seg.partial))
    # Attachments in a disc gap belong to the vertebra below (rib heads sit on the
    # upper part of their vertebra).
    for k in attach_k:
        if not any(g.k0 - 0.5 <= k <= g.k1 + 0.5 for g in out):
            below = [n for n, g in enumerate(out) if g.k1 < k]
            if below:
                n = max(below, key=lambda n: out[n].k1)
                g = out[n]
                out[n] = Segment(g.k0, g.k1, g.level, g.sacrum, True, g.partial)
    return out


def _assign_levels(segs: list[Segment], sk: float,
                   max_body_mm: float = 45.0) -> tuple[list[Segment], list[str]]:
    """Name segments from the sacrum and/or T12 anchor (see module docstring)."""
    notes: list[str] = []
    if not segs:
        return segs, ["no vertebral bodies found along the column"]
    # segs are ordered caudal -> cranial (increasing k)
    sac_idx = next((n for n, g in enumerate(segs) if g.sacrum), None)
    rib_idx = [n for n, g in enumerate(segs) if g.ribs and not g.sacrum]
    t12_idx = None
    if rib_idx:
        lowest = min(rib_idx)
        # Valid only with a complete (not cut by the scan), rib-free, non-sacral
        # segment visible below it: a cut one may have its ribs out of view.
        if any(not segs[n].ribs and not segs[n].sacrum and not segs[n].partial for n in range(lowest)):
            t12_idx = lowest
    s1 = VERTEBRA_LEVELS.index("S1")
    t12 = VERTEBRA_LEVELS.index("T12")
    if sac_idx is not None:
        anchor_idx, anchor_pos = sac_idx, s1
        if t12_idx is not None:
            lumbar = t12_idx - sac_idx - 1
            if lumbar != 5:
                notes.append(TRANSITIONAL_NOTE + f" ({lumbar} lumbar-type vertebrae between the "
                             "lowest rib-bearing vertebra and the sacrum)")
    elif t12_idx is not None:
        anchor_idx, anchor_pos = t12_idx, t12
        notes.append("vertebral levels counted from the lowest rib-bearing vertebra (T12); "
                     "the sacrum is not in the field of view")
    else:
        return segs, [NO_ANCHOR_NOTE]
    # Counting walks away from the anchor; a segment far taller than a vertebral
    # body means discs were not resolved (thin discs, thick slices), so the
    # count stops there rather than run on wrong.
    names: list[str | None] = [None] * len(segs)
    for step in (1, -1):
        n = anchor_idx
        while 0 <= n < len(segs):
            g = segs[n]
            pos = anchor_pos - (n - anchor_idx)
            if not 0 <= pos < len(VERTEBRA_LEVELS):
                break
            if not g.sacrum and n != anchor_idx and (g.k1 - g.k0 + 1) * sk > max_body_mm:
                notes.append(f"vertebral levels beyond {names[n - step]} not assigned: intervertebral "
                             "discs could not be resolved")
                break
            names[n] = VERTEBRA_LEVELS[pos]
            n += step
    out = [Segment(g.k0, g.k1, names[n], g.sacrum, g.ribs, g.partial) for n, g in enumerate(segs)]
    return out, notes


def _slice_levels(segs: list[Segment], nk: int, sk: float = 1.0,
                  max_edge_disc_mm: float = 12.0,
                  edge_disc_shown: tuple[bool, bool] = (True, True)) -> tuple[str | None, ...]:
    """Per-slice level: the named bodies, and the disc spaces between them.

    A scan that starts or ends in a disc shows it above the top body (or below
    the lowest one) with no body beyond: those slices, up to a disc's height
    (``max_edge_disc_mm``), are that disc. A plaque there lies at "T12-L1", not
    at no level. ``edge_disc_shown`` (below the lowest body, above the top one;
    :func:`_edge_discs_shown`): where the scan shows no disc tissue beyond the
    end body, those slices get no level.
    """
    levels: list[str | None] = [None] * nk
    named = [g for g in segs if g.level is not None]
    for g in named:
        for k in range(g.k0, g.k1 + 1):
            levels[k] = g.level
    for lower, upper in zip(named, named[1:]):
        for k in range(lower.k1 + 1, upper.k0):
            levels[k] = f"{upper.level}-{lower.level}"
    if named and segs[-1] is named[-1] and not named[-1].partial and edge_disc_shown[1]:
        top, gap = named[-1], nk - 1 - named[-1].k1
        pos = VERTEBRA_LEVELS.index(top.level)
        if 0 < gap * sk <= max_edge_disc_mm and pos > 0:
            levels[top.k1 + 1 :] = [f"{VERTEBRA_LEVELS[pos - 1]}-{top.level}"] * gap
    if named and segs[0] is named[0] and not named[0].partial and not named[0].sacrum and edge_disc_shown[0]:
        low, gap = named[0], named[0].k0
        pos = VERTEBRA_LEVELS.index(low.level)
        if 0 < gap * sk <= max_edge_disc_mm and pos + 1 < len(VERTEBRA_LEVELS):
            levels[: low.k0] = [f"{low.level}-{VERTEBRA_LEVELS[pos + 1]}"] * gap
    return tuple(levels)


# A disc is 70-110 HU. Fat (-100 HU) beyond the end body of the scan means the
# column ends there (or the image shows no disc); on the 2.5-3 mm work slices that
# fat is blurred with the endplate and reads -100 to +30 HU (tuning phantoms: 5-20
# HU over a T10 with no disc above it), so the bar sits below the disc's range.
EDGE_DISC_MIN_HU = 45.0


def _edge_discs_shown(hu: np.ndarray, bodies: np.ndarray, segs: list[Segment],
                      min_hu: float = EDGE_DISC_MIN_HU, min_px: int = 20) -> tuple[bool, bool]:
    """Whether the slices beyond the lowest and the top named body show a disc
    (below, above): on every one of them the median HU over the end body's
    footprint (its end slice) is at least ``min_hu``.

    Without a usable footprint the disc is taken as shown (the rule before this
    check): only a measured absence of disc tissue removes a level.
    """
    named = [g for g in segs if g.level is not None]
    if not named:
        return True, True
    nk = hu.shape[0]

    def shown(k_body: int, gap: range) -> bool:
        foot = bodies[k_body]
        if not len(gap) or foot.sum() < min_px:
            return True
        return all(float(np.median(hu[k][foot])) >= min_hu for k in gap)

    return (shown(named[0].k0, range(0, named[0].k0)),
            shown(named[-1].k1, range(named[-1].k1 + 1, nk)))


def _disc_mask(hu: np.ndarray, bodies: np.ndarray, segs: list[Segment], nk: int) -> np.ndarray:
    """Discs: the adjacent bodies' footprint on the gap slices, non-bone voxels."""
    discs = np.zeros_like(bodies)
    for lower, upper in zip(segs, segs[1:]):
        if upper.k0 - lower.k1 < 2:
            continue
        foot = bodies[lower.k1] | bodies[upper.k0]
        for k in range(lower.k1 + 1, upper.k0):
            discs[k] = foot & (hu[k] > -50) & (hu[k] < 250) & ~bodies[k]
    return discs


def _assign_disc_slices(by_level: dict[str, np.ndarray], filled: np.ndarray, segs: list[Segment]) -> None:
    """Column bone on disc slices belongs to the vertebra above (posterior elements
    slope caudally)."""
    named = [g for g in segs if g.level is not None]
    for lower, upper in zip(named, named[1:]):
        if upper.level in by_level:
            by_level[upper.level][lower.k1 + 1 : upper.k0] = filled[lower.k1 + 1 : upper.k0]


def _lf_zone(canal: np.ndarray, centre: np.ndarray, s: SpineSettings, sj: float, si: float) -> np.ndarray:
    """Ligamentum flavum zone: a band posterior-lateral of the canal lumen.

    The ligament lines the canal's posterior wall between adjacent laminae, so the
    zone is the canal dilated by ``lf_thickness_mm`` minus the canal, keeping the
    posterior half (behind the canal centre) on every slice.
    """
    ring = dilate_in_plane(canal, s.lf_thickness_mm, sj, si) & ~canal
    # Behind the canal centre, within lf_max_angle_deg of the posterior midline,
    # on slices where the canal and its centre are known. The ligament lines the
    # laminae; further round lie the facet pillars and, where the canal estimate
    # sits too far forward (at S1), the back of the vertebral body, whose
    # cortical edges were reported as "ligament calcification".
    jj = np.arange(canal.shape[1])[None, :, None]
    ii = np.arange(canal.shape[2])[None, None, :]
    known = np.isfinite(centre[:, 0])
    cj = np.where(known, centre[:, 0], np.inf)[:, None, None]
    ci = np.where(known, centre[:, 1], 0.0)[:, None, None]
    behind = jj > cj
    dj = np.where(behind, (jj - np.where(known[:, None, None], cj, 0.0)) * sj, 0.0)
    within = np.abs(ii - ci) * si <= np.tan(np.radians(s.lf_max_angle_deg)) * dj
    return ring & behind & within


# --- Levels at native resolution --------------------------------------------------
#
# The rules find the bodies on the work grid (2.5-3 mm slices), so a body's end is
# known to a slice or so; a plaque that enters a disc by 1 mm is reported with the
# disc or not depending on that millimetre. The helpers below turn the per-slice
# levels into z zones and move each body/disc edge to where the CT itself shows
# the endplate.

# A level is named for a calcification only where it lies in it by at least this
# much along z (the reporting convention of the phantom truth, phantoms/truth.py):
# a sub-millimetre overlap is not resolvable at 1.25-3 mm slices.
MIN_LEVEL_OVERLAP_MM = 1.0


@dataclass(frozen=True)
class LevelZone:
    """Slices ``lo .. hi`` (slice-index units, fractional; k grows cranially) of one
    vertebral body (``"L3"``) or disc space (``"L3-L4"``)."""

    level: str
    lo: float
    hi: float


def level_zones(slice_levels: tuple[str | None, ...]) -> list[LevelZone]:
    """The runs of equal per-slice level as zones, caudal first; each edge lies
    half-way between the last slice of one run and the first of the next."""
    zones: list[LevelZone] = []
    k = 0
    for lv, run in groupby(slice_levels):
        n = len(list(run))
        if lv is not None:
            zones.append(LevelZone(lv, k - 0.5, k + n - 0.5))
        k += n
    return zones


def endplate_position(stack_hu: np.ndarray, boundary: float, disc_far: float, *, body_below: bool,
                      slice_mm: float, reach_mm: float = 4.0, min_contrast_hu: float = 80.0,
                      col_ap_mm: np.ndarray | None = None,
                      slice_thickness_mm: float | None = None) -> float | None:
    """Sub-slice index of a body's end, from the HU of its footprint's voxels
    (``stack_hu[k, p]``: slice ``k``, footprint voxel ``p``).

    Along each voxel column the HU climbs from the disc (0-100 HU) to the
    cortical endplate (a 1-2 mm plate of several hundred HU) and falls back to
    cancellous bone. The column's body ends at the outer edge of that plate,
    where its HU passes half-way between its peak and the disc, interpolated
    between slices. A tilted endplate ends at a different z in every column:
    the median over the footprint is its end at the footprint's middle, where
    the phantom (and a reader on the mid-sagittal image) measures it.

    ``boundary`` is the rules' edge (index), ``disc_far`` the disc's other edge;
    ``body_below``: the body lies at lower indices than the disc (its top
    endplate). ``None`` when fewer than half the columns show an endplate
    (a peak at least ``min_contrast_hu`` above the disc, then a crossing
    inside the disc).

    ``col_ap_mm`` (each footprint voxel's antero-posterior position, mm) marks a
    steep endplate -- the sacral promontory, 20-30 deg: its columns' ends climb
    more than :data:`STEEP_ENDPLATE_SLOPE` mm per mm front to back. There the
    median column ends 0.8-2.4 mm inside the body's end along its tilted axis
    (the phantom's; a quarter to half of the disc's columns show no endplate
    within ``reach_mm``), so the body ends at the
    :data:`STEEP_ENDPLATE_PERCENTILE` th percentile of the measured columns,
    counted from the body towards the disc.

    A slice thicker than the plate (``slice_thickness_mm``, default
    ``slice_mm``; 3 mm slices) spreads it over the slice's width: the half-way
    crossing lies outside the plate's outer face, 0-2 mm with the plate's place
    in the slice, ~0.9 mm on average at 3 mm (noisy 3 mm tuning phantoms: body
    tops +1.0 mm, bottoms -0.7 mm). The end is moved back by half the
    difference between slice and plate (:data:`ENDPLATE_MM`): 0.75 mm at 3 mm,
    nothing at <= 1.5 mm. That crossing still follows the slice grid, not the
    plate, so from :data:`PLATE_CENTROID_MIN_SLICE_MM` on a flat endplate's end
    is read from where the plate lies (:func:`_plate_outer_face`, on the median
    profile of the columns that show it); the crossing stays for steep
    endplates and where no plate stands out.
    """
    n = stack_hu.shape[0]
    if not body_below:  # mirror: the body at low indices
        r = endplate_position(stack_hu[::-1], n - 1 - boundary, n - 1 - disc_far, body_below=True,
                              slice_mm=slice_mm, reach_mm=reach_mm, min_contrast_hu=min_contrast_hu,
                              col_ap_mm=col_ap_mm, slice_thickness_mm=slice_thickness_mm)
        return None if r is None else n - 1 - r
    reach = max(reach_mm / slice_mm, 1.5)
    lo, hi = max(int(np.ceil(boundary - reach)), 0), min(int(np.floor(boundary + 0.5 * reach)), n - 1)
    far = min(int(np.floor(disc_far)), n - 1)
    # the plate's peak lies before the disc's far edge: a disc one slice thick
    # (the rules' at 3 mm slices, where 11% of the endplates went unmeasured)
    # leaves one slice to search in, not none
    hi = min(hi, far - 1)
    if hi < lo:
        return None
    # the disc's own HU: its middle slice, or the first past the peak search
    disc_hu = float(np.median(stack_hu[min(max(int(round(0.5 * (boundary + disc_far))), hi + 1), far)]))
    cols = np.arange(stack_hu.shape[1])
    kp = lo + np.argmax(stack_hu[lo : hi + 1], axis=0)
    half = 0.5 * (stack_hu[kp, cols] + disc_hu)
    ks = np.arange(n)[:, None]
    below = (stack_hu <= half) & (ks > kp) & (ks <= far)
    ok = below.any(axis=0) & (stack_hu[kp, cols] - disc_hu >= min_contrast_hu)
    if ok.mean() < 0.5:
        return None
    first, cols = np.argmax(below, axis=0)[ok], cols[ok]
    v0, v1 = stack_hu[first - 1, cols], stack_hu[first, cols]
    ends = first - 1 + (v0 - half[ok]) / np.maximum(v0 - v1, 1e-6)
    thickness = slice_thickness_mm or slice_mm
    spread = 0.5 * max(thickness - ENDPLATE_MM, 0.0) / slice_mm
    if col_ap_mm is not None and _is_steep(ends * slice_mm, np.asarray(col_ap_mm, dtype=np.float64)[ok]):
        return float(np.percentile(ends, STEEP_ENDPLATE_PERCENTILE)) - spread
    if thickness >= PLATE_CENTROID_MIN_SLICE_MM:
        face = _plate_outer_face(np.median(stack_hu[:, ok], axis=1), lo, hi, disc_hu, ENDPLATE_MM / slice_mm,
                                 min_contrast_hu)
        if face is not None:
            return face
    return float(np.median(ends)) - spread


# From this slice thickness (mm) on, a body's end is read from where its cortical
# endplate lies (_plate_outer_face) instead of the half-way crossing. A plate
# thinner than the slice falls into one or two slices; the crossing then lands
# on the slice boundary after the brightest one whatever the plate's place, so
# it moved with the slice grid, not the plate (3 mm dev phantoms 1400-1447 and
# 1500-1547, 199 flat body tops: edges 1.5-3 mm too high on the grid were still
# +0.5 +- 0.9 mm off; bottoms the mirror). 1.25 mm slices resolve the plate.
PLATE_CENTROID_MIN_SLICE_MM = 2.0


def _plate_outer_face(profile: np.ndarray, lo: int, hi: int, disc_hu: float,
                      plate_slices: float, min_contrast_hu: float) -> float | None:
    """Sub-slice index of the outer face of a body's cortical endplate from the
    footprint's median HU ``profile`` (body at low indices, disc at high), the
    plate's brightest slice searched in ``lo .. hi``.

    Each slice averages what it holds, so the plate's excess HU -- over the
    cancellous bone on the body side, over the disc (``disc_hu``) on the peak
    slice and beyond -- is shared between the slices it crosses in proportion to
    how much of it each holds: the excess-weighted mean index is the plate's
    middle, and its outer face lies half a plate (``plate_slices``) further
    towards the disc. A plate within one slice gives that slice's middle, the
    mean of its possible places. ``None`` with no cancellous slice before the
    plate to take its level from, or no plate: a brightest slice less than
    ``min_contrast_hu`` above the cancellous bone (the sacral promontory of
    some phantoms, whose end is then left to the crossing).
    """
    kp = lo + int(np.argmax(profile[lo : hi + 1]))
    if kp < 2 or kp + 1 >= profile.size:
        return None
    cancellous = float(profile[kp - 2])
    if profile[kp] - cancellous < min_contrast_hu:
        return None
    ks = np.array([kp - 1, kp, kp + 1])
    excess = np.maximum(profile[ks] - np.array([cancellous, disc_hu, disc_hu]), 0.0)
    if excess.sum() <= 0.0:
        return None
    return float(ks @ excess / excess.sum()) + 0.5 * plate_slices


# Thickness of a cortical endplate (mm; 1-2 mm in adults, the phantom's 1.4).
ENDPLATE_MM = 1.5


# Per mm front to back, how much a column's endplate end may climb (mm) before the
# endplate counts as steep (see endplate_position). Tuning phantoms: S1 top
# 0.41-0.57, L5 top 0.15-0.23; no lumbar or thoracic edge moved.
STEEP_ENDPLATE_SLOPE = 0.3
# Where a steep endplate ends among its columns. S1 top minus the phantom's, seven
# tuning / former held-out phantoms at 0.625-3 mm, mean (range): median column
# -1.7 mm (-2.4 to -0.8); 65th -0.7; 70th -0.1 (-1.5 to +1.3); 75th +0.4 (-1.0 to +1.6).
STEEP_ENDPLATE_PERCENTILE = 70.0


def _is_steep(ends_mm: np.ndarray, ap_mm: np.ndarray) -> bool:
    """Whether the columns' endplate ends (mm) rise or fall steeply along ``ap_mm``."""
    if ends_mm.size < 10 or np.ptp(ap_mm) < 5.0:
        return False
    slope = np.polyfit(ap_mm - ap_mm.mean(), ends_mm, 1)[0]
    return bool(abs(slope) >= STEEP_ENDPLATE_SLOPE)


def refine_endplates(zones: list[LevelZone], hu: np.ndarray, labels: np.ndarray, disc_label: int,
                     slice_mm: float, near: tuple[float, float] | None = None, max_shift_mm: float = 4.0,
                     margin_mm: float = 5.0,
                     memo: dict[tuple[LevelZone, LevelZone], float | None] | None = None,
                     ap_mm: float | None = None, slice_thickness_mm: float | None = None) -> list[LevelZone]:
    """``zones`` with each body/disc edge moved to the endplate the CT shows.

    ``hu`` is the CT and ``labels`` the anatomy labels on the same slices as the
    zones, both cropped in-plane to the discs' neighbourhood (views: only the
    slices near the edges measured are read). A disc's in-plane footprint (its
    ``disc_label`` voxels on its slices) is where its two endplates are measured
    (:func:`endplate_position`); an edge moves at most ``max_shift_mm`` (beyond
    that the profile is taken to show something else). With ``near`` (a lesion's
    z extent, slice indices) only edges within ``margin_mm`` of either end are
    measured: one further away cannot bring a level's overlap with the lesion
    across the 1 mm of :func:`level_of_extent` (``margin_mm`` >= ``max_shift_mm``
    + :data:`MIN_LEVEL_OVERLAP_MM`).

    ``memo`` (one dict per scan, same ``hu`` and ``labels``) keeps each edge's
    measurement keyed on the two zones it separates: classification asks for the
    same edges for every lesion near them, and one measurement costs ~1 ms.

    ``ap_mm`` (the antero-posterior pixel size, j) lets a steep endplate be told
    from a flat one (:func:`endplate_position`); without it every endplate is
    taken as flat. ``slice_thickness_mm``: the CT's (default: ``slice_mm``).
    """
    out = list(zones)
    margin = margin_mm / slice_mm
    for n in range(len(out) - 1):
        a, b = out[n], out[n + 1]  # a is caudal of b
        if a.hi != b.lo or ("-" in a.level) == ("-" in b.level):
            continue  # a gap, or two bodies / two discs side by side: no endplate between
        edge = a.hi
        if near is not None and min(abs(edge - near[0]), abs(edge - near[1])) > margin:
            continue
        if memo is not None and (a, b) in memo:
            moved = memo[(a, b)]
        else:
            moved = _measured_edge(a, b, hu, labels, disc_label, slice_mm, max_shift_mm, ap_mm,
                                   slice_thickness_mm)
            if memo is not None:
                memo[(a, b)] = moved
        if moved is None:
            continue
        body_below = "-" in b.level
        disc = b if body_below else a
        # a disc keeps a non-negative height: its edges never cross
        new = min(moved, disc.hi) if body_below else max(moved, disc.lo)
        out[n], out[n + 1] = LevelZone(a.level, a.lo, new), LevelZone(b.level, new, b.hi)
    return out


def _measured_edge(a: LevelZone, b: LevelZone, hu: np.ndarray, labels: np.ndarray, disc_label: int,
                   slice_mm: float, max_shift_mm: float, ap_mm: float | None = None,
                   slice_thickness_mm: float | None = None) -> float | None:
    """The endplate between zones ``a`` (caudal) and ``b`` as the CT shows it
    (slice index), or ``None`` where it is not measured (see :func:`refine_endplates`)."""
    nk = hu.shape[0]
    # 6 mm of body, and at least 3 slices: the cancellous slice before a 3 mm
    # slice's plate (_plate_outer_face)
    window = max(int(np.ceil(6.0 / slice_mm)), 3)
    edge = a.hi
    body_below = "-" in b.level
    disc = b if body_below else a
    d0, d1 = int(np.ceil(disc.lo)), int(np.floor(disc.hi))
    foot = (labels[max(d0, 0) : min(d1, nk - 1) + 1] == disc_label).any(axis=0)
    if foot.sum() < 20:
        # No disc drawn: the disc a scan starts or ends in (the rules draw discs
        # only between two bodies). The body's other disc, within 12 mm, lies on
        # the same footprint (a field of view from L1 cut the T12-L1 disc: the L1
        # top was left 0.5-2.2 mm off on the work grid).
        body = a if body_below else b
        reach = int(np.ceil(12.0 / slice_mm))
        o0, o1 = ((int(np.floor(body.lo)) - reach, int(np.ceil(body.lo))) if body_below
                  else (int(np.floor(body.hi)), int(np.ceil(body.hi)) + reach))
        foot = (labels[max(o0, 0) : min(o1, nk - 1) + 1] == disc_label).any(axis=0)
    if foot.sum() < 20:
        return None  # no disc drawn here (too thin on the work grid)
    # from inside the body to the disc's far edge
    if body_below:
        k0, k1 = max(int(np.floor(edge - window)), 0), min(int(np.ceil(disc.hi)), nk - 1)
    else:
        k0, k1 = max(int(np.floor(disc.lo)), 0), min(int(np.ceil(edge + window)), nk - 1)
    stack = hu[k0 : k1 + 1][:, foot].astype(np.float64)
    far = (disc.hi if body_below else disc.lo) - k0
    col_ap = None if ap_mm is None else np.nonzero(foot)[0] * float(ap_mm)
    pos = endplate_position(stack, edge - k0, far, body_below=body_below, slice_mm=slice_mm, col_ap_mm=col_ap,
                            slice_thickness_mm=slice_thickness_mm)
    if pos is None or abs(pos + k0 - edge) * slice_mm > max_shift_mm:
        return None
    return pos + k0


def level_of_extent(lo: float, hi: float, zones: list[LevelZone], slice_mm: float,
                    min_overlap_mm: float = MIN_LEVEL_OVERLAP_MM) -> list[str]:
    """The levels that ``lo .. hi`` (slice-index units) overlaps by ``min_overlap_mm``
    along z; if none does, the level holding its middle (empty if none)."""
    hits = [z.level for z in zones if (min(hi, z.hi) - max(lo, z.lo)) * slice_mm >= min_overlap_mm]
    if hits:
        return hits
    mid = 0.5 * (lo + hi)
    return [z.level for z in zones if z.lo <= mid <= z.hi][:1]
