"""Voxel primitives shared by candidate finding and bone segmentation.

Each morphological primitive has a numpy / scipy implementation and a torch one
with *identical* results (same ellipsoidal footprint, same border rule), so the
CPU and CUDA paths give the same masks; the tests check that on CPU by calling
the torch implementation with ``torch.device("cpu")``.

Connected-component labelling always runs on the CPU with connected-components-3d
(it has no GPU path): on CUDA the boolean mask is copied back to the host, which
is cheap next to the float volume (1 byte per voxel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cc3d
import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: the numpy path never needs it
    import torch

__all__ = [
    "ball_footprint",
    "dilate",
    "erode",
    "label_per_slice",
    "fill_holes_per_slice",
    "bbox_of",
    "label_sparse",
    "sparse_zeros",
]

# Tie-break for footprints: an offset whose length equals the radius is inside.
_EPS = 1e-6


def ball_footprint(spacing: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """Boolean ellipsoid (a ball in mm) on an anisotropic ``[k, j, i]`` grid.

    Parameters
    ----------
    spacing : tuple of float
        Voxel size ``(sk, sj, si)`` in mm.
    radius_mm : float
        Ball radius in mm; offsets with length ``<= radius_mm`` are inside.

    Returns
    -------
    numpy.ndarray
        Odd-sized boolean footprint; ``(1, 1, 1)`` when the radius is below every
        voxel size (the operation is then the identity).

    Examples
    --------
    >>> ball_footprint((3.0, 1.0, 1.0), 1.0).shape
    (1, 3, 3)
    """
    half = [int(np.floor(radius_mm / s + _EPS)) if radius_mm > 0 else 0 for s in spacing]
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing)], indexing="ij")
    dist2 = sum(g.astype(np.float64) ** 2 for g in grids)
    return dist2 <= radius_mm**2 + _EPS


def bbox_of(mask: np.ndarray, pad: tuple[int, int, int] = (0, 0, 0)) -> tuple[slice, ...] | None:
    """Bounding box of ``mask`` as slices, grown by ``pad`` voxels and clipped.

    Returns ``None`` for an empty mask.
    """
    # Two passes over the mask, not one per axis: the first axis's extent, then
    # the OR of the slices inside it (a sparse CT-sized mask: ~13 ms, not ~34 ms).
    first = np.flatnonzero(mask.any(axis=tuple(range(1, mask.ndim)))) if mask.ndim > 1 else np.flatnonzero(mask)
    if first.size == 0:
        return None
    extents = [(int(first[0]), int(first[-1]))]
    if mask.ndim > 1:
        plane = mask[extents[0][0] : extents[0][1] + 1].any(axis=0)
        for axis in range(plane.ndim):
            hit = np.flatnonzero(plane.any(axis=tuple(a for a in range(plane.ndim) if a != axis)))
            extents.append((int(hit[0]), int(hit[-1])))
    return tuple(slice(max(0, lo - p), min(n, hi + 1 + p)) for (lo, hi), p, n in zip(extents, pad, mask.shape))


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _torch_morph(mask: "torch.Tensor", fp: np.ndarray, erode_: bool) -> "torch.Tensor":
    """Dilation / erosion as a convolution that counts footprint hits.

    Counts are small integers, exact in float32, so ``> 0`` / ``== size``
    reproduce scipy's binary morphology bit for bit. Erosion pads with ones to
    match ``scipy.ndimage.binary_erosion(border_value=1)``.
    """
    import torch
    import torch.nn.functional as F

    kernel = torch.as_tensor(fp, dtype=torch.float32, device=mask.device)[None, None]
    half = [s // 2 for s in fp.shape]
    x = mask.to(torch.float32)[None, None]
    pad = (half[2], half[2], half[1], half[1], half[0], half[0])
    x = F.pad(x, pad, value=1.0 if erode_ else 0.0)
    hits = F.conv3d(x, kernel)[0, 0]
    if erode_:
        return hits >= float(fp.sum()) - 0.5
    return hits > 0.5


def _inner6(x: np.ndarray) -> np.ndarray:
    """Voxels of ``x`` whose six face neighbours are all in ``x`` (outside counts as in)."""
    inner = x.copy()
    inner[1:] &= x[:-1]
    inner[:-1] &= x[1:]
    inner[:, 1:] &= x[:, :-1]
    inner[:, :-1] &= x[:, 1:]
    inner[:, :, 1:] &= x[:, :, :-1]
    inner[:, :, :-1] &= x[:, :, 1:]
    return inner


def _np_dilate(x: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Exact binary dilation (outside = background) by scattering from the surface.

    For a footprint that is symmetric and monotone along each axis (our
    ellipsoids), ``X + B = X | (surface(X) + B)`` with ``surface`` the voxels
    having a face neighbour outside ``X``: walking from any ``x`` in ``X``
    towards ``x + b`` one axis step at a time stays inside ``B`` and must leave
    ``X`` through a surface voxel. The cost is surface x footprint instead of
    volume x footprint, which is what makes it fast on a whole CT.
    """
    out = x.copy()
    # flatnonzero + unravel is several times faster than np.nonzero on 3-D.
    base = np.flatnonzero(x & ~_inner6(x))
    if base.size == 0:
        return out
    shape = x.shape
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    pts = np.unravel_index(base, shape)
    flat = out.reshape(-1)
    valid: dict[tuple[int, int], np.ndarray] = {}
    for off in np.argwhere(fp) - np.array(fp.shape) // 2:
        if not off.any():
            continue
        ok = None
        for axis, d in enumerate(off):
            if d == 0:
                continue
            key = (axis, int(d))
            if key not in valid:
                c = pts[axis].astype(np.int64) + d
                valid[key] = (c >= 0) & (c < shape[axis])
            ok = valid[key] if ok is None else ok & valid[key]
        flat[base[ok] + int(off @ strides)] = True
    return out


def _np_erode(x: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Exact binary erosion with outside = foreground: ``X - dilate(~X)``."""
    return x & ~_np_dilate(~x, fp)


def _morph(mask: Any, spacing: tuple[float, float, float], radius_mm: float, erode_: bool) -> Any:
    fp = ball_footprint(spacing, radius_mm)
    if fp.size == 1:
        return mask.clone() if _is_torch(mask) else mask.copy()
    half = tuple(s // 2 for s in fp.shape)
    # Work on the mask's bounding box grown by the footprint (+1 voxel so the
    # crop's inner edges are background): everything outside is unchanged.
    bb = _bbox_any(mask, tuple(h + 1 for h in half))
    if bb is None:
        return mask.clone() if _is_torch(mask) else mask.copy()
    crop = mask[bb]
    if _is_torch(mask):
        res = _torch_morph(crop, fp, erode_)
        out = mask.clone() if erode_ else mask.new_zeros(mask.shape)
        out[bb] = res
        return out
    if _shift_passes(fp) <= _MAX_SHIFT_PASSES:
        res = _np_morph_by_shifts(crop, fp, erode_)
    else:
        res = _np_erode(crop, fp) if erode_ else _np_dilate(crop, fp)
    if all(b.start == 0 and b.stop == n for b, n in zip(bb, mask.shape)):
        return res  # the crop is the whole mask
    # np.zeros, not zeros_like: calloc'd pages outside the box are never
    # written (zeros_like fills all 100 MB at 512 x 512 x 400 first).
    out = np.zeros(mask.shape, dtype=mask.dtype) if not erode_ else mask.copy()
    out[bb] = res
    return out


# Small footprints (a 1 mm ball is a 6-neighbour cross at ~1 mm voxels, a
# 1.5 mm ball a 3 x 3 x 3 box) are cheaper as whole-array shifted ORs / ANDs
# than as the surface scatter of _np_dilate; beyond ~12 passes the scatter wins.
_MAX_SHIFT_PASSES = 12


def _shift_passes(fp: np.ndarray) -> int:
    """Whole-array passes :func:`_np_morph_by_shifts` needs for footprint ``fp``."""
    if fp.all():  # a box separates into 1-D passes along each axis
        return sum(s - 1 for s in fp.shape)
    return int(fp.sum()) - 1


def _np_morph_by_shifts(x: np.ndarray, fp: np.ndarray, erode_: bool) -> np.ndarray:
    """Exact binary dilation (outside = background) or erosion (outside =
    foreground) as one shifted OR / AND per footprint offset.

    The footprint is symmetric, so ``x(p + b)`` over its offsets serves both.
    A box is done axis by axis (the box is the sum of three 1-D segments, and a
    neighbour outside the array counts the same at every step).
    """
    centre = np.array(fp.shape) // 2
    if fp.all():
        y = x
        for axis, h in enumerate(centre):
            if h:
                offsets = [np.eye(3, dtype=int)[axis] * d for d in range(-int(h), int(h) + 1) if d]
                y = _combine_shifted(y, offsets, erode_)
        return y.copy() if y is x else y
    offsets = [off for off in np.argwhere(fp) - centre if off.any()]
    return _combine_shifted(x, offsets, erode_)


def _combine_shifted(x: np.ndarray, offsets: list[np.ndarray], erode_: bool) -> np.ndarray:
    out = x.copy()
    for off in offsets:
        dst, src = [], []
        for d, n in zip(off, x.shape):
            d = int(d)
            dst.append(slice(0, n - d) if d > 0 else slice(-d, n))
            src.append(slice(d, n) if d > 0 else slice(0, n + d))
        if erode_:
            out[tuple(dst)] &= x[tuple(src)]
        else:
            out[tuple(dst)] |= x[tuple(src)]
    return out


def _bbox_any(mask: Any, pad: tuple[int, int, int]) -> tuple[slice, ...] | None:
    if _is_torch(mask):
        out = []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            prof = mask.any(dim=other[1]).any(dim=other[0]).cpu().numpy()
            hit = np.flatnonzero(prof)
            if hit.size == 0:
                return None
            out.append(slice(max(0, int(hit[0]) - pad[axis]),
                             min(mask.shape[axis], int(hit[-1]) + 1 + pad[axis])))
        return tuple(out)
    return bbox_of(mask, pad)


def dilate(mask: Any, spacing: tuple[float, float, float], radius_mm: float) -> Any:
    """Binary dilation by a ball of ``radius_mm`` (numpy array or torch tensor in, same out).

    Outside the array counts as background (``scipy.ndimage.binary_dilation``).
    """
    return _morph(mask, spacing, radius_mm, erode_=False)


def erode(mask: Any, spacing: tuple[float, float, float], radius_mm: float) -> Any:
    """Binary erosion by a ball of ``radius_mm`` (numpy array or torch tensor in, same out).

    Outside the array counts as foreground (``border_value=1``), so structures
    cut by the field of view are not eroded from the cut.
    """
    return _morph(mask, spacing, radius_mm, erode_=True)


def label_per_slice(data: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Label 2-D connected regions in every axial slice in one cc3d call.

    The slices are stacked into one tall 2-D image with a blank row between
    them, so regions cannot join across slices; a multi-label input keeps its
    labels apart (a 2-D region never spans two input labels).

    Parameters
    ----------
    data : numpy.ndarray
        ``[k, j, i]`` boolean mask or non-negative integer labels.
    connectivity : {4, 8}
        In-plane connectivity.

    Returns
    -------
    labels : numpy.ndarray
        uint32 ``[k, j, i]`` region ids, unique across the whole volume.
    n : int
        Number of regions.
    """
    k, j, i = data.shape
    if not data[:, -1, :].any() and data.flags.c_contiguous:
        # The last row of every slice is empty, so slices cannot touch in the
        # tall image: label the volume's memory as it is, without a copy.
        lab, n = cc3d.connected_components(data.reshape(k * j, i), connectivity=connectivity,
                                           return_N=True, out_dtype=np.uint32)
        return lab.reshape(k, j, i), int(n)
    stacked = np.zeros((k, j + 1, i), dtype=data.dtype)
    stacked[:, :j] = data
    lab, n = cc3d.connected_components(
        stacked.reshape(k * (j + 1), i), connectivity=connectivity, return_N=True,
        out_dtype=np.uint32,
    )
    return np.ascontiguousarray(lab.reshape(k, j + 1, i)[:, :j]), int(n)


def fill_holes_per_slice(
    mask: np.ndarray,
    hu: np.ndarray | None = None,
    min_mean_hu: float | None = None,
    border_max_px: int | None = None,
) -> np.ndarray:
    """Fill enclosed background in every axial slice (optionally only dense holes).

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean ``[k, j, i]``.
    hu, min_mean_hu : optional
        When given, a hole is filled only if its mean HU is at least
        ``min_mean_hu`` (marrow is filled, the spinal canal is not).
    border_max_px : int, optional
        Also fill background regions that touch the slice border if they have
        at most this many pixels (and pass the HU test): marrow of a bone cut by
        the field of view is open to the border, not enclosed.

    Returns
    -------
    numpy.ndarray
        The filled mask (a new array).
    """
    out = _fill_enclosed(mask, hu, min_mean_hu)
    if border_max_px is not None:
        # Only slices where the mask reaches the border can have marrow open to
        # it; the (costlier) border-aware labelling runs on those alone.
        touch = (mask[:, 0, :].any(axis=1) | mask[:, -1, :].any(axis=1)
                 | mask[:, :, 0].any(axis=1) | mask[:, :, -1].any(axis=1))
        ks = np.flatnonzero(touch)
        if ks.size:
            out[ks] |= _fill_with_border(np.ascontiguousarray(mask[ks]),
                                         None if hu is None else hu[ks], min_mean_hu,
                                         border_max_px)
    return out


def _fill_enclosed(mask: np.ndarray, hu: np.ndarray | None,
                   min_mean_hu: float | None) -> np.ndarray:
    out = mask.copy()
    k, j, i = mask.shape
    # Background with a one-voxel background frame round the slice: the frame
    # is the "outside" component; holes are everything else. One cc3d call per
    # slice: on 512 x 512 x 400 bone masks cc3d took 2-7x the CPU time on the
    # slices stacked into one tall 2-D image.
    bg = np.ones((j + 2, i + 2), dtype=bool)
    for s in range(k):
        if not mask[s].any():
            continue
        bg[1:-1, 1:-1] = ~mask[s]
        full = cc3d.connected_components(bg, connectivity=4, out_dtype=np.uint32)
        lab = full[1:-1, 1:-1]
        holes = (lab != 0) & (lab != full[0, 0])
        if not holes.any():
            continue
        if hu is None or min_mean_hu is None:
            out[s] |= holes
            continue
        hole_ids = lab[holes]
        n = int(hole_ids.max()) + 1
        total = np.bincount(hole_ids, weights=hu[s][holes].astype(np.float64), minlength=n)
        mean = total / np.maximum(np.bincount(hole_ids, minlength=n), 1)
        out[s][holes] = mean[hole_ids] >= min_mean_hu
    return out


def _fill_with_border(mask: np.ndarray, hu: np.ndarray | None, min_mean_hu: float | None,
                      border_max_px: int) -> np.ndarray:
    """Per-slice background regions: enclosed ones, and small ones on the border."""
    lab, n = label_per_slice(~mask, connectivity=4)
    area = np.bincount(lab.reshape(-1), minlength=n + 1)
    on_border = np.zeros(n + 1, dtype=bool)
    for edge in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        on_border[edge] = True
    cand = ~on_border | (area <= border_max_px)
    cand[0] = False
    sel = cand[lab]
    ids = lab[sel]
    if ids.size == 0:
        return mask.copy()
    if hu is not None and min_mean_hu is not None:
        total = np.bincount(ids, weights=hu[sel].astype(np.float64), minlength=n + 1)
        ok = total / np.maximum(area, 1) >= min_mean_hu
    else:
        ok = np.ones(n + 1, dtype=bool)
    out = mask.copy()
    out[sel] = ok[ids]
    return out


def _half_neighbourhood(connectivity: int) -> np.ndarray:
    """Offsets ``(dk, dj, di)`` that come after the centre in raster order, for a
    3-D connectivity (6 / 18 / 26) or an in-plane one (4 / 8, ``dk = 0``)."""
    rng = np.arange(-1, 2)
    offs = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), axis=-1).reshape(-1, 3)
    nonzero = np.abs(offs).sum(axis=1)
    if connectivity in (4, 8):
        keep = (offs[:, 0] == 0) & (nonzero <= (1 if connectivity == 4 else 2)) & (nonzero > 0)
    elif connectivity in (6, 18, 26):
        keep = (nonzero > 0) & (nonzero <= {6: 1, 18: 2, 26: 3}[connectivity])
    else:
        raise ValueError(f"connectivity must be 4, 8 (in-plane) or 6, 18, 26, got {connectivity}")
    offs = offs[keep]
    after = (offs[:, 0] > 0) | ((offs[:, 0] == 0) & ((offs[:, 1] > 0) | ((offs[:, 1] == 0) & (offs[:, 2] > 0))))
    return offs[after]


def label_sparse(mask: np.ndarray, idx: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """Connected components of a sparse boolean volume, computed on its voxels only.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean ``[k, j, i]``, C-contiguous.
    idx : numpy.ndarray
        ``np.flatnonzero(mask)`` (ascending flat indices of every voxel of ``mask``).
    connectivity : {4, 8, 6, 18, 26}
        4 / 8: regions within each axial slice; 6 / 18 / 26: in 3-D.

    Returns
    -------
    ids : numpy.ndarray
        int64 component id of every voxel of ``idx``, numbered 1..n in the order
        of each component's first voxel in raster order. In 3-D that is cc3d's
        numbering, so the labels equal ``cc3d.connected_components``'s (the
        tests check it); cc3d numbers 2-D 8-connected regions otherwise.
    n : int

    Why: a calcium mask holds 10^4-10^5 of 10^8 voxels; cc3d scans (and writes
    a label for) every voxel of the volume, here only the foreground is touched.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_vox = int(idx.size)
    if n_vox == 0:
        return np.zeros(0, dtype=np.int64), 0
    shape = mask.shape
    flat = mask.reshape(-1)
    coords = np.unravel_index(idx, shape)
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for off in _half_neighbourhood(connectivity):
        ok = np.ones(n_vox, dtype=bool)
        for axis, d in enumerate(off):
            if d:
                c = coords[axis] + int(d)
                ok &= (c >= 0) & (c < shape[axis])
        src = np.flatnonzero(ok)
        nb = idx[src] + int(off @ strides)
        hit = flat[nb]
        src, nb = src[hit], nb[hit]
        rows.append(src)
        cols.append(np.searchsorted(idx, nb))
    r = np.concatenate(rows)
    graph = coo_matrix((np.ones(r.size, dtype=np.int8), (r, np.concatenate(cols))), shape=(n_vox, n_vox))
    n, comp = connected_components(graph, directed=False)
    # Number components by their first voxel (idx is ascending): cc3d's order.
    _, first = np.unique(comp, return_index=True)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, n + 1)
    return rank[comp], int(n)


def sparse_zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zero-filled array whose memory is committed only where it is written.

    For volume-sized maps written at a few voxels (the candidate label map:
    ~10^4 of 10^8 voxels). ``np.zeros`` is lazy too, but numpy asks the kernel
    for 2 MiB huge pages on large arrays, and 10^4 scattered writes then
    committed ~250 MB of a 400 MB label map; anonymous memory with 4 KiB pages
    commits ~40 MB at most. Reads of unwritten parts commit nothing.
    """
    import mmap

    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    buf = mmap.mmap(-1, nbytes)  # anonymous: zero pages until written
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buf.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def distance_in_plane(mask: np.ndarray, reach_mm: float, sj: float, si: float) -> np.ndarray:
    """In-plane distance (mm, float32) of every voxel to the mask on its slice,
    exact up to ``reach_mm`` and ``inf`` beyond the mask's box grown by it."""
    from scipy import ndimage as ndi

    out = np.full(mask.shape, np.inf, dtype=np.float32)
    if not mask.any():
        return out
    radius_mm = reach_mm
    _, nj, ni = mask.shape
    rj, ri = int(np.ceil(radius_mm / sj)) + 1, int(np.ceil(radius_mm / si)) + 1
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
    box = (slice(ks[0], ks[-1] + 1), slice(max(rows[0] - rj, 0), min(rows[-1] + rj + 1, nj)),
           slice(max(cols[0] - ri, 0), min(cols[-1] + ri + 1, ni)))
    sub = mask[box]
    dist = out[box]
    for n in np.flatnonzero(sub.any(axis=(1, 2))):
        # 2-D distance per slice: a 3-D transform would also sweep along k
        dist[n] = ndi.distance_transform_edt(~sub[n], sampling=(sj, si))
    return out
