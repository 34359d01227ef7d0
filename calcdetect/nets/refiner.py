"""Candidate patches for the calcium refiner (a patch classifier), and its use on findings.

Each candidate (a ``Lesion`` from ``calcdetect.candidates``) becomes a 2-channel
cube of fixed physical size centred on its centroid: normalised HU and the
candidate's own mask (the component, not its neighbours). Sampling is at a fixed
isotropic spacing so the classifier sees the same scale on every scanner.

:func:`refine_findings` is the pipeline's fusion rule (issue #5): a finding the
rules placed in a reportable region (aorta, iliac, renal, ligamentum flavum)
survives only where the refiner agrees, i.e. p(calcification) >= the threshold
stored in the weights; otherwise it is reported as a look-alike ("other"), its HU
measurements untouched. Patches are cut from each finding's own mask
(:func:`lesion_patches`), the same masks ``lesions.nii.gz`` holds, so that training
on a run's outputs (``scripts/train_refiner.py``) sees what inference sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from calcdetect.anatomy.regions import Region
from calcdetect.device import Device
from calcdetect.types import Finding, Kind, Lesion, Volume

__all__ = [
    "REFINER_INTENSITY",
    "REFINER_PATCH",
    "REFINED_REGIONS",
    "CandidateMask",
    "Refinement",
    "extract_candidate_patches",
    "lesion_patches",
    "mask_of_lesion",
    "masks_from_labels",
    "refine_findings",
    "refiner_threshold",
    "score_candidates",
]

#: Fixed HU normalisation for refiner inputs (calcium and bone must stay distinct).
REFINER_INTENSITY: dict[str, float] = {"clip_low": -1000.0, "clip_high": 2000.0, "mean": 0.0, "std": 1000.0}

#: Default patch: 24 voxels of 1.25 mm (a 30 mm cube: a lesion with the aortic wall,
#: the canal's back wall or a renal sinus around it). A smaller cube than the
#: builder's 32 keeps a CPU training run to minutes; models store their own.
REFINER_PATCH: tuple[int, float] = (24, 1.25)

#: Regions whose findings the refiner may demote to "other" (look-alikes are never promoted).
REFINED_REGIONS: tuple[str, ...] = (Region.AORTA.value, Region.ILIAC.value, Region.RENAL.value,
                                    Region.LIGAMENTUM_FLAVUM.value)

#: Threshold used when a model stores none (p(calcification) below it: look-alike).
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class CandidateMask:
    """One candidate's own voxels: ``mask`` inside the half-open ``bbox`` (k0, j0, i0, k1, j1, i1)."""

    bbox: tuple[int, int, int, int, int, int]
    mask: np.ndarray

    @property
    def centre_kji(self) -> tuple[float, float, float]:
        """Mean voxel index (the patch centre), from the mask itself so that
        a split finding and a label map give the same centre."""
        idx = np.argwhere(self.mask)
        if idx.size == 0:
            return tuple(float(self.bbox[a] + self.bbox[a + 3]) / 2.0 for a in range(3))  # type: ignore[return-value]
        return tuple(float(v) for v in idx.mean(axis=0) + np.asarray(self.bbox[:3]))  # type: ignore[return-value]


def mask_of_lesion(lesion: Lesion) -> CandidateMask:
    return CandidateMask(tuple(int(v) for v in lesion.bbox), np.asarray(lesion.mask, bool))  # type: ignore[arg-type]


def masks_from_labels(labels: np.ndarray, label_ids: Sequence[int]) -> list[CandidateMask | None]:
    """The mask of each label id in a label map (``lesions.nii.gz``); ``None`` where absent."""
    from scipy import ndimage

    boxes = ndimage.find_objects(labels)
    out: list[CandidateMask | None] = []
    for lab in label_ids:
        bb = boxes[lab - 1] if 0 < lab <= len(boxes) else None
        if bb is None:
            out.append(None)
            continue
        box = (bb[0].start, bb[1].start, bb[2].start, bb[0].stop, bb[1].stop, bb[2].stop)
        out.append(CandidateMask(box, labels[bb] == lab))
    return out


def lesion_patches(
    volume: Volume, masks: Sequence[CandidateMask], *, size: int = REFINER_PATCH[0],
    spacing_mm: float = REFINER_PATCH[1],
) -> np.ndarray:
    """``[N, 2, size, size, size]`` float32 patches (HU normalised, the candidate's own mask).

    As :func:`extract_candidate_patches`, but the mask channel reads each
    candidate's own ``mask`` (no CT-sized label map needed) and the patch is
    centred on the mask's mean voxel. Outside the volume HU reads as -1000.
    """
    offsets = (np.arange(size) - (size - 1) / 2.0) * spacing_mm
    out = np.zeros((len(masks), 2, size, size, size), np.float32)
    for n, cand in enumerate(masks):
        coords, out[n, 0] = _hu_channel(volume, cand.centre_kji, offsets)
        inside, values = _nearest(cand.mask, coords, cand.bbox[:3])
        out[n, 1] = inside & values
    return out


def extract_candidate_patches(
    volume: Volume,
    component_labels: np.ndarray,
    lesions: Sequence[Lesion],
    *,
    size: int = 32,
    spacing_mm: float = 1.0,
) -> np.ndarray:
    """``[N, 2, size, size, size]`` float32 patches (HU normalised, candidate mask).

    Parameters
    ----------
    volume
        The CT.
    component_labels
        Component id map on the Volume grid (``Candidates.labels``); channel 1 is
        ``component_labels == lesion.label``.
    lesions
        The candidates; each patch is centred on ``lesion.centroid_kji``.
    size, spacing_mm
        Patch edge in voxels and its isotropic sampling (mm); outside the volume
        HU reads as -1000 and the mask as 0.
    """
    if component_labels.shape != volume.shape:
        raise ValueError(f"component labels {component_labels.shape} do not match the volume {volume.shape}")
    offsets = (np.arange(size) - (size - 1) / 2.0) * spacing_mm
    out = np.zeros((len(lesions), 2, size, size, size), np.float32)
    for n, les in enumerate(lesions):
        coords, out[n, 0] = _hu_channel(volume, les.centroid_kji, offsets)
        inside, values = _nearest(component_labels, coords, (0, 0, 0))
        out[n, 1] = inside & (values == les.label)
    return out


def _nearest(grid: np.ndarray, coords: np.ndarray, origin: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-voxel values of ``grid`` (whose voxel 0 is volume voxel ``origin``) at ``coords``,
    and where those lie inside it."""
    local = np.rint(coords).astype(np.intp) - np.asarray(origin, np.intp).reshape(3, 1, 1, 1)
    inside = np.all([(local[a] >= 0) & (local[a] < grid.shape[a]) for a in range(3)], axis=0)
    return inside, grid[tuple(np.clip(local[a], 0, grid.shape[a] - 1) for a in range(3))]


def _hu_channel(volume: Volume, centre_kji: Sequence[float], offsets_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample coordinates (voxel index, ``[3, n, n, n]``) of a cube about ``centre_kji`` and its
    HU, linearly interpolated (-1000 outside the volume) and normalised as ``REFINER_INTENSITY``."""
    from scipy import ndimage

    axes = [c + offsets_mm / s for c, s in zip(centre_kji, volume.spacing)]
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    hu = ndimage.map_coordinates(volume.array, coords, order=1, mode="constant", cval=-1000.0)
    it = REFINER_INTENSITY
    return coords, (np.clip(hu, it["clip_low"], it["clip_high"]) - it["mean"]) / it["std"]


@torch.no_grad()
def score_candidates(patches: np.ndarray, model: nn.Module, device: Device, *, batch_size: int = 64) -> np.ndarray:
    """p(true calcification) per patch from a refiner (``REFINER_CLASSES`` order)."""
    model.eval()
    probs = []
    for start in range(0, len(patches), batch_size):
        x = torch.from_numpy(patches[start : start + batch_size]).to(device.torch)
        probs.append(torch.softmax(model(x).float(), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(probs) if probs else np.zeros(0, np.float32)


def refiner_threshold(model: nn.Module) -> float:
    """The decision threshold stored in a refiner's weights (``spec.extra["threshold"]``)."""
    spec = getattr(model, "spec", None)
    value = getattr(spec, "extra", {}).get("threshold") if spec is not None else None
    return float(value) if value is not None else DEFAULT_THRESHOLD


def _patch_geometry(model: nn.Module) -> tuple[int, float]:
    """Patch edge (voxels) and spacing (mm) the model was trained on (its spec), else the default."""
    spec = getattr(model, "spec", None)
    size = spec.patch_size[0] if spec is not None and spec.patch_size else REFINER_PATCH[0]
    spacing = spec.spacing_mm[0] if spec is not None and spec.spacing_mm else REFINER_PATCH[1]
    return int(size), float(spacing)


@dataclass(frozen=True)
class Refinement:
    """Findings after the refiner, with p(calcification) of every finding it scored (by id)."""

    findings: tuple[Finding, ...]
    p_calcification: dict[str, float]
    threshold: float
    demoted: tuple[str, ...]


def refine_findings(findings: Sequence[Finding], volume: Volume, model: nn.Module, device: Device,
                    *, threshold: float | None = None) -> Refinement:
    """Demote reportable findings the refiner does not take for calcification.

    Only findings in :data:`REFINED_REGIONS` are scored. One whose
    p(calcification) is below ``threshold`` (default: the model's own) becomes
    region "other", kind unknown, with no side, segment or structure; its lesion
    -- mask, volume, Agatston, mass, HU -- is the same object, so the
    measurements stay those of the HU candidate stage.
    """
    threshold = refiner_threshold(model) if threshold is None else float(threshold)
    scored = [f for f in findings if f.region in REFINED_REGIONS]
    size, spacing = _patch_geometry(model)
    patches = lesion_patches(volume, [mask_of_lesion(f.lesion) for f in scored], size=size, spacing_mm=spacing)
    probs = score_candidates(patches, model, device)
    p_by_id = {f.id: float(p) for f, p in zip(scored, probs)}
    out, demoted = [], []
    for f in findings:
        p = p_by_id.get(f.id)
        if p is not None and p < threshold:
            demoted.append(f.id)
            f = replace(f, region=Region.OTHER.value, kind=Kind.UNKNOWN, side=None, segment=None, structure=None,
                        confidence=round(1.0 - p, 3))
        out.append(f)
    return Refinement(tuple(out), {k: round(v, 4) for k, v in p_by_id.items()}, threshold, tuple(demoted))
