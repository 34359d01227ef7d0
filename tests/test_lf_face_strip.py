"""A flat arc on a lamina's upper or lower face is laminar cortex, not a calcified
ligamentum flavum; calcifications of the ligament (a vertical sheet) are not flat."""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.classify import ClassifySettings, classify
from calcdetect.types import AcquisitionInfo, AnatomyMap, Kind, Volume
from tests.classify_scene import affine, disk, label, measured_lesion

SHAPE = (40, 90, 90)  # k, j, i; j grows posteriorly
SP = (1.0, 1.0, 1.0)
JC, IC = 40.0, 45.0  # canal centre
CANAL_R, ZONE_R = 10.0, 14.0


@pytest.fixture(scope="module")
def spine() -> tuple[Volume, AnatomyMap]:
    """A lumbar canal (radius 10 mm) with the ligamentum-flavum zone on its
    posterior wall (10-14 mm from the centre), on every slice."""
    labels = np.full(SHAPE, label("body"), dtype=np.uint8)
    canal = disk(SHAPE, JC, IC, CANAL_R)
    zone = disk(SHAPE, JC, IC, ZONE_R) & ~canal
    zone[: int(JC)] = False
    labels[:, canal] = label("spinal_canal")
    labels[:, zone] = label("ligamentum_flavum_zone")
    am = AnatomyMap(labels=labels, affine=affine(SP), slice_levels=("L3",) * SHAPE[0])
    vol = Volume(np.zeros(SHAPE, np.float32), SP, affine(SP), AcquisitionInfo("CT", kvp=120.0))
    return vol, am


def _arc(k0: int, k1: int, half_angle_deg: float, centre_deg: float = 0.0) -> np.ndarray:
    """Voxels 10.5-12 mm from the canal centre within ``half_angle_deg`` of
    ``centre_deg`` (0 = posterior midline, + = patient left), slices k0..k1-1."""
    jj, ii = np.mgrid[: SHAPE[1], : SHAPE[2]]
    r = np.hypot(jj - JC, ii - IC)
    ang = np.degrees(np.arctan2(ii - IC, jj - JC))
    plane = (r >= 10.5) & (r <= 12.0) & (np.abs(ang - centre_deg) <= half_angle_deg)
    m = np.zeros(SHAPE, bool)
    m[k0:k1, plane] = True
    return m


def test_a_flat_arc_on_a_laminar_face_is_bone_not_ligament(spine):
    vol, am = spine
    strip = _arc(10, 12, 60.0)  # ~21 mm along the laminae, 2 mm tall
    (f,) = classify([measured_lesion(vol, strip, peak=600.0)], am, vol)
    assert (f.region, f.kind) == ("other", Kind.BONE)
    # at 3 mm slices one slice is as flat as the scan can show
    sp3 = (3.0, 1.0, 1.0)
    am3 = AnatomyMap(labels=am.labels, affine=affine(sp3), slice_levels=am.slice_levels)
    vol3 = Volume(vol.array, sp3, affine(sp3), vol.info)
    (g,) = classify([measured_lesion(vol3, _arc(10, 11, 60.0), peak=600.0)], am3, vol3)
    assert (g.region, g.kind) == ("other", Kind.BONE)


def test_ligament_calcifications_of_any_width_stay_ligament(spine):
    vol, am = spine
    v_shape = _arc(10, 24, 60.0)  # both sides fused across the midline, 14 mm tall
    nodule = _arc(10, 14, 15.0, centre_deg=30.0)  # punctate, paramedian left
    # a 5 mm nodule fused with the halo of the lamina's face beside it: as long
    # as the face strip, but as tall as the nodule
    fused = _arc(10, 15, 12.0, centre_deg=-30.0) | _arc(10, 12, 60.0)
    found = classify([measured_lesion(vol, m, peak=600.0) for m in (v_shape, nodule, fused)], am, vol)
    # The V is reported left and right (see ClassifySettings.split_bilateral_ligament).
    assert [(f.region, f.side) for f in found[:3]] == [("ligamentum_flavum", "right"),
                                                       ("ligamentum_flavum", "left"), ("ligamentum_flavum", "left")]
    assert found[2].kind is Kind.LIGAMENT
    assert all(f.region == "ligamentum_flavum" for f in found[3:])


def test_the_flat_strip_rule_can_be_switched_off(spine):
    vol, am = spine
    strip = _arc(10, 12, 60.0)
    off = ClassifySettings(ligament_flat_min_length_mm=float("inf"), split_bilateral_ligament=False)
    (f,) = classify([measured_lesion(vol, strip, peak=600.0)], am, vol, off)
    assert f.region == "ligamentum_flavum"

