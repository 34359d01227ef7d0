"""Training cases from public dataset layouts, mapped to ``ANATOMY_CLASSES``.

Supported ``--data KIND=PATH`` kinds:

``totalsegmentator``
    ``PATH/sNNNN/ct.nii.gz`` + ``PATH/sNNNN/segmentations/<structure>.nii.gz``.
``nnunet`` (also ``msd``)
    nnU-Net v2 raw (``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``,
    ``dataset.json`` with ``"labels": {name: id}``) or Medical Segmentation
    Decathlon (``"labels": {"id": name}``, images ``imagesTr/<case>.nii.gz``).
    Label names are mapped to our classes by name; the nnU-Net ``"ignore"`` label
    is honoured.
``phantom``
    Synthetic CT phantoms generated on the fly; ``PATH`` is a seed list such as
    ``0-39`` or ``0,5,7``.
``dicomseg``
    DICOM CT series + DICOM SEG objects (see :mod:`calcdetect.training.dicomseg`);
    segments are mapped to our classes by name.

Datasets annotate different subsets of our classes; each case records which
classes its labels cover (``annotated``) so that the marginal loss does not
punish the net for predicting a class the dataset never labels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calcdetect.errors import ConfigError, InputError
from calcdetect.nets.classes import ANATOMY_CLASSES, MERGED_STRUCTURES, class_index
from calcdetect.training.config import PhantomConfig
from calcdetect.training.dicomseg import SegSource, find_seg_cases, load_seg_case
from calcdetect.training.nifti import read_nifti_kji

__all__ = [
    "IGNORE_INDEX",
    "DATASET_KINDS",
    "NAME_ALIASES",
    "Case",
    "CaseData",
    "class_for_name",
    "discover_cases",
    "load_case",
    "weak_calcium_mask",
    "parse_seeds",
    "parse_data_spec",
]

IGNORE_INDEX = 255
DATASET_KINDS = ("totalsegmentator", "nnunet", "msd", "phantom", "dicomseg")

#: Dataset structure names that differ from ours (mostly TotalSegmentator v1/v2).
#: Approximations are deliberate and documented:
#: * TotalSegmentator's ``iliac_artery_*`` covers the common AND external iliac
#:   artery; it is mapped to the common iliac class (the external segment is
#:   therefore learnt as "common" from this source).
#: * ``spinal_cord`` is the cord, a subset of our ``spinal_canal``.
NAME_ALIASES: dict[str, str] = {
    "iliac_artery_left": "common_iliac_artery_left",
    "iliac_artery_right": "common_iliac_artery_right",
    "spinal_cord": "spinal_canal",
    "vertebrae_S1": "sacrum",
    "ligamentum_flavum": "ligamentum_flavum_zone",
    "intervertebral_discs": "intervertebral_disc",
    "kidney_cortex_left": "kidney_left",
    "kidney_cortex_right": "kidney_right",
}


def class_for_name(name: str) -> int | None:
    """Our class channel for a dataset's structure name, or ``None`` if we do not segment it.

    >>> ANATOMY_CLASSES[class_for_name("iliac_artery_left")]
    'common_iliac_artery_left'
    """
    n = name.strip()
    n = NAME_ALIASES.get(n, n)
    n = MERGED_STRUCTURES.get(n, n)
    return ANATOMY_CLASSES.index(n) if n in ANATOMY_CLASSES else None


@dataclass(frozen=True)
class Case:
    """One training case (paths only; nothing is read until :func:`load_case`)."""

    case_id: str  # unique across datasets: "<kind>:<name>"
    kind: str
    image: Path | None = None
    label: Path | None = None
    seg_dir: Path | None = None
    label_map: tuple[tuple[int, int], ...] = ()  # dataset label id -> class (nnU-Net/MSD)
    annotated: tuple[bool, ...] = ()
    seed: int | None = None
    seg: SegSource | None = None


@dataclass(frozen=True)
class CaseData:
    """A loaded case: HU image and class map on the same ``[k, j, i]`` grid."""

    image: np.ndarray  # float32 HU
    labels: np.ndarray  # uint8 class ids (IGNORE_INDEX = not labelled)
    spacing: tuple[float, float, float]
    affine: np.ndarray
    annotated: np.ndarray  # bool [n_classes]


def parse_data_spec(spec: str) -> tuple[str, Path]:
    """``"nnunet=/data/Dataset001"`` -> ``("nnunet", Path(...))`` (for ``--data KIND=PATH``).

    >>> parse_data_spec("phantom=0-9")
    ('phantom', PosixPath('0-9'))
    """
    kind, sep, path = str(spec).partition("=")
    kind = kind.strip().lower()
    if not sep or not path.strip():
        raise ConfigError(f"--data {spec!r}: use KIND=PATH with KIND one of {', '.join(DATASET_KINDS)}")
    if kind not in DATASET_KINDS:
        raise ConfigError(f"--data {spec!r}: unknown kind {kind!r}; use one of {', '.join(DATASET_KINDS)}")
    return kind, Path(path.strip())


def parse_seeds(spec: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``."""
    seeds: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"phantom seeds {spec!r}: use e.g. '0-39' or '0,5,7'")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"phantom seed range {part!r} is empty")
        seeds.extend(range(lo, hi + 1))
    return seeds


def _annotated(classes: Iterable[int]) -> tuple[bool, ...]:
    flags = [False] * len(ANATOMY_CLASSES)
    flags[0] = True
    for c in classes:
        flags[c] = True
    return tuple(flags)


def _totalsegmentator(root: Path) -> list[Case]:
    cases = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        ct, seg = d / "ct.nii.gz", d / "segmentations"
        if ct.is_file() and seg.is_dir():
            names = [p.name[: -len(".nii.gz")] for p in seg.glob("*.nii.gz")]
            covered = {c for c in map(class_for_name, names) if c is not None}
            cases.append(Case(f"totalsegmentator:{d.name}", "totalsegmentator", ct, None, seg, (), _annotated(covered)))
    if not cases:
        raise InputError(
            f"no TotalSegmentator cases under {str(root)!r}: expected sNNNN/ct.nii.gz and sNNNN/segmentations/"
        )
    return cases


def _nnunet(root: Path, kind: str) -> list[Case]:
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise InputError(f"{str(root)!r} has no dataset.json (nnU-Net / MSD raw layout expected)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    labels = meta.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise InputError(f"{str(meta_path)!r} has no 'labels' mapping")
    if all(re.fullmatch(r"\d+", str(k)) for k in labels):  # MSD: {"0": "background"}
        id_to_name = {int(k): str(v) for k, v in labels.items()}
    else:  # nnU-Net v2: {"background": 0}
        if any(not isinstance(v, int) for v in labels.values()):
            raise InputError(f"{str(meta_path)!r}: region-based labels (lists) are not supported")
        id_to_name = {int(v): str(k) for k, v in labels.items()}
    mapping: list[tuple[int, int]] = []
    for lid, name in sorted(id_to_name.items()):
        if name.lower() == "ignore":
            mapping.append((lid, IGNORE_INDEX))
        elif name.lower() != "background" and lid != 0:
            c = class_for_name(name)
            mapping.append((lid, c if c is not None else 0))
    covered = {c for _, c in mapping if c not in (0, IGNORE_INDEX)}
    if not covered:
        raise InputError(
            f"{str(meta_path)!r}: none of the label names {sorted(id_to_name.values())} match our classes "
            f"({', '.join(ANATOMY_CLASSES[1:])}) or their aliases"
        )
    ending = str(meta.get("file_ending", ".nii.gz"))
    cases = []
    for lab in sorted((root / "labelsTr").glob(f"*{ending}")):
        name = lab.name[: -len(ending)]
        candidates = [root / "imagesTr" / f"{name}_0000{ending}", root / "imagesTr" / f"{name}{ending}"]
        image = next((c for c in candidates if c.is_file()), None)
        if image is None:
            raise InputError(f"no image for label {lab.name!r} in {str(root / 'imagesTr')!r}")
        cases.append(Case(f"{kind}:{root.name}/{name}", kind, image, lab, None, tuple(mapping), _annotated(covered)))
    if not cases:
        raise InputError(f"no labelsTr/*{ending} files under {str(root)!r}")
    return cases


def discover_cases(kind: str, path: Path | str) -> list[Case]:
    """List the cases of one dataset.

    Parameters
    ----------
    kind
        One of :data:`DATASET_KINDS`.
    path
        Dataset root; for ``phantom`` a seed list (``"0-39"``).
    """
    kind = kind.strip().lower()
    if kind not in DATASET_KINDS:
        raise ConfigError(f"unknown dataset kind {kind!r}; use one of {', '.join(DATASET_KINDS)}")
    if kind == "phantom":
        return [Case(f"phantom:{s}", "phantom", seed=s, annotated=(True,) * len(ANATOMY_CLASSES))
                for s in parse_seeds(str(path))]
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"dataset folder {str(root)!r} does not exist")
    if kind == "dicomseg":
        return [
            Case(case_id, "dicomseg", seg=src, annotated=_annotated(c for _, c in src.mapping if c))
            for case_id, src in find_seg_cases(root)
        ]
    return _totalsegmentator(root) if kind == "totalsegmentator" else _nnunet(root, kind)


def _load_phantom(seed: int, phantom: PhantomConfig) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray, np.ndarray]:
    try:
        from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom, random_settings
    except ImportError as exc:
        raise ConfigError(f"the CT phantom generator is not available: {exc}") from None
    grid = {"matrix": phantom.matrix, "pixel_mm": phantom.pixel_mm, "slice_thickness_mm": phantom.slice_thickness_mm}
    settings = random_settings(seed, **grid) if phantom.randomise_acquisition else CTPhantomSettings(seed=seed, **grid)
    ph = generate_ct_phantom(settings)
    spacing = tuple(float(s) for s in ph.spacing)
    return np.asarray(ph.hu, np.float32), spacing, np.asarray(ph.affine, np.float64), np.asarray(ph.anatomy_labels)


def load_case(case: Case, *, phantom: PhantomConfig | None = None) -> CaseData:
    """Read a case into memory with labels as class ids (see :data:`ANATOMY_CLASSES`).

    ``phantom`` sets how phantom cases are generated (default ``PhantomConfig()``).
    """
    from calcdetect.nets.classes import labels_to_classes

    if case.kind == "phantom":
        assert case.seed is not None
        image, spacing, affine, structures = _load_phantom(case.seed, phantom or PhantomConfig())
        labels = labels_to_classes(structures)
    elif case.kind == "dicomseg":
        assert case.seg is not None
        image, spacing, affine, labels = load_seg_case(case.seg)
    else:
        assert case.image is not None
        image, spacing, affine = read_nifti_kji(case.image)
        if case.kind == "totalsegmentator":
            assert case.seg_dir is not None
            labels = np.zeros(image.shape, np.uint8)
            for p in sorted(case.seg_dir.glob("*.nii.gz")):
                c = class_for_name(p.name[: -len(".nii.gz")])
                if c is None:
                    continue
                mask, _, _ = read_nifti_kji(p, dtype=np.uint8)
                if mask.shape != image.shape:
                    raise InputError(f"{str(p)!r} has shape {mask.shape}, the CT {image.shape}")
                labels[mask > 0] = c
        else:
            assert case.label is not None
            raw, _, _ = read_nifti_kji(case.label, dtype=np.int32)
            if raw.shape != image.shape:
                raise InputError(f"{str(case.label)!r} has shape {raw.shape}, the image {image.shape}")
            lut = np.zeros(max([int(raw.max()) + 1] + [a + 1 for a, _ in case.label_map]), np.uint8)
            for lid, c in case.label_map:
                lut[lid] = c
            if raw.min() < 0:
                raise InputError(f"{str(case.label)!r} has negative label values")
            labels = lut[raw]
    if image.shape != labels.shape:
        raise InputError(f"{case.case_id}: image {image.shape} and labels {labels.shape} differ")
    return CaseData(image, labels.astype(np.uint8, copy=False), spacing, affine, np.array(case.annotated, bool))


def weak_calcium_mask(image: np.ndarray, labels: np.ndarray, *, threshold_hu: float = 130.0) -> np.ndarray:
    """WEAK calcium labels: ``>= threshold_hu`` inside vessel / kidney classes minus bone.

    A heuristic target for the candidate refiner on datasets without calcium
    annotations (e.g. TotalSegmentator). It is noisy by construction: contrast-
    enhanced lumen above the threshold is labelled calcium, and calcium outside
    the (often lumen-only) vessel masks is missed. Bone is every vertebra class
    dilated by one voxel.
    """
    from scipy import ndimage

    vessel_names = [n for n in ANATOMY_CLASSES if "artery" in n or n == "aorta" or n.startswith(("kidney", "collecting"))]
    vessel = np.isin(labels, [class_index(n) for n in vessel_names])
    bone_ids = [class_index(n) for n in ANATOMY_CLASSES if n.startswith("vertebrae_") or n == "sacrum"]
    bone = ndimage.binary_dilation(np.isin(labels, bone_ids), iterations=1)
    return (image >= threshold_hu) & vessel & ~bone

