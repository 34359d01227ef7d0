"""Ligamentum flavum calcification fused to the laminae: released from the bone, found,
and the laminae themselves never turned into "ligament calcifications"."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcdetect.anatomy.regions import structure
from calcdetect.bone import release_ligament_calcification, segment_bone
from calcdetect.candidates import find_candidates
from calcdetect.classify import classify
from calcdetect.device import Device
from calcdetect.types import AcquisitionInfo, AnatomyMap, Kind, Lesion, Volume

CPU = Device("cpu")
SPACING = (1.0, 0.8, 0.8)
SHAPE = (40, 90, 80)
CANAL_C = (24.0, 32.0)  # (j, i) mm; j grows posteriorly
CANAL_AB = (8.0, 11.0)  # semi-axes (j, i) mm
INTERLAMINAR = slice(12, 28)  # slices where the ligament lines the canal's back wall
LIGAMENT_MM = 3.5  # the lamina starts this far out on interlaminar slices
OLF_SLICES = slice(15, 24)


def _canal_offset_mm() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of a slice: approximate distance (mm) outside the canal ellipse,
    signed posterior offset from the canal centre and the angle from the posterior
    midline (degrees)."""
    j, i = np.indices(SHAPE[1:]).astype(float)
    dj, di = j * SPACING[1] - CANAL_C[0], i * SPACING[2] - CANAL_C[1]
    q = np.sqrt((dj / CANAL_AB[0]) ** 2 + (di / CANAL_AB[1]) ** 2)
    r = np.hypot(dj, di)
    offset = r - r / np.maximum(q, 1e-6)  # distance along the ray from the ellipse
    angle = np.degrees(np.arctan2(np.abs(di), dj))
    return offset, dj, angle


def make_spine_scene(*, calcified: bool, seed: int = 0) -> tuple[Volume, np.ndarray, np.ndarray]:
    """Posterior arch around a canal (CSF 8 HU in epidural fat), a 60 HU ligament on
    the interlaminar slices, optionally a 500 HU ossification on its canal side fused
    to the lamina; blurred (0.5 mm) and noisy (15 HU).

    Returns the volume, the calcification's voxels and the anatomy-style
    ligamentum-flavum zone (the canal's back wall band, 5 mm deep, every slice).
    """
    offset, dj, angle = _canal_offset_mm()
    arr = np.full(SHAPE, 45.0)  # muscle
    lamina_2d = {}
    for inset in (0.0, LIGAMENT_MM):
        lamina_2d[inset] = (offset > inset) & (offset <= inset + 8.0) & (dj > -0.3 * CANAL_AB[0])
    canal = offset <= 0
    left = np.indices(SHAPE[1:])[1] * SPACING[2] > CANAL_C[1]  # the ossification is one-sided
    olf = np.zeros(SHAPE, bool)
    for k in range(SHAPE[0]):
        interlaminar = INTERLAMINAR.start <= k < INTERLAMINAR.stop
        s = arr[k]
        s[canal] = -80.0
        s[offset <= -2.0] = 8.0
        if interlaminar:
            s[(offset > 0) & (offset <= LIGAMENT_MM) & (dj > -0.3 * CANAL_AB[0])] = 60.0
        s[lamina_2d[LIGAMENT_MM if interlaminar else 0.0]] = 700.0
        if calcified and OLF_SLICES.start <= k < OLF_SLICES.stop:
            olf[k] = (offset > 0.6) & (offset <= 3.6) & (angle >= 15) & (angle <= 50) & (dj > 0) & left
            s[olf[k]] = 500.0
    # A vertebral body in front, so that the arch is part of a large bone.
    body = np.zeros(SHAPE[1:], bool)
    body[2:int(14 / SPACING[1]), 15:65] = True
    arr[:, body] = 700.0
    arr = ndi.gaussian_filter(arr, (0.5 / SPACING[0], 0.5 / SPACING[1], 0.5 / SPACING[2]))
    arr += np.random.default_rng(seed).normal(0.0, 15.0, SHAPE)
    zone_2d = (offset > 0) & (offset <= 5.0) & (dj > 0)
    zone = np.broadcast_to(zone_2d, SHAPE).copy()
    affine = np.diag([*SPACING, 1.0])
    return Volume(arr.astype(np.float32), SPACING, affine, AcquisitionInfo("CT", kvp=120)), olf, zone


@pytest.fixture(scope="module")
def calcified_scene():
    return make_spine_scene(calcified=True)


def test_fused_calcification_is_bone_without_the_anatomy(calcified_scene):
    """The situation the release exists for: the bone mask swallows the ossification."""
    vol, olf, _ = calcified_scene
    bone = segment_bone(vol.array, vol.spacing, CPU)
    assert (bone & olf).sum() > 0.5 * olf.sum()
    cands = find_candidates(vol, CPU)
    found = sum(int((cands.labels[olf] == les.label).sum()) for les in cands.lesions)
    assert found < 0.5 * olf.sum()


def test_release_takes_the_calcification_and_no_lamina(calcified_scene):
    vol, olf, zone = calcified_scene
    bone = segment_bone(vol.array, vol.spacing, CPU)
    released = release_ligament_calcification(bone, vol.array, zone, vol.spacing, 130.0)
    # The canal-side part is released; the part beyond LIGAMENT_RELEASE_MM that
    # touches the lamina may stay bone.
    assert (released & olf).sum() >= 0.5 * (bone & olf).sum()
    # On the laminar slices the lamina forms the canal wall and stays bone.
    assert not released[: INTERLAMINAR.start].any() and not released[INTERLAMINAR.stop:].any()
    # Behind the ligament, at most the partial-volume rim of the lamina's canal
    # side (one pixel) is released, never the lamina itself.
    offset, _, _ = _canal_offset_mm()
    lamina_body = bone & ~ndi.binary_dilation(olf, iterations=1) & (offset > LIGAMENT_MM + SPACING[1])
    assert not (released & lamina_body).any()


def test_ligament_calcification_is_a_candidate_with_the_zone(calcified_scene):
    vol, olf, zone = calcified_scene
    cands = find_candidates(vol, CPU, ligament_mask=zone)
    hits = [les for les in cands.lesions if (cands.labels[olf] == les.label).any()]
    assert len(hits) == 1
    les = hits[0]
    assert (cands.labels[olf] == les.label).sum() >= 0.5 * olf.sum()
    # It is the ligament's calcium, not the lamina: a few millimetres across.
    assert les.volume_mm3 <= 2.0 * olf.sum() * float(np.prod(SPACING))


def test_intact_ligament_and_laminae_give_no_candidates():
    vol, _, zone = make_spine_scene(calcified=False, seed=1)
    cands = find_candidates(vol, CPU, ligament_mask=zone)
    in_zone = [les for les in cands.lesions if (cands.labels[zone] == les.label).any()]
    assert in_zone == []


def _map_lesion(vol: Volume, mask: np.ndarray, peak: float = 600.0) -> Lesion:
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    pts = idx * np.array(vol.spacing)
    axes = 4 * np.sqrt(np.clip(np.sort(np.linalg.eigvalsh(np.cov((pts - pts.mean(0)).T)))[::-1], 0, None))
    cen = idx.mean(0)
    return Lesion(
        label=1, bbox=(*lo.tolist(), *hi.tolist()), mask=mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]],
        voxel_count=len(idx), volume_mm3=len(idx) * float(np.prod(vol.spacing)), agatston=0.0, mass_mg=0.0,
        peak_hu=peak, mean_hu=peak, centroid_lps_mm=tuple(vol.index_to_lps(cen).tolist()),
        centroid_kji=tuple(cen.tolist()), max_diameter_mm=float(np.ptp(pts, axis=0).max()) + 1.0,
        axes_mm=tuple(axes.tolist()), elongation=float(1 - axes[1] / axes[0]), central_lucency=False,
    )


def test_bone_edge_grazing_the_zone_is_not_a_ligament_calcification():
    """A dense strip mostly inside a vertebra that touches the ligamentum flavum
    zone with a few voxels (the S1 body's cortex where the canal estimate strays
    forward) is not reported as ligament; calcium mostly in the zone is."""
    shape, sp = (20, 60, 60), (1.0, 1.0, 1.0)
    labels = np.full(shape, structure("body").label, np.uint8)
    labels[:, 10:30, 10:50] = structure("vertebrae_L5").label
    labels[:, 30:34, 15:45] = structure("ligamentum_flavum_zone").label
    labels[:, 34:40, 10:50] = structure("vertebrae_L5").label  # the lamina behind it
    affine = np.diag([*sp, 1.0])
    vol = Volume(np.zeros(shape, np.float32), sp, affine, AcquisitionInfo("CT", kvp=120))
    am = AnatomyMap(labels=labels, affine=affine, slice_levels=("L5",) * shape[0])
    cortex = np.zeros(shape, bool)
    cortex[5:12, 26:31, 18:40] = True  # 4 of 5 rows in the body, one in the zone
    ligament = np.zeros(shape, bool)
    ligament[5:12, 31:35, 20:26] = True  # 3 of 4 rows in the zone, one on the lamina
    f_cortex, f_ligament = classify([_map_lesion(vol, cortex), _map_lesion(vol, ligament)], am, vol)
    assert f_cortex.region == "other"
    assert (f_ligament.region, f_ligament.kind) == ("ligamentum_flavum", Kind.LIGAMENT)


def test_ligament_calcification_between_close_laminae_is_kept():
    # Regression (issue #4, a missed LF calcification at 0.625 mm slices): the
    # calcification fills a short interlaminar gap, laminae 2.5 mm above and
    # below, no bone on its own slices. A 3 mm ball around the laminae covered
    # all of it, so it was dropped as a lamina edge.
    sp = (0.625, 0.8, 0.8)
    shape = (20, 40, 40)
    arr = np.random.default_rng(0).normal(40.0, 5.0, shape).astype(np.float32)
    bone = np.zeros(shape, bool)
    bone[:6, 5:35, 22:30] = True  # the lamina above (k <= 5) and below (k >= 14)
    bone[14:, 5:35, 22:30] = True
    arr[bone] = 700.0
    calc = np.zeros(shape, bool)
    calc[6:14, 15:19, 23:27] = True
    arr[calc] = 500.0
    zone = np.zeros(shape, bool)
    zone[:, 5:35, 5:35] = True
    vol = Volume(arr, sp, np.diag([*sp, 1.0]), AcquisitionInfo("CT", kvp=120))
    cands = find_candidates(vol, CPU, bone_mask=bone, ligament_mask=zone)
    assert (cands.labels[calc] > 0).all()
    # A one-slice rim on the lamina's face (its partial-volume edge) is still dropped.
    arr2 = np.random.default_rng(1).normal(40.0, 5.0, shape).astype(np.float32)
    arr2[bone] = 700.0
    rim = np.zeros(shape, bool)
    rim[6:8, 15:19, 23:27] = True
    arr2[rim] = 500.0
    cands2 = find_candidates(Volume(arr2, sp, np.diag([*sp, 1.0]), AcquisitionInfo("CT", kvp=120)), CPU,
                             bone_mask=bone, ligament_mask=zone)
    assert not (cands2.labels[rim] > 0).any()
