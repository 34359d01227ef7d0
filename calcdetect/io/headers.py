"""Read one DICOM file's header (never its pixels) into an :class:`ImageHeader`.

Each file is opened once, read with ``stop_before_pixels`` and the stream left
at the Pixel Data element, whose length and offset are peeked so that
truncated files are caught and uncompressed pixels can later be read straight
from the file without parsing the header again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from calcdetect.io.decode import lenient_reading

__all__ = ["ImageHeader", "SkipFile", "read_header", "DOSE_SOP_CLASSES"]

DOSE_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.88.67",  # X-Ray Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.68",  # Radiopharmaceutical Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.76",  # Patient Radiation Dose SR
)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_DEFLATE = "1.2.840.10008.1.2.1.99"
_NATIVE_LE_IMPLICIT, _NATIVE_LE_EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"


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

        Only single-frame, single-sample, uncompressed little-endian images
        whose Pixel Data length matches Rows x Columns qualify.
        """
        order = {_NATIVE_LE_IMPLICIT: "<", _NATIVE_LE_EXPLICIT: "<"}.get(self.transfer_syntax or "")
        if order is None or self.pixel_offset is None or self.frames != 1 or self.samples != 1:
            return None
        if self.bits_allocated not in (8, 16, 32):
            return None
        size = self.bits_allocated // 8
        expected = self.rows * self.columns * size
        if self.pixel_bytes not in (expected, expected + 1):  # + 1: odd length padding
            return None
        return np.dtype(f"{order}{'i' if self.signed else 'u'}{size}")

    @property
    def compressed(self) -> bool:
        """Encapsulated (compressed) pixel data; deflate is decoded by pydicom itself."""
        ts = self.transfer_syntax or ""
        return ts.startswith("1.2.840.10008.1.2.4") or ts == "1.2.840.10008.1.2.5"


class SkipFile(Exception):
    """A file that discovery counts in ``skipped_files`` under ``reason`` (not an error)."""

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
    # Only integer Pixel Data in little endian qualifies for the direct-read fast path
    # (float pixel data and big-endian byte swapping are left to pydicom).
    direct = start + offset if little and tag_le == 0x7FE00010 else None
    return True, length, start + offset + length > file_size, direct


def read_header(path: Path) -> ImageHeader:
    """Read one file's header (no pixels) into an :class:`ImageHeader`.

    Raises
    ------
    SkipFile
        Internal; the reason the file is skipped ("not DICOM", "empty file", ...).
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SkipFile("unreadable") from exc
    if size == 0:
        raise SkipFile("empty file")
    try:
        with lenient_reading(), open(path, "rb") as fp:
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
            except InvalidDicomError:
                # Files without preamble / file meta are still DICOM when the first
                # element is a plausible group-0008 tag; anything else is not DICOM.
                fp.seek(0)
                first = fp.read(132)
                if first[128:132] == b"DICM":
                    raise SkipFile("truncated") from None  # preamble, then a cut-off meta
                if first[:2] not in (b"\x08\x00", b"\x00\x08") or size < 132:
                    raise SkipFile("not DICOM") from None
                fp.seek(0)
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            position = fp.tell()
            fp.seek(128)
            has_dicm = fp.read(4) == b"DICM"
            fp.seek(position)
            meta = getattr(ds, "file_meta", None) or {}
            ts = meta.get("TransferSyntaxUID")
            media_sop = meta.get("MediaStorageSOPClassUID")
            n_elements = len(ds)
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
    except SkipFile:
        raise
    except (EOFError, OSError) as exc:
        raise SkipFile("truncated") from exc
    except Exception as exc:  # pydicom raises many types on garbage; never fatal here
        if len(str(exc)) and "end of file" in str(exc).lower():
            raise SkipFile("truncated") from exc
        raise SkipFile("unreadable DICOM header") from exc
    if truncated:
        raise SkipFile("truncated")
    if has_dicm and n_elements == 0 and not has_pixels:
        raise SkipFile("truncated")  # "DICM" after the preamble, then nothing usable
    sop = str(values["SOPClassUID"] or media_sop or "")
    if not sop and values["Rows"] is None and not has_pixels:
        raise SkipFile("not DICOM")
    if not has_pixels:
        if sop in DOSE_SOP_CLASSES:
            has_pixels = False  # kept: a dose report group
        else:
            raise SkipFile("no pixel data")
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
