"""Find the image series in a messy folder and say what each one is.

Rules (documented here because they decide what gets analysed)
---------------------------------------------------------------
Every file is read once, header only (``stop_before_pixels``), and classified on
its own; files are then grouped by Series Instance UID and split further by
classification, Frame of Reference, image orientation (rounded to 1e-3) and
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
import pydicom
from pydicom.errors import InvalidDicomError

from calcdetect.errors import DecodeError, InputError
from calcdetect.ids import hash_uid, series_key
from calcdetect.io.decode import lenient_reading

__all__ = ["ImageHeader", "SeriesGroup", "Discovery", "discover", "read_header", "group_headers", "classify", "plane_of", "KINDS"]

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
_DOSE_SOP = (
    "1.2.840.10008.5.1.4.1.1.88.67",  # X-Ray Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.68",  # Radiopharmaceutical Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.76",  # Patient Radiation Dose SR
)
_SC_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_REFORMAT_WORDS = {
    "REFORMATTED", "MPR", "MIP", "MINIP", "MINIMUM", "MAXIMUM", "VR", "VOLUME_RENDER",
    "3D", "CURVED", "CPR", "SSD", "PROJECTION IMAGE", "AVERAGE", "MEAN",
}  # fmt: skip
_LOCALIZER_WORDS = {"LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW", "SCANOGRAM"}
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_DEFLATE = "1.2.840.10008.1.2.1.99"
_NATIVE_LE_IMPLICIT, _NATIVE_LE_EXPLICIT, _NATIVE_BE = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
)


@dataclass(frozen=True)
class ImageHeader:
    """What the loader needs from one file's header (no patient identifiers)."""

    path: Path
    sop_class: str
    modality: str | None
    image_type: tuple[str, ...]
    transfer_syntax: str | None
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int | None
    signed: bool
    photometric: str | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    slope: float
    intercept: float
    padding_value: int | None
    padding_limit: int | None
    instance_number: int | None
    series_uid: str | None = field(repr=False, default=None)
    frame_of_reference_uid: str | None = field(repr=False, default=None)
    pixel_bytes: int | None = None  # value length of defined-length pixel data
    pixel_offset: int | None = None  # file offset of that value
    description: str = field(repr=False, default="")  # Series Description

    @property
    def native_dtype(self) -> np.dtype | None:
        """numpy dtype for reading the pixel bytes directly, or None (use pydicom).

        Only single-frame, single-sample, uncompressed little/big-endian images
        whose Pixel Data length matches Rows x Columns qualify.
        """
        order = {_NATIVE_LE_IMPLICIT: "<", _NATIVE_LE_EXPLICIT: "<", _NATIVE_BE: ">"}.get(
            self.transfer_syntax or ""
        )
        if order is None or self.pixel_offset is None or self.frames != 1 or self.samples != 1:
            return None
        if self.bits_allocated not in (8, 16, 32):
            return None
        size = self.bits_allocated // 8
        if self.pixel_bytes not in (self.rows * self.columns * size, self.rows * self.columns * size + 1):
            return None
        return np.dtype(f"{order}{'i' if self.signed else 'u'}{size}")

    @property
    def compressed(self) -> bool:
        """Encapsulated (compressed) pixel data; deflate is decoded by pydicom itself."""
        ts = self.transfer_syntax or ""
        return ts.startswith("1.2.840.10008.1.2.4") or ts == "1.2.840.10008.1.2.5"


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


class _Skip(Exception):
    """Internal: a file that is counted in ``skipped_files`` under ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(np.isfinite(out)):
        return None
    return out


def _int(value: object, default: int | None) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _float(value: object, default: float) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def _peek_pixel_element(fp, file_size: int) -> tuple[bool, int | None, bool, int | None]:
    """At the position where ``stop_before_pixels`` stopped: pixel tag, length,
    truncated, and the byte offset of the value (for the uncompressed fast path)."""
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return False, None, False, None
    tag_le = int.from_bytes(head[0:2], "little") << 16 | int.from_bytes(head[2:4], "little")
    tag_be = int.from_bytes(head[0:2], "big") << 16 | int.from_bytes(head[2:4], "big")
    little = tag_le in _PIXEL_TAGS
    if not little and tag_be not in _PIXEL_TAGS:
        return False, None, False, None
    order = "little" if little else "big"
    if head[4:6].isalpha() and head[4:6].isupper():  # explicit VR: OB/OW/OF/OD + 2 reserved
        if len(head) < 12:
            return True, None, True, None
        length, offset = int.from_bytes(head[8:12], order), 12
    else:
        length, offset = int.from_bytes(head[4:8], order), 8
    if length == 0xFFFFFFFF:  # encapsulated: fragments are checked when decoded
        return True, None, False, None
    return True, length, start + offset + length > file_size, start + offset


def read_header(path: Path) -> ImageHeader:
    """Read one file's header (no pixels) into an :class:`ImageHeader`.

    Raises
    ------
    _Skip
        Internal; the reason the file is skipped ("not DICOM", "empty file", ...).
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _Skip("unreadable") from exc
    if size == 0:
        raise _Skip("empty file")
    try:
        with lenient_reading(), open(path, "rb") as fp:
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
            except InvalidDicomError:
                # Files without preamble / file meta are still DICOM when the first
                # element is a plausible group-0008 tag; anything else is not DICOM.
                fp.seek(0)
                first = fp.read(4)
                if first[:2] not in (b"\x08\x00", b"\x00\x08") or size < 132:
                    raise _Skip("not DICOM") from None
                fp.seek(0)
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
            ts = str(ts) if ts else None
            if ts == _DEFLATE:
                # The stream position is inside the inflated buffer: read it whole.
                fp.seek(0)
                full = pydicom.dcmread(fp, force=True)
                has_pixels = any(t in full for t in _PIXEL_TAGS)
                pixel_bytes, truncated, pixel_offset = None, False, None
            else:
                has_pixels, pixel_bytes, truncated, pixel_offset = _peek_pixel_element(fp, size)
            # Touch the values we use now, while the lenient flag is set.
            values = {
                k: ds.get(k)
                for k in (
                    "SOPClassUID", "Modality", "ImageType", "Rows", "Columns",
                    "NumberOfFrames", "SamplesPerPixel", "BitsAllocated", "BitsStored",
                    "PixelRepresentation",
                    "PhotometricInterpretation", "ImagePositionPatient",
                    "ImageOrientationPatient", "PixelSpacing", "RescaleSlope",
                    "RescaleIntercept", "PixelPaddingValue", "PixelPaddingRangeLimit",
                    "InstanceNumber", "SeriesInstanceUID", "FrameOfReferenceUID",
                    "SeriesDescription",
                )
            }  # fmt: skip
    except _Skip:
        raise
    except (EOFError, OSError) as exc:
        raise _Skip("truncated") from exc
    except Exception as exc:  # pydicom raises many types on garbage; never fatal here
        if len(str(exc)) and "end of file" in str(exc).lower():
            raise _Skip("truncated") from exc
        raise _Skip("unreadable DICOM header") from exc
    if truncated:
        raise _Skip("truncated")
    sop = str(values["SOPClassUID"] or "")
    if not sop and values["Rows"] is None and not has_pixels:
        raise _Skip("not DICOM")
    if not has_pixels:
        if sop in _DOSE_SOP:
            has_pixels = False  # kept: a dose report group
        else:
            raise _Skip("no pixel data")
    image_type = tuple(str(v).strip().upper() for v in (values["ImageType"] or ()))
    if isinstance(values["ImageType"], str):
        image_type = (values["ImageType"].strip().upper(),)
    return ImageHeader(
        path=path,
        sop_class=sop,
        modality=(str(values["Modality"]).strip().upper() or None) if values["Modality"] else None,
        image_type=image_type,
        transfer_syntax=ts,
        rows=_int(values["Rows"], 0) or 0,
        columns=_int(values["Columns"], 0) or 0,
        frames=max(_int(values["NumberOfFrames"], 1) or 1, 1),
        samples=_int(values["SamplesPerPixel"], 1) or 1,
        bits_allocated=_int(values["BitsAllocated"], 16) or 16,
        bits_stored=_int(values["BitsStored"], None),
        signed=_int(values["PixelRepresentation"], 0) == 1,
        photometric=str(values["PhotometricInterpretation"] or "").strip().upper() or None,
        position=_floats(values["ImagePositionPatient"], 3),  # type: ignore[arg-type]
        orientation=_floats(values["ImageOrientationPatient"], 6),  # type: ignore[arg-type]
        pixel_spacing=_floats(values["PixelSpacing"], 2),  # type: ignore[arg-type]
        slope=_float(values["RescaleSlope"], 1.0),
        intercept=_float(values["RescaleIntercept"], 0.0),
        padding_value=_int(values["PixelPaddingValue"], None),
        padding_limit=_int(values["PixelPaddingRangeLimit"], None),
        instance_number=_int(values["InstanceNumber"], None),
        series_uid=str(values["SeriesInstanceUID"]) if values["SeriesInstanceUID"] else None,
        frame_of_reference_uid=(
            str(values["FrameOfReferenceUID"]) if values["FrameOfReferenceUID"] else None
        ),
        pixel_bytes=pixel_bytes if has_pixels else 0,
        pixel_offset=pixel_offset if has_pixels else None,
        description=str(values["SeriesDescription"] or "").strip(),
    )


def group_headers(group: SeriesGroup) -> tuple[ImageHeader, ...]:
    """The group's headers: from discovery, or read now for a group built by hand."""
    if group.headers:
        return group.headers
    out = []
    for path in group.files:
        try:
            out.append(read_header(Path(path)))
        except _Skip as skip:
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
    if h.sop_class in _DOSE_SOP or (
        h.sop_class.startswith(_SC_PREFIX) and ("DOSE" in words or "DOSE" in desc)
    ):
        return "dose_report", "radiation dose report, not an image to analyse"
    if h.sop_class.startswith(_SC_PREFIX) or modality == "OT" and not h.sop_class.startswith(_CT_SOP):
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
    meta: dict[tuple, tuple[str, str | None]] = {}
    for file in _iter_files(path):
        n_files += 1
        try:
            header = read_header(file)
        except _Skip as skip:
            skipped[skip.reason] += 1
            continue
        kind, reason = classify(header)
        # Anonymisers sometimes drop Series Instance UID (the TotalSegmentator example
        # does): such files are grouped by folder, then split as usual.
        uid = header.series_uid or f"no-series-uid:{file.parent}"
        if kind == "radiograph":
            sub: tuple = (kind, str(file))  # one radiograph per group
        elif split:
            orient = (
                tuple(round(v, 3) + 0.0 for v in header.orientation) if header.orientation else None
            )
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
