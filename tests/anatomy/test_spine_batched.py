"""The spine's whole-stack morphology gives exactly the slice-by-slice answer.

find_spine closes and fills the column, and finds the canal's holes, in one
call for the stack (speed, issue #4); the vertebral bodies, canal and levels
must not move by a pixel for it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from calcdetect.anatomy.spine import _centroid, _closed_filled_stack, bbox2d, disk
from calcdetect.types import AnatomyMap


def _per_slice(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """The former slice-by-slice rule: close in the slice's box, OR, fill holes."""
    out = np.zeros_like(mask)
    for k in range(mask.shape[0]):
        if mask[k].any():
            b = bbox2d(mask[k], int(np.ceil(radius_px)) + 2)
            c = mask[k][b]
            out[k][b] = ndi.binary_fill_holes(ndi.binary_closing(c, structure=disk(radius_px)) | c)
    return out


def _rings(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Broken rings (open cortex, closed canals) and specks, some cut by the slice edge."""
    rng = np.random.default_rng(seed)
    nk, nj, ni = shape
    jj, ii = np.mgrid[0:nj, 0:ni]
    m = np.zeros(shape, dtype=bool)
    for k in range(nk):
        if k % 7 == 3:
            continue  # empty slices in between
        for _ in range(3):
            cj, ci = rng.uniform(-4, nj + 4), rng.uniform(-4, ni + 4)
            r = rng.uniform(3, 12)
            d = np.hypot(jj - cj, ii - ci)
            ring = (d > r - 1.5) & (d < r + 0.5)
            ring &= rng.random(shape[1:]) > 0.15  # gaps a closing must bridge
            m[k] |= ring
        m[k] |= rng.random(shape[1:]) > 0.995
    return m


def test_stack_closing_and_filling_equal_slice_by_slice() -> None:
    for seed, radius in ((0, 1.0), (1, 1.92), (2, 3.4)):
        m = _rings((15, 48, 56), seed)
        np.testing.assert_array_equal(_closed_filled_stack(m, radius), _per_slice(m, radius))


def test_stack_closing_of_an_empty_stack_is_empty() -> None:
    assert not _closed_filled_stack(np.zeros((4, 10, 10), dtype=bool), 2.0).any()


def test_centroid_of_a_cut_out_equals_centre_of_mass_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    full = np.zeros((97, 113), dtype=bool)
    full[31:62, 40:77] = rng.random((31, 37)) > 0.6
    bb = ndi.find_objects(full.astype(np.uint8))[0]
    got = _centroid(full[bb], bb[0].start, bb[1].start)
    want = ndi.center_of_mass(full)
    assert got[0] == want[0] and got[1] == want[1]


def test_slice_label_counts_count_every_label_on_every_slice() -> None:
    rng = np.random.default_rng(4)
    labels = np.zeros((21, 30, 40), dtype=np.uint8)
    labels[2:19, 3:28, 2:38] = rng.integers(0, 6, size=(17, 25, 36), dtype=np.uint8)
    am = AnatomyMap(labels=labels, affine=np.eye(4), slice_levels=(None,) * 21)
    counts = am.slice_label_counts
    for lab in range(1, 6):
        np.testing.assert_array_equal(counts[:, lab], (labels == lab).sum(axis=(1, 2)))
    assert not counts[:, 0].any()


def test_in_plane_dilation_equals_the_thresholded_distance() -> None:
    """The ligamentum flavum ring and the body clearance dilate by a disk; the
    voxels must be those within the radius by the exact in-plane distance."""
    from calcdetect.anatomy.spine import dilate_in_plane, distance_in_plane

    rng = np.random.default_rng(5)
    for sj, si, radius in ((1.5600000000000591, 1.5600000000000023, 5.0), (2.0, 2.0, 4.0),
                           (0.7, 0.9, 3.0), (1.0, 1.0, 3.0), (2.5, 2.0, 10.0)):
        m = rng.random((6, 60, 70)) > 0.97
        m[:, 0, :5] = True  # against the slice edge
        m[2] = False  # an empty slice between
        want = distance_in_plane(m, radius, sj, si) <= radius + 1e-6
        np.testing.assert_array_equal(dilate_in_plane(m, radius, sj, si), want)
    assert not dilate_in_plane(np.zeros((3, 8, 8), dtype=bool), 3.0, 1.0, 1.0).any()


def test_in_plane_hole_filling_equals_scipy_slice_by_slice() -> None:
    """A hole is background cut off from its own slice's border, never joined
    through a neighbouring slice."""
    from calcdetect.anatomy.spine import _fill_holes_in_plane

    rng = np.random.default_rng(9)
    for shape in ((1, 5, 5), (3, 1, 7), (4, 9, 1), (10, 30, 30)):
        m = rng.random(shape) > 0.5
        want = np.stack([ndi.binary_fill_holes(s) for s in m])
        np.testing.assert_array_equal(_fill_holes_in_plane(m), want)
    # a ring on one slice, open background above and below: still a hole
    m = np.zeros((3, 9, 9), dtype=bool)
    m[1, 2:7, 2:7] = True
    m[1, 3:6, 3:6] = False
    assert _fill_holes_in_plane(m)[1, 4, 4] and not _fill_holes_in_plane(m)[0].any()


def test_cross_closing_equals_scipy_closing() -> None:
    """The 1-pixel closing that joins the column's bone before labelling, done by
    shifts, must close exactly as ndi.binary_closing does (edges included)."""
    from calcdetect.anatomy.spine import _closed_in_plane

    rng = np.random.default_rng(1)
    for shape in ((1, 1, 1), (2, 1, 5), (3, 4, 1), (5, 30, 40)):
        for fraction in (0.3, 0.6, 0.9):
            m = rng.random(shape) > fraction
            for radius in (0.5, 1.0, 1.92):
                want = ndi.binary_closing(m, structure=disk(radius)[None]) | m
                np.testing.assert_array_equal(_closed_in_plane(m, radius), want)
