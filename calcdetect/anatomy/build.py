"""Build the AnatomyMap of a CT volume: rules, optionally overridden by external masks.

The recipe:

1. spine (column, bodies, canal, discs, ligamentum flavum zone, levels) -- spine.py;
2. aorta and iliac arteries, tracked along the spine -- vessels.py;
3. kidneys with collecting system and medulla, and a coarse ureter zone down to
   the pelvic brim and on down the pelvic side wall -- kidneys.py;
4. structures given by TotalSegmentator masks (``external_dir``) replace the
   rule estimate of the same structures -- external.py;
5. everything painted into one label volume with the registry's label ids, in an
   order that lets the structures that carry a report region win over context
   but keeps bone bone: body < ureter zone < kidney < iliac arteries < vertebrae
   < disc < canal < ligamentum flavum zone < aorta (outside the vertebrae).

The rules run on a coarse work grid (about 2 x 2 x 2.5 mm, see grid.py) inside
the body's bounding box, and the labels are brought back to the CT grid by
nearest neighbour: a 512 x 512 x 400 CT takes seconds, not minutes, and the
AnatomyMap still overlays the CT voxel for voxel. Before the spine is found, a
contrast-filled aorta that passes the bone threshold is carved out of the bone
mask (vessels.find_lumen_chains).

The rules run on CPU (numpy / scipy / scikit-image); ``device`` is accepted for
the pipeline's uniform signature and for the CNN path.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import cc3d
import numpy as np
from scipy import ndimage as ndi

from calcdetect.anatomy.grid import (
    WORK_SPACING_MM,
    WorkGrid,
    block_majority,
    fine_label_boxes,
    fine_slice_label_counts,
    to_fine_labels,
    to_fine_levels,
    work_grid,
    work_volume,
)
from calcdetect.anatomy.external import levels_from_vertebrae, load_totalsegmentator, split_iliac
from calcdetect.anatomy.kidneys import Kidney, find_kidneys, pelvic_ureter_zone, subdivide_kidney, ureter_zone
from calcdetect.anatomy.regions import (
    STRUCTURES,
    VERTEBRA_LEVELS,
    Region,
    level_index,
    structure,
)
from calcdetect.anatomy.spine import Spine, body_centres_of, body_masks, find_spine
from calcdetect.anatomy.vessels import (
    LumenChains,
    Vessels,
    enhanced_aorta_mask,
    femoral_heads_beside,
    find_lumen_chains,
    find_vessels,
)
from calcdetect.device import Device
from calcdetect.types import AnatomyMap, Volume
from calcdetect.workers import resolve_workers, result_unless_queued

__all__ = ["build_anatomy", "body_on_work_grid", "BodyOnWorkGrid", "regions_in_fov", "compose_labels"]

_ILIACS = tuple(f"{seg}_iliac_artery_{side}" for seg in ("common", "external", "internal")
                for side in ("left", "right"))


def _label(name: str) -> int:
    return structure(name).label


def _has_structure(name: str) -> bool:
    try:
        structure(name)
    except KeyError:
        return False
    return True


def _body_front(spine: Spine, nk: int) -> np.ndarray:
    """Row of the vertebral body's anterior edge per slice (interpolated)."""
    front = np.full(nk, np.nan)
    for k in range(nk):
        rows = np.flatnonzero(spine.bodies[k].any(axis=1))
        if rows.size:
            front[k] = rows[0]
    good = np.isfinite(front)
    if not good.any():
        return spine.body_centre[:, 0] - 15.0
    return np.interp(np.arange(nk), np.flatnonzero(good), front[good])


def compose_labels(shape: tuple[int, int, int], masks: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Paint ``(structure name, bool mask)`` pairs in order; later ones win."""
    labels = np.zeros(shape, dtype=np.uint8)
    for name, m in masks:
        if m is not None:
            # copyto with where= paints without materialising index arrays
            np.copyto(labels, np.uint8(_label(name)), where=m)
    return labels


def _union(masks: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """OR of bool masks, one at a time (no stacked temporary)."""
    out = np.zeros(shape, dtype=bool)
    for m in masks:
        out |= m
    return out


def build_anatomy(volume: Volume, device: Device, *, bone_mask: np.ndarray | None = None,
                  external_dir: Path | None = None,
                  work_spacing_mm: tuple[float, float, float] = WORK_SPACING_MM,
                  workers: int | None = None, beside: Executor | None = None,
                  prepared: BodyOnWorkGrid | None = None) -> AnatomyMap:
    """Anatomy of a CT volume, labelled on the volume's own grid.

    The rules run on a coarser work grid (``work_spacing_mm``, block-averaged HU,
    majority bone; see :mod:`calcdetect.anatomy.grid`) and the labels are brought
    back to the CT grid by nearest neighbour, so the result overlays the CT
    voxel for voxel whatever grid the rules used.

    Parameters
    ----------
    volume : Volume
        CT in HU, canonical ``[k, j, i]``.
    device : Device
        Accepted for the pipeline's uniform signature; the rules run on CPU.
    bone_mask : ndarray of bool, optional
        Bone mask from the candidate stage (``Candidates.bone_mask``); default
        ``HU >= 200``.
    external_dir : Path, optional
        TotalSegmentator output folder; its structures replace the rule ones.
    workers : int, optional
        CPU threads for the grid passes, the vessel search and the kidneys
        (``calcdetect.workers``; None: every CPU this process may use). The
        labels do not depend on it.
    beside : Executor, optional
        Where the kidneys are searched, on one thread, beside the vessel search
        (the pipeline passes its background thread, busy at first with work
        that needs no anatomy). If it has not started them when the vessels are
        done, they are searched on the calling thread; if it has, they are
        waited for only once the layers that do not need them are made (not
        with ``external_dir``). Default: a thread of its own when ``workers`` >
        1. The labels do not depend on it.
    prepared : BodyOnWorkGrid, optional
        :func:`body_on_work_grid` of this volume and ``work_spacing_mm``, made
        ahead (it needs no bone mask: the pipeline makes it beside the bone
        segmentation); default: made here.

    Returns
    -------
    AnatomyMap
        Labels use the registry's Structure ids; ``slice_levels`` are ``None``
        where no level could be assigned (the notes say why).
    """
    if bone_mask is not None and bone_mask.shape != volume.shape:
        raise ValueError(f"bone_mask shape {bone_mask.shape} does not match the volume {volume.shape}")
    if prepared is None:
        prepared = body_on_work_grid(volume, work_spacing_mm, workers)
    elif prepared.grid != work_grid(volume.shape, volume.spacing, work_spacing_mm):
        raise ValueError(f"prepared work grid {prepared.grid} is not this volume's at {work_spacing_mm} mm; "
                         "make it with body_on_work_grid(volume, work_spacing_mm)")
    grid, coarse, body, box = prepared.grid, prepared.coarse, prepared.body, prepared.box
    bone = block_majority(bone_mask, grid, workers=workers) if bone_mask is not None else None
    am = _rule_anatomy(coarse.crop(box), None if bone is None else bone[box], external_dir, body[box], workers,
                       beside)
    coarse_labels = np.zeros(coarse.shape, dtype=am.labels.dtype)
    coarse_labels[box] = am.labels
    # The caller's thread, free again once the kidneys are joined, sums the
    # work-grid labels up while this one upsamples them.
    summaries = (beside.submit(_work_grid_summaries, coarse_labels, grid)
                 if beside is not None and not grid.identity else None)
    labels = coarse_labels if grid.identity else to_fine_labels(coarse_labels, grid, workers)
    anatomy = AnatomyMap(labels=labels, affine=volume.affine.copy(),
                         slice_levels=to_fine_levels(am.slice_levels, grid), source=am.source, notes=am.notes)
    if not grid.identity:
        # Not started there (that thread still busy): worked out here instead.
        done = result_unless_queued(summaries)
        boxes, counts = done if done is not None else _work_grid_summaries(coarse_labels, grid)
        anatomy.know_summaries(boxes, counts)
    return anatomy


@dataclass(frozen=True)
class BodyOnWorkGrid:
    """The CT on the anatomy's work grid, the body there and its in-plane box:
    what the rules need before the bone mask is known."""

    grid: WorkGrid
    coarse: Volume
    body: np.ndarray
    box: tuple[slice, slice, slice]


def body_on_work_grid(volume: Volume, work_spacing_mm: tuple[float, float, float] = WORK_SPACING_MM,
                      workers: int | None = None) -> BodyOnWorkGrid:
    """The first step of :func:`build_anatomy`, which needs no bone mask."""
    grid = work_grid(volume.shape, volume.spacing, work_spacing_mm)
    coarse = work_volume(volume, grid, workers)
    # Air around the patient holds no anatomy: the rules run in the body's box.
    body = body_masks(coarse.array)
    return BodyOnWorkGrid(grid, coarse, body, _body_box(body))


def _work_grid_summaries(coarse_labels: np.ndarray,
                         grid: WorkGrid) -> tuple[dict[int, tuple[slice, slice, slice]], np.ndarray]:
    """The per-structure boxes and per-slice counts of the CT-grid map, from the
    work-grid labels it is upsampled from.

    Classification and the report ask for both; worked out on the CT-sized map
    they cost ~0.6 s of whole-map passes at 512 x 512 x 400, on the work grid
    ~0.05 s, with the same values (the labels are block copies).
    """
    return fine_label_boxes(coarse_labels, grid), fine_slice_label_counts(coarse_labels, grid)


def _body_box(body: np.ndarray, margin: int = 3) -> tuple[slice, slice, slice]:
    """In-plane bounding box of the body over all slices, plus ``margin`` pixels."""
    _, nj, ni = body.shape
    rows = np.flatnonzero(body.any(axis=(0, 2)))
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    if rows.size == 0:
        return slice(None), slice(0, nj), slice(0, ni)
    return (slice(None), slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, nj)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, ni)))


def _rule_anatomy(volume: Volume, bone_mask: np.ndarray | None, external_dir: Path | None,
                  body: np.ndarray, workers: int | None = None, beside: Executor | None = None) -> AnatomyMap:
    """The rules (and external masks) on ``volume``'s grid -- the work grid, body box."""
    hu = volume.array
    spacing = tuple(float(v) for v in volume.spacing)
    nk = hu.shape[0]
    notes: list[str] = []
    source: dict[str, str] = {}

    bone = bone_mask if bone_mask is not None else hu >= 200.0
    # An iodine-filled aorta passes any bone threshold that keeps cancellous
    # bone; taken for bone it would join the column and hide from the vessel
    # search. Round homogeneous tubes at blood-pool HU are carved out first.
    lumen_chains = find_lumen_chains(hu, bone, spacing)
    lumen = lumen_chains.mask()
    if lumen.any():
        bone = bone & ~lumen
        notes.append("contrast-enhanced vessel lumen found inside the bone mask and removed from it")
    spine = find_spine(hu, spacing, bone=bone, body=body)
    notes.extend(spine.notes)
    if spine.found:
        source["spine"] = "rules"
        body_centre = spine.body_centre
        front = _body_front(spine, nk)
    else:
        body_centre = body_centres_of(body, min_px=0)
        front = body_centre[:, 0]
    vessels: Vessels | None = None
    kidneys: dict[str, Kidney] = {}
    kidneys_pending: Future[dict[str, Kidney]] | None = None
    if np.isfinite(body_centre).all():
        sacrum_top = max((g.k1 for g in spine.segments if g.sacrum), default=None)
        spine_mask = spine.column | spine.bodies
        k_range = _level_range(spine.slice_levels, "T11", "L4")
        # The kidneys need the vessels only to know whether the scan is enhanced,
        # and the header nearly always gives the same answer: with a spare CPU
        # they are searched beside the (GIL-bound) vessel search on the header's
        # answer, and searched again in the rare case the aorta's HU disagrees.
        header_contrast = bool(volume.info.contrast_agent)
        with _kidney_thread(beside, workers) as pool:
            # On the caller's thread the femoral heads (~0.25 s) queue ahead of
            # the kidneys: the vessel search needs them first, halfway through.
            heads = (femoral_heads_beside(beside, bone, spacing, body_centre, spine_mask, sacrum_top)
                     if beside is not None and resolve_workers(workers) == 1 else None)
            kidneys_early = (pool.submit(find_kidneys, hu, spacing, body_centre, spine_mask,
                                         contrast=header_contrast, k_range=k_range,
                                         workers=1 if beside is not None else workers)
                             if pool is not None else None)
            # an enhanced lumen's level tells its calcium from its blood
            pool_hu = float(np.median(hu[lumen])) if lumen.any() else None
            vessels = find_vessels(hu, spacing, body_centre, front, bone, spine_mask=spine_mask,
                                   sacrum_top_k=sacrum_top, workers=workers, blood_pool_hu=pool_hu,
                                   heads_beside=heads)
            notes.extend(vessels.notes)
            if lumen.any():
                vessels = _with_enhanced_aorta(vessels, lumen_chains, spacing, body_centre)
            vessels = _check_bifurcation(vessels, spine.slice_levels, notes)
            contrast = _contrast_suspected(volume, hu, vessels)
            # Not started yet (the caller's thread still busy): searched here
            # instead of waiting for it, and never run if the answer changed.
            if kidneys_early is not None and not kidneys_early.cancel() and contrast == header_contrast:
                # The caller's thread outlives this call: its kidneys are
                # joined only where first needed, after the work that does not
                # need them (the external masks merge into them at once).
                if beside is not None and external_dir is None:
                    kidneys_pending = kidneys_early
                else:
                    kidneys = kidneys_early.result()
            else:
                kidneys = find_kidneys(hu, spacing, body_centre, spine_mask, contrast=contrast,
                                       k_range=k_range, workers=workers)
        if vessels.aorta.any():
            source["aorta"] = "rules"
        if any(m.any() for m in vessels.iliac.values()):
            source["iliac"] = "rules"
        if kidneys:
            source["kidneys"] = "rules"

    slice_levels = spine.slice_levels
    vertebrae: list[tuple[str, np.ndarray]] = [
        (f"vertebrae_{lv}" if lv != "S1" else "sacrum", m) for lv, m in spine.vertebra_levels.items()
    ]
    unlabelled_column = spine.column & ~_union([m for _, m in vertebrae], hu.shape)
    canal, lf, discs = spine.canal, spine.lf_zone, spine.discs
    aorta = vessels.aorta if vessels is not None else np.zeros(hu.shape, bool)
    iliac = dict(vessels.iliac) if vessels is not None else {}

    if external_dir is not None:
        ext = load_totalsegmentator(Path(external_dir), volume)
        if "aorta" in ext:
            aorta = _grow(ext["aorta"], spacing, 3.0)
            source["aorta"] = "totalsegmentator"
        bif = int(np.flatnonzero(aorta.any(axis=(1, 2))).min()) if aorta.any() else None
        for side in ("left", "right"):
            if f"iliac_artery_{side}" in ext:
                c, e, i = split_iliac(_grow(ext[f"iliac_artery_{side}"], spacing, 2.5), spacing, bif)
                iliac[f"common_iliac_artery_{side}"] = c
                iliac[f"external_iliac_artery_{side}"] = e
                iliac[f"internal_iliac_artery_{side}"] = i
                source["iliac"] = "totalsegmentator"
            if f"kidney_{side}" in ext:
                kidneys[side] = subdivide_kidney(ext[f"kidney_{side}"], spacing, side, hu=hu)
                source["kidneys"] = "totalsegmentator"
        vert = {n: m for n, m in ext.items() if n.startswith("vertebrae_") or n == "sacrum"}
        if vert:
            vertebrae = [("sacrum" if n in ("sacrum", "vertebrae_S1") else n, m) for n, m in vert.items()]
            slice_levels = levels_from_vertebrae(vert, nk)
            unlabelled_column = np.zeros(hu.shape, bool)
            notes = [n for n in notes if "level" not in n and "transitional" not in n]
            source["spine"] = "totalsegmentator"
        if "spinal_cord" in ext:
            any_vert = np.any([m for _, m in vertebrae], axis=0) if vertebrae else bone
            canal = _grow(ext["spinal_cord"], spacing, 3.0) & ~any_vert
            lf = _lf_from_canal(canal, spacing)
            source["spinal_canal"] = "totalsegmentator"

    lung = _lung_fields(hu, body)
    lung_k = np.flatnonzero(lung.any(axis=(1, 2)))
    if lung_k.size:
        # The aortic bifurcation (~L4) lies >= ~100 mm below the lung bases
        # (~T10-T12; k grows superiorly): a tracked "bifurcation" nearer is the
        # aorta beside the IVC or the arch's branches.
        above_base = np.arange(nk) >= lung_k.min() - ILIAC_BELOW_LUNG_MM / spacing[0]
        dropped = [n for n, m in iliac.items() if m[above_base].any()]
        for n in dropped:
            iliac[n] = iliac[n] & ~above_base[:, None, None]
        if dropped:
            notes.append("iliac artery candidates within 100 mm of the lung bases were discarded")
    column = _union([m for _, m in vertebrae] + [spine.column, spine.bodies], hu.shape)
    # Bone outside the column -- ribs above the kidneys' lower poles, the pelvis
    # below -- keeps a bone label so that specks on its edge are not placed in
    # a neighbouring vessel zone by distance.
    other_bone = _other_bone(bone, column | canal, slice_levels, vessels, volume.voxel_volume_mm3)
    if kidneys_pending is not None:
        kidneys = kidneys_pending.result()
        if kidneys:
            source["kidneys"] = "rules"
    layers: list[tuple[str, np.ndarray]] = [("body", body), ("lung", lung)]
    if np.isfinite(body_centre).all():
        bif = vessels.bifurcation_k if vessels is not None else None
        if bif is None and aorta.any():
            bif = int(np.flatnonzero(aorta.any(axis=(1, 2))).min())
        # down to the pelvic brim: where the common iliac artery divides (the
        # internal iliac zone's top), else ~30 mm below the aortic bifurcation;
        # then down the pelvic side wall in front of the internal iliac artery
        brim = None if bif is None else max(bif - int(round(30.0 / spacing[0])), 0)
        for side, kid in kidneys.items():
            internal = iliac.get(f"internal_iliac_artery_{side}")
            pelvic = internal is not None and bool(internal.any())
            stop = int(np.flatnonzero(internal.any(axis=(1, 2))).max()) if pelvic else brim
            zone = ureter_zone(kid.collecting_system, side, body_centre, front, spacing, stop)
            if pelvic:
                zone |= pelvic_ureter_zone(internal, side, spacing)
            layers.append((f"ureter_{side}", zone))
    layers += _kidney_masks(kidneys)
    # Iliac zones below the spine layers: near the sacrum and L5 the tracked
    # tubes (and the coarse internal iliac zone) must not claim vertebral bone.
    layers += [(n, iliac[n]) for n in _ILIACS if n in iliac]
    if _has_structure("vertebrae_unlabelled"):
        layers.append(("vertebrae_unlabelled", unlabelled_column))
    layers += vertebrae
    layers += [("intervertebral_disc", discs), ("spinal_canal", canal), ("ligamentum_flavum_zone", lf)]
    layers += other_bone
    # The aortic wall margin may reach the anterior cortex: plaque outside the
    # body stays aortic, the body itself stays bone.
    layers.append(("aorta", aorta & ~column & ~discs))
    labels = compose_labels(hu.shape, layers)
    return AnatomyMap(labels=labels, affine=volume.affine.copy(), slice_levels=tuple(slice_levels),
                      source=source, notes=tuple(dict.fromkeys(notes)))


@contextmanager
def _kidney_thread(beside: Executor | None, workers: int | None) -> Iterator[Executor | None]:
    """Where the kidneys are searched beside the vessels: the caller's executor,
    else a thread of our own when there is a spare CPU, else nowhere (None)."""
    if beside is not None:
        yield beside
    elif resolve_workers(workers) > 1:
        with ThreadPoolExecutor(max_workers=1) as pool:
            yield pool
    else:
        yield None


def _other_bone(bone: np.ndarray, column: np.ndarray, levels: tuple[str | None, ...],
                vessels: Vessels | None, voxel_mm3: float) -> list[tuple[str, np.ndarray]]:
    """Bone that is not the vertebral column, as ``ribs`` (above) or ``hip_bones``
    (below the L5 body / the aortic bifurcation; ribs everywhere when neither
    is known)."""
    other = bone & ~column
    if not other.any():
        return []
    # Only large components are bone (>= 1.5 ml, as in calcdetect.bone): a
    # thresholded mask also holds stones and plaques, which must keep their
    # organ's label.
    other = cc3d.dust(other, threshold=int(np.ceil(1500.0 / voxel_mm3)), connectivity=26, in_place=True)
    nk = bone.shape[0]
    split = None
    l5 = [k for k, lv in enumerate(levels) if lv == "L5"]
    if l5:
        split = max(l5)
    elif vessels is not None and vessels.bifurcation_k is not None:
        split = vessels.bifurcation_k
    hips = np.zeros_like(other)
    if split is not None:
        hips[: min(split + 1, nk)] = other[: min(split + 1, nk)]
    return [("ribs", other & ~hips), ("hip_bones", hips)]


def _level_range(levels: tuple[str | None, ...], cranial: str, caudal: str) -> tuple[int, int] | None:
    """Slice range whose levels lie between ``cranial`` and ``caudal`` (inclusive);
    None when no slice has a level in it (search everywhere)."""
    lo, hi = VERTEBRA_LEVELS.index(cranial), VERTEBRA_LEVELS.index(caudal)
    ks = [k for k, lv in enumerate(levels) if lv is not None and lo <= level_index(lv) <= hi]
    return (min(ks), max(ks)) if ks else None


def _kidney_masks(kidneys: dict[str, Kidney]) -> list[tuple[str, np.ndarray]]:
    out = []
    for side, kid in kidneys.items():
        out += [(f"kidney_{side}", kid.cortex), (f"kidney_medulla_{side}", kid.medulla),
                (f"collecting_system_{side}", kid.collecting_system)]
    return out


def _grow(mask: np.ndarray, spacing: tuple[float, ...], mm: float) -> np.ndarray:
    """Dilate in-plane by ``mm`` (vessel wall around a lumen mask)."""
    sj, si = spacing[1], spacing[2]
    rj, ri = max(int(round(mm / sj)), 1), max(int(round(mm / si)), 1)
    y, x = np.mgrid[-rj : rj + 1, -ri : ri + 1]
    st = ((y * sj) ** 2 + (x * si) ** 2 <= mm * mm)[None]
    return ndi.binary_dilation(mask, structure=st)


def _lf_from_canal(canal: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    ring = _grow(canal, spacing, 5.0) & ~canal
    out = np.zeros_like(canal)
    for k in np.flatnonzero(canal.any(axis=(1, 2))):
        jc = ndi.center_of_mass(canal[k])[0]
        out[k] = ring[k]
        out[k, : int(np.ceil(jc))] = False
    return out


LUNG_HU = -500.0
ILIAC_BELOW_LUNG_MM = 100.0
LUNG_FRACTION = 0.20  # of the body cross-section: bowel gas rarely fills this much


def _lung_fields(hu: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Air-density tissue inside the body on slices where it fills >= 20 % of the body.

    Marks the chest (above the diaphragm domes) when no vertebral level is known:
    aorta there is thoracic, and there are no iliac arteries.
    """
    air = (hu < LUNG_HU) & body
    frac = air.sum(axis=(1, 2)) / np.maximum(body.sum(axis=(1, 2)), 1)
    return air & (frac >= LUNG_FRACTION)[:, None, None]


def _contrast_suspected(volume: Volume, hu: np.ndarray, vessels: Vessels) -> bool:
    """Contrast if the header says so or the aortic lumen is brighter than blood."""
    if volume.info.contrast_agent:
        return True
    tube = vessels.aorta_tube
    ks = np.flatnonzero(tube.present)
    if ks.size == 0:
        return False
    vals = [hu[k, int(round(tube.centre[k, 0])), int(round(tube.centre[k, 1]))] for k in ks]
    return float(np.median(vals)) > 120.0


def _with_enhanced_aorta(vessels: Vessels, lumen: LumenChains,
                         spacing: tuple[float, float, float], body_centre: np.ndarray) -> Vessels:
    """On a contrast scan, the aorta where the enhanced lumen chain runs.

    The circle tracker is built for an unenhanced lumen and can settle on a
    neighbour of a bright aorta (ct_abdomen_petct_siemens: in front of it);
    the lumen chain found in the bone mask is the aorta itself.
    """
    found = enhanced_aorta_mask(lumen, spacing, body_centre, vessels.aorta_tube)
    if found is None:
        return vessels
    mask, ks = found
    aorta = vessels.aorta.copy()
    aorta[ks] = mask[ks]
    return replace(vessels, aorta=aorta)


def _check_bifurcation(vessels: Vessels, levels: tuple[str | None, ...], notes: list[str]) -> Vessels:
    """Drop iliacs tracked below an aorta that ends above L2 (not a bifurcation)."""
    bif = vessels.bifurcation_k
    if bif is None:
        return vessels
    lv = levels[bif] if bif < len(levels) else None
    if lv is not None and level_index(lv) < VERTEBRA_LEVELS.index("L2"):
        notes.append("aorta lost above L2; iliac arteries not tracked")
        empty = {n: np.zeros_like(m) for n, m in vessels.iliac.items()}
        return Vessels(vessels.aorta, empty, vessels.aorta_tube, None, vessels.notes)
    return vessels


# Level ranges (cranial, caudal) that place a region in the field of view even
# when its structure was not found (a level-covered region reads "no calcification"
# only if its structure exists; these ranges are the fallback for the FOV sentence).
_FOV_LEVELS: dict[Region, tuple[str, str]] = {
    Region.AORTA: ("T12", "L4"),
    Region.ILIAC: ("L5", "S1"),
    Region.RENAL: ("T12", "L2"),
}


def regions_not_found(anatomy: AnatomyMap) -> frozenset[Region]:
    """Regions whose usual vertebral range is in view but none of whose structures was labelled.

    The report must not call such a region clear of calcium: it was never looked at.
    """
    present = set(anatomy.structure_boxes)
    found = {s.region for s in STRUCTURES if s.region is not None and s.label in present}
    idx = {level_index(lv) for lv in anatomy.slice_levels if lv}
    out = set()
    for region, (hi, lo) in _FOV_LEVELS.items():
        a, b = VERTEBRA_LEVELS.index(hi), VERTEBRA_LEVELS.index(lo)
        if region not in found and any(a <= i <= b for i in idx):
            out.add(region)
    return frozenset(out)


def regions_in_fov(anatomy: AnatomyMap) -> dict[Region, bool]:
    """Which report regions the scan covers.

    A region is in the field of view when a structure of it is labelled, or when
    the levels show that its usual vertebral range is covered (the aorta T12-L4,
    iliac arteries L5-S1, kidneys T12-L2). Other is always in view.
    """
    present = set(anatomy.structure_boxes)
    out: dict[Region, bool] = {r: False for r in Region}
    out[Region.OTHER] = True
    for s in STRUCTURES:
        if s.region is not None and s.label in present:
            out[s.region] = True
    seen = {lv for lv in anatomy.slice_levels if lv}
    idx = {level_index(lv) for lv in seen}
    for region, (hi, lo) in _FOV_LEVELS.items():
        a, b = VERTEBRA_LEVELS.index(hi), VERTEBRA_LEVELS.index(lo)
        if any(a <= i <= b for i in idx):
            out[region] = True
    return out

