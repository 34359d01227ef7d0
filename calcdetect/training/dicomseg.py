"""Training cases from DICOM CT series + DICOM SEG objects.

Layout (``--data dicomseg=PATH``): every sub-folder of ``PATH`` (or ``PATH``
itself) that holds at least one SEG instance is searched for SEG files; each
SEG is one case and must reference (Referenced Series Sequence) a CT series in
the same folder tree. Case ids are the salted hash of the SEG's Series Instance
UID: folder names often carry patient names and are never used.

Segments are mapped to our classes by name: the Segment Label first, then the
Segmented Property Type's code meaning (``"Left kidney"`` style labels need an
alias; unknown segments are background and the classes they would cover are not
marked annotated). Frames are placed on the CT grid by their Image Position /
Orientation (nearest voxel), so SEG frame order and CT slice order may differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calcdetect.errors import InputError
from calcdetect.ids import hash_uid

__all__ = ["SegSource", "find_seg_cases", "load_seg_case"]


@dataclass(frozen=True)
class SegSource:
    """One SEG instance and the folder where its CT series lives."""

    # Paths stay out of repr: clinical folder names often carry patient names.
    seg_path: Path = field(repr=False)
    search_root: Path = field(repr=False)
    referenced_series_hash: str
    mapping: tuple[tuple[int, int], ...]  # segment number -> class channel


def _segment_name_candidates(item) -> list[str]:
    names = []
    if "SegmentLabel" in item:
        names.append(str(item.SegmentLabel))
    for code in item.get("SegmentedPropertyTypeCodeSequence", []) or []:
        names.append(str(code.CodeMeaning))
    return [n.strip().lower().replace(" ", "_").replace("-", "_") for n in names]


def _seg_mapping(ds) -> tuple[tuple[int, int], ...]:
    from calcdetect.training.datasets import class_for_name

    out = []
    for item in ds.SegmentSequence:
        cls = None
        for name in _segment_name_candidates(item):
            cls = class_for_name(name)
            if cls is not None:
                break
        out.append((int(item.SegmentNumber), cls if cls is not None else 0))
    return tuple(out)


def find_seg_cases(root: Path) -> list[tuple[str, SegSource]]:
    """``[(case_id, SegSource), ...]`` for every SEG under ``root``."""
    import pydicom

    found = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # not DICOM: ignored, like discovery does
            continue
        if str(ds.get("Modality", "")) != "SEG":
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        try:
            ref = str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
        except (AttributeError, IndexError):
            raise InputError("a DICOM SEG has no Referenced Series Sequence; cannot find its CT") from None
        mapping = _seg_mapping(ds)
        if not any(c for _, c in mapping):
            names = [n for item in ds.SegmentSequence for n in _segment_name_candidates(item)]
            raise InputError(f"none of the SEG segment names {names} match our classes (or their aliases)")
        case_id = f"dicomseg:{hash_uid(str(ds.SeriesInstanceUID))[:16]}"  # type: ignore[index]
        found.append((case_id, SegSource(path, path.parent, hash_uid(ref) or "", mapping)))
    if not found:
        raise InputError(f"no DICOM SEG instances under {str(root)!r}")
    return found


def _find_ct(source: SegSource):
    from calcdetect.io import discover, load_ct

    roots = [source.search_root, source.search_root.parent]
    for root in roots:
        for group in discover(root).loadable():
            if group.series_uid_hash == source.referenced_series_hash:
                return load_ct(group)
    raise InputError("the CT series referenced by a DICOM SEG was not found next to it; keep each SEG with its CT")


def load_seg_case(source: SegSource) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray, np.ndarray]:
    """``(hu, spacing, affine, class_labels)`` on the canonical CT grid."""
    import pydicom

    volume = _find_ct(source)
    ds = pydicom.dcmread(source.seg_path)
    frames = ds.pixel_array
    if frames.ndim == 2:
        frames = frames[None]
    mapping = dict(source.mapping)
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    labels = np.zeros(volume.shape, np.uint8)
    threshold = 0.5 * float(frames.max()) if str(ds.get("SegmentationType", "BINARY")) == "FRACTIONAL" else 0
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        seg_no = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        cls = mapping.get(seg_no, 0)
        if cls == 0:
            continue
        rows, cols = np.nonzero(frames[f] > threshold)
        if rows.size == 0:
            continue

        def get(name: str):
            if name in item:
                return item[name].value[0]
            if shared is not None and name in shared:
                return shared[name].value[0]
            raise InputError(f"DICOM SEG frame {f + 1} has no {name}")

        pos = np.array(get("PlanePositionSequence").ImagePositionPatient, float)
        iop = np.array(get("PlaneOrientationSequence").ImageOrientationPatient, float)
        dr, dc = (float(v) for v in get("PixelMeasuresSequence").PixelSpacing)
        lps = pos + np.outer(cols * dc, iop[:3]) + np.outer(rows * dr, iop[3:])
        idx = np.rint(volume.lps_to_index(lps)).astype(np.intp)
        ok = np.all((idx >= 0) & (idx < np.array(volume.shape)), axis=1)
        labels[idx[ok, 0], idx[ok, 1], idx[ok, 2]] = cls
    return volume.array, volume.spacing, volume.affine, labels
