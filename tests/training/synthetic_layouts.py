"""Tiny TotalSegmentator- and nnU-Net-layout datasets for the training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from calcdetect.training.nifti import write_nifti_kji

SHAPE = (32, 32, 32)
SPACING = 2.0


def affine(spacing: float = SPACING) -> np.ndarray:
    a = np.zeros((4, 4))
    a[0, 2] = a[1, 1] = a[2, 0] = spacing  # i -> x (L), j -> y (P), k -> z (S)
    a[3, 3] = 1.0
    return a


def synthetic_case(seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A 32^3 HU volume with an aorta tube, an L3 block and a left kidney blob."""
    rng = np.random.default_rng(seed)
    k, j, i = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    shift = rng.integers(-2, 3, size=3)
    aorta = (j - 10 - shift[1]) ** 2 + (i - 14 - shift[2]) ** 2 <= 9
    vert = (np.abs(j - 22 - shift[1]) <= 4) & (np.abs(i - 16) <= 5) & (np.abs(k - 16 - shift[0]) <= 8)
    kidney = (k - 18) ** 2 / 36 + (j - 18) ** 2 / 16 + (i - 26) ** 2 / 9 <= 1
    hu = rng.normal(-50, 20, SHAPE).astype(np.float32)
    hu[aorta] = rng.normal(40, 10, aorta.sum())
    hu[vert] = rng.normal(400, 30, vert.sum())
    hu[kidney] = rng.normal(30, 10, kidney.sum())
    return hu, {"aorta": aorta, "vertebrae_L3": vert, "kidney_left": kidney}


def make_totalsegmentator(root: Path, n: int = 2) -> Path:
    for s in range(n):
        hu, masks = synthetic_case(s)
        d = root / f"s{s:04d}"
        (d / "segmentations").mkdir(parents=True)
        write_nifti_kji(hu, affine(), d / "ct.nii.gz")
        for name, m in masks.items():
            write_nifti_kji(m.astype(np.uint8), affine(), d / "segmentations" / f"{name}.nii.gz")
        # a structure we do not segment: must be ignored
        write_nifti_kji(np.zeros(SHAPE, np.uint8), affine(), d / "segmentations" / "liver.nii.gz")
    return root


def make_nnunet(root: Path, n: int = 2, *, with_ignore: bool = False) -> Path:
    names = {"background": 0, "aorta": 1, "vertebrae_L3": 2, "kidney_left": 3}
    if with_ignore:
        names["ignore"] = 4
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for s in range(n):
        hu, masks = synthetic_case(100 + s)
        lab = np.zeros(SHAPE, np.uint8)
        for name, m in masks.items():
            lab[m] = names[name]
        if with_ignore:
            lab[:2] = 4
        write_nifti_kji(hu, affine(), root / "imagesTr" / f"case{s:03d}_0000.nii.gz")
        write_nifti_kji(lab, affine(), root / "labelsTr" / f"case{s:03d}.nii.gz")
    meta = {"channel_names": {"0": "CT"}, "labels": names, "numTraining": n, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root
