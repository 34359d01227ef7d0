"""Spine rules: levels from the sacrum / lowest ribs, transitional anatomy, no anchors."""

from __future__ import annotations

import numpy as np
from anatomy_synth import SPACING, make_ct

from calcdetect.anatomy.spine import NO_ANCHOR_NOTE, TRANSITIONAL_NOTE, SpineSettings, find_spine
from calcdetect.types import Volume


def _crop(vol: Volume, k0: int, k1: int) -> Volume:
    aff = vol.affine.copy()
    aff[:3, 3] = vol.index_to_lps(np.array([k0, 0, 0]))
    return Volume(vol.array[k0:k1].copy(), vol.spacing, aff, vol.info)


def _level_at(levels, z_mm: float) -> str | None:
    return levels[int(round(z_mm / SPACING[0]))]


def test_levels_counted_from_sacrum_and_ribs_agree(trunk):
    spine = find_spine(trunk.volume.array, trunk.volume.spacing)
    assert spine.found
    assert not any("transitional" in n for n in spine.notes)
    names = [g.level for g in spine.segments]
    assert names == ["S1", "L5", "L4", "L3", "L2", "L1", "T12", "T11"]
    assert spine.segments[0].sacrum
    assert [g.level for g in spine.segments if g.ribs] == ["T12", "T11"]
    for level, z0, z1 in trunk.segments:
        assert _level_at(spine.slice_levels, 0.5 * (z0 + z1)) == level
    # the slice half-way between L3 and L4 bodies is their disc
    l3 = next(s for s in trunk.segments if s[0] == "L3")
    l4 = next(s for s in trunk.segments if s[0] == "L4")
    assert _level_at(spine.slice_levels, 0.5 * (l4[2] + l3[1])) == "L3-L4"


def test_canal_and_lf_zone(trunk):
    spine = find_spine(trunk.volume.array, trunk.volume.spacing)
    truth = trunk.canal
    dice = 2 * (spine.canal & truth).sum() / (spine.canal.sum() + truth.sum())
    assert dice > 0.75
    # the ligamentum flavum zone lies behind the canal centre, within ~6 mm of it
    ks = np.flatnonzero(spine.lf_zone.any(axis=(1, 2)))
    assert ks.size > 0.5 * truth.any(axis=(1, 2)).sum()
    for k in ks[:: max(len(ks) // 10, 1)]:
        j, i = np.nonzero(spine.lf_zone[k])
        assert (j > spine.canal_centre[k, 0]).all()
        assert not (spine.lf_zone[k] & spine.canal[k]).any()
        # both sides of the midline are covered
        assert (i < spine.canal_centre[k, 1]).any() and (i > spine.canal_centre[k, 1]).any()


def test_lf_zone_is_the_posterior_arc_above_the_sacrum(trunk):
    """The zone lines the laminae: not the facet pillars or the back of the
    vertebral body round the side of the canal, and not the sacral canal."""
    s = SpineSettings()
    spine = find_spine(trunk.volume.array, trunk.volume.spacing)
    sac = next(g for g in spine.segments if g.sacrum)
    below = sac.k1 - int(round(s.lf_below_s1_top_mm / SPACING[0]))
    assert below > 0 and not spine.lf_zone[:below].any()
    assert spine.lf_zone[below:].any()
    assert not (spine.lf_zone & spine.bodies).any()
    for k in np.flatnonzero(spine.lf_zone.any(axis=(1, 2))):
        j, i = np.nonzero(spine.lf_zone[k])
        jc, ic = spine.canal_centre[k]
        angle = np.degrees(np.arctan2(np.abs(i - ic) * SPACING[2], (j - jc) * SPACING[1]))
        assert angle.max() <= s.lf_max_angle_deg + 1e-6


def test_transitional_anatomy_is_noted_and_sacrum_wins():
    synth = make_ct(n_lumbar=6, kidneys=False, aorta=False)
    spine = find_spine(synth.volume.array, synth.volume.spacing)
    assert any(n.startswith(TRANSITIONAL_NOTE) for n in spine.notes)
    # counted from the sacrum: the lowest free vertebra is L5 even with 6 lumbar-type
    assert [g.level for g in spine.segments][:2] == ["S1", "L5"]


def test_t12_anchor_alone_when_sacrum_out_of_view(trunk):
    l3 = next(s for s in trunk.segments if s[0] == "L3")
    k0 = int(l3[1] / SPACING[0])  # crop from the L3 body upward
    vol = _crop(trunk.volume, k0, trunk.volume.shape[0])
    spine = find_spine(vol.array, vol.spacing)
    assert any("lowest rib-bearing" in n for n in spine.notes)
    l1 = next(s for s in trunk.segments if s[0] == "L1")
    assert spine.slice_levels[int(round(0.5 * (l1[1] + l1[2]) / SPACING[0])) - k0] == "L1"


def test_no_anchor_gives_no_levels_and_a_note(trunk):
    l4 = next(s for s in trunk.segments if s[0] == "L4")
    l2 = next(s for s in trunk.segments if s[0] == "L2")
    vol = _crop(trunk.volume, int(l4[1] / SPACING[0]), int(l2[2] / SPACING[0]))
    spine = find_spine(vol.array, vol.spacing)
    assert spine.found
    assert all(lv is None for lv in spine.slice_levels)
    assert NO_ANCHOR_NOTE in spine.notes


def test_no_bone_means_no_spine():
    hu = np.full((6, 40, 40), 40.0, dtype=np.float32)
    spine = find_spine(hu, (2.0, 1.0, 1.0))
    assert not spine.found
    assert all(lv is None for lv in spine.slice_levels)
