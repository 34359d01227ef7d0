"""Find the image series in a messy folder and say what each one is.

Rules (documented here because they decide what gets analysed)
---------------------------------------------------------------
Every file is read once, header only (``stop_before_pixels``, see
``calcdetect.io.headers``), and classified on its own; files are then grouped by
Series Instance UID and split further by
classification, Frame of Reference, image orientation (within 1e-3) and
image size, so one group is always a candidate stack of like images.

* ``dose_report``: a radiation dose SR / dose screen (SOP class, or a secondary
  capture whose ImageType or description says DOSE).
* ``secondary_capture``: Secondary Capture SOP classes (screenshots, reports).
* ``radiograph``: CR / DX / DR / RG images (by SOP class or modality); one group
  per image, because each radiograph is analysed on its own.
* ``localizer``: CT with ImageType containing LOCALIZER (or SCOUT / TOPOGRAM), and
  single non-axial CT images (a scout whose ImageType does not say so, like
  MAROTECH_CT_JP2Lossy.dcm).
* ``derived``: CT with ImageType DERIVED plus a reformat / projection keyword
  (REFORMATTED, MPR, MIP, MINIP, VR, 3D, CURVED, CPR, SSD, PROJECTION IMAGE).
  DERIVED alone is *not* enough: many scanners label ordinary axial
  reconstructions ``DERIVED\\PRIMARY\\AXIAL`` or ``DERIVED\\SECONDARY\\AXIAL``
  (WG-04, re-reconstructions), and those are real HU volumes. ``load_ct``
  still loads a derived group on request (with a warning) because an MPR is
  valid HU data; MIP / slab reformats change calcium measurements.
* ``enhanced_ct``: Enhanced / Legacy Converted Enhanced CT (multi-frame).
* ``ct_volume``: other single-frame greyscale CT with position and orientation.
* ``other``: everything else (MR, PT, US, NM, RT, colour images, CT without
  Image Position / Orientation).

Files that are not DICOM, empty, truncated before the pixels, or hold no pixel
data and are not dose reports are counted in ``Discovery.skipped_files``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calcdetect.errors import DecodeError, InputError
from calcdetect.ids import hash_uid, series_key
from calcdetect.io.headers import DOSE_SOP_CLASSES, ImageHeader, SkipFile, read_header

__all__ = [
    "ImageHeader",
    "SeriesGroup",
    "Discovery",
    "discover",
    "read_header",
    "group_headers",
    "classify",
    "plane_of",
    "KINDS",
    "LOADABLE_CT",
]

KINDS = (
    "ct_volume",
    "enhanced_ct",
    "localizer",
    "secondary_capture",
    "dose_report",
    "derived",
    "radiograph",
    "other",
)
LOADABLE_CT = ("ct_volume", "enhanced_ct", "derived")

_CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
_ENHANCED_CT_SOP = ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")
_RADIOGRAPH_SOP = (
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # DX for presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX for processing
)
_RADIOGRAPH_MODALITIES = ("CR", "DX", "DR", "RG")
_SC_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_REFORMAT_WORDS = {
    "REFORMATTED", "MPR", "MIP", "MINIP", "MINIMUM", "MAXIMUM", "VR", "VOLUME_RENDER",
    "3D", "CURVED", "CPR", "SSD", "PROJECTION IMAGE", "AVERAGE", "MEAN",
}  # fmt: skip
_ORIENTATION_TOL = 1e-3
_LOCALIZER_WORDS = {"LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW", "SCANOGRAM"}


@dataclass(frozen=True)
class SeriesGroup:
    """One candidate series after splitting (see the module docstring for the rules).

    ``reason`` says why the pipeline skips it (``None`` for ``ct_volume``,
    ``enhanced_ct`` and ``radiograph``). ``headers`` carry the per-file header
    values so that loading does not parse the headers again.
    """

    key: str
    kind: str
    modality: str | None
    # Paths stay out of repr: clinical folder names often carry patient names.
    files: tuple[Path, ...] = field(repr=False)
    n_images: int
    reason: str | None
    series_uid_hash: str | None = None
    frame_of_reference_hash: str | None = None
    orientation: str | None = None  # "axial" | "coronal" | "sagittal" | "oblique" | None
    rows: int = 0
    columns: int = 0
    transfer_syntax: str | None = None
    notes: tuple[str, ...] = ()
    headers: tuple[ImageHeader, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class Discovery:
    """The result of :func:`discover`: candidate series and what was skipped."""

    groups: tuple[SeriesGroup, ...]
    skipped_files: dict[str, int]
    n_files: int

    def loadable(self) -> tuple[SeriesGroup, ...]:
        """Groups the pipeline analyses (``reason is None``)."""
        return tuple(g for g in self.groups if g.reason is None)

def group_headers(group: SeriesGroup) -> tuple[ImageHeader, ...]:
    """The group's headers: from discovery, or read now for a group built by hand."""
    if group.headers:
        return group.headers
    out = []
    for path in group.files:
        try:
            out.append(read_header(Path(path)))
        except SkipFile as skip:
            raise DecodeError(
                f"a file of series {group.key} cannot be read ({skip.reason}); remove it"
            ) from None
    return tuple(out)


def plane_of(orientation: tuple[float, ...] | None) -> str | None:
    """Name the acquisition plane from Image Orientation (Patient)."""
    if orientation is None:
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        return None
    axis = int(np.argmax(np.abs(normal)))
    if abs(normal[axis]) / norm < 0.9:  # more than ~25 degrees off every axis
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def classify(h: ImageHeader) -> tuple[str, str | None]:
    """Classify one image: ``(kind, reason)``; see the module docstring."""
    words = set(h.image_type)
    modality = h.modality or ""
    desc = h.description.upper()
    is_sc = h.sop_class == _SC_PREFIX or h.sop_class.startswith(_SC_PREFIX + ".")
    if h.sop_class in DOSE_SOP_CLASSES or (is_sc and ("DOSE" in words or "DOSE" in desc)):
        return "dose_report", "radiation dose report, not an image to analyse"
    if is_sc or (modality == "OT" and not h.sop_class.startswith(_CT_SOP)):
        return "secondary_capture", "secondary capture (screenshot / report image), no HU data"
    is_ct = modality == "CT" or h.sop_class == _CT_SOP or h.sop_class in _ENHANCED_CT_SOP
    is_xr = h.sop_class in _RADIOGRAPH_SOP or modality in _RADIOGRAPH_MODALITIES
    mono = h.samples == 1 and (h.photometric or "MONOCHROME2").startswith("MONOCHROME")
    if is_xr and not is_ct:
        if not mono:
            return "other", f"colour radiograph ({h.photometric}); greyscale expected"
        return "radiograph", None
    if not is_ct:
        return "other", f"modality {modality or 'unknown'} is not CT or a radiograph"
    if words & _LOCALIZER_WORDS:
        return "localizer", "localizer / scout image (ImageType " + "\\".join(h.image_type) + ")"
    if not mono:
        return "other", f"colour CT image ({h.photometric}); greyscale HU expected"
    if "DERIVED" in words and words & _REFORMAT_WORDS:
        return "derived", "derived reformat (ImageType " + "\\".join(h.image_type) + ")"
    if h.sop_class in _ENHANCED_CT_SOP:
        return "enhanced_ct", None
    if h.frames > 1:
        return "other", "multi-frame CT that is not Enhanced CT (no per-frame geometry)"
    if h.position is None or h.orientation is None:
        return "other", "CT image without Image Position / Orientation (Patient)"
    return "ct_volume", None


def _orientation_cluster(
    orientation: tuple[float, ...] | None, seen: list[tuple[float, ...]]
) -> tuple[float, ...] | None:
    """The first orientation in ``seen`` within 1e-3 of this one (else add it).

    A tolerance rather than rounding, so scanner jitter in the 6th decimal never
    splits one stack across a rounding boundary.
    """
    if orientation is None:
        return None
    for known in seen:
        if max(abs(a - b) for a, b in zip(known, orientation)) < _ORIENTATION_TOL:
            return known
    seen.append(orientation)
    return orientation


def _iter_files(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def discover(path: Path, *, split: bool = True) -> Discovery:
    """Find and classify the series under ``path`` (a folder, recursively, or one file).

    Parameters
    ----------
    path : pathlib.Path
        A folder (any layout, any file names) or a single DICOM file.
    split : bool
        Split a Series Instance UID that mixes classification, Frame of Reference,
        orientation or image size into separate groups (default). With
        ``split=False`` only the classification splits it, and ``load_ct``
        reports mixed geometry as an error instead.

    Returns
    -------
    Discovery

    Raises
    ------
    InputError
        ``path`` does not exist.

    Examples
    --------
    >>> found = discover(Path("study/"))                    # doctest: +SKIP
    >>> [g.kind for g in found.groups]                       # doctest: +SKIP
    ['ct_volume', 'localizer']
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input path does not exist: {path}; give a DICOM folder or file")
    skipped: dict[str, int] = defaultdict(int)
    n_files = 0
    buckets: dict[tuple, list[ImageHeader]] = defaultdict(list)
    clusters: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    meta: dict[tuple, tuple[str, str | None]] = {}
    for file in _iter_files(path):
        n_files += 1
        try:
            header = read_header(file)
        except SkipFile as skip:
            skipped[skip.reason] += 1
            continue
        kind, reason = classify(header)
        # Anonymisers sometimes drop Series Instance UID (the TotalSegmentator example
        # does): such files are grouped by folder, then split as usual.
        uid = header.series_uid or f"no-series-uid:{file.parent}"
        if kind == "radiograph":
            sub: tuple = (kind, str(file))  # one radiograph per group
        elif split:
            orient = _orientation_cluster(header.orientation, clusters[uid])
            sub = (kind, header.frame_of_reference_uid, orient, header.rows, header.columns)
        else:
            sub = (kind,)
        buckets[(uid, sub)].append(header)
        meta[(uid, sub)] = (kind, reason)
    subs_per_uid: dict[str, int] = defaultdict(int)
    for uid, _ in buckets:
        subs_per_uid[uid] += 1
    groups = []
    for (uid, sub), headers in buckets.items():
        kind, reason = meta[(uid, sub)]
        n_sub = subs_per_uid[uid]
        extra = "" if n_sub == 1 else "|".join(str(s) for s in sub)
        first = headers[0]
        if kind == "ct_volume" and len(headers) == 1 and plane_of(first.orientation) != "axial":
            # A lone coronal / sagittal CT image is a scout even when ImageType
            # does not say LOCALIZER (e.g. MAROTECH_CT_JP2Lossy.dcm).
            kind, reason = "localizer", "single non-axial CT image (a scout / localizer)"
        notes = (f"split from a series holding {n_sub} kinds of image",) if n_sub > 1 else ()
        groups.append(
            SeriesGroup(
                key=series_key(uid, extra),
                kind=kind,
                modality=first.modality,
                files=tuple(h.path for h in headers),
                n_images=sum(h.frames for h in headers),
                reason=reason,
                series_uid_hash=hash_uid(first.series_uid),
                frame_of_reference_hash=hash_uid(first.frame_of_reference_uid),
                orientation=plane_of(first.orientation),
                rows=first.rows,
                columns=first.columns,
                transfer_syntax=first.transfer_syntax,
                notes=notes,
                headers=tuple(headers),
            )
        )
    # Loadable first, then by size: the pipeline usually wants the biggest CT.
    order = {k: i for i, k in enumerate(KINDS)}
    groups.sort(key=lambda g: (g.reason is not None, order.get(g.kind, 99), -g.n_images, g.key))
    return Discovery(groups=tuple(groups), skipped_files=dict(skipped), n_files=n_files)
