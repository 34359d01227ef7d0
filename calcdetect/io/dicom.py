"""Load a discovered CT series into a canonical :class:`~calcdetect.types.Volume`.

The pipeline calls :func:`calcdetect.io.discover` once and then :func:`load_ct`
for each group it wants; headers read during discovery are reused, so each file
is opened once for its header and once for its pixels.

HU conversion
-------------
Rescale Slope / Intercept are applied per slice in float32 (no int16 overflow);
pixels equal to Pixel Padding Value (or inside Pixel Padding Range Limit) are set
to air (-1000 HU). A warning is added when air does not look like air: the 0.5th
percentile of voxels above -1200 HU (which skips outside-the-field values such as
-2000 or -3024) should lie within [-1100, -900] HU.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from calcdetect.errors import DecodeError, GeometryError, UnsupportedSeriesError
from calcdetect.ids import hash_uid
from calcdetect.io.decode import (
    DEFAULT_MEMORY_BUDGET,
    check_decoder,
    check_memory_budget,
    decode_frames,
    is_slow_codec,
    lenient_reading,
    read_native_frame,
)
from calcdetect.io.discovery import LOADABLE_CT, ImageHeader, SeriesGroup, group_headers
from calcdetect.io.geometry import correct_tilt, stack_geometry, to_canonical
from calcdetect.types import AcquisitionInfo, Volume

__all__ = ["load_ct", "acquisition_info", "AIR_HU"]

AIR_HU = -1000.0
_AIR_RANGE = (-1100.0, -900.0)


@dataclass(frozen=True)
class _Frame:
    """One 2-D frame to decode and place."""

    path: Path
    index: int | None  # frame number inside a multi-frame file, None for classic
    position: tuple[float, ...]
    orientation: tuple[float, ...]
    slope: float
    intercept: float


def _where(group: SeriesGroup) -> str:
    return f" in series {group.key}"


def _first(seq: object) -> object | None:
    try:
        return seq[0] if seq else None  # type: ignore[index]
    except (TypeError, IndexError):
        return None


def _enhanced_frames(header: ImageHeader) -> tuple[list[_Frame], tuple[float, float] | None]:
    """Per-frame geometry and rescale of an Enhanced CT file (functional groups)."""
    with lenient_reading():
        ds = pydicom.dcmread(header.path, stop_before_pixels=True)
        shared = _first(ds.get("SharedFunctionalGroupsSequence"))
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
        if len(per_frame) != header.frames:
            raise GeometryError(
                f"Enhanced CT has {header.frames} frames but {len(per_frame)} per-frame "
                "functional group items; the header is inconsistent"
            )

        def lookup(item: object, seq: str, attr: str) -> object | None:
            for source in (item, shared):
                sub = _first(getattr(source, seq, None)) if source is not None else None
                if sub is not None and attr in sub:
                    return sub.get(attr)
            return None

        frames = []
        spacing = None
        for i, item in enumerate(per_frame):
            pos = lookup(item, "PlanePositionSequence", "ImagePositionPatient")
            ori = lookup(item, "PlaneOrientationSequence", "ImageOrientationPatient")
            ps = lookup(item, "PixelMeasuresSequence", "PixelSpacing")
            slope = lookup(item, "PixelValueTransformationSequence", "RescaleSlope")
            inter = lookup(item, "PixelValueTransformationSequence", "RescaleIntercept")
            if pos is None or ori is None or ps is None:
                raise GeometryError(
                    f"frame {i + 1} of the Enhanced CT has no plane position, orientation or "
                    "pixel spacing in its functional groups; it cannot be placed in space"
                )
            spacing = (float(ps[0]), float(ps[1]))
            frames.append(
                _Frame(
                    header.path,
                    i,
                    tuple(float(v) for v in pos),
                    tuple(float(v) for v in ori),
                    float(slope) if slope is not None else 1.0,
                    float(inter) if inter is not None else 0.0,
                )
            )
    return frames, spacing


def _frames(
    group: SeriesGroup, headers: Sequence[ImageHeader]
) -> tuple[list[_Frame], tuple[float, float]]:
    if group.kind == "enhanced_ct":
        frames: list[_Frame] = []
        spacing = None
        for h in headers:
            f, spacing = _enhanced_frames(h)
            frames.extend(f)
    else:
        frames = []
        for n, h in enumerate(headers, start=1):
            if h.position is None or h.orientation is None:
                raise GeometryError(
                    f"image {n} of {len(headers)}{_where(group)} has no Image Position / "
                    "Orientation (Patient); it cannot be placed in the volume"
                )
            frames.append(_Frame(h.path, None, h.position, h.orientation, h.slope, h.intercept))
        spacing = headers[0].pixel_spacing
    if spacing is None or min(spacing) <= 0:
        raise GeometryError(
            f"the series {group.key} has no usable Pixel Spacing ({spacing}); "
            "calcdetect needs it to measure in mm"
        )
    return frames, spacing


def _pair(value: object) -> tuple[float, float] | None:
    try:
        if value is None or len(value) != 2:  # type: ignore[arg-type]
            return None
        return (float(value[0]), float(value[1]))  # type: ignore[index]
    except (TypeError, ValueError):
        return None


def _hashed(uid: object) -> str | None:
    return hash_uid(str(uid)) if uid else None


def acquisition_info(path: Path, modality: str = "CT") -> AcquisitionInfo:
    """Acquisition facts from one file's header; identifiers only as hashes.

    Only technical fields are read (kVp, kernel, thickness, spacing, device,
    contrast, description); no patient name, ID, birth date or accession.
    """
    with lenient_reading():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        shared = _first(ds.get("SharedFunctionalGroupsSequence"))

        def get(attr: str, *seqs: str) -> object | None:
            if attr in ds and ds.get(attr) not in (None, ""):
                return ds.get(attr)
            for seq in seqs:  # Enhanced CT keeps these in functional groups
                sub = _first(getattr(shared, seq, None)) if shared is not None else None
                if sub is not None and sub.get(attr) not in (None, ""):
                    return sub.get(attr)
            return None

        def text(value: object | None) -> str | None:
            if value is None:
                return None
            if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
                value = "\\".join(str(v) for v in value)
            return str(value).strip() or None

        def number(value: object | None) -> float | None:
            try:
                return float(value) if value is not None else None  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return None

        ps = get("PixelSpacing", "PixelMeasuresSequence")
        return AcquisitionInfo(
            modality=str(ds.get("Modality") or modality),
            kvp=number(get("KVP", "CTXRayDetailsSequence")),
            convolution_kernel=text(get("ConvolutionKernel", "CTReconstructionSequence")),
            slice_thickness_mm=number(get("SliceThickness", "PixelMeasuresSequence")),
            pixel_spacing_mm=_pair(ps),
            manufacturer=text(ds.get("Manufacturer")),
            manufacturer_model=text(ds.get("ManufacturerModelName")),
            contrast_agent=text(get("ContrastBolusAgent")),
            contrast_route=text(get("ContrastBolusRoute")),
            series_description=text(ds.get("SeriesDescription")),
            body_part_examined=text(ds.get("BodyPartExamined")),
            study_uid_hash=_hashed(ds.get("StudyInstanceUID")),
            series_uid_hash=_hashed(ds.get("SeriesInstanceUID")),
            frame_of_reference_hash=_hashed(ds.get("FrameOfReferenceUID")),
        )


def _padding_mask(raw: np.ndarray, header: ImageHeader) -> np.ndarray | None:
    if header.padding_value is None:
        return None
    value = header.padding_value
    if header.padding_limit is not None:
        lo, hi = sorted((value, header.padding_limit))
        return (raw >= lo) & (raw <= hi)
    mask = raw == value
    if value >= 2 ** (header.bits_allocated - 1) and np.issubdtype(raw.dtype, np.signedinteger):
        mask |= raw == value - 2**header.bits_allocated  # US-encoded value, signed pixels
    return mask


def _air_warning(array: np.ndarray, padded: np.ndarray | None) -> str | None:
    every_4th = slice(None, None, 4)
    step = (slice(None, None, max(1, array.shape[0] // 32)), every_4th, every_4th)
    sample = array[step]
    keep = sample > -1200.0
    if padded is not None:  # padding was set to air by us: it says nothing about rescale
        keep &= ~padded[step]
    values = sample[keep]
    if values.size == 0:
        return "no voxel above -1200 HU: the rescale slope / intercept look wrong"
    low = float(np.percentile(values, 0.5))
    if not (_AIR_RANGE[0] <= low <= _AIR_RANGE[1]):
        return (
            f"air does not measure near -1000 HU (0.5th percentile {low:.0f} HU): check the "
            "Rescale Slope / Intercept, or the field of view may contain no air"
        )
    return None


def _raw_frames(
    group: SeriesGroup, ordered: Sequence[_Frame], by_path: dict[Path, ImageHeader]
) -> Iterator[np.ndarray]:
    """Stored pixel values of each frame, in ``ordered`` order.

    Uncompressed single-frame files are read straight from the offsets found
    during discovery (no second header parse); everything else goes through
    pydicom's decoders, compressed data in a process pool.
    """
    headers = [by_path[f.path] for f in ordered]
    if group.kind != "enhanced_ct" and all(h.native_dtype is not None for h in headers):
        for number, h in enumerate(headers, start=1):
            try:
                yield read_native_frame(
                    h.path, h.pixel_offset, (h.rows, h.columns), h.native_dtype, h.bits_stored  # type: ignore[arg-type]
                )
            except (OSError, ValueError, DecodeError) as exc:
                raise DecodeError(
                    f"could not read the pixels of file {number} of {len(headers)}"
                    f"{_where(group)}: {exc}; the file may have changed since discovery "
                    "or be truncated; run discovery again or re-export the series"
                ) from None
        return
    compressed = any(is_slow_codec(h.transfer_syntax) for h in headers)
    if group.kind == "enhanced_ct":
        paths = dict.fromkeys(f.path for f in ordered)
        requests = [(p, [f.index for f in ordered if f.path == p]) for p in paths]
    else:
        requests = [(f.path, None) for f in ordered]
    frames = decode_frames(
        requests, compressed=compressed, where=_where(group)  # type: ignore[arg-type]
    )
    if len(frames) != len(ordered):
        raise DecodeError(
            f"decoded {len(frames)} frames for {len(ordered)} images{_where(group)}; "
            "the pixel data and header disagree"
        )
    yield from frames


def load_ct(group: SeriesGroup, *, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> Volume:
    """Decode a CT series into a canonical HU :class:`Volume`.

    Parameters
    ----------
    group : SeriesGroup
        From :func:`calcdetect.io.discover`; ``kind`` must be ``ct_volume``,
        ``enhanced_ct`` or ``derived`` (loaded with a warning).
    memory_budget_bytes : int
        Refuse (before reading any pixel) when the decoded series would need more.

    Returns
    -------
    Volume
        float32 HU, ``[k, j, i]`` with i -> Left, j -> Posterior, k -> Superior.

    Raises
    ------
    UnsupportedSeriesError
        The group is not a CT volume (localizer, secondary capture, MR, ...).
    MemoryBudgetError, DecoderMissingError, DecodeError, GeometryError
        See :mod:`calcdetect.errors`; each message says what to do.

    Examples
    --------
    >>> found = discover(Path("study/"))                  # doctest: +SKIP
    >>> volume = load_ct(found.loadable()[0])              # doctest: +SKIP
    """
    if group.kind not in LOADABLE_CT:
        raise UnsupportedSeriesError(
            f"series {group.key} is a {group.kind.replace('_', ' ')} ({group.reason or 'not CT'}), "
            "not a CT volume; choose a group whose kind is 'ct_volume' or 'enhanced_ct'"
        )
    headers = group_headers(group)
    sizes = {(h.rows, h.columns, h.samples) for h in headers}
    if len(sizes) > 1:
        raise GeometryError(
            f"the images{_where(group)} have {len(sizes)} different sizes "
            f"({', '.join(f'{r}x{c}' for r, c, _ in sorted(sizes))}); a volume needs one size"
        )
    rows, columns, samples = sizes.pop()
    if samples != 1:
        raise UnsupportedSeriesError(
            f"series {group.key} has {samples} samples per pixel; CT is greyscale"
        )
    n_frames = sum(h.frames for h in headers)
    check_memory_budget(
        n_frames,
        rows,
        columns,
        samples,
        max(h.bits_allocated for h in headers),
        memory_budget_bytes,
        # float32 HU plus, for flipped / permuted acquisitions, its canonical copy
        output_bytes_per_voxel=8,
    )
    for ts in {h.transfer_syntax for h in headers}:
        check_decoder(ts)
    frames, pixel_spacing = _frames(group, headers)
    geometry = stack_geometry(
        np.array([f.position for f in frames]),
        np.array([f.orientation for f in frames]),
        pixel_spacing,
    )
    spacings = {h.pixel_spacing for h in headers}
    if len(spacings) > 1:
        raise GeometryError(
            f"the images{_where(group)} have {len(spacings)} different pixel spacings; "
            "a volume needs one; load each reconstruction as its own series"
        )
    by_path = {h.path: h for h in headers}
    ordered = [frames[i] for i in geometry.order]
    array = np.empty((len(ordered), rows, columns), dtype=np.float32)
    padded: np.ndarray | None = None
    for k, (frame, raw) in enumerate(zip(ordered, _raw_frames(group, ordered, by_path))):
        if raw.shape != (rows, columns):
            raise DecodeError(
                f"slice {k + 1} of {len(ordered)}{_where(group)} decoded to shape {raw.shape}, "
                f"header says {rows} x {columns}; the file is damaged"
            )
        # float32 arithmetic on the stored integers: no int16 overflow for any slope.
        if frame.slope == 1.0:
            np.add(raw, np.float32(frame.intercept), out=array[k], casting="unsafe")
        else:
            np.multiply(raw, np.float32(frame.slope), out=array[k], casting="unsafe")
            array[k] += np.float32(frame.intercept)
        pad = _padding_mask(raw, by_path[frame.path])
        if pad is not None and pad.any():
            if padded is None:
                padded = np.zeros(array.shape, dtype=bool)
            padded[k] = pad
            array[k][pad] = AIR_HU
    warnings: list[str] = []
    if group.kind == "derived":
        warnings.append(f"series is a derived reformat ({group.reason}); HU may be averaged")
    if geometry.tilt_deg > 0:
        correct_tilt(array, geometry.shifts, AIR_HU)
        warnings.append(
            f"gantry tilt of {geometry.tilt_deg:.1f} degrees corrected by shifting each slice "
            "in-plane (linear interpolation); the tilted slice plane is kept in the affine"
        )
    air = _air_warning(array, padded)
    if air:
        warnings.append(air)
    canonical, affine = to_canonical(array, geometry.affine)
    canonical = np.ascontiguousarray(canonical)
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    info = acquisition_info(ordered[0].path, group.modality or "CT")
    return Volume(
        array=canonical,
        spacing=spacing,  # type: ignore[arg-type]
        affine=affine,
        info=info,
        warnings=tuple(warnings),
    )
