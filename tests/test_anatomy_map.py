"""AnatomyMap queries read only the structures' boxes; they must equal whole-map answers."""

from __future__ import annotations

import numpy as np

from calcdetect.types import AnatomyMap


def _random_map(seed: int) -> AnatomyMap:
    rng = np.random.default_rng(seed)
    labels = np.zeros((12, 40, 50), dtype=np.uint8)
    for lab in (3, 7, 40):  # sparse ids, one absent id below the max
        k0, j0, i0 = rng.integers(0, 8), rng.integers(0, 30), rng.integers(0, 40)
        block = rng.random((4, 10, 10)) < 0.6
        labels[k0:k0 + 4, j0:j0 + 10, i0:i0 + 10][block] = lab
    return AnatomyMap(labels, np.eye(4), (None,) * 12)


def test_slice_label_counts_equal_a_per_slice_bincount() -> None:
    for seed in range(5):
        amap = _random_map(seed)
        counts = amap.slice_label_counts
        for k in range(amap.labels.shape[0]):
            brute = np.bincount(amap.labels[k].ravel(), minlength=counts.shape[1])
            np.testing.assert_array_equal(counts[k, 1:], brute[1:counts.shape[1]])


def test_mask_of_is_the_union_of_the_labels_and_none_when_absent() -> None:
    amap = _random_map(1)
    np.testing.assert_array_equal(amap.mask_of([3, 40]), np.isin(amap.labels, [3, 40]))
    np.testing.assert_array_equal(amap.mask_of([7, 5]), amap.labels == 7)
    assert amap.mask_of([5, 6]) is None
    assert set(amap.structure_boxes) == {3, 7, 40}


def test_regions_in_view_by_level_but_not_segmented_are_not_found():
    from calcdetect.anatomy.build import regions_in_fov, regions_not_found
    from calcdetect.anatomy.regions import Region, structure
    from calcdetect.types import AnatomyMap

    labels = np.zeros((6, 8, 8), dtype=np.uint8)
    labels[:, 2:4, 2:4] = structure("aorta").label
    amap = AnatomyMap(labels=labels, affine=np.eye(4), slice_levels=["T12", "L1", "L1", "L2", "L3", "L4"])
    assert regions_in_fov(amap)[Region.RENAL] is True  # the kidneys' levels are in view ...
    assert regions_not_found(amap) == {Region.RENAL}  # ... but no kidney was labelled
    labels[0, 6, 6] = structure("kidney_left").label
    amap = AnatomyMap(labels=labels, affine=np.eye(4), slice_levels=["T12", "L1", "L1", "L2", "L3", "L4"])
    assert regions_not_found(amap) == frozenset()
