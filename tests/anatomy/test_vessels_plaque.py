"""A heavily calcified aorta still scores as the lumen it is.

On an 80 kVp phantom with heavy plaque the calcium inside the aortic lumen's
disk made it look inhomogeneous and little like blood; the round, homogeneous
left psoas beside it then scored higher, the tracked path took the psoas above
L2, and every aortic and iliac plaque was reported as "other". Calcium is not
lumen: pixels above the blood pool's range count as blood at the pool's level.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcdetect.anatomy.vessels import VesselSettings, _circle_candidates, _lumen_stats

PX_MM = 1.0
RADIUS_PX = 12.0
AORTA = (40, 40)  # (j, i) centre
PSOAS = (40, 100)


def _slice(lumen_hu: float, plaque_hu: float | None, seed: int = 0) -> np.ndarray:
    """Fat with two round structures of one radius: the aorta (``lumen_hu``, with
    calcium blobs inside its lumen when ``plaque_hu`` is given) and a homogeneous
    muscle disk (the psoas, 50 HU)."""
    jj, ii = np.mgrid[0:80, 0:140].astype(float)
    hu = np.full(jj.shape, -90.0)
    hu[(jj - AORTA[0]) ** 2 + (ii - AORTA[1]) ** 2 <= RADIUS_PX**2] = lumen_hu
    hu[(jj - PSOAS[0]) ** 2 + (ii - PSOAS[1]) ** 2 <= RADIUS_PX**2] = 50.0
    if plaque_hu is not None:
        # heavy plaque on the inner wall: two 90-degree arcs, 3 px thick, where
        # they reach into the lumen's central square (its corners)
        r = np.hypot(jj - AORTA[0], ii - AORTA[1])
        ang = np.degrees(np.arctan2(jj - AORTA[0], ii - AORTA[1]))
        arc = (r >= RADIUS_PX - 3.0) & (r <= RADIUS_PX) & ((np.abs(ang + 90.0) <= 45.0) | (np.abs(ang - 45.0) <= 45.0))
        hu[arc] = plaque_hu
    return hu + np.random.default_rng(seed).normal(0.0, 10.0, hu.shape)


def _scores(hu: np.ndarray, pool: tuple[float, float] | None) -> dict[str, float]:
    """Best score of a circle centred within 2 px of each structure."""
    img = np.clip(ndi.gaussian_filter(hu.astype(np.float32), 0.7), -200.0, 300.0)
    bone = np.zeros(hu.shape, bool)
    allowed = np.ones(hu.shape, bool)
    radii = np.arange(8.0, 17.0)
    cands = _circle_candidates(img, allowed, radii, 12, hu, bone, VesselSettings().blood_hu, None, PX_MM,
                               (8.0, 15.0), None, pool)
    out = {}
    for name, (cj, ci) in (("aorta", AORTA), ("psoas", PSOAS)):
        near = [sc for sc, j, i, _ in cands if np.hypot(j - cj, i - ci) <= 2.0]
        out[name] = max(near, default=0.0)
    return out


UNENHANCED = (VesselSettings().unenhanced_blood_hu,
              VesselSettings().unenhanced_blood_hu + VesselSettings().pool_margin_hu)


def _aorta_stats(hu: np.ndarray, pool: tuple[float, float] | None) -> tuple[float, float]:
    """Blood fraction and HU SD of the aorta's lumen square, as the circle search measures them."""
    half = np.array([int(round(0.8 * RADIUS_PX * np.sqrt(np.pi) / 2.0 - 0.5))])
    blood, var = _lumen_stats(hu, np.zeros(hu.shape, bool), VesselSettings().blood_hu, pool,
                              np.array([AORTA[0]]), np.array([AORTA[1]]), half)
    return float(blood[0]), float(np.sqrt(var[0]))


def test_calcium_in_the_lumen_is_not_lumen_inhomogeneity():
    blood, sd = _aorta_stats(_slice(40.0, 700.0), UNENHANCED)
    clean_blood, clean_sd = _aorta_stats(_slice(40.0, None), UNENHANCED)
    assert blood == pytest.approx(clean_blood, abs=0.02)
    assert sd == pytest.approx(clean_sd, abs=5.0)  # the noise, not the plaque
    # counted as lumen, the same plaque is a 100+ HU spread and a tenth non-blood
    all_blood, all_sd = _aorta_stats(_slice(40.0, 700.0), None)
    assert all_sd > 100.0 and all_blood < 0.95


def test_a_calcified_aorta_keeps_its_score_against_a_homogeneous_psoas():
    calcified = _slice(40.0, 700.0)
    limited, counted = _scores(calcified, UNENHANCED), _scores(calcified, None)
    # with the plaque counted as lumen the psoas outscored the aorta by 40 %
    assert counted["aorta"] < 0.7 * counted["psoas"]
    assert limited["aorta"] > 1.4 * counted["aorta"]
    assert limited["psoas"] == pytest.approx(counted["psoas"])  # no calcium there, no change


def test_an_enhanced_lumen_with_plaque_scores_as_blood():
    # contrast: lumen at 300 HU (the measured pool), calcium at 900 HU
    pool = (300.0, 300.0 + VesselSettings().pool_margin_hu)
    blood, sd = _aorta_stats(_slice(300.0, 900.0), pool)
    clean_blood, clean_sd = _aorta_stats(_slice(300.0, None), pool)
    assert blood == pytest.approx(clean_blood, abs=0.02) and clean_blood > 0.95
    assert sd == pytest.approx(clean_sd, abs=5.0)


def test_a_lumen_brighter_than_the_assumed_pool_is_still_blood():
    # an enhanced scan whose pool was not measured: the whole lumen is above the
    # unenhanced limit; it is a bright lumen, not a disk full of calcium
    hu = _slice(250.0, None)
    assert _aorta_stats(hu, UNENHANCED) == _aorta_stats(hu, None)
    assert _aorta_stats(hu, UNENHANCED)[0] > 0.95
    assert _scores(hu, UNENHANCED)["aorta"] > 0.0


def _calcified_trunk(plaque: bool):
    """The synthetic trunk with a left psoas (a round 50 HU column beside the
    vertebral bodies) above the bifurcation and, with ``plaque``, heavy
    calcified plaque on two quarters of the aortic wall along its whole length."""
    from anatomy_synth import BODY_CENTRE, SPACING, VB_CENTRE_J_MM, VB_RADIUS_MM, make_ct

    syn = make_ct(lesions=False, noise=10.0)
    hu = syn.volume.array.copy()
    sk, sj, si = SPACING
    jj, ii = np.mgrid[0 : hu.shape[1], 0 : hu.shape[2]]
    dj, di = (jj - BODY_CENTRE[0]) * sj, (ii - BODY_CENTRE[1]) * si
    aj, ai = VB_CENTRE_J_MM - VB_RADIUS_MM - 15.0, 18.0  # the trunk's aortic centre (mm)
    r, ang = np.hypot(dj - aj, di - ai), np.degrees(np.arctan2(dj - aj, di - ai))
    wall = (r >= 7.0) & (r <= 10.0) & ((np.abs(ang + 90.0) <= 45.0) | (np.abs(ang - 45.0) <= 45.0))
    psoas = np.hypot(dj - (VB_CENTRE_J_MM - 5.0), di - (VB_RADIUS_MM + 14.0)) <= 12.0
    bif_k = syn.k_of(syn.bifurcation_z)
    rng = np.random.default_rng(1)
    for k in range(bif_k + 2, hu.shape[0]):
        hu[k][psoas] = 50.0 + rng.normal(0.0, 10.0, int(psoas.sum()))
        if plaque:
            hu[k][wall] = 700.0
    bone = hu >= 200.0
    bone[:, wall] = False  # the pipeline's bone mask keeps calcium apart
    aorta_ji = (aj / sj + BODY_CENTRE[0], ai / si + BODY_CENTRE[1])
    return hu, tuple(float(v) for v in SPACING), bone, bif_k, aorta_ji


@pytest.mark.parametrize("plaque", [False, True])
def test_a_plaque_filled_aorta_is_tracked_past_the_psoas(plaque):
    # before the fix the calcified aorta lost every slice to the psoas
    from calcdetect.anatomy.build import _body_front
    from calcdetect.anatomy.spine import body_masks, find_spine
    from calcdetect.anatomy.vessels import find_vessels

    hu, spacing, bone, bif_k, (aj, ai) = _calcified_trunk(plaque)
    spine = find_spine(hu, spacing, bone=bone, body=body_masks(hu))
    assert spine.found
    sacrum_top = max((g.k1 for g in spine.segments if g.sacrum), default=None)
    found = find_vessels(hu, spacing, spine.body_centre, _body_front(spine, hu.shape[0]), bone,
                         spine_mask=spine.column | spine.bodies, sacrum_top_k=sacrum_top, workers=1)
    ks = np.arange(bif_k + 2, hu.shape[0])
    centre = found.aorta_tube.centre[ks]
    off_mm = np.hypot((centre[:, 0] - aj) * spacing[1], (centre[:, 1] - ai) * spacing[2])
    assert np.mean(off_mm < 5.0) >= 0.9
    assert found.bifurcation_k is not None and abs(found.bifurcation_k - bif_k) * spacing[0] <= 5.0
