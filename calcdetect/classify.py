"""Classify lesions: lesion x anatomy -> Finding (region, side, level, kind, ...).

Placement, in order:

1. **overlap**: the lesion's voxels are looked up in the anatomy labels (through
   the LPS affines when the anatomy grid differs from the CT grid); the
   region-bearing structure holding most of its voxels wins;
2. **distance**: otherwise the nearest region-bearing structure within
   ``max_distance_mm`` (default 4 mm: calcified plaque can sit just outside an
   estimated wall), unless a vertebra (or other bone, or a disc) is nearer; a round
   nodule (a calculus) within ``renal_pelvis_mm`` (10 mm) of a collecting
   system is a stone in the renal pelvis;
3. otherwise, a clearly calcified flake or arc in soft tissue within
   ``wall_reach_mm`` (10 mm) of an artery zone is plaque of that artery beyond
   the zone's estimate (low confidence);
4. otherwise **other**, with a look-alike kind where a rule recognises one.

In a vessel zone, a lesion with at least ``bone_contact`` (30 %) of its outer
shell at calcium density is a fragment of bone cortex (the zone overlaps a
vertebral body or the pelvis), not plaque (not on contrast scans); so is a
lesion smaller than ``column_fragment_max_mm3`` within ``column_contact_mm`` of
a vertebra or disc (a sliver of the column's cortex where the zone overlaps it).
A round nodule mostly outside an artery zone (placed there by distance, or
beyond the wall) is bowel content or a node, not that artery's plaque.
In the ligamentum flavum zone, a cluster against bone by the same shell test
whose mean HU is less than ``ligament_min_excess_hu`` above the threshold is
the laminar cortex's halo lifted by noise, not a calcified ligament; so is an
arc long in-plane but at most a few mm (or one slice) tall (the halo on a
lamina's upper or lower face; the ligament is a vertical sheet), and
anything placed there by distance alone (outside the zone; at L5-S1 and S1,
where the canal estimate falls forward, a lesion behind the canal's posterior
wall in soft tissue all round is still ligament), or lying level with
or in front of the canal's centre rather than on its posterior wall (the back of
S1 and the roof of the sacral canal, which the zone reaches). Flecks under
``ligament_min_volume_mm3`` are not reported as ligament unless the candidate
stage released their core from the laminae and they lie in soft tissue on the
canal's posterior wall. A round
nodule (at thick slices: round once its stretch along z is discounted, and
thicker across than a wall flake) in an iliac zone near the ureter's course (where it crosses the iliac
artery at the pelvic brim) is a ureteral stone, not plaque. A lesion placed in
a ureter zone is a ureteral stone only when it is calculus-shaped (round or oval
across, not a sliver or a flake) and does not lie against bone by the same shell
test; otherwise, within ``max_distance_mm`` of an artery, it is that artery's
plaque (the zone runs beside the iliac arteries); where the two zones meet, a
calculus must also be a nodule (at thin slices: round once its stretch along z
is discounted), as in the iliac zone, and a flake mostly outside the ureter
zone is plaque beyond the artery's estimate. A lesion near a ureter zone
but beyond its last slices is not placed in it (the zone stops above the lower
pelvis, where the phleboliths lie), unless it is a nodule beside an iliac
artery, which the iliac rule calls a ureteral stone. A small flake (thinner
than half its length, at slices that resolve it) is not a phlebolith.

Look-alikes are tested before vascular / renal placement, so that they are never
called atherosclerotic or renal: a lesion mostly in bone is ``bone``; a small
(<= 8 mm) round calcification in the pelvis (below the aortic bifurcation)
outside the arteries is a ``phlebolith`` -- one with a central lucency even when
it touches an artery's margin with less than half its voxels; an anterior
lateral calcification above the renal level is ``costal cartilage``.

Aortic segments: ``thoracic`` above the T12 body's centre (the aortic hiatus);
``suprarenal`` / ``infrarenal`` split at the renal arteries, taken as the level of
the renal hila (centroid of the collecting systems) when the kidneys are
labelled, else the L1-L2 disc; ``None`` when neither is known.

Level: the vertebral bodies (or disc spaces) that the z extent of the lesion's
core -- its voxels above a quarter of its peak over soft tissue, so that blur
adds no neighbouring level -- overlaps by at least 1 mm, with each body end
near the lesion measured on the CT itself (``anatomy.spine.refine_endplates``);
summarised as a span ("L2-L4"); none below the first sacral segment (the true pelvis). The
nephrocalcinosis foci of one papilla share the span of their group.

Confidence is the fraction of the lesion inside the structure (or a distance
decay outside it), scaled down for lesions of a few voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse.csgraph import connected_components

from calcdetect.anatomy.regions import (
    STRUCTURES,
    Region,
    Structure,
    format_level_span,
    structure,
    structure_by_label,
)
from calcdetect.anatomy.spine import level_of_extent, level_zones, refine_endplates
from calcdetect.candidates.core import RELEASED_LIGAMENT_MIN_MM3, CandidateSettings
from calcdetect.candidates.measure import farthest_pair, measure_components
from calcdetect.candidates.threshold import calcium_threshold_hu
from calcdetect.device import Device
from calcdetect.types import AnatomyMap, Finding, Kind, Lesion, Morphology, Volume

__all__ = ["ClassifySettings", "classify", "classify_lesion", "morphology_of"]


@dataclass(frozen=True)
class ClassifySettings:
    max_distance_mm: float = 4.0
    punctate_mm: float = 3.0
    elongated: float = 0.6
    curvature: float = 0.15  # max off-axis deviation / length above which linear bends
    thin_ratio: float = 0.015  # volume / max_diameter^3 below which a lesion is line-like
    metal_hu: float = 3000.0
    phlebolith_max_mm: float = 8.0
    # The ligamenta flava of one interlaminar space span ~15-20 mm in height and,
    # calcified on both sides, meet as a V up to ~35 mm across: on the tuning
    # phantoms such bilateral calcifications measured 30.4-34.6 mm and were
    # lost as bone at a 30 mm limit, while the posterior-element bone it is
    # meant for measured 66 mm. Longer than this is bone.
    ligament_max_mm: float = 40.0
    # Calcified ligamenta flava of both sides of one interspace meet in the
    # midline as a V, and the threshold fuses them into one component whose
    # centroid lies near the midline: named by it, one side or both were wrong
    # (tuning seeds 60-71: 3 of 6 side errors). A ligament calcification that
    # reaches this far from the canal's centre on each side, with a part on
    # each side no smaller than ligament_min_volume_mm3 (a calcification in its
    # own right), is reported as two, left and right (the report then says
    # "bilateral"), as a radiologist describes it and as the phantom truth
    # records it. A one-sided paramedian calcification crosses the centre by
    # ~1-2 mm (the phantom's arcs by at most 0.2 rad of a ~7 mm canal radius);
    # the arcs of a V reach >= 4 mm out on each side, and the shorter arc may
    # hold under a fifth of the voxels (tuning seed 62: 19 %, 90 mm3).
    bilateral_ligament_min_reach_mm: float = 4.0
    # The split parts carry new lesion labels; the pipeline paints each
    # finding's own lesion mask (pipeline._finding_labels), so both get contours.
    split_bilateral_ligament: bool = True
    # A fleck of a few voxels against the laminae cannot be told from the
    # laminar cortex shaved off by the bone opening: on the tuning phantoms such
    # flecks (2-30 mm3, often in left/right mirror pairs) were most of the
    # false "ligament calcifications", while every ligament calcification found
    # measured more. Flecks smaller than this are "other" (unknown).
    ligament_min_volume_mm3: float = 30.0
    # ... except a fleck with a released core (Lesion.released_ligament_mm3 at
    # least ligament_released_core_mm3, the candidate stage's
    # RELEASED_LIGAMENT_MIN_MM3): calcium the bone release took back from the
    # laminae on an interlaminar slice, where the shaved cortex is not released.
    # Small ligament calcifications (3.5-4.5 mm across) measure 12-29 mm3 there
    # (dev seeds 1600-1747: 5 of the 11 ligament calcifications called "other").
    # The released fleck must also lie in soft tissue on the canal's posterior
    # wall, as the ligament does: a ring median below
    # ligament_released_max_background_hu and a canal depth (_canal_depth) of
    # at most ligament_released_max_canal_depth. The released flecks that are
    # no ligament calcification are the laminar cortex, bone round them or
    # deeper in the arch: on dev seeds 1400-1747 the 7 such ligament
    # calcifications had a median of 44-90 HU and a depth of 0.77-1.14; of the
    # 8 false ones, 5 had 114-336 HU, one 70 HU at a depth of 1.34, and two
    # (78-95 HU, seed 1435) were fainter than ligament_min_excess_hu against
    # the bone: the faint-cluster rule below takes them.
    ligament_released_min_volume_mm3: float = 12.0
    ligament_released_core_mm3: float = RELEASED_LIGAMENT_MIN_MM3
    ligament_released_max_background_hu: float = 100.0
    ligament_released_max_canal_depth: float = 1.2
    # Share of a "ligament calcification" lying mostly in vertebral bone that must
    # lie in the ligamentum flavum zone: a cortical edge of the S1 body or a facet
    # grazing the zone (a few per cent of its voxels, peak > 1000 HU) was
    # reported as ligament.
    ligament_min_zone_fraction: float = 0.3
    # The partial-volume halo of the laminar cortex, lifted over the threshold
    # by noise, makes faint clusters against the bone at 3 mm slices: on the
    # tuning phantoms every false "ligament calcification" of this kind had a
    # mean HU 23-98 above the calcium threshold and lay against bone by the
    # shell test (bone_contact / bone_background_hu); every ligament
    # calcification found had a mean >= 128 HU above it. A cluster against bone
    # fainter than this margin is not reported as ligament.
    ligament_min_excess_hu: float = 110.0
    # ... except for a large calcification. At 140 kVp the calcium contrast falls
    # more than the kVp-adapted threshold does, and ligament calcifications of
    # 280-570 mm3 had a mean less than 110 HU above the threshold (dev seeds
    # 1400-1547: 5 of the 9 ligament region errors; seed 1427: 449 mm3 at 90,
    # seed 1515: 280 mm3 at 106), while a halo cluster that
    # large is a noisy rim along a lamina, barely above the threshold (dev seeds
    # 20-89, 300-323, 1100-1335: the largest 420 mm3 at 41 HU above; none of
    # 250 mm3 or more at 60 HU or more, the nearest 219 mm3 at 73 HU).
    # A cluster of at least ligament_faint_exempt_mm3 needs only
    # ligament_faint_exempt_min_excess_hu.
    ligament_faint_exempt_mm3: float = 250.0
    ligament_faint_exempt_min_excess_hu: float = 60.0
    # ... and so does a calcification mostly made of released ligament calcium
    # (Lesion.released_ligament_mm3 at least this share of its volume): the
    # bone release takes back only what lies in the zone on an interlaminar
    # slice, not the halo along a lamina (dev seed 1703: 80 mm3 at 140 kV, 71 %
    # released, 102 HU above the threshold, called "other (bone)"). Not a fleck
    # under ligament_min_volume_mm3 (its own rule): two faint released flecks of
    # 16-21 mm3 on dev seed 1435 were laminar cortex.
    ligament_faint_exempt_released_fraction: float = 0.5
    # The ligament lines the canal's posterior wall. Where the zone reaches the
    # back of the S1 body or the roof of the sacral canal (it runs ~12 mm below
    # the S1 top), dense pieces lie level with or in front of the canal's centre:
    # on the tuning phantoms (seeds 20-89) the 23 such false "ligaments" had a
    # depth (0 at the canal centre, 1 at its posterior wall; _canal_depth) of
    # -0.6 to 0.15, the 79 ligament calcifications 0.67 to 1.7 (L5-S1 ones
    # level with the S1 body included). The old rule, no ligament on slices
    # counted as S1, lost the latter.
    ligament_min_canal_depth: float = 0.4
    # At L5-S1 the canal estimate's posterior wall can lie ~5 mm in front of the
    # true one (dev seeds 1614, 1628, 1700: 4.3-5.4 mm calcifications 1-6 px
    # behind the zone, canal depth 1.5-2.1), and the zone with it. A lesion the
    # distance rule places next to the zone is still ligament when it lies
    # behind the canal's posterior wall (depth >= 1) in soft tissue all round:
    # less than ligament_beside_zone_max_contact of its shell and a ring median
    # below ligament_beside_zone_max_background_hu, fat or muscle (those three:
    # contact 0, median -66 to -25 HU). What else lies there is the laminae and
    # spinous processes, cut by the scan's end or shaved by the bone opening:
    # bone round it (the shell test of the faint-cluster rule).
    # Only at the lumbosacral junction, where the canal estimate falls forward:
    # elsewhere the zone spans the canal's posterior wall, and what lies a few
    # mm behind it is the laminae (laminae cut by the end of the scan were
    # reported as ligament).
    ligament_beside_zone: bool = True
    ligament_beside_zone_levels: tuple[str, ...] = ("L5-S1", "S1")
    ligament_beside_zone_max_contact: float = 0.1
    ligament_beside_zone_max_background_hu: float = 60.0
    # The ligamentum flavum is a vertical sheet between two laminae (~12-20 mm
    # tall); a calcification as long as the laminae's arc (a bilateral V is
    # 20-35 mm across) is taller than a few mm. The partial-volume halo on the
    # upper or lower face of a lamina is an arc 17-29 mm long and 1.2-2.5 mm
    # (1-4 slices) tall: 3 of the 8 false "ligament calcifications" on dev
    # seeds 1300-1335. A lesion at least ligament_flat_min_length_mm long
    # in-plane and at most ligament_flat_max_height_mm tall (or one slice, at
    # thicker slices) is laminar cortex: on the dev phantoms (seeds 20-71,
    # 300-323, 1100-1335; 218 ligament calcifications) this took 6 arcs, none
    # a ligament calcification. (A ratio of height to length also caught
    # ligament nodules of 4.4-7.5 mm fused with such a halo, 18-24 mm long:
    # dev seeds 21, 22, 42, 46.)
    ligament_flat_min_length_mm: float = 15.0
    ligament_flat_max_height_mm: float = 3.0
    # Renal pattern (see _renal_pattern): foci smaller than this, when at least
    # nephrocalcinosis_min_foci of them are in one kidney, are nephrocalcinosis.
    nephrocalcinosis_max_mm: float = 6.0
    nephrocalcinosis_min_foci: int = 3
    papilla_cluster_mm: float = 6.0  # foci of one papilla: centroids this close are one group
    # Bone stripped off the cortex (by the bone mask's opening, or released where
    # a vessel zone overlaps the vertebral body or the pelvis) lies against the
    # bone over a broad face. A candidate is a maximal set of voxels above the
    # calcium threshold less the bone and its margin, so its dense neighbours
    # are bone: on the tuning phantoms every such fragment placed in a vessel
    # had >= 32 % of its outer shell dense, every plaque <= 26 %.
    bone_contact: float = 0.3
    # Plaque lies in blood, wall and fat (median HU round it <= 50 on the tuning
    # phantoms); a speck with cancellous bone round it (~110 HU at 140 kVp) is in
    # a bone the bone mask missed. Above any unenhanced soft tissue (liver <= 70):
    bone_background_hu: float = 80.0
    # The estimated aorta and iliac zones overlap the front of the vertebral
    # column, where the anterior rim of an endplate or of the body's cortex,
    # shaved off by the bone mask's margin, leaves a dense sliver (peak
    # 1000-1800 HU, one or two slices) that the shell test misses: its bone
    # neighbours are the masked margin, not calcium-dense voxels. On the dev
    # phantoms (seeds 20-51, 1300-1349) 53 candidates in a vessel zone lay
    # within one in-plane voxel of a vertebra or disc label and under 20 mm3:
    # 52 were such slivers in no truth lesion (6 reported as aortic or iliac
    # plaque; the true aorta lay 5-7 mm in front of them), one a 6.6 mm3 piece
    # of an iliac plaque against L4 whose two larger pieces kept it found.
    # Whole plaques that close measured 21-660 mm3. A lesion in a vessel zone
    # this close to the column and smaller than this is bone.
    column_contact_mm: float = 1.0
    column_fragment_max_mm3: float = 20.0
    # The ureter crosses in front of the common iliac artery at the pelvic brim,
    # inside the iliac zones and below the end of the (coarse) ureter zone.
    # Wall plaque is an arc or a flake (shortest principal axis <= 0.5 x the
    # longest on the tuning phantoms); a calculus is a round nodule. A nodule
    # in an iliac zone within ureter_near_mm of the ureter zone of that side,
    # or up to ureter_below_zone_mm below its lower end, is a ureteral stone.
    # (The zone runs on past the crossing, down the pelvic wall, when the
    # internal iliac zone is known; the allowance only bridges its coarse end
    # and must not reach the phleboliths of the lower pelvis.)
    nodule_min_axis_mm: float = 2.5
    nodule_roundness: float = 0.7
    ureter_near_mm: float = 10.0
    ureter_below_zone_mm: float = 20.0
    # Thick slices stretch a calculus along z: at 3 mm slices ureteral stones of
    # 4.5-5.7 mm crossing an iliac artery measured 5.9-7.8 mm long (roundness
    # 0.55-0.69) and were called plaque. Discounting the stretch alone also
    # called 3-4 mm wall plaques stones: resolution-limited specks that measured
    # 2.5-3.0 mm across at most (the wall is <= 2 mm thick), where the stones
    # measured >= 4.05 mm across (tuning phantoms: extra 3 mm set, t40, pfov80).
    ureter_stretched_min_axis_mm: float = 3.5
    # Up to this slice thickness a 2-3 mm lesion's thickness is measured (its
    # shortest axis is across the wall, not the slice): wall plaque measured
    # 1.6-2.2 mm across, stones and phleboliths >= 2.7 mm (0.625-1.25 mm
    # slices, dev phantoms). At 3 mm slices a lesion on one or two slices
    # measures about the slice, and 4-6 mm phleboliths measured as flat as
    # plaques (shortest / longest axis 0.45-0.47 vs 0.46-0.47).
    thickness_resolved_max_slice_mm: float = 1.25
    # The renal pelvis may bulge out of the hilum beyond the estimated sinus: a
    # calculus-shaped nodule this close to a collecting system is a stone in it
    # (tuning phantoms: pelvic stones of 8-10 mm centred ~5 mm outside). An
    # extrarenal pelvis reaches further medially: dev phantom 1609, a 6 mm
    # stone in it lay 8.3 mm from the estimated sinus and was reported as
    # "other" at 8 mm (no other lesion on the dev sets 1600-1647 and 1700-1747
    # changed at 10 mm).
    renal_pelvis_mm: float = 10.0
    # A ureteral calculus is round or oval in its cross-section (phantom stones:
    # in-plane axis ratio >= 0.7; real ones are no flatter than about 2:1). A
    # sliver of sacral or pelvic cortex beside the ureter's course is a line
    # (ratio ~0.15) and lies against the bone: neither is a ureteral stone.
    ureter_stone_min_roundness: float = 0.5
    # A wall plaque flake beside the ureter zone can be oval in its plane but is
    # thin across it (tuning phantoms: 0.19 of its length); stones are at least
    # ~0.55 (elongated along z by thick slices), real ones no flatter than ~2:1.
    ureter_stone_min_thickness: float = 0.35
    # At slices that resolve it (thickness_resolved_max_slice_mm) a ureteral
    # calculus measures >= 2.42 mm across its shortest axis (dev phantoms,
    # seeds 20-51 and 1300-1349, 2.5-7 mm stones); chips of 3-9 mm3, 1.5 mm
    # thick, beside the L5-S1 disc in the ureter zone (the endplate's lateral
    # rim; seeds 1105, 1205, 1314) were reported as stones.
    ureter_stone_min_axis_mm: float = 2.0
    # A vessel's plaque lies in its wall: at least this share of a lesion placed
    # in a vessel zone lies in the zone or within wall_reach_mm of it (the
    # zones are estimates, off by up to ~8 mm in the pelvis).
    min_near_fraction: float = 0.5
    wall_reach_mm: float = 10.0
    # The aorta's zone misses its wall by less (~6 mm, at the bifurcation): on
    # the dev phantoms (seeds 20-51, 1300-1349) the one lesion placed as aortic
    # plaque 6-10 mm beyond that zone was a 360 mm3 costal cartilage
    # calcification in front of it (seed 1322); no aortic plaque lay there.
    aorta_wall_reach_mm: float = 6.0
    # Plaque beyond the estimated wall: the iliac zones miss the artery by up to
    # ~10 mm in the pelvis (and the aorta's by ~6 mm at the bifurcation), so a
    # plaque there has no region structure within max_distance_mm. A lesion in
    # soft tissue within wall_reach_mm of an artery zone, a flake or arc (not
    # a look-alike), clearly calcified (peak at least this far above the
    # threshold: the noise clusters beside the aorta at 140 kVp peaked < 30 HU
    # above it; the plaques found so 157-552 HU), is plaque of that artery.
    plaque_beyond_wall_min_excess_hu: float = 100.0
    # Wall plaque is an arc or a flake: shortest principal axis <= 0.5 x the
    # longest on the tuning phantoms (0.10-0.32 for the plaques beyond the
    # wall); bowel content placed there by the rule above measured 0.61.
    plaque_max_thickness_ratio: float = 0.5
    # Wall plaque is an arc or a flake; a round nodule is not (_is_nodule_at_slices:
    # 7 of 841 plaques on the dev phantoms, seeds 20-51 and 1300-1349, all but
    # one with most of their voxels in the artery zone). Dense bowel content
    # (a round 4-9 mm nodule in a bowel loop, which the rules do not label)
    # beside an iliac artery was placed in it by distance or by grazing the
    # zone (2 of the 3 bowel look-alikes reported as iliac plaque on seeds
    # 1300-1335; the third lay in the ureter zone where it meets the artery,
    # where a plaque of the same shape lies too). A nodule with most of its
    # voxels outside the artery zone is "other" (its look-alike kind) unless
    # this is set.
    nodule_outside_artery_is_plaque: bool = False
    # The voxels that give the level: at or above this fraction of the peak over
    # soft tissue. Half the peak is the true edge of a long plaque; the voxels
    # it only partly fills (25-50 %) still touch the level it reaches, while the
    # slice-profile tail further out stays below ~20 %. Tuning phantoms: level
    # exact 91.8 % at 0.5, 93.2 % at 0.25 (no level lost; 0.05-0.25 equal).
    level_core_fraction: float = 0.25


SOFT_TISSUE_HU = 40.0
S1_DEFAULT_HEIGHT_MM = 30.0
S1_TOLERANCE_MM = 10.0

_REGION_LABELS = np.array(sorted(s.label for s in STRUCTURES if s.region is not None), dtype=np.int64)
_BONE_LABELS = np.array(sorted(s.label for s in STRUCTURES if s.is_bone), dtype=np.int64)
# The column for the distance rule: the discs lie between the endplates, so a
# dense line in a disc is endplate cortex (or disc calcification), not a plaque
# of the aorta a few mm in front of it.
_COLUMN_LABELS = np.union1d(_BONE_LABELS, [structure("intervertebral_disc").label])
# The lumbar and thoracic column proper (bodies and discs; not the sacrum and
# pelvis, along which the iliac arteries and their plaques run).
_SPINE_LABELS = np.array(sorted([s.label for s in STRUCTURES if s.name.startswith("vertebrae_")]
                                + [structure("intervertebral_disc").label]), dtype=np.int64)


def classify(lesions: Sequence[Lesion], anatomy: AnatomyMap, volume: Volume,
             settings: ClassifySettings | None = None, *, threshold_hu: float | None = None,
             blood_pool_hu: float | None = None, device: Device | None = None) -> list[Finding]:
    """Place and name every lesion.

    Parameters
    ----------
    lesions : sequence of Lesion
        Candidates on ``volume``'s grid.
    anatomy : AnatomyMap
        Labels on the volume grid or on its own grid (mapped through LPS).
    volume : Volume
    threshold_hu, blood_pool_hu : float, optional
        The candidate stage's calcium threshold and blood-pool median HU
        (``Candidates``): a neighbour this dense is bone unless the blood pool
        is contrast-enhanced. Measured here when not given.
    device : Device, optional
        The run's device, for re-measuring the parts of a split lesion (CPU when
        not given).

    Returns
    -------
    list of Finding
        In the order of ``lesions``; ids ``"F001"``, ``"F002"``, ...
    """
    s = settings or ClassifySettings()
    ctx = _Context.of(anatomy, volume, threshold_hu, blood_pool_hu)
    findings = [classify_lesion(les, ctx, n, s) for n, les in enumerate(lesions, start=1)]
    if s.split_bilateral_ligament:
        findings = _split_bilateral_ligaments(findings, ctx, s, threshold_hu, device or Device("cpu"))
    return _renal_pattern(findings, s)


def _split_bilateral_ligaments(findings: list[Finding], ctx: _Context, s: ClassifySettings,
                               threshold_hu: float | None, device: Device) -> list[Finding]:
    """Each ligament calcification lying on both sides of the canal's centre
    as two findings, left and right; ids renumbered in order when any was split."""
    next_label = max((f.lesion.label for f in findings), default=0) + 1
    out: list[Finding] = []
    for f in findings:
        ligament = f.region == Region.LIGAMENTUM_FLAVUM.value
        parts = _bilateral_parts(f, ctx, s, threshold_hu, next_label, device) if ligament else None
        if parts is None:
            out.append(f)
            continue
        next_label += 1
        for side, part in parts:
            out.append(replace(f, lesion=part, side=side,  # type: ignore[arg-type]
                               morphology=morphology_of(part, ctx.volume.spacing, s)))
    if len(out) == len(findings):
        return out
    return [replace(f, id=f"F{n:03d}") for n, f in enumerate(out, start=1)]


def _bilateral_parts(f: Finding, ctx: _Context, s: ClassifySettings, threshold_hu: float | None,
                     new_label: int, device: Device) -> list[tuple[str, Lesion]] | None:
    """The left and right parts of a ligament calcification that lies on both
    sides of the canal's centre, measured as lesions of their own; None if it
    lies on one side (see ``bilateral_ligament_min_reach_mm``)."""
    les = f.lesion
    vox = _lesion_voxels(les)
    centre_x = _canal_centre_x(ctx, _to_anatomy(ctx, vox))
    if centre_x is None:
        return None
    offset = ctx.volume.index_to_lps(vox)[:, 0] - centre_x  # LPS x: + is left
    left = offset > 0
    if min(left.sum(), (~left).sum()) * ctx.volume.voxel_volume_mm3 < s.ligament_min_volume_mm3:
        return None
    if min(offset.max(), -offset.min()) < s.bilateral_ligament_min_reach_mm:
        return None
    k0, j0, i0, k1, j1, i1 = les.bbox
    # Measured on a crop with room for the background shell of the mass measurement.
    pad = np.ceil(10.0 / np.asarray(ctx.volume.spacing)).astype(int)
    lo = np.maximum(np.array([k0, j0, i0]) - pad, 0)
    hi = np.minimum(np.array([k1, j1, i1]) + pad, ctx.volume.shape)
    crop = ctx.volume.crop(tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)))  # type: ignore[arg-type]
    labels = np.zeros(crop.shape, dtype=np.int32)
    right_label, left_label = (les.label, new_label) if (~left).sum() >= left.sum() else (new_label, les.label)
    local = vox - lo
    labels[tuple(local[left].T)] = left_label
    labels[tuple(local[~left].T)] = right_label
    measured = {m.label: m for m in measure_components(crop, labels, device, threshold_hu=threshold_hu)}
    if set(measured) != {left_label, right_label}:
        return None
    # The parts' masses share the whole's (its calibration, which may be the user's).
    total = sum(m.mass_mg for m in measured.values())
    scale = les.mass_mg / total if total > 0 else 0.0
    out = []
    for side, lab in (("right", right_label), ("left", left_label)):
        m = measured[lab]
        b = m.bbox
        out.append((side, replace(
            m, bbox=(b[0] + lo[0], b[1] + lo[1], b[2] + lo[2], b[3] + lo[0], b[4] + lo[1], b[5] + lo[2]),
            centroid_kji=tuple(float(c + o) for c, o in zip(m.centroid_kji, lo)), mass_mg=m.mass_mg * scale)))
    return out


def _renal_pattern(findings: list[Finding], s: ClassifySettings) -> list[Finding]:
    """Calculus or nephrocalcinosis from the pattern in each kidney, not location alone.

    The papillae abut the calyces, so medullary foci often fall in an estimated
    collecting system, and a calyceal stone in an estimated pyramid: location
    alone called a cluster of 2 mm foci "six calculi". In a kidney with at least
    ``nephrocalcinosis_min_foci`` small (< ``nephrocalcinosis_max_mm``) foci the
    small ones are medullary nephrocalcinosis; a focus of that size or larger is
    a calculus wherever it lies.
    """
    out = list(findings)
    for side in ("left", "right"):
        renal = [n for n, f in enumerate(out) if f.region == Region.RENAL.value and f.side == side
                 and f.kind in (Kind.STONE, Kind.NEPHROCALCINOSIS)]
        small = [n for n in renal if out[n].lesion.max_diameter_mm < s.nephrocalcinosis_max_mm]
        cluster = len(small) >= s.nephrocalcinosis_min_foci
        for n in renal:
            f = out[n]
            if f.lesion.max_diameter_mm >= s.nephrocalcinosis_max_mm and f.kind is Kind.NEPHROCALCINOSIS:
                out[n] = replace(f, kind=Kind.STONE, segment="collecting system")
            elif cluster and n in small and f.kind is Kind.STONE:
                out[n] = replace(f, kind=Kind.NEPHROCALCINOSIS, segment="medullary")
        _cluster_levels(out, [n for n in renal if out[n].kind is Kind.NEPHROCALCINOSIS], s.papilla_cluster_mm)
    return out


def _cluster_levels(out: list[Finding], members: list[int], link_mm: float) -> None:
    """Give the nephrocalcinosis foci of one papilla the level span of all of them (in place).

    The foci of a papilla (a few mm apart) are one calcification seen as
    several components; its level is where the group lies, not where each
    speck does. Groups are single-linkage clusters of centroids within ``link_mm``.
    """
    if len(members) < 2:
        return
    xyz = np.array([out[n].lesion.centroid_lps_mm for n in members])
    near = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1) <= link_mm
    _, group = connected_components(near, directed=False)
    for g in np.unique(group):
        ns = [members[m] for m in np.flatnonzero(group == g)]
        span = format_level_span([out[n].level for n in ns if out[n].level])
        if len(ns) > 1 and span is not None:
            for n in ns:
                out[n] = replace(out[n], level=span)


@dataclass(frozen=True)
class _Context:
    anatomy: AnatomyMap
    volume: Volume
    to_anat: np.ndarray | None  # 4x4 volume index -> anatomy index; None if identical grids
    spacing: tuple[float, float, float]  # anatomy grid spacing (mm)
    renal_k: float | None  # anatomy slice of the renal arteries
    t12_k: float | None  # anatomy slice of the T12 body centre
    pelvis_k: float | None  # anatomy slices below this are pelvis (aortic bifurcation)
    pelvis_floor_k: int | None = None  # below this slice no vertebral level is given
    dense_hu: float | None = None  # a lesion's neighbour this dense is bone; None: contrast scan
    # endplates measured on the CT, shared by every lesion of the scan (refine_endplates)
    endplate_memo: dict = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def of(anatomy: AnatomyMap, volume: Volume, threshold_hu: float | None = None,
           blood_pool_hu: float | None = None) -> _Context:
        same = anatomy.labels.shape == volume.shape and np.allclose(anatomy.affine, volume.affine, atol=1e-4)
        to_anat = None if same else np.linalg.inv(anatomy.affine) @ volume.affine
        sp = tuple(float(v) for v in np.linalg.norm(anatomy.affine[:3, :3], axis=0))
        per_slice = _slice_histogram(anatomy)  # [k, label] voxel counts
        ks = np.arange(per_slice.shape[0], dtype=np.float64)
        cs = per_slice[:, [structure("collecting_system_left").label,
                           structure("collecting_system_right").label]].sum(axis=1)
        renal_k = float((ks * cs).sum() / cs.sum()) if cs.any() else _level_k(anatomy.slice_levels, "L1-L2")
        t12_k = _level_k(anatomy.slice_levels, "T12")
        if t12_k is None:
            # No level count: the lung bases stand in for the thoraco-abdominal junction.
            lung_k = np.flatnonzero(per_slice[:, structure("lung").label])
            t12_k = float(lung_k.min()) if lung_k.size else None
        aorta_k = np.flatnonzero(per_slice[:, structure("aorta").label])
        iliac_any = per_slice[:, [s.label for s in STRUCTURES if s.region is Region.ILIAC]].any()
        pelvis_k = float(aorta_k.min()) if aorta_k.size and iliac_any else _level_k(anatomy.slice_levels, "L5")
        floor = _below_s1_k(anatomy.slice_levels, sp[0])
        dense = _bone_contact_hu(anatomy, volume, same, threshold_hu, blood_pool_hu)
        return _Context(anatomy, volume, to_anat, sp, renal_k, t12_k, pelvis_k, floor, dense)  # type: ignore[arg-type]


def _bone_contact_hu(anatomy: AnatomyMap, volume: Volume, same_grid: bool, threshold_hu: float | None,
                     blood_pool_hu: float | None) -> float | None:
    """The calcium threshold, or ``None`` on a contrast scan.

    With iodine in the blood pool the lumen round a plaque is above the kVp
    threshold too, so dense neighbours no longer mean bone. The contrast test is
    the candidate stage's (``CandidateSettings.contrast_blood_hu``).
    """
    if volume.info.contrast_agent:
        return None
    if blood_pool_hu is None and same_grid:
        aorta = anatomy.mask_of([structure("aorta").label])
        blood_pool_hu = None if aorta is None else float(np.median(volume.array[aorta]))
    if blood_pool_hu is not None and blood_pool_hu > CandidateSettings().contrast_blood_hu:
        return None
    return calcium_threshold_hu(volume.info.kvp) if threshold_hu is None else threshold_hu


def _surroundings(les: Lesion, volume: Volume, dense_hu: float) -> tuple[float, float]:
    """What the lesion lies in: the fraction of its outer shell (26-neighbours) at
    or above ``dense_hu``, and the median HU of the two voxels round it."""
    k0, j0, i0, k1, j1, i1 = les.bbox
    lo = np.maximum(np.array([k0, j0, i0]) - 2, 0)
    hi = np.minimum(np.array([k1, j1, i1]) + 2, np.array(volume.shape))
    hu = volume.array[tuple(slice(a, b) for a, b in zip(lo, hi))]
    own = np.zeros(hu.shape, dtype=bool)
    own[k0 - lo[0]:k1 - lo[0], j0 - lo[1]:j1 - lo[1], i0 - lo[2]:i1 - lo[2]] = les.mask
    cube = np.ones((3, 3, 3), dtype=bool)
    one = ndi.binary_dilation(own, structure=cube)
    shell, ring = one & ~own, ndi.binary_dilation(one, structure=cube) & ~own
    if not shell.any():
        return 0.0, SOFT_TISSUE_HU
    return float((hu[shell] >= dense_hu).mean()), float(np.median(hu[ring]))


def _slice_histogram(anatomy: AnatomyMap) -> np.ndarray:
    """Voxel count of every structure label in every slice (``[k, label]``)."""
    n_labels = max(int(s.label) for s in STRUCTURES) + 1
    counts = anatomy.slice_label_counts[:, :n_labels]
    return np.pad(counts, ((0, 0), (0, n_labels - counts.shape[1])))


def _canal_depth(ctx: _Context, idx: np.ndarray) -> float | None:
    """Where the lesion voxels ``idx`` (anatomy grid) lie front to back in the canal:
    0 level with the canal's centre, 1 level with its posterior wall (negative in
    front of the centre), on the lesion's slices; ``None`` where no canal is labelled."""
    canal = structure("spinal_canal").label
    lab = ctx.anatomy.labels
    ks = np.unique(idx[:, 0])
    ks = ks[(ks >= 0) & (ks < lab.shape[0])]
    centres, walls = [], []
    for k in ks:
        rows = np.nonzero(lab[k] == canal)[0]  # j grows posteriorly
        if rows.size:
            centres.append(rows.mean())
            walls.append(rows.max())
    if not centres:
        return None
    centre, wall = float(np.mean(centres)), float(np.mean(walls))
    if wall <= centre:
        return None
    return float((idx[:, 1].mean() - centre) / (wall - centre))


def _in_plane_length_mm(les: Lesion, spacing: tuple[float, float, float]) -> float:
    """Longest distance (mm) between two pixels of the lesion's footprint on the
    axial plane (pixel centres plus one pixel: the extent a reader measures)."""
    foot = np.argwhere(les.mask.any(axis=0)).astype(np.float64) * np.array(spacing[1:])
    if len(foot) > 400:
        # The longest chord joins two points of the outline: keep the extremes
        # along 16 directions, not every pixel (short by < 0.5 %: cos(pi / 32)).
        dirs = np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, np.pi, 16, endpoint=False)])
        proj = foot @ dirs.T
        foot = foot[np.unique(np.r_[proj.argmin(axis=0), proj.argmax(axis=0)])]
    a, b = farthest_pair(foot)
    return float(np.linalg.norm(foot[a] - foot[b]) + min(spacing[1], spacing[2]))


def _beside_ligament_zone(level: str | None, surroundings: tuple[float, float] | None, depth: float | None,
                          s: ClassifySettings) -> bool:
    """Next to the ligament zone at the lumbosacral junction (``level``), behind the
    canal's posterior wall (``depth``, :func:`_canal_depth`), in soft tissue all
    round (``surroundings``, :func:`_surroundings`; see ``ligament_beside_zone``)."""
    if not s.ligament_beside_zone or surroundings is None or level not in s.ligament_beside_zone_levels:
        return False
    contact, background = surroundings
    if contact >= s.ligament_beside_zone_max_contact or background >= s.ligament_beside_zone_max_background_hu:
        return False
    return depth is not None and depth >= 1.0


def _ligament_min_volume(les: Lesion, surroundings: tuple[float, float] | None, depth: float | None,
                         s: ClassifySettings) -> float:
    """The smallest ligament calcification reported (see ``ligament_released_min_volume_mm3``);
    ``surroundings`` and ``depth`` as for :func:`_beside_ligament_zone`."""
    if les.released_ligament_mm3 < s.ligament_released_core_mm3 or surroundings is None:
        return s.ligament_min_volume_mm3
    if surroundings[1] >= s.ligament_released_max_background_hu or depth is None \
            or depth > s.ligament_released_max_canal_depth:
        return s.ligament_min_volume_mm3
    return min(s.ligament_released_min_volume_mm3, s.ligament_min_volume_mm3)


def _laminar_face_strip(les: Lesion, spacing: tuple[float, float, float], s: ClassifySettings) -> bool:
    """A lesion long in-plane but flat along z (see ``ligament_flat_min_length_mm``):
    the partial-volume halo on a lamina's upper or lower face."""
    height = les.mask.shape[0] * spacing[0]
    if height > max(s.ligament_flat_max_height_mm, spacing[0]):
        return False
    return _in_plane_length_mm(les, spacing) >= s.ligament_flat_min_length_mm


def _below_s1_k(levels: tuple[str | None, ...], slice_mm: float) -> int | None:
    """First slice that still counts as S1: the sacrum's top minus the height of
    one segment (L5's, else 30 mm) and 10 mm of tolerance; ``None`` when S1 is absent.

    The rules label the whole sacrum "S1"; a lesion deep in the pelvis gets no
    level, as in radiology reports (and in the phantom truth).
    """
    s1 = [k for k, lv in enumerate(levels) if lv == "S1"]
    if not s1:
        return None
    l5 = sum(1 for lv in levels if lv == "L5")
    height_mm = l5 * slice_mm if l5 * slice_mm >= 15.0 else S1_DEFAULT_HEIGHT_MM
    # k increases superiorly on the canonical grid: the sacrum's top is max(s1).
    return int(np.floor(max(s1) - (height_mm + S1_TOLERANCE_MM) / slice_mm))


def _level_k(levels: tuple[str | None, ...], level: str) -> float | None:
    """Mean slice index labelled ``level`` (``None`` when absent)."""
    ks = [k for k, lv in enumerate(levels) if lv == level]
    return float(np.mean(ks)) if ks else None


def _lesion_voxels(les: Lesion) -> np.ndarray:
    k0, j0, i0 = les.bbox[:3]
    return np.argwhere(les.mask) + np.array([k0, j0, i0])


def _to_anatomy(ctx: _Context, kji: np.ndarray) -> np.ndarray:
    if ctx.to_anat is None:
        return kji
    m = ctx.to_anat
    return np.rint(kji @ m[:3, :3].T + m[:3, 3]).astype(np.int64)


def _labels_at(ctx: _Context, idx: np.ndarray) -> np.ndarray:
    shape = np.array(ctx.anatomy.labels.shape)
    inside = np.all((idx >= 0) & (idx < shape), axis=1)
    out = np.zeros(len(idx), dtype=np.int64)
    out[inside] = ctx.anatomy.labels[tuple(idx[inside].T)]
    return out


def _crop_around(ctx: _Context, idx: np.ndarray, max_mm: float,
                 above_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray] | None:
    """The anatomy labels within ``max_mm`` of the lesion voxels' box (and up to
    ``above_mm`` above it; k grows cranially), and the box's low corner."""
    margin = np.ceil(max_mm / np.array(ctx.spacing)).astype(int) + 1
    shape = np.array(ctx.anatomy.labels.shape)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, shape)
    if above_mm:
        hi[0] = min(idx[:, 0].max() + int(np.ceil(above_mm / ctx.spacing[0])) + 1, shape[0])
    if np.any(hi <= lo):
        return None
    return ctx.anatomy.labels[tuple(slice(a, b) for a, b in zip(lo, hi))], lo


def _local_mask(idx: np.ndarray, lo: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The lesion voxels ``idx`` as a mask on a crop starting at ``lo``."""
    les = np.zeros(shape, dtype=bool)
    local = idx - lo
    ok = np.all((local >= 0) & (local < np.array(shape)), axis=1)
    les[tuple(local[ok].T)] = True
    return les


def _nearest_region_structure(ctx: _Context, idx: np.ndarray, max_mm: float) -> tuple[int, float] | None:
    """Nearest region-bearing label within ``max_mm`` of the lesion voxels."""
    return _nearest_label(ctx, idx, _REGION_LABELS, max_mm)


def _labels_near(ctx: _Context, idx: np.ndarray, labels: np.ndarray,
                 max_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The anatomy crop within ``max_mm`` of the lesion voxels, its origin, and
    where in it ``labels`` lie; None when none of them is that near."""
    crop = _crop_around(ctx, idx, max_mm)
    if crop is None:
        return None
    sub, lo = crop
    target = np.isin(sub, labels)
    return (sub, lo, target) if target.any() else None


def _nearest_label(ctx: _Context, idx: np.ndarray, labels: np.ndarray, max_mm: float) -> tuple[int, float] | None:
    """The label among ``labels`` nearest the lesion voxels within ``max_mm``, and
    its distance (mm); None when there is none or the column is nearer."""
    sp = np.array(ctx.spacing)
    near = _labels_near(ctx, idx, labels, max_mm)
    if near is None:
        return None
    sub, lo, target = near
    les = _local_mask(idx, lo, sub.shape)
    dist, (ik, ij, ii) = ndi.distance_transform_edt(~target, sampling=sp, return_indices=True)
    d = np.where(les, dist, np.inf)
    at = np.unravel_index(int(np.argmin(d)), d.shape)
    if not np.isfinite(d[at]) or d[at] > max_mm:
        return None
    bone = np.isin(sub, _COLUMN_LABELS)
    if bone.any():
        # A speck on the edge of a vertebra (or in a disc) belongs to the column,
        # not to a vessel a few mm away: only place by distance when no bone is nearer.
        bone_d = float(np.where(les, ndi.distance_transform_edt(~bone, sampling=sp), np.inf).min())
        if bone_d <= d[at]:
            return None
    return int(sub[ik[at], ij[at], ii[at]]), float(d[at])


def morphology_of(les: Lesion, spacing: tuple[float, float, float], s: ClassifySettings | None = None) -> Morphology:
    """Ring (central lucency), punctate (< 3 mm), linear / curvilinear
    (elongation > 0.6, or volume / max_diameter^3 < 0.015 for thin bent lines;
    curvilinear when the voxels bend away from their main axis by more than
    15 % of its length), else plaque."""
    s = s or ClassifySettings()
    if les.central_lucency:
        return Morphology.RING
    if les.max_diameter_mm < s.punctate_mm:
        return Morphology.PUNCTATE
    # Line-like: elongated, or thin for its length (a bent line such as an arc
    # along a vessel wall is not "elongated" by principal axes, but its volume
    # is tiny next to the cube of its length: ~(thickness / length)^2).
    thin = les.max_diameter_mm >= 5.0 and les.volume_mm3 / les.max_diameter_mm**3 < s.thin_ratio
    if les.elongation > s.elongated or thin:
        pts = np.argwhere(les.mask) * np.asarray(spacing, dtype=float)
        if len(pts) >= 3:
            c = pts - pts.mean(axis=0)
            _, _, vt = np.linalg.svd(c, full_matrices=False)
            along = c @ vt[0]
            off = np.linalg.norm(c - np.outer(along, vt[0]), axis=1)
            length = float(along.max() - along.min())
            if length > 0 and off.max() > s.curvature * length + 0.5 * max(spacing):
                return Morphology.CURVILINEAR
        return Morphology.LINEAR
    return Morphology.PLAQUE


def _size_factor(les: Lesion) -> float:
    """Few-voxel lesions are noise-prone: confidence x 0.5 at 1 voxel -> 1 at >= 10."""
    return float(min(1.0, 0.5 + 0.05 * (les.voxel_count - 1) / 0.9))


def _core_voxels(les: Lesion, vox: np.ndarray, volume: Volume, fraction: float) -> np.ndarray:
    """The lesion's voxels ``vox`` at or above ``fraction`` of its peak over soft tissue (``[k, j, i]``).

    Blur (slice profile, kernel) spreads a lesion over neighbouring slices at low
    HU; its core keeps the true extent, so a plaque within L3 is not reported as
    "L3-L4" because its blurred edge reaches the disc.
    """
    hu = volume.array[tuple(vox.T)]
    core = hu >= SOFT_TISSUE_HU + fraction * (les.peak_hu - SOFT_TISSUE_HU)
    return vox[core] if core.any() else vox


# A slice counts towards a lesion's z extent once its peak over soft tissue is
# this fraction of the lesion's; fainter slices show the blur of the next one.
# Dev phantoms (seeds 1200-1211, 1300-1349): 0.2-0.4 give the same levels within 2.
LEVEL_SLICE_FILL_MIN = 0.3


def _subslice_extent(hu: np.ndarray, idx: np.ndarray, ks: np.ndarray) -> tuple[float, float]:
    """The z extent (slice indices) of a lesion whose core voxels are ``idx``, on its slices ``ks``
    (CT grid).

    A slice averages the CT over its thickness: where a lesion fills a fraction f
    of a slice, the slice shows about f of the lesion's peak over soft tissue. So
    a slice k the lesion fills that much ends it f slices in from the slice's far
    face (k + 0.5 - f below, k - 0.5 + f above): a plaque that fills its end
    slices ends at their faces, one that only grazes a slice barely enters it.
    The slice-count rule (a quarter slice past the core) read 1.25 mm lesions
    0.6 mm short at each end on the dev phantoms and dropped the disc they enter.
    """
    excess = hu[tuple(idx.T)].astype(np.float64) - SOFT_TISSUE_HU
    per_slice = np.full(int(idx[:, 0].max()) + 1, -np.inf)
    np.maximum.at(per_slice, idx[:, 0], excess)
    fill = np.clip(per_slice[ks] / max(float(excess.max()), 1.0), 0.0, 1.0)
    seen = fill >= LEVEL_SLICE_FILL_MIN
    if not seen.any():
        return float(ks[0]) - 0.25, float(ks[-1]) + 0.25
    k, f = ks[seen].astype(np.float64), fill[seen]
    return float((k + 0.5 - f).min()), float((k - 0.5 + f).max())


def _level(ctx: _Context, idx: np.ndarray) -> str | None:
    """The vertebral level or span of a lesion whose core voxels are ``idx`` (anatomy grid).

    With the CT on the anatomy's grid the lesion's z extent is read to a fraction
    of a slice from how much of its peak each slice shows
    (:func:`_subslice_extent`). Otherwise a slice counts as core once the lesion
    fills about a quarter of it, so the outermost core slice centres lie on
    average a quarter slice inside the lesion's ends: its z extent reaches a
    quarter slice beyond them. The levels are those that extent overlaps by at
    least 1 mm (readers name where a calcification lies, not a disc it grazes).
    The rules find the bodies on a 2.5-3 mm grid; with the CT on the anatomy's
    grid, the body ends near the lesion are first moved to the endplates the CT
    shows.
    """
    levels = ctx.anatomy.slice_levels
    ks = np.unique(np.clip(idx[:, 0], 0, len(levels) - 1))
    if ctx.pelvis_floor_k is not None:
        # Below the first sacral segment (the true pelvis) there is no
        # vertebral level to give: "external iliac artery", not "at S3".
        ks = ks[ks >= ctx.pelvis_floor_k]
    if ks.size == 0:
        return None
    sk = ctx.spacing[0]
    if ctx.to_anat is None:
        lo, hi = _subslice_extent(ctx.volume.array, idx, ks)
    else:
        reach = 0.25 * float(ctx.volume.spacing[0]) / sk
        lo, hi = float(ks[0]) - reach, float(ks[-1]) + reach
    if ctx.pelvis_floor_k is not None:
        lo = max(lo, ctx.pelvis_floor_k - 0.5)
    zones = level_zones(levels)
    disc = structure("intervertebral_disc").label
    box = ctx.anatomy.structure_boxes.get(disc)
    if ctx.to_anat is None and box is not None:
        plane = (slice(None), box[1], box[2])
        zones = refine_endplates(zones, ctx.volume.array[plane], ctx.anatomy.labels[plane], disc, sk, near=(lo, hi),
                                 memo=ctx.endplate_memo, ap_mm=float(ctx.spacing[1]),
                                 slice_thickness_mm=ctx.volume.info.slice_thickness_mm)
    return format_level_span(level_of_extent(lo, hi, zones, sk))


def _aorta_segment(ctx: _Context, k: float) -> str | None:
    # k increases superiorly on the canonical grid; anatomy grids share that.
    if ctx.t12_k is not None and k > ctx.t12_k:
        return "thoracic"
    if ctx.renal_k is None:
        return None
    return "suprarenal" if k > ctx.renal_k else "infrarenal"


def _midline_side(ctx: _Context, les: Lesion, idx: np.ndarray) -> str | None:
    """Left/right of the canal centre on the lesion's slices (LPS x: + is left)."""
    centre_x = _canal_centre_x(ctx, idx)
    if centre_x is None:
        return None
    x = les.centroid_lps_mm[0]
    if abs(x - centre_x) < 0.5:
        return None
    return "left" if x > centre_x else "right"


def _canal_centre_x(ctx: _Context, idx: np.ndarray) -> float | None:
    """LPS x of the spinal canal's centre on the slices of ``idx`` (anatomy grid); None if none there."""
    canal = structure("spinal_canal").label
    ks = np.unique(idx[:, 0])
    lab = ctx.anatomy.labels
    ks = ks[(ks >= 0) & (ks < lab.shape[0])]
    pts = [np.argwhere(lab[k] == canal) for k in ks]
    pts = [np.column_stack([np.full(len(p), k), p]) for k, p in zip(ks, pts) if len(p)]
    if not pts:
        return None
    centre_idx = np.concatenate(pts).mean(axis=0)
    return float((ctx.anatomy.affine[:3, :3] @ centre_idx + ctx.anatomy.affine[:3, 3])[0])


def _fraction_near(ctx: _Context, idx: np.ndarray, label: int, max_mm: float) -> float:
    """Share of the lesion voxels ``idx`` (anatomy grid) within ``max_mm`` of structure ``label``."""
    crop = _crop_around(ctx, idx, max_mm)
    if crop is None or not (crop[0] == label).any():
        return 0.0
    zone = crop[0] == label
    near = ndi.distance_transform_edt(~zone, sampling=ctx.spacing) <= max_mm
    return float((near & _local_mask(idx, crop[1], zone.shape)).sum() / max(len(idx), 1))


def _is_nodule(les: Lesion, s: ClassifySettings) -> bool:
    """Round and thick: a calculus or node, not an arc or flake of vessel wall."""
    a = les.axes_mm
    return a[0] > 0 and a[2] >= s.nodule_min_axis_mm and a[2] / a[0] >= s.nodule_roundness


def _is_nodule_at_slices(les: Lesion, s: ClassifySettings, slice_mm: float) -> bool:
    """:func:`_is_nodule` for a lesion seen at ``slice_mm`` slices: the slice
    profile stretches a round calculus along z by up to about one slice (renal
    pelvic stones of 3-5 mm at 3 mm slices measured axes like 5.5 x 3.3 x 3.0 mm
    on the tuning phantoms, roundness 0.54-0.64, and fell to "other"), so the
    longest axis is compared less that stretch, never below the middle one."""
    a = les.axes_mm
    longest = max(a[0] - slice_mm, a[1])
    return longest > 0 and a[2] >= s.nodule_min_axis_mm and a[2] / longest >= s.nodule_roundness


def _ureteral_nodule(les: Lesion, s: ClassifySettings, slice_mm: float) -> bool:
    """A nodule in an iliac zone that may be a calculus in the ureter crossing
    the artery: round (:func:`_is_nodule`), or round once the stretch along z by
    thick slices is discounted (:func:`_is_nodule_at_slices`) when it is also
    thicker across than a wall plaque flake measures at those slices
    (``ureter_stretched_min_axis_mm``)."""
    if _is_nodule(les, s):
        return True
    return _is_nodule_at_slices(les, s, slice_mm) and les.axes_mm[2] >= s.ureter_stretched_min_axis_mm


def _crossing_calculus(les: Lesion, s: ClassifySettings, slice_mm: float) -> bool:
    """Whether a lesion where the ureter zone meets an artery zone is shaped
    like a calculus rather than wall plaque: a nodule as in the iliac zone
    (:func:`_ureteral_nodule`), or, at slices thin enough to measure a wall's
    thickness, round once the stretch along z is discounted and thicker across
    than a wall (:func:`_is_nodule_at_slices`; ureteral stones are oval along
    the ureter, which :func:`_is_nodule` reads as not round)."""
    if _ureteral_nodule(les, s, slice_mm):
        return True
    return slice_mm <= s.thickness_resolved_max_slice_mm and _is_nodule_at_slices(les, s, slice_mm)


def _calculus_shaped(les: Lesion, s: ClassifySettings, slice_mm: float) -> bool:
    """Round or oval across its long axis, not a line or a sliver: the two
    longest axes within ``ureter_stone_min_roundness`` of each other, and not a
    flake: the shortest at least ``ureter_stone_min_thickness`` of the longest
    (a lesion of one slice is one slice thick in its axes, so a small stone at
    thick slices passes) and, at ``slice_mm`` slices that resolve it, at least
    ``ureter_stone_min_axis_mm``."""
    a = les.axes_mm
    thin = slice_mm <= s.thickness_resolved_max_slice_mm and a[2] < s.ureter_stone_min_axis_mm
    return (a[0] > 0 and a[1] / a[0] >= s.ureter_stone_min_roundness
            and a[2] / a[0] >= s.ureter_stone_min_thickness and not thin)


_COLLECTING_LABELS = frozenset(s.label for s in STRUCTURES if s.segment == "collecting_system")
_URETER_LABELS = np.array([structure("ureter_left").label, structure("ureter_right").label], dtype=np.int64)


def _nearby_ureter(ctx: _Context, idx: np.ndarray, max_mm: float, below_mm: float) -> Structure | None:
    """The ureter zone with most voxels within ``max_mm`` of the lesion's box,
    or above it by up to ``below_mm`` (k grows cranially), if any."""
    crop = _crop_around(ctx, idx, max_mm, above_mm=below_mm)
    if crop is None:
        return None
    sub = crop[0]
    counts = [int(np.count_nonzero(sub == lab)) for lab in _URETER_LABELS]
    if max(counts) == 0:
        return None
    return structure_by_label(int(_URETER_LABELS[int(np.argmax(counts))]))


def _within_zone_levels(ctx: _Context, idx: np.ndarray, label: int) -> bool:
    """Whether the lesion's centre slice lies within the slices the zone ``label`` spans."""
    box = ctx.anatomy.structure_boxes.get(label)
    if box is None:
        return False
    k = float(idx[:, 0].mean())
    return box[0].start - 0.5 <= k <= box[0].stop - 0.5


_VESSEL_LABELS = np.array(sorted(s.label for s in STRUCTURES if s.region in (Region.AORTA, Region.ILIAC)),
                          dtype=np.int64)


def _nearby_vessel(ctx: _Context, idx: np.ndarray, max_mm: float) -> tuple[Structure, float] | None:
    """The aorta / iliac zone nearest the lesion voxels within ``max_mm``, and
    its distance (mm); None when there is none or bone is nearer."""
    near = _nearest_label(ctx, idx, _VESSEL_LABELS, max_mm)
    return None if near is None else (structure_by_label(near[0]), near[1])


def _plaque_beyond_wall(ctx: _Context, les: Lesion, idx: np.ndarray,
                        s: ClassifySettings) -> tuple[Structure, float] | None:
    """The artery zone (and its distance) a lesion with no region structure within
    ``max_distance_mm`` belongs to as wall plaque beyond the zone's estimate: within
    ``wall_reach_mm`` of it (of the aorta's, ``aorta_wall_reach_mm``) with no bone
    nearer, not a nodule flattened by thick slices, a flake or arc (its shortest axis at
    most ``plaque_max_thickness_ratio`` of its longest: a calculus, a node or bowel
    content is rounder), in soft tissue (the shell test of ``_surroundings``) and at
    least ``plaque_beyond_wall_min_excess_hu`` above the threshold. ``None`` on
    contrast scans, where dense surroundings say nothing."""
    a = les.axes_mm
    flake = a[0] > 0 and a[2] <= s.plaque_max_thickness_ratio * a[0]
    if ctx.dense_hu is None or not flake or les.max_diameter_mm < s.punctate_mm:
        return None
    if not s.nodule_outside_artery_is_plaque and _is_nodule_at_slices(les, s, ctx.volume.spacing[0]):
        # Flat only by the slice profile: a round nodule (bowel content, a node).
        return None
    if les.peak_hu < ctx.dense_hu + s.plaque_beyond_wall_min_excess_hu:
        return None
    vessel = _nearby_vessel(ctx, idx, s.wall_reach_mm)
    if vessel is None or (vessel[0].region is Region.AORTA and vessel[1] > s.aorta_wall_reach_mm):
        return None
    contact, background = _surroundings(les, ctx.volume, ctx.dense_hu)
    if contact >= s.bone_contact or background >= s.bone_background_hu:
        return None
    return vessel


def _column_sliver(ctx: _Context, les: Lesion, idx: np.ndarray, s: ClassifySettings) -> bool:
    """Whether a lesion in a vessel zone is a sliver of the vertebral column's
    cortex: smaller than ``column_fragment_max_mm3`` and within
    ``column_contact_mm`` of a vertebra above the sacrum or a disc (see the settings)."""
    if les.volume_mm3 >= s.column_fragment_max_mm3:
        return False
    near = _labels_near(ctx, idx, _SPINE_LABELS, s.column_contact_mm)
    if near is None:
        return False
    sub, lo, column = near
    dist = ndi.distance_transform_edt(~column, sampling=ctx.spacing)
    return bool(dist[_local_mask(idx, lo, sub.shape)].min() <= s.column_contact_mm)


def _finding(n: int, les: Lesion, region: Region, kind: Kind, morph: Morphology, conf: float,
             side: str | None = None, level: str | None = None, segment: str | None = None,
             struct: str | None = None) -> Finding:
    return Finding(id=f"F{n:03d}", lesion=les, region=region.value, side=side, level=level,  # type: ignore[arg-type]
                   kind=kind, morphology=morph, confidence=round(float(np.clip(conf, 0.0, 1.0)), 3),
                   segment=segment, structure=struct)


def _other_kind(ctx: _Context, les: Lesion, idx: np.ndarray, counts: dict[int, int],
                s: ClassifySettings) -> tuple[Kind, float]:
    """Look-alike rules for lesions outside (or not belonging to) the regions."""
    n = max(les.voxel_count, 1)
    k_mean = float(idx[:, 0].mean())
    if les.peak_hu >= s.metal_hu:
        return Kind.METAL, 0.8
    bone = sum(c for lab, c in counts.items() if lab in set(_BONE_LABELS.tolist()))
    if bone / n > 0.5:
        return Kind.BONE, 0.6 + 0.3 * bone / n
    cc = structure("costal_cartilage").label
    if counts.get(cc, 0) / n > 0.5:
        return Kind.COSTAL_CARTILAGE, 0.8
    bowel = structure("bowel").label
    if counts.get(bowel, 0) / n > 0.5:
        return Kind.BOWEL, 0.6
    in_pelvis = ctx.pelvis_k is not None and k_mean < ctx.pelvis_k
    round_ = les.elongation < 0.4
    # A phlebolith is a round nodule, as thick as it is wide; a small flake (the
    # shortest axis under plaque_max_thickness_ratio of the longest: 2-3 mm
    # iliac plaques measured 0.46-0.47, phleboliths at <= 1.25 mm slices
    # >= 0.68) is wall plaque, round only in its own plane. Only where the
    # slices resolve its thickness (thickness_resolved_max_slice_mm).
    flake = (les.axes_mm[0] > 0 and les.axes_mm[2] < s.plaque_max_thickness_ratio * les.axes_mm[0]
             and ctx.volume.spacing[0] <= s.thickness_resolved_max_slice_mm)
    if round_ and not flake and les.max_diameter_mm <= s.phlebolith_max_mm and in_pelvis:
        # Small, round, in the pelvis and outside the arteries: a phlebolith;
        # the central lucency, when resolved, makes it near certain.
        return Kind.PHLEBOLITH, 0.7 if les.central_lucency else 0.5
    if _costal_position(ctx, les, idx):
        return Kind.COSTAL_CARTILAGE, 0.5
    return Kind.UNKNOWN, 0.3


def _costal_position(ctx: _Context, les: Lesion, idx: np.ndarray) -> bool:
    """Anterior third of the body, > 30 mm from the midline, above the renal level."""
    lab = ctx.anatomy.labels
    k = int(np.clip(round(float(idx[:, 0].mean())), 0, lab.shape[0] - 1))
    body = lab[k] > 0
    if not body.any():
        return False
    rows = np.flatnonzero(body.any(axis=1))
    cols = np.flatnonzero(body.any(axis=0))
    j, i = idx[:, 1].mean(), idx[:, 2].mean()
    anterior = j < rows[0] + (rows[-1] - rows[0]) / 3.0
    lateral = abs(i - (cols[0] + cols[-1]) / 2.0) * ctx.spacing[2] > 30.0
    high = ctx.renal_k is None or k > ctx.renal_k
    return bool(anterior and lateral and high)


def classify_lesion(les: Lesion, ctx: _Context, n: int, s: ClassifySettings) -> Finding:
    """One lesion -> Finding (see the module docstring for the rules)."""
    vox = _lesion_voxels(les)
    idx = _to_anatomy(ctx, vox)
    labs = _labels_at(ctx, idx)
    counts = {int(v): int(c) for v, c in zip(*np.unique(labs, return_counts=True))}
    morph = morphology_of(les, ctx.volume.spacing, s)
    level = _level(ctx, _to_anatomy(ctx, _core_voxels(les, vox, ctx.volume, s.level_core_fraction)))
    total = max(len(labs), 1)
    size = _size_factor(les)

    region_counts = {lab: c for lab, c in counts.items() if lab in set(_REGION_LABELS.tolist())}
    bone_frac = sum(c for lab, c in counts.items() if lab in set(_BONE_LABELS.tolist())) / total
    best: Structure | None = None
    conf = 0.0
    if region_counts:
        lab = max(region_counts, key=lambda x: region_counts[x])
        best = structure_by_label(lab)
        conf = region_counts[lab] / total
    else:
        near = _nearest_region_structure(ctx, idx, s.max_distance_mm)
        if near is not None:
            best = structure_by_label(near[0])
            conf = 0.6 * (1.0 - near[1] / (s.max_distance_mm + 1.0))
        elif _is_nodule_at_slices(les, s, ctx.volume.spacing[0]):
            near = _nearest_region_structure(ctx, idx, s.renal_pelvis_mm)
            if near is not None and near[0] in _COLLECTING_LABELS:
                best = structure_by_label(near[0])
                conf = 0.6 * (1.0 - near[1] / (s.renal_pelvis_mm + 1.0))

    # Look-alikes first: bone, metal, phleboliths are never vascular or renal.
    other_kind, other_conf = _other_kind(ctx, les, idx, counts, s)
    lf = structure("ligamentum_flavum_zone").label
    if best is None and other_kind is Kind.UNKNOWN:
        beyond = _plaque_beyond_wall(ctx, les, idx, s)
        if beyond is not None:
            v, d = beyond
            vconf = 0.4 * (1.0 - d / (s.wall_reach_mm + 1.0)) * size
            if v.region is Region.AORTA:
                seg = _aorta_segment(ctx, float(idx[:, 0].mean()))
                return _finding(n, les, Region.AORTA, Kind.ATHEROSCLEROTIC, morph, vconf, None, level, seg, v.name)
            return _finding(n, les, Region.ILIAC, Kind.ATHEROSCLEROTIC, morph, vconf, v.side, level, v.segment,
                            v.name)
    if best is None or other_kind in (Kind.METAL,) or (bone_frac > 0.5 and (best.label != lf)):
        return _finding(n, les, Region.OTHER, other_kind, morph, other_conf * size, level=level)
    if (best.region in (Region.AORTA, Region.ILIAC) and other_kind is Kind.PHLEBOLITH
            and les.central_lucency and conf < 0.5):
        return _finding(n, les, Region.OTHER, Kind.PHLEBOLITH, morph, other_conf * size, level=level)

    conf *= size
    assert best.region is not None
    if best.region in (Region.AORTA, Region.ILIAC) and ctx.dense_hu is not None:
        contact, background = _surroundings(les, ctx.volume, ctx.dense_hu)
        if contact >= s.bone_contact or background >= s.bone_background_hu:
            # A fragment of the vertebral or pelvic cortex, or a speck of
            # cancellous bone the bone mask missed, in a vessel zone: not plaque.
            return _finding(n, les, Region.OTHER, Kind.BONE, morph, 0.5 * size, level=level)
    if best.region in (Region.AORTA, Region.ILIAC) and _column_sliver(ctx, les, idx, s):
        return _finding(n, les, Region.OTHER, Kind.BONE, morph, 0.5 * size, level=level)
    if best.region is Region.ILIAC and _ureteral_nodule(les, s, ctx.volume.spacing[0]):
        ureter = _nearby_ureter(ctx, idx, s.ureter_near_mm, s.ureter_below_zone_mm)
        if ureter is not None:
            return _finding(n, les, Region.RENAL, Kind.URETERAL_STONE, morph, conf, ureter.side, level, "ureter",
                            ureter.name)
    if (best.region in (Region.AORTA, Region.ILIAC) and conf < 0.5 * size
            and _fraction_near(ctx, idx, best.label, s.wall_reach_mm) < s.min_near_fraction):
        # Mostly far from the vessel it touches: bone the bone mask missed (a
        # piece of the pelvis grazing an iliac zone), not plaque in the wall.
        return _finding(n, les, Region.OTHER, other_kind, morph, other_conf * size, level=level)
    if (best.region in (Region.AORTA, Region.ILIAC) and not s.nodule_outside_artery_is_plaque
            and region_counts.get(best.label, 0) < 0.5 * total
            and _is_nodule_at_slices(les, s, ctx.volume.spacing[0])):
        # A round nodule mostly outside the artery zone (placed by distance or
        # grazing it): dense bowel content or a node, not wall plaque.
        return _finding(n, les, Region.OTHER, other_kind, morph, other_conf * size, level=level)
    if best.region is Region.AORTA:
        seg = _aorta_segment(ctx, float(idx[:, 0].mean()))
        return _finding(n, les, Region.AORTA, Kind.ATHEROSCLEROTIC, morph, conf, None, level, seg, best.name)
    if best.region is Region.ILIAC:
        return _finding(n, les, Region.ILIAC, Kind.ATHEROSCLEROTIC, morph, conf, best.side, level,
                        best.segment, best.name)
    if best.region is Region.LIGAMENTUM_FLAVUM:
        # Several rules below read what the lesion lies in and how deep in the canal.
        surroundings = _surroundings(les, ctx.volume, ctx.dense_hu) if ctx.dense_hu is not None else None
        depth = _canal_depth(ctx, idx)
        if best.label not in region_counts and not _beside_ligament_zone(level, surroundings, depth, s):
            # Near the zone but not in it: the zone already spans the canal's
            # posterior wall, and what lies just outside it is bone (laminae cut
            # by the end of the scan, which the bone mask cannot close).
            return _finding(n, les, Region.OTHER, other_kind, morph, other_conf * size, level=level)
        if les.max_diameter_mm > s.ligament_max_mm:
            return _finding(n, les, Region.OTHER, Kind.BONE, morph, 0.5, level=level)
        if les.volume_mm3 < _ligament_min_volume(les, surroundings, depth, s):
            return _finding(n, les, Region.OTHER, Kind.UNKNOWN, morph, 0.3 * size, level=level)
        if bone_frac > 0.5 and region_counts.get(best.label, 0) < s.ligament_min_zone_fraction * total:
            return _finding(n, les, Region.OTHER, other_kind, morph, other_conf * size, level=level)
        mostly_released = (les.volume_mm3 >= s.ligament_min_volume_mm3 and les.released_ligament_mm3
                           >= s.ligament_faint_exempt_released_fraction * les.volume_mm3)
        faint_margin = (s.ligament_faint_exempt_min_excess_hu
                        if les.volume_mm3 >= s.ligament_faint_exempt_mm3 or mostly_released
                        else s.ligament_min_excess_hu)
        if surroundings is not None and ctx.dense_hu is not None and les.mean_hu < ctx.dense_hu + faint_margin:
            contact, background = surroundings
            if contact >= s.bone_contact or background >= s.bone_background_hu:
                # Cortex halo and noise against the laminae, not a calcified ligament.
                return _finding(n, les, Region.OTHER, Kind.BONE, morph, 0.4 * size, level=level)
        if _laminar_face_strip(les, ctx.volume.spacing, s):
            # A flat arc on a lamina's upper or lower face: its cortex, not the ligament.
            return _finding(n, les, Region.OTHER, Kind.BONE, morph, 0.5 * size, level=level)
        if depth is not None and depth < s.ligament_min_canal_depth:
            # Not on the canal's posterior wall: the back of the S1 body or the
            # roof of the sacral canal where the zone reaches them, not a ligament.
            return _finding(n, les, Region.OTHER, Kind.BONE, morph, 0.5 * size, level=level)
        side = _midline_side(ctx, les, idx)
        return _finding(n, les, Region.LIGAMENTUM_FLAVUM, Kind.LIGAMENT, morph, conf, side, level, None, best.name)
    if best.region is Region.RENAL and best.segment == "ureter":
        bone_like = False
        if ctx.dense_hu is not None:
            contact, background = _surroundings(les, ctx.volume, ctx.dense_hu)
            bone_like = contact >= s.bone_contact or background >= s.bone_background_hu
        # Placed by distance only, beyond the end of the zone: the zone stops
        # short of the lower pelvis, where the phleboliths lie.
        beyond = region_counts.get(best.label, 0) == 0 and not _within_zone_levels(ctx, idx, best.label)
        vessel = None if bone_like else _nearby_vessel(ctx, idx, s.max_distance_mm)
        # Where the ureter crosses an artery a calculus must be a nodule, as in
        # the iliac zone (_ureteral_nodule): which of the two overlapping coarse
        # zones holds more of a 3 mm wall speck says nothing about what it is.
        at_crossing = vessel is not None and not _crossing_calculus(les, s, ctx.volume.spacing[0])
        # Just past the zone's end beside an iliac artery, a nodule is a stone
        # where the ureter crosses, as the iliac zone's rule calls it
        # (_ureteral_nodule) when that zone is the nearer one.
        beyond_stone = (beyond and vessel is not None and vessel[0].region is Region.ILIAC
                        and _ureteral_nodule(les, s, ctx.volume.spacing[0]))
        stone_shaped = _calculus_shaped(les, s, ctx.volume.spacing[0])
        if not bone_like and ((beyond and not beyond_stone) or not stone_shaped or at_crossing):
            # Not a calculus (or not in the zone), against an artery the coarse
            # ureter zone runs beside: wall plaque, placed as the distance rule
            # (or the rule for plaque beyond the wall's estimate) would have
            # placed it without the ureter zone.
            if vessel is not None:
                vconf = 0.6 * (1.0 - vessel[1] / (s.max_distance_mm + 1.0)) * size
            elif (other_kind is Kind.UNKNOWN and region_counts.get(best.label, 0) < 0.5 * total
                  and (vessel := _plaque_beyond_wall(ctx, les, idx, s)) is not None):
                # Mostly outside the ureter zone, grazing it: a plaque flake
                # beyond the artery zone's estimate, as it would be without it.
                vconf = 0.4 * (1.0 - vessel[1] / (s.wall_reach_mm + 1.0)) * size
            if vessel is not None:
                v = vessel[0]
                if v.region is Region.AORTA:
                    seg = _aorta_segment(ctx, float(idx[:, 0].mean()))
                    return _finding(n, les, Region.AORTA, Kind.ATHEROSCLEROTIC, morph, vconf, None, level, seg,
                                    v.name)
                return _finding(n, les, Region.ILIAC, Kind.ATHEROSCLEROTIC, morph, vconf, v.side, level,
                                v.segment, v.name)
            if beyond:
                return _finding(n, les, Region.OTHER, other_kind, morph, other_conf * size, level=level)
        if bone_like or not stone_shaped:
            # The ureter descends over the sacral ala and along the pelvic wall:
            # cortex released there by the bone opening is not a stone.
            kind = Kind.BONE if bone_like else other_kind
            return _finding(n, les, Region.OTHER, kind, morph, (0.5 if bone_like else other_conf) * size,
                            level=level)
    if best.region is Region.RENAL:
        seg = best.segment
        if seg == "collecting_system":
            kind, seg_out = Kind.STONE, "collecting system"
        elif seg == "ureter":
            kind, seg_out = Kind.URETERAL_STONE, "ureter"
        elif seg == "medulla":
            kind, seg_out = Kind.NEPHROCALCINOSIS, "medullary"
        else:
            kind, seg_out = Kind.NEPHROCALCINOSIS, "cortical"
        return _finding(n, les, Region.RENAL, kind, morph, conf, best.side, level, seg_out, best.name)
    return _finding(n, les, Region.OTHER, other_kind, morph, other_conf * size, level=level)

