"""Import TotalSegmentator masks (``--anatomy DIR``) onto the Volume's grid.

TotalSegmentator writes one NIfTI per structure (``aorta.nii.gz``,
``kidney_left.nii.gz``, ``vertebrae_L3.nii.gz``, ``sacrum.nii.gz``, ...) in the
scanner's RAS world. Our grid is ``[k, j, i]`` in LPS. Every voxel centre of the
Volume is mapped through both affines (ours -> LPS -> RAS -> NIfTI voxel) and the
mask sampled nearest-neighbour, so a mask on another grid (resampled, cropped,
another orientation) lands on ours; when the combined map is a signed axis
permutation with integer offsets -- the usual case, the same acquisition grid --
it is an exact re-indexing.
"""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from calcdetect.anatomy.regions import VERTEBRA_LEVELS
from calcdetect.errors import InputError
from calcdetect.types import Volume

__all__ = ["load_totalsegmentator", "KNOWN_MASKS", "split_iliac", "levels_from_vertebrae"]

# TotalSegmentator "total" task names we use; vertebrae_* are matched by pattern.
KNOWN_MASKS: tuple[str, ...] = (
    "aorta",
    "iliac_artery_left",
    "iliac_artery_right",
    "kidney_left",
    "kidney_right",
    "spinal_cord",
    "sacrum",
    "inferior_vena_cava",
    "iliac_vena_left",
    "iliac_vena_right",
    "hip_left",
    "hip_right",
)
_VERTEBRA = re.compile(r"^vertebrae_(C[1-7]|T[1-9]|T1[0-2]|L[1-5]|S1)$")
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _resample_to_volume(img: nib.Nifti1Image, volume: Volume, name: str) -> np.ndarray:
    """Sample a NIfTI mask at the Volume's voxel centres (nearest neighbour)."""
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{name}: expected a 3-D mask, got shape {data.shape}; pass "
                         "TotalSegmentator's per-structure masks (not --ml multilabel 4-D output)")
    mask = data > 0
    # volume index (k, j, i) -> LPS -> RAS -> NIfTI voxel (x, y, z)
    m = np.linalg.inv(img.affine) @ _RAS_TO_LPS @ volume.affine
    lin, off = m[:3, :3], m[:3, 3]
    shape = volume.shape
    exact = np.allclose(np.abs(lin).sum(axis=0), 1.0) and np.allclose(lin, np.round(lin)) \
        and np.allclose(off, np.round(off))
    if exact:
        # Signed permutation: re-index directly.
        perm = np.argmax(np.abs(lin), axis=0)  # nifti axis for each volume axis
        sign = np.round(lin[perm, range(3)]).astype(int)
        idx = []
        for ax in range(3):
            coord = np.arange(shape[ax]) * sign[ax] + int(round(off[perm[ax]]))
            idx.append(coord)
        out = np.zeros(shape, dtype=bool)
        valid = [(c >= 0) & (c < mask.shape[perm[ax]]) for ax, c in enumerate(idx)]
        if all(v.any() for v in valid):
            sub = mask.transpose(perm)
            sel = np.ix_(*(c[v] for c, v in zip(idx, valid)))
            out[np.ix_(*(np.flatnonzero(v) for v in valid))] = sub[sel]
    else:
        out = ndi.affine_transform(mask.astype(np.uint8), lin, offset=off, output_shape=shape,
                                   order=0, mode="constant", cval=0).astype(bool)
    return out


def load_totalsegmentator(dir: Path, volume: Volume) -> dict[str, np.ndarray]:
    """Load TotalSegmentator masks from ``dir`` onto ``volume``'s grid.

    Parameters
    ----------
    dir : Path
        Folder with ``<structure>.nii.gz`` files (TotalSegmentator's default
        output). Unknown names are ignored.
    volume : Volume
        The CT the masks belong to (same patient and frame of reference).

    Returns
    -------
    dict
        TotalSegmentator name -> bool mask ``[k, j, i]`` on the volume grid.
        Empty masks are left out.

    Raises
    ------
    InputError
        The folder is missing or has no usable mask, a file cannot be read, or a
        non-empty mask does not overlap the volume at all (wrong series or frame
        of reference).

    Examples
    --------
    >>> masks = load_totalsegmentator(Path("seg"), volume)  # doctest: +SKIP
    >>> sorted(masks)[:2]  # doctest: +SKIP
    ['aorta', 'kidney_left']
    """
    dir = Path(dir)
    if not dir.is_dir():
        raise InputError(f"--anatomy {dir}: not a folder; pass TotalSegmentator's output folder "
                         "(one <structure>.nii.gz per structure)")
    files = sorted(p for p in dir.iterdir() if p.name.endswith((".nii", ".nii.gz")))
    wanted = [p for p in files if _stem(p) in KNOWN_MASKS or _VERTEBRA.match(_stem(p))]
    if not wanted:
        raise InputError(f"--anatomy {dir}: no TotalSegmentator masks found (looked for "
                         f"{', '.join(KNOWN_MASKS[:5])}, vertebrae_L1 ... .nii.gz)")
    out: dict[str, np.ndarray] = {}
    for path in wanted:
        name = _stem(path)
        try:
            img = nib.load(str(path))
        except Exception as exc:  # nibabel raises several types for bad files
            raise InputError(f"--anatomy: cannot read {path.name}: {exc}") from exc
        if not np.any(np.asanyarray(img.dataobj)):
            continue
        mask = _resample_to_volume(img, volume, path.name)
        if not mask.any():
            raise InputError(
                f"--anatomy: {path.name} is not empty but does not overlap the CT volume; "
                "the masks must come from this series (same frame of reference)"
            )
        out[name] = mask
    return out


def levels_from_vertebrae(masks: dict[str, np.ndarray], nk: int) -> tuple[str | None, ...]:
    """Per-slice levels from per-vertebra masks.

    A vertebra owns the slices where its cross-section is at least half its
    largest (the body; posterior elements overlap neighbouring levels and are
    thinner); slices between two vertebrae are their disc (``"L3-L4"``).
    """
    spans = []
    for name, m in masks.items():
        level = "S1" if name == "sacrum" else name.removeprefix("vertebrae_")
        if level not in VERTEBRA_LEVELS:
            continue
        area = m.sum(axis=(1, 2))
        if area.max() == 0:
            continue
        ks = np.flatnonzero(area >= 0.5 * area.max())
        spans.append((VERTEBRA_LEVELS.index(level), level, int(ks.min()), int(ks.max())))
    # cranial first; the sacrum and S1 may both be given: keep one S1
    spans.sort()
    levels: list[str | None] = [None] * nk
    seen: set[str] = set()
    for _, level, k0, k1 in spans:
        if level in seen:
            continue
        seen.add(level)
        for k in range(k0, k1 + 1):
            levels[k] = level
    for (pa, upper, ua, ub), (pb, lower, la, lb) in zip(spans, spans[1:]):
        if upper == lower or pb != pa + 1:
            continue
        # the upper (cranial) vertebra has the larger k
        for k in range(lb + 1, ua):
            if levels[k] is None:
                levels[k] = f"{upper}-{lower}"
    return tuple(levels)


def split_iliac(mask: np.ndarray, spacing: tuple[float, float, float], bif_k: int | None,
                common_mm: float = 40.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split one side's TotalSegmentator iliac artery into common / external / internal.

    TotalSegmentator does not subdivide the iliac arteries. The common iliac is
    the part within ``common_mm`` cranio-caudal distance below the bifurcation
    (the aorta's lowest slice, or the mask's top when unknown); below it, each
    slice's components are split: the most anterior is the external iliac (it
    runs along the pelvic brim to the groin), the others internal (posterior,
    into the pelvis).
    """
    sk = spacing[0]
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    common = np.zeros_like(mask)
    external = np.zeros_like(mask)
    internal = np.zeros_like(mask)
    if ks.size == 0:
        return common, external, internal
    top = int(ks.max()) if bif_k is None else min(int(bif_k), int(ks.max()))
    for k in ks:
        if (top - k) * sk <= common_mm:
            common[k] = mask[k]
            continue
        lab, n = ndi.label(mask[k])
        if n <= 1:
            external[k] = mask[k]
            continue
        coms = ndi.center_of_mass(mask[k], lab, range(1, n + 1))
        front = int(np.argmin([c[0] for c in coms])) + 1
        external[k] = lab == front
        internal[k] = (lab > 0) & (lab != front)
    return common, external, internal
