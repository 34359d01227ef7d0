"""Candidate patches for the calcium refiner (a patch classifier).

Each candidate (a ``Lesion`` from ``calcdetect.candidates``) becomes a 2-channel
cube of fixed physical size centred on its centroid: normalised HU and the
candidate's own mask (the component, not its neighbours). Sampling is at a fixed
isotropic spacing so the classifier sees the same scale on every scanner.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from calcdetect.device import Device
from calcdetect.types import Lesion, Volume

__all__ = ["REFINER_INTENSITY", "extract_candidate_patches", "score_candidates"]

#: Fixed HU normalisation for refiner inputs (calcium and bone must stay distinct).
REFINER_INTENSITY: dict[str, float] = {"clip_low": -1000.0, "clip_high": 2000.0, "mean": 0.0, "std": 1000.0}


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
    from scipy import ndimage

    if component_labels.shape != volume.shape:
        raise ValueError(f"component labels {component_labels.shape} do not match the volume {volume.shape}")
    offsets = (np.arange(size) - (size - 1) / 2.0) * spacing_mm
    out = np.zeros((len(lesions), 2, size, size, size), np.float32)
    it = REFINER_INTENSITY
    for n, les in enumerate(lesions):
        axes = [c + offsets / s for c, s in zip(les.centroid_kji, volume.spacing)]
        kk, jj, ii = np.meshgrid(*axes, indexing="ij")
        coords = np.stack([kk, jj, ii])
        hu = ndimage.map_coordinates(volume.array, coords, order=1, mode="constant", cval=-1000.0)
        nearest = np.rint(coords).astype(np.intp)
        inside = np.all([(nearest[a] >= 0) & (nearest[a] < volume.shape[a]) for a in range(3)], axis=0)
        mask = np.zeros(kk.shape, np.float32)
        idx = tuple(np.clip(nearest[a], 0, volume.shape[a] - 1) for a in range(3))
        mask[inside] = (component_labels[idx][inside] == les.label).astype(np.float32)
        out[n, 0] = (np.clip(hu, it["clip_low"], it["clip_high"]) - it["mean"]) / it["std"]
        out[n, 1] = mask
    return out


@torch.no_grad()
def score_candidates(patches: np.ndarray, model: nn.Module, device: Device, *, batch_size: int = 64) -> np.ndarray:
    """p(true calcification) per patch from a refiner (``REFINER_CLASSES`` order)."""
    model.eval()
    probs = []
    for start in range(0, len(patches), batch_size):
        x = torch.from_numpy(patches[start : start + batch_size]).to(device.torch)
        probs.append(torch.softmax(model(x).float(), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(probs) if probs else np.zeros(0, np.float32)
