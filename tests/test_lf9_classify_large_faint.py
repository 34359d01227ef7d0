"""A large ligamentum flavum calcification at high kVp is reported as ligament,
although its mean HU is only a little above the threshold (issue #4: at 140 kV
the calcium contrast falls, and 280-570 mm3 ligament calcifications on dev
seeds 1400-1547 were called "other (bone)" by the faint-cluster rule), while a
small faint cluster against the laminae (the cortex halo) still is not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from classify_scene import measured_lesion

from calcdetect.anatomy.regions import structure
from calcdetect.classify import ClassifySettings, classify
from calcdetect.types import AcquisitionInfo, AnatomyMap, Kind, Lesion, Volume

SPACING = (1.0, 1.0, 1.0)
SHAPE = (34, 60, 60)
THRESHOLD_140KV = 119.0  # the candidate stage's calcium threshold at 140 kVp
FAINT_MEAN_HU = THRESHOLD_140KV + 90.0  # s1427 #10: 449 mm3, mean 90 HU above the threshold


def _spine_at_140kv() -> tuple[Volume, AnatomyMap]:
    """A vertebral body (rows 10-29), the ligamentum flavum zone (rows 30-33) and
    the laminae behind it (rows 34-39), as CT values and as anatomy labels."""
    labels = np.full(SHAPE, structure("body").label, np.uint8)
    labels[:, 10:30, 10:50] = structure("vertebrae_T11").label
    labels[:, 30:34, 15:45] = structure("ligamentum_flavum_zone").label
    labels[:, 34:40, 10:50] = structure("vertebrae_T11").label
    arr = np.full(SHAPE, 40.0, np.float32)
    arr[:, 10:30, 10:50] = 700.0
    arr[:, 34:40, 10:50] = 700.0
    affine = np.diag([*SPACING, 1.0])
    vol = Volume(arr, SPACING, affine, AcquisitionInfo("CT", kvp=140))
    return vol, AnatomyMap(labels=labels, affine=affine, slice_levels=("T11",) * SHAPE[0])


def _faint_lesion(vol: Volume, mask: np.ndarray, label: int) -> Lesion:
    """Measured as the candidate stage would: its voxels set to FAINT_MEAN_HU in ``vol``."""
    vol.array[mask] = FAINT_MEAN_HU
    return replace(measured_lesion(vol, mask, peak=FAINT_MEAN_HU + 60.0), label=label, mean_hu=FAINT_MEAN_HU)


def _scene() -> tuple[Volume, AnatomyMap, list[Lesion]]:
    vol, anatomy = _spine_at_140kv()
    large = np.zeros(SHAPE, bool)
    large[5:25, 30:34, 18:24] = True  # 480 mm3 filling the zone between body and lamina
    halo = np.zeros(SHAPE, bool)
    halo[26:31, 32:34, 36:44] = True  # 80 mm3 on the lamina's canal side
    return vol, anatomy, [_faint_lesion(vol, large, 1), _faint_lesion(vol, halo, 2)]


def test_large_faint_ligament_calcification_at_140kv_is_ligament():
    vol, anatomy, lesions = _scene()
    large, halo = classify(lesions, anatomy, vol, threshold_hu=THRESHOLD_140KV)
    assert (large.region, large.kind) == ("ligamentum_flavum", Kind.LIGAMENT)
    # The small faint cluster against bone is still the laminar cortex's halo.
    assert (halo.region, halo.kind) == ("other", Kind.BONE)


def test_without_the_large_lesion_exemption_it_is_called_bone():
    """The regression this setting fixes: with the exemption off the same lesion is "other"."""
    vol, anatomy, lesions = _scene()
    off = replace(ClassifySettings(), ligament_faint_exempt_mm3=float("inf"))
    large, _ = classify(lesions, anatomy, vol, threshold_hu=THRESHOLD_140KV, settings=off)
    assert (large.region, large.kind) == ("other", Kind.BONE)


def test_a_large_cluster_barely_above_the_threshold_is_still_bone():
    """Size alone does not make a ligament: a large cluster only ~40 HU above the
    threshold against the laminae (a cortex halo of 420 mm3 on tuning seed 27) stays bone."""
    vol, anatomy = _spine_at_140kv()
    mask = np.zeros(SHAPE, bool)
    mask[5:25, 30:34, 18:24] = True
    les = _faint_lesion(vol, mask, 1)
    les = replace(les, mean_hu=THRESHOLD_140KV + 40.0)
    vol.array[mask] = THRESHOLD_140KV + 40.0
    (f,) = classify([les], anatomy, vol, threshold_hu=THRESHOLD_140KV)
    assert (f.region, f.kind) == ("other", Kind.BONE)
