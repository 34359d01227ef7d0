"""Calcium candidates: threshold, per-slice minimum area, 3-D components, exclusions.

Recipe
------
1. Threshold: ``settings.threshold_hu`` or the kVp-adapted value
   (:func:`calcium_threshold_hu`); with a contrast-filled blood pool (median HU
   inside ``blood_pool_mask`` above ``contrast_blood_hu``) it is raised to
   ``max(threshold, median + max(3 x robust SD, 100 HU))`` and a warning says so.
   The raise applies to the whole volume (one threshold): calcifications fainter
   than that are missed on contrast studies.
2. Metal (``HU >= metal_hu``) and a 3 mm margin round it (blooming, the worst
   streaks) are excluded, with a warning giving the slice range.
3. Bone (:func:`calcdetect.bone.segment_bone` at the threshold in use, or an
   external mask) grown by a cortical margin of 1 mm (at least one pixel) is
   excluded. A calcification touching bone keeps the part outside the margin,
   so it survives as a (slightly smaller) candidate; one fused broadly to the
   cortex is part of the bone mask unless ``protect_mask`` (e.g. the aortic wall
   from the anatomy stage) covers it. The blood pool is never bone. A component
   touching the margin must reach at least one more pixel out, or it is taken
   for the bone's partial-volume halo / surface noise and dropped. In the
   ligamentum-flavum zone, calcified ligament fused to the laminae is released
   from the bone first (see ``ligament_mask`` in :func:`find_candidates`).
4. Agatston minimum area: in every axial slice, 8-connected regions smaller than
   ``min_area_mm2`` (1 mm2) are dropped before the 3-D labelling.
5. 26-connected components with connected-components-3d.
6. Noise gate: a component whose peak stays below soft tissue (40 HU) plus
   ``min_peak_snr`` (6) noise SDs of this scan (:func:`estimate_noise_hu`) is
   dropped. At 130 HU and 25-40 HU of noise the threshold is only 2-4 SD above
   soft tissue, and a thin-slice scan has tens of thousands of one-voxel noise
   specks above it; on phantoms across 80-140 kVp, 10-40 HU and 0.625-3 mm the
   pure-noise specks peaked below 5.6 SD while every calcification of >= 3 mm
   peaked above 6.6 SD. The gate never bites on quiet scans (it only acts when
   40 HU + 6 SD exceeds the threshold, i.e. noise above ~15 HU at 120 kVp).
   It changes which components exist, so a noisy scan's Agatston total leaves
   out sub-threshold-significance specks; ``min_peak_snr: 0`` turns it off.
7. :func:`measure_components` on what is left.

Device: on ``cuda`` the thresholding, morphology and per-component sums run in
torch on the GPU; connected components always run on the CPU (no GPU
path), after copying the boolean mask back (1 byte per voxel). They are found on
the mask's voxels alone (:func:`~calcdetect.candidates._voxel.label_sparse`,
numbered as connected-components-3d numbers them): the mask is ~10^-4 of the
volume, and a dense labelling wrote a 400 MB label volume at 512 x 512 x 400.
Both paths give identical labels (tests run the torch path on CPU).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from calcdetect.candidates._voxel import ball_footprint, bbox_of, dilate, label_sparse, sparse_zeros
from calcdetect.candidates.measure import _measure
from calcdetect.candidates.noise import estimate_noise_hu
from calcdetect.candidates.split import split_fused_components
from calcdetect.candidates.threshold import calcium_threshold_hu, mass_calibration_mg_per_hu_ml
from calcdetect.device import Device
from calcdetect.types import Lesion, Volume
from calcdetect.workers import resolve_workers

__all__ = ["CandidateSettings", "Candidates", "find_candidates"]

METAL_MARGIN_MM = 3.0
BONE_MARGIN_MM = 1.0
LIGAMENT_MIN_REACH_MM = 3.0
# Along z the reach counts only this far: at thin slices a calcification in an
# interlaminar gap lies within 3 mm of the laminae above and below it.
LIGAMENT_MIN_REACH_Z_MM = 2.0
# Below one pixel's diagonal at 0.94 mm pixels (1.33 mm), above its side: a
# released rim one pixel deep (the lamina's partial-volume edge) is dropped, a
# calcification two pixels deep on a lamina whose edge runs obliquely is kept.
# At 1.5 mm both misses of this kind on dev seeds 300-323 (3 mm slices, true
# ligament calcifications of 4.4-5.1 mm) were dropped; 1.2 mm added no false
# positive on dev seeds 1300-1335, 300-323 (3 mm), 40-71.
RELEASED_LIGAMENT_MIN_REACH_MM = 1.2
RELEASED_LIGAMENT_MIN_MM3 = 10.0
CONTRAST_MIN_RAISE_HU = 100.0
SOFT_TISSUE_HU = 40.0  # reference for the noise gate: muscle, unenhanced organs


@dataclass(frozen=True)
class CandidateSettings:
    """Settings of :func:`find_candidates`.

    Attributes
    ----------
    threshold_hu : float or None
        Calcium threshold; ``None`` derives it from the kVp (130 HU at 120 kVp).
    min_area_mm2 : float
        Agatston minimum area of a 2-D region in one axial slice.
    connectivity : {6, 18, 26}
        3-D connectivity of components.
    mass_calibration_mg_per_hu_ml : float or None
        Calcium mass calibration ``c`` (mg HA per HU per mL); ``None`` uses the
        kVp default of :func:`mass_calibration_mg_per_hu_ml`.
    exclude_bone : bool
        Segment the skeleton and exclude it.
    metal_hu : float
        Voxels at or above this are metal.
    contrast_blood_hu : float
        Blood-pool median above which the study is treated as contrast-enhanced.
    min_peak_snr : float
        Noise gate: a component's peak must reach soft tissue (40 HU) plus this
        many noise SDs; 0 disables it.
    """

    threshold_hu: float | None = None
    min_area_mm2: float = 1.0
    connectivity: int = 26
    mass_calibration_mg_per_hu_ml: float | None = None
    exclude_bone: bool = True
    metal_hu: float = 3000.0
    contrast_blood_hu: float = 100.0
    min_peak_snr: float = 6.0

    def __post_init__(self) -> None:
        if self.connectivity not in (6, 18, 26):
            raise ValueError(f"connectivity must be 6, 18 or 26, got {self.connectivity}")
        if self.min_peak_snr < 0:
            raise ValueError(f"min_peak_snr must be >= 0 noise SDs, got {self.min_peak_snr}")
        if self.min_area_mm2 < 0:
            raise ValueError(f"min_area_mm2 must be >= 0, got {self.min_area_mm2}")
        if self.mass_calibration_mg_per_hu_ml is not None and self.mass_calibration_mg_per_hu_ml <= 0:
            raise ValueError("mass_calibration_mg_per_hu_ml must be > 0 mg per (HU x mL), "
                             f"got {self.mass_calibration_mg_per_hu_ml}")


@dataclass(frozen=True)
class Candidates:
    """Output of :func:`find_candidates`.

    ``labels`` (int32 ``[k, j, i]`` on the Volume grid) holds ``Lesion.label`` ids;
    ``bone_adjacent`` the ids of lesions that touch the bone margin (useful to
    tell a plaque on bone from a bony tip stripped by the bone opening).
    """

    lesions: tuple[Lesion, ...]
    labels: np.ndarray
    bone_mask: np.ndarray
    metal_mask: np.ndarray
    threshold_hu: float
    blood_pool_hu: float | None
    warnings: tuple[str, ...]
    bone_adjacent: frozenset[int] = field(default_factory=frozenset)
    noise_sd_hu: float | None = None
    noise_gate_hu: float | None = None  # peak HU a component had to reach; None: gate off
    # The bone exclusion margin (``bone_mask`` dilated, before any zone edits),
    # kept only with ``keep_bone_margin=True`` for a later pass's reuse.
    bone_margin: np.ndarray | None = field(default=None, repr=False, compare=False)


def find_candidates(
    volume: Volume,
    device: Device,
    settings: CandidateSettings = CandidateSettings(),
    *,
    blood_pool_mask: np.ndarray | None = None,
    bone_mask: np.ndarray | None = None,
    protect_mask: np.ndarray | None = None,
    ligament_mask: np.ndarray | None = None,
    noise_sd_hu: float | None = None,
    workers: int | None = None,
    measured: Candidates | None = None,
    keep_bone_margin: bool = False,
    edit_in_place: bool = False,
    _torch_device: Any = None,
) -> Candidates:
    """Find and measure calcium-dense components of a CT volume.

    Parameters
    ----------
    volume : Volume
    device : Device
        ``cpu``: numpy / scipy / cc3d. ``cuda``: torch for the voxel work.
    settings : CandidateSettings
    blood_pool_mask : numpy.ndarray, optional
        Boolean aortic-lumen mask; its median HU detects contrast.
    bone_mask : numpy.ndarray, optional
        An external skeleton mask, used instead of :func:`segment_bone`
        (ignored when ``settings.exclude_bone`` is False).
    protect_mask : numpy.ndarray, optional
        Zones where the bone's halo margin is not excluded (the aortic wall, the
        ligamentum-flavum zone from the anatomy stage), so calcium lying on the
        cortex survives. Bone itself stays excluded everywhere: a calcification
        fused broadly into the bone mask is lost (a known limit). The blood pool
        is always removed from the bone mask (its contrast is not marrow).
    ligament_mask : numpy.ndarray, optional
        The ligamentum-flavum zone: protected like ``protect_mask``, but a
        component there that touches bone must reach at least
        ``LIGAMENT_MIN_REACH_MM`` (3 mm) from it in-plane, or
        ``LIGAMENT_MIN_REACH_Z_MM`` (2 mm) along z. The canal-facing edge of a
        lamina, shaved off by the bone opening, is a thin dense arc 1-2.5 mm
        deep in this zone; on phantoms it made ~20 false "ligament
        calcifications" per scan. Calcified ligament fused to a lamina is first
        taken back from the bone mask on interlaminar slices
        (:func:`calcdetect.bone.release_ligament_calcification`); a component
        with at least ``RELEASED_LIGAMENT_MIN_MM3`` of such voxels need only
        reach ``RELEASED_LIGAMENT_MIN_REACH_MM`` (in-plane) from the remaining
        bone, since it lies between the lumen and a lamina ~3.5 mm out. On
        laminar slices nothing is released: calcium there that is thinner than
        3 mm is lost (a known limit).
    noise_sd_hu : float, optional
        The scan's noise SD from :func:`estimate_noise_hu`, when the caller has
        already measured it (the pipeline does, while the anatomy is built);
        ``None`` measures it here.
    workers : int or None
        CPU threads for bone segmentation and measurement (the result does not
        depend on it); ``None`` uses every available CPU.
    measured : Candidates, optional
        An earlier result on the same volume with the same settings (the
        pipeline finds candidates without the anatomy while the anatomy is
        built): a component with exactly the voxels of one of its lesions takes
        that lesion's measurements instead of being measured again. Ignored if
        its threshold differs (a contrast study). When it was found with
        ``keep_bone_margin`` on the same ``bone_mask`` object, its bone margin is
        reused too, recomputed only around the bone voxels this call removes
        (blood pool, released ligament). The result does not depend on it.
    keep_bone_margin : bool
        Keep the bone margin in ``Candidates.bone_margin`` (100 MB at 512 x 512
        x 400) for such a later call.
    edit_in_place : bool
        The caller gives ``bone_mask`` and ``measured.bone_margin`` up: they are
        edited in place (the blood pool and released ligament taken out of the
        bone, the protected zones out of the margin) instead of copied first.
        The pipeline's final pass, the last user of both: two CT-sized copies
        fewer on the critical path (~0.1 s, 200 MB at 512 x 512 x 400).
    _torch_device : torch.device, optional
        Force the torch path on this device (CPU parity tests).

    Returns
    -------
    Candidates

    Examples
    --------
    >>> from calcdetect.types import AcquisitionInfo
    >>> arr = np.zeros((8, 16, 16), np.float32); arr[3:5, 6:9, 6:9] = 500
    >>> vol = Volume(arr, (1.0, 1.0, 1.0), np.eye(4), AcquisitionInfo("CT", kvp=120))
    >>> c = find_candidates(vol, Device("cpu"))
    >>> [l.voxel_count for l in c.lesions]
    [18]
    """
    from calcdetect.bone import (  # late: bone imports this package
        BoneSettings,
        release_ligament_calcification,
        segment_bone,
    )

    arr = volume.array
    spacing = tuple(float(s) for s in volume.spacing)
    warnings: list[str] = []
    workers = resolve_workers(workers)
    tdev = _torch_device if _torch_device is not None else (
        _torch_dev(device) if device.is_cuda else None)
    for name, m in (("blood_pool_mask", blood_pool_mask), ("bone_mask", bone_mask),
                    ("protect_mask", protect_mask), ("ligament_mask", ligament_mask)):
        if m is not None and m.shape != volume.shape:
            raise ValueError(f"{name} shape {m.shape} differs from the volume's {volume.shape}; "
                             "masks must be on the Volume grid")

    # The blood pool's voxels, found once (a pass over a CT-sized mask): its
    # median HU and its overlap with the bone both read them.
    blood_at = np.flatnonzero(blood_pool_mask) if blood_pool_mask is not None else None
    thr, blood_hu, notes = _threshold(volume, settings, blood_pool_mask, blood_at)
    warnings.extend(notes)

    def calcium_and_metal() -> tuple[np.ndarray, np.ndarray, str | None]:
        """The calcium mask, the metal exclusion and its warning (no anatomy needed)."""
        if tdev is not None:
            import torch

            arr_t = torch.as_tensor(np.ascontiguousarray(arr), device=tdev)
            calc = (arr_t >= thr).cpu().numpy()
            metal = (arr_t >= settings.metal_hu).cpu().numpy()
        else:
            calc = arr >= thr
            # Most scans hold no metal: one maximum over the HU says so without
            # a CT-sized mask (a NaN maximum proves nothing: the mask decides).
            top = arr.max() if arr.size else -np.inf
            metal = (arr >= settings.metal_hu) if (np.isnan(top) or top >= settings.metal_hu) else None
        # np.zeros, not zeros_like: calloc'd pages cost no memory until written,
        # and most scans have no metal (these masks are 100 MB at 512 x 512 x 400).
        if metal is None or not metal.any():
            return calc, np.zeros(arr.shape, dtype=bool), None
        return calc, _dilate_on(metal, spacing, METAL_MARGIN_MM, tdev), _metal_warning(metal, settings.metal_hu)

    removed: list[np.ndarray] = []  # flat indices taken out of the given bone mask

    def bone_to_exclude() -> tuple[np.ndarray, np.ndarray | None]:
        """The bone mask (less the blood pool and released ligament calcium) and
        the released voxels."""
        if not settings.exclude_bone:
            bone = np.zeros(volume.shape, dtype=bool)
        elif bone_mask is not None:
            bone = np.asarray(bone_mask, dtype=bool)  # never written in place: no copy
        else:
            # Bone is segmented at the calcium threshold in use (never below the
            # default): kVp-consistent, and contrast-filled vessels are not bone.
            bone_settings = BoneSettings(bone_hu=max(BoneSettings().bone_hu, thr))
            bone = segment_bone(arr, spacing, device, bone_settings, exclude_mask=blood_pool_mask,
                                workers=workers, _torch_device=tdev)
        # The caller's mask is never written; one made here, or a copy made by
        # the first edit, is edited in place (a CT-sized copy costs ~0.1 s).
        owned = edit_in_place or bone is not bone_mask
        if blood_pool_mask is not None:
            at = _overlap_at(bone, blood_pool_mask, blood_at)
            removed.append(at)
            edited = _without(bone, blood_pool_mask, in_place=owned, at=at)
            owned, bone = owned or edited is not bone, edited
        released = None
        if ligament_mask is not None and bone.any():
            # Calcified ligamentum flavum fused to the laminae is part of the bone
            # mask; on interlaminar slices the anatomy tells it from the lamina.
            released = release_ligament_calcification(bone, arr, np.asarray(ligament_mask, dtype=bool),
                                                      spacing, thr)
            at = _overlap_at(bone, released)
            removed.append(at)
            bone = _without(bone, released, in_place=owned, at=at)
        return bone, released

    # The two are independent: on CPU with a spare thread they run side by side.
    if workers > 1 and tdev is None:
        with ThreadPoolExecutor(max_workers=1) as beside:
            pending = beside.submit(calcium_and_metal)
            bone, released = bone_to_exclude()
            calc, metal_excl, metal_note = pending.result()
    else:
        calc, metal_excl, metal_note = calcium_and_metal()
        bone, released = bone_to_exclude()
    has_metal = metal_note is not None
    if metal_note is not None:
        warnings.append(metal_note)
    # The margin is at least one pixel in-plane: the cortex's partial-volume halo
    # is about a pixel wide whatever the pixel size.
    margin = max(BONE_MARGIN_MM, spacing[1], spacing[2])
    earlier = measured.bone_margin if measured is not None else None
    if (earlier is not None and tdev is None and bone_mask is not None and settings.exclude_bone
            and measured.bone_mask is bone_mask):
        # The early pass dilated this very mask: only the voxels removed since
        # (a few hundred) change the margin, near them (~0.1 s saved on the
        # critical path after the anatomy at 512 x 512 x 400).
        bone_excl = _margin_without(earlier, bone, removed, spacing, margin, in_place=edit_in_place)
    else:
        bone_excl = _dilate_on(bone, spacing, margin, tdev) if bone.any() else bone
    kept_margin = None
    if keep_bone_margin and bone_excl is not bone:
        kept_margin = bone_excl.copy() if (protect_mask is not None or ligament_mask is not None) else bone_excl
    # In protected zones (vessel walls, ligamentum flavum) only the bone itself
    # is excluded, not its halo margin: a plaque lying on the cortex survives.
    # The bone is never released there: anatomy estimates overlap the laminae
    # and vertebral bodies, and releasing them turned bone into "lesions".
    # Edited at the zones' voxels only (a few % of the volume): no volume-sized pass.
    for zone in (protect_mask, ligament_mask):
        if zone is None:
            continue
        at = np.flatnonzero(zone)
        at = at[bone_excl.reshape(-1)[at] & ~bone.reshape(-1)[at]]
        bone_excl[np.unravel_index(at, bone_excl.shape)] = False

    # calc & ~x in place, without a volume-sized ~x: for booleans a > b is a & ~b.
    if has_metal:
        np.greater(calc, metal_excl, out=calc)
    np.greater(calc, bone_excl, out=calc)
    idx, reg = _drop_small_slice_regions(calc, spacing, settings.min_area_mm2)

    # Components of the (sparse) kept voxels; the label volume is written only
    # there, and its untouched pages cost no memory.
    ids, n = label_sparse(calc, idx, settings.connectivity)
    labels = sparse_zeros(calc.shape, np.int32)
    labels[np.unravel_index(idx, labels.shape)] = ids
    adjacent: frozenset[int] = frozenset()
    if n and bone.any():
        adjacent = _labels_touching(labels, idx, bone_excl)
        if adjacent:
            # The bone's partial-volume halo and noise speckle on its surface:
            # a component touching the bone margin must reach at least one more
            # pixel out from it, or it is dropped (a plaque on the bone does).
            # Read only at the candidates' voxels: no volume-sized dilation.
            outer = _dilated_at(bone_excl, idx, spacing, max(spacing[1], spacing[2]))
            if released is not None:
                # Calcified ligament taken back from the bone lies against it by
                # construction; _drop_lamina_edges judges it by its reach instead.
                outer &= ~released.reshape(-1)[idx]
            labels, n, idx, reg, adjacent = _drop_bone_rim(labels, idx, reg, adjacent, outer)
        if adjacent and ligament_mask is not None:
            labels, n, idx, reg, adjacent = _drop_lamina_edges(labels, idx, reg, adjacent, bone,
                                                               ligament_mask, spacing, tdev,
                                                               released=released)
    noise_sd = None
    if settings.min_peak_snr > 0:
        noise_sd = noise_sd_hu if noise_sd_hu is not None else estimate_noise_hu(arr)
    gate = None
    if n and noise_sd is not None and SOFT_TISSUE_HU + settings.min_peak_snr * noise_sd > thr:
        gate = SOFT_TISSUE_HU + settings.min_peak_snr * noise_sd
        flat = labels.reshape(-1)
        lab = flat[idx].astype(np.int64)
        significant = np.zeros(n + 1, dtype=bool)
        significant[lab[arr.reshape(-1)[idx] >= gate]] = True
        labels, n, idx, reg, adjacent = _keep_labels(labels, idx, reg, adjacent, significant)
    # Calcifications joined by their blurred edges: split at an HU saddle (split.py).
    labels, n, idx, reg, adjacent = split_fused_components(labels, idx, reg, adjacent, arr, spacing, thr)
    cal = settings.mass_calibration_mg_per_hu_ml
    if cal is None:
        cal = mass_calibration_mg_per_hu_ml(volume.info.kvp)
    # The per-slice regions of the minimum-area rule are the Agatston regions.
    known = measured.lesions if measured is not None and measured.threshold_hu == thr else ()
    lesions = _measure(volume, labels, idx, None, reg, thr, cal, tdev, workers, known) if n else []
    if released is not None and lesions:
        lesions = _with_released_ligament(lesions, labels, idx, released, spacing)

    return Candidates(
        lesions=tuple(lesions),
        labels=labels,
        bone_mask=bone,
        metal_mask=metal_excl,
        threshold_hu=thr,
        blood_pool_hu=blood_hu,
        warnings=tuple(warnings),
        bone_adjacent=adjacent,
        noise_sd_hu=noise_sd,
        noise_gate_hu=gate,
        bone_margin=kept_margin,
    )


def _overlap_at(mask: np.ndarray, removed: np.ndarray, removed_at: np.ndarray | None = None) -> np.ndarray:
    """Flat indices (ascending) where both ``mask`` and a sparse ``removed`` are set
    (``removed_at``: ``np.flatnonzero(removed)``, when the caller has it)."""
    at = np.flatnonzero(removed) if removed_at is None else removed_at
    return at[np.asarray(mask, dtype=bool).reshape(-1)[at]]


def _without(mask: np.ndarray, removed: np.ndarray, *, in_place: bool = False,
             at: np.ndarray | None = None) -> np.ndarray:
    """``mask & ~removed`` for a sparse ``removed``: ``mask`` itself when they do
    not overlap (the usual case), else a copy edited at the overlap (``mask``
    itself, edited, with ``in_place`` and a bool ``mask``). ``at``: that overlap
    (:func:`_overlap_at`), when the caller has it already."""
    if at is None:
        at = _overlap_at(mask, removed)
    if at.size == 0:
        return np.asarray(mask, dtype=bool)
    if in_place and mask.dtype == bool:
        out = mask
    else:
        out = np.array(mask, dtype=bool)  # a copy: the caller's mask is never written
    out[np.unravel_index(at, out.shape)] = False
    return out


def _margin_without(margin: np.ndarray, bone: np.ndarray, removed: list[np.ndarray],
                    spacing: tuple[float, float, float], radius_mm: float, *,
                    in_place: bool = False) -> np.ndarray:
    """``dilate(bone, spacing, radius_mm)`` from ``margin``, the dilation of a mask
    that also held the voxels ``removed`` (groups of flat indices).

    Only voxels within the footprint of a removed voxel can change: per group,
    its bounding box grown by the footprint's half extent is recomputed from
    ``bone`` in a box grown by twice that (every footprint neighbour of the
    inner box lies in it, or outside the volume, background for both). The
    result is a new array, ``margin`` itself (edited) with ``in_place``.
    """
    out = margin if in_place else margin.copy()
    half = np.array(ball_footprint(spacing, radius_mm).shape) // 2
    for at in removed:
        if at.size == 0:
            continue
        coords = np.unravel_index(at, bone.shape)
        lo = np.array([int(c.min()) for c in coords])
        hi = np.array([int(c.max()) + 1 for c in coords])
        n = np.array(bone.shape)
        inner = tuple(slice(int(a), int(b)) for a, b in zip(np.maximum(lo - half, 0), np.minimum(hi + half, n)))
        outer_lo = np.maximum(lo - 2 * half, 0)
        outer = tuple(slice(int(a), int(b)) for a, b in zip(outer_lo, np.minimum(hi + 2 * half, n)))
        local = tuple(slice(s.start - int(o), s.stop - int(o)) for s, o in zip(inner, outer_lo))
        out[inner] = dilate(bone[outer], spacing, radius_mm)[local]
    return out


def _threshold(volume: Volume, settings: CandidateSettings, blood_pool_mask: np.ndarray | None,
               blood_at: np.ndarray | None = None) -> tuple[float, float | None, list[str]]:
    """Calcium threshold (kVp, then contrast), blood-pool median HU and warnings
    (``blood_at``: ``np.flatnonzero(blood_pool_mask)``, when the caller has it)."""
    notes: list[str] = []
    if settings.threshold_hu is not None:
        thr = float(settings.threshold_hu)
    else:
        thr = calcium_threshold_hu(volume.info.kvp)
        if volume.info.kvp is None:
            notes.append("kVp unknown: the 120 kVp calcium threshold of 130 HU was assumed.")
    blood_hu = None
    if blood_pool_mask is not None and blood_at is None:
        blood_at = np.flatnonzero(blood_pool_mask)
    if blood_pool_mask is not None and blood_at.size:
        # The pool's HU in raster order, as boolean indexing reads them (no mask copy).
        vals = volume.array.reshape(-1)[blood_at].astype(np.float64)
        blood_hu = float(np.median(vals))
        if blood_hu > settings.contrast_blood_hu:
            sd = 1.4826 * float(np.median(np.abs(vals - blood_hu)))  # robust SD (MAD)
            raised = max(thr, blood_hu + max(3.0 * sd, CONTRAST_MIN_RAISE_HU))
            notes.append(
                f"Contrast-enhanced blood pool (median {blood_hu:.0f} HU): calcium threshold "
                f"raised from {thr:.0f} to {raised:.0f} HU; fainter calcifications may be missed "
                "and the Agatston score is not comparable with non-contrast scans."
            )
            thr = raised
    elif volume.info.contrast_agent:
        notes.append("The DICOM header reports contrast but no blood-pool mask was given; "
                     "the calcium threshold was not adapted.")
    return thr, blood_hu, notes


def _metal_warning(metal: np.ndarray, metal_hu: float) -> str:
    ks = np.flatnonzero(metal.any(axis=(1, 2)))
    return (f"Metal (>= {metal_hu:.0f} HU) in slices {ks[0]}-{ks[-1]} (k index): excluded "
            f"with a {METAL_MARGIN_MM:.0f} mm margin; streak artefact may still hide or "
            "mimic calcification nearby.")


def _torch_dev(device: Device) -> Any:
    import torch

    return torch.device(device.torch)


def _dilate_on(mask: np.ndarray, spacing: tuple[float, float, float], r: float, tdev: Any) -> np.ndarray:
    if tdev is None:
        return dilate(mask, spacing, r)
    import torch

    return dilate(torch.as_tensor(mask, device=tdev), spacing, r).cpu().numpy()


def _drop_small_slice_regions(mask: np.ndarray, spacing: tuple[float, float, float],
                              min_area_mm2: float) -> tuple[np.ndarray, np.ndarray]:
    """Agatston minimum area, in place: drop 2-D regions below ``min_area_mm2``.

    Returns the flat indices of the voxels kept (ascending) and their 2-D region
    ids (8-connected in their slice, numbered in raster order across the whole
    volume). The regions are found on the mask's voxels alone (a calcium mask
    is ~10^-4 of the volume): no volume-sized label map is made.
    """
    idx = np.flatnonzero(mask)
    reg, n = label_sparse(mask, idx, connectivity=8)
    # Tolerance: a 1 mm2 voxel must pass a 1 mm2 minimum despite rounding.
    small = (np.bincount(reg, minlength=n + 1) * (spacing[1] * spacing[2]) < min_area_mm2 - 1e-9)[reg]
    mask[np.unravel_index(idx[small], mask.shape)] = False
    return idx[~small], reg[~small]


def _drop_bone_rim(
    labels: np.ndarray,
    idx: np.ndarray,
    reg: np.ndarray,
    adjacent: frozenset[int],
    outer_at_idx: np.ndarray,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, frozenset[int]]:
    """Drop bone-adjacent components lying wholly inside the outer bone margin
    (``outer_at_idx``: that margin at the voxels ``idx``); renumber 1..n."""
    lab = labels.reshape(-1)[idx].astype(np.int64)
    n_old = int(lab.max())
    beyond = np.bincount(lab, weights=~outer_at_idx, minlength=n_old + 1)
    keep = np.ones(n_old + 1, dtype=bool)
    keep[[a for a in adjacent if beyond[a] == 0]] = False
    return _keep_labels(labels, idx, reg, adjacent, keep)


def _dilated_at(mask: np.ndarray, idx: np.ndarray, spacing: tuple[float, float, float],
                radius_mm: float) -> np.ndarray:
    """``dilate(mask, spacing, radius_mm)`` read at the flat indices ``idx`` only.

    Same ball footprint as :func:`calcdetect.candidates._voxel.dilate` (outside
    the volume counts as background), one gather per footprint offset.
    """
    fp = ball_footprint(spacing, radius_mm)
    centre = np.array(fp.shape) // 2
    coords = np.unravel_index(idx, mask.shape)
    hit = np.zeros(idx.size, dtype=bool)
    for off in np.argwhere(fp) - centre:
        moved = [c + int(d) for c, d in zip(coords, off)]
        ok = np.ones(idx.size, dtype=bool)
        for ax, m in enumerate(moved):
            ok &= (m >= 0) & (m < mask.shape[ax])
        hit[ok] |= mask[tuple(m[ok] for m in moved)]
    return hit


def _dilated_in_box_at(mask: np.ndarray, box: tuple[slice, ...], flat_idx: np.ndarray,
                       spacing: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """``dilate(mask[box], spacing, radius_mm)`` read at the volume's flat indices
    ``flat_idx``; False outside ``box`` (where that crop's dilation is not defined)."""
    coords = np.unravel_index(flat_idx, mask.shape)
    inside = np.ones(flat_idx.size, dtype=bool)
    for c, b in zip(coords, box):
        inside &= (c >= b.start) & (c < b.stop)
    sub = mask[box]
    local = np.ravel_multi_index(tuple(c[inside] - b.start for c, b in zip(coords, box)), sub.shape)
    out = np.zeros(flat_idx.size, dtype=bool)
    out[inside] = _dilated_at(sub, local, spacing, radius_mm)
    return out


def _drop_lamina_edges(
    labels: np.ndarray, idx: np.ndarray, reg: np.ndarray, adjacent: frozenset[int],
    bone: np.ndarray, ligament: np.ndarray, spacing: tuple[float, float, float], tdev: Any,
    released: np.ndarray | None = None,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, frozenset[int]]:
    """Drop bone-adjacent components mostly in the ligament zone that stay within
    ``LIGAMENT_MIN_REACH_MM`` of bone (see ``find_candidates``).

    A component with at least ``RELEASED_LIGAMENT_MIN_MM3`` of ``released``
    voxels (calcified ligament on an interlaminar slice: taken back from the
    bone mask, or lying clear of it in the same place; see
    :func:`calcdetect.bone.release_ligament_calcification`) need only reach
    ``RELEASED_LIGAMENT_MIN_REACH_MM`` in-plane from the remaining bone: it lies
    between the lumen and a lamina ~3.5 mm out, so it cannot reach 3 mm from it.
    """
    pad = tuple(int(np.ceil(LIGAMENT_MIN_REACH_MM / s)) + 1 for s in spacing)
    bb = bbox_of(ligament, pad)  # type: ignore[arg-type]
    if bb is None:
        return labels, int(labels.reshape(-1)[idx].max(initial=0)), idx, reg, adjacent
    lab = labels.reshape(-1)[idx].astype(np.int64)
    n_old = int(lab.max(initial=0))
    in_zone = np.bincount(lab, weights=ligament.reshape(-1)[idx], minlength=n_old + 1)
    size = np.bincount(lab, minlength=n_old + 1)
    with_released_core = np.zeros(n_old + 1, dtype=bool)
    if released is not None:
        # A released core, not a released majority: the laminar edge shaved by
        # the bone opening often joins the calcification on the slices above.
        with_released_core = _released_mm3(lab, idx, released, spacing, n_old) >= RELEASED_LIGAMENT_MIN_MM3
    keep = np.ones(n_old + 1, dtype=bool)
    # The reach is an ellipsoid, flatter along z: a lamina's shaved edge lies
    # within millimetres of it in every direction, while ligament calcium in a
    # short interlaminar gap (thin slices, laminae 3 mm above and below) was
    # dropped as one by a 3 mm ball.
    flat_ball = (spacing[0] * LIGAMENT_MIN_REACH_MM / LIGAMENT_MIN_REACH_Z_MM, spacing[1], spacing[2])
    # The released reach is in-plane: a calcification a few millimetres tall
    # lies within millimetres of the laminae above and below it, whatever it is.
    in_plane = (1e9, spacing[1], spacing[2])
    for reach_mm, group, sp in ((LIGAMENT_MIN_REACH_MM, ~with_released_core, flat_ball),
                                (RELEASED_LIGAMENT_MIN_REACH_MM, with_released_core, in_plane)):
        cands = [a for a in adjacent if group[a] and in_zone[a] * 2 > size[a]]
        if not cands:
            continue
        # The bone (inside the zone's box) dilated by the reach, read only at
        # these components' voxels: no volume-sized dilation.
        at = np.flatnonzero(np.isin(lab, cands))
        near = _dilated_in_box_at(bone, bb, idx[at], sp, reach_mm)
        beyond = np.bincount(lab[at], weights=~near, minlength=n_old + 1)
        keep[[a for a in cands if beyond[a] == 0]] = False
    return _keep_labels(labels, idx, reg, adjacent, keep)


def _with_released_ligament(lesions: list[Lesion], labels: np.ndarray, idx: np.ndarray, released: np.ndarray,
                            spacing: tuple[float, float, float]) -> list[Lesion]:
    """Each lesion with its released ligament volume (``Lesion.released_ligament_mm3``).

    Classification needs it: a small calcification with a released core is
    ligament calcium taken back from the laminae, while a fleck of the same size
    against them without one is usually the laminar cortex shaved off by the
    bone opening.
    """
    lab = labels.reshape(-1)[idx].astype(np.int64)
    per_label = _released_mm3(lab, idx, released, spacing, int(lab.max(initial=0)))
    return [replace(les, released_ligament_mm3=float(per_label[les.label]))
            if les.label < per_label.size and per_label[les.label] > 0 else les for les in lesions]


def _released_mm3(lab: np.ndarray, idx: np.ndarray, released: np.ndarray, spacing: tuple[float, float, float],
                  n: int) -> np.ndarray:
    """Volume (mm3) of ``released`` voxels per component label 0..n; ``lab``: the
    labels of the candidate voxels ``idx``."""
    return np.bincount(lab, weights=released.reshape(-1)[idx], minlength=n + 1) * float(np.prod(spacing))


def _keep_labels(
    labels: np.ndarray, idx: np.ndarray, reg: np.ndarray, adjacent: frozenset[int], keep: np.ndarray,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, frozenset[int]]:
    """Keep the labels where ``keep[label]`` and renumber them 1..n, in place, on ``idx`` only."""
    flat = labels.reshape(-1)
    lab = flat[idx].astype(np.int64)
    keep = keep.copy()
    keep[0] = False
    new_id = np.where(keep, np.cumsum(keep), 0).astype(np.int32)
    kept_vox = keep[lab]
    flat[idx] = new_id[lab]  # dropped voxels become 0, the rest are renumbered
    adjacent = frozenset(int(new_id[a]) for a in adjacent if keep[a])
    return labels, int(keep.sum()), idx[kept_vox], reg[kept_vox], adjacent


def _labels_touching(labels: np.ndarray, idx: np.ndarray, zone: np.ndarray) -> frozenset[int]:
    """Labels with a voxel face-adjacent to (or inside) ``zone``; sparse, no dilation."""
    coords = np.unravel_index(idx, labels.shape)
    hit = zone.reshape(-1)[idx].copy()
    for axis in range(3):
        for d in (-1, 1):
            moved = coords[axis] + d
            ok = (moved >= 0) & (moved < labels.shape[axis])
            c = tuple(np.where(ok, moved, 0) if a == axis else x for a, x in enumerate(coords))
            hit |= ok & zone[c]
    return frozenset(int(v) for v in np.unique(labels.reshape(-1)[idx[hit]]))
