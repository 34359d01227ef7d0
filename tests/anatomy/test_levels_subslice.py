"""A lesion's z extent for its vertebral level, read to a fraction of a slice.

At 1.25 mm a plaque that enters a disc by 1.1 mm shows in one disc slice; a
quarter slice past that slice's centre is 0.94 mm, so the slice-count rule
named the body alone (issue #4: the "too few levels" zone errors). How much of
its peak the slice shows says how far the plaque enters it.
"""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.regions import structure
from calcdetect.classify import _subslice_extent, classify
from calcdetect.types import AcquisitionInfo, AnatomyMap, Lesion, Volume

SK = 1.25  # mm between slices (and slice thickness)
SHAPE = (60, 40, 40)  # k (cranial), j, i
# L3 body up to slice 29 (edge 29.5), the L2-L3 disc 30-37 (10 mm), L2 from 38.
LEVELS = tuple("L3" if k <= 29 else "L2-L3" if k <= 37 else "L2" for k in range(SHAPE[0]))
PEAK_HU = 500.0
SOFT_HU = 40.0
BODY = (slice(20, 36), slice(10, 30))
PLAQUE = (slice(6, 8), slice(24, 26))  # aortic wall voxels, in front of the body


def _affine() -> np.ndarray:
    a = np.zeros((4, 4))
    a[0, 2], a[1, 1], a[2, 0], a[3, 3] = 1.0, 1.0, SK, 1.0
    return a


def _anatomy() -> AnatomyMap:
    labels = np.full(SHAPE, structure("body").label, dtype=np.uint8)
    for k, lv in enumerate(LEVELS):
        name = "intervertebral_disc" if "-" in lv else f"vertebrae_{lv}"
        labels[k][BODY] = structure(name).label
        labels[k][4:10, 22:28] = structure("aorta").label
    return AnatomyMap(labels=labels, affine=_affine(), slice_levels=LEVELS)


def _scan_with_plaque(k0: int, k1: int, top_fill: float) -> tuple[Volume, Lesion]:
    """Plaque filling slices ``k0 .. k1`` and ``top_fill`` of slice ``k1 + 1`` (its HU over soft tissue)."""
    hu = np.full(SHAPE, SOFT_HU, dtype=np.float32)
    hu[(slice(k0, k1 + 1),) + PLAQUE] = PEAK_HU
    hu[(k1 + 1,) + PLAQUE] = SOFT_HU + top_fill * (PEAK_HU - SOFT_HU)
    vol = Volume(hu, (SK, 1.0, 1.0), _affine(), AcquisitionInfo("CT", kvp=120.0))
    n = k1 + 2 - k0
    mask = np.ones((n, 2, 2), dtype=bool)
    cen = np.array([(k0 + k1 + 1) / 2, 6.5, 24.5])
    les = Lesion(label=1, bbox=(k0, 6, 24, k1 + 2, 8, 26), mask=mask, voxel_count=int(mask.sum()),
                 volume_mm3=float(mask.sum()) * SK, agatston=0.0, mass_mg=0.0, peak_hu=PEAK_HU, mean_hu=PEAK_HU,
                 centroid_lps_mm=tuple(vol.index_to_lps(cen).tolist()), centroid_kji=tuple(cen.tolist()),
                 max_diameter_mm=n * SK, axes_mm=(n * SK, 2.0, 2.0), elongation=0.8, central_lucency=False)
    return vol, les


def test_partly_filled_end_slice_ends_the_lesion_inside_it() -> None:
    hu = np.full((20, 3, 3), SOFT_HU)
    hu[5:10, 1, 1] = PEAK_HU
    hu[10, 1, 1] = SOFT_HU + 0.4 * (PEAK_HU - SOFT_HU)  # 40 % of the slice
    hu[4, 1, 1] = SOFT_HU + 0.1 * (PEAK_HU - SOFT_HU)  # blur of slice 5 only
    idx = np.array([[k, 1, 1] for k in range(4, 11)])
    lo, hi = _subslice_extent(hu, idx, np.arange(4, 11))
    assert np.allclose((lo, hi), (4.5, 9.9))  # slice 5's lower face; 0.4 slice into slice 10


def test_plaque_entering_the_disc_by_one_slice_gets_the_disc() -> None:
    """Regression (issue #4): the plaque fills 90 % of the first disc slice, 1.1 mm
    into the disc: "L2-L3" as the truth names it, not "L3"."""
    vol, les = _scan_with_plaque(20, 29, top_fill=0.9)
    (f,) = classify([les], _anatomy(), vol)
    assert f.region == "aorta"
    assert f.level == "L2-L3"


def test_plaque_grazing_the_first_disc_slice_keeps_its_body_level() -> None:
    """The plaque shows 35 % of its peak in the first disc slice: 0.4 mm into the disc."""
    vol, les = _scan_with_plaque(20, 29, top_fill=0.35)
    (f,) = classify([les], _anatomy(), vol)
    assert f.level == "L3"
