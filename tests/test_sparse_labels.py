"""Sparse connected components equal connected-components-3d's, numbering included."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest

from calcdetect.candidates._voxel import label_per_slice, label_sparse


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("density", [0.02, 0.15, 0.4])
def test_3d_components_equal_cc3d(connectivity: int, density: float) -> None:
    rng = np.random.default_rng(int(density * 100) + connectivity)
    mask = rng.random((9, 23, 17)) < density
    idx = np.flatnonzero(mask)
    ids, n = label_sparse(mask, idx, connectivity)
    ref, n_ref = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    assert n == n_ref
    np.testing.assert_array_equal(ids, ref.reshape(-1)[idx])


@pytest.mark.parametrize("connectivity", [4, 8])
def test_in_plane_regions_equal_per_slice_labelling(connectivity: int) -> None:
    mask = np.random.default_rng(connectivity).random((7, 31, 29)) < 0.3
    mask[:, -1, :] = False  # label_per_slice's no-copy path
    idx = np.flatnonzero(mask)
    ids, n = label_sparse(mask, idx, connectivity)
    ref, n_ref = label_per_slice(mask, connectivity=connectivity)
    ref_ids = ref.reshape(-1)[idx].astype(np.int64)
    # The same regions (cc3d's 2-D numbering is not raster order; nothing
    # downstream depends on region ids, only on which voxels share one).
    assert n == n_ref
    pairs = np.unique(np.stack([ids, ref_ids], axis=1), axis=0)
    assert len(pairs) == n
    # Ascending raster order of each region's first voxel.
    _, first = np.unique(ids, return_index=True)
    assert np.all(np.diff(first) > 0)


def test_components_touching_the_volume_edges_do_not_wrap_round() -> None:
    mask = np.zeros((3, 4, 5), bool)
    mask[0, 0, 4] = mask[0, 1, 0] = True  # adjacent in memory, not in space
    mask[1, 3, 4] = mask[2, 0, 0] = True
    ids, n = label_sparse(mask, np.flatnonzero(mask), 26)
    assert n == 4 and sorted(ids.tolist()) == [1, 2, 3, 4]


def test_empty_mask() -> None:
    ids, n = label_sparse(np.zeros((2, 3, 4), bool), np.zeros(0, np.int64), 26)
    assert n == 0 and ids.size == 0


def test_enclosed_background_equals_scipy_hole_filling() -> None:
    """The ring test's hole finding equals binary_fill_holes / per-slice filling."""
    from scipy import ndimage as ndi

    from calcdetect.candidates._voxel import fill_holes_per_slice
    from calcdetect.candidates.measure import _enclosed_in_3d, _enclosed_in_slices

    rng = np.random.default_rng(11)
    for density in (0.3, 0.55, 0.75):
        padded = np.pad(rng.random((6, 13, 12)) < density, 1)
        np.testing.assert_array_equal(_enclosed_in_3d(padded), ndi.binary_fill_holes(padded) & ~padded)
        np.testing.assert_array_equal(_enclosed_in_slices(padded), fill_holes_per_slice(padded) & ~padded)
