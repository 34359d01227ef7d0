"""Pixel decoding: decoder checks, the memory budget, and a process pool.

Everything here works on file paths and frame indices; geometry and HU live in
``calcdetect.io.geometry`` and ``calcdetect.io.dicom``.

Why a process pool: the JPEG 2000 / JPEG-LS / JPEG decoders behind pydicom
(pylibjpeg, gdcm) hold the GIL, so threads do not help; uncompressed files are
read in the calling process because pickling the frames back would cost more
than reading them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pydicom
import pydicom.config
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from calcdetect.errors import DecodeError, DecoderMissingError, MemoryBudgetError

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "is_slow_codec",
    "lenient_reading",
    "check_decoder",
    "check_memory_budget",
    "decode_frames",
    "read_native_frame",
]

#: Default ceiling for one series (decoded integers plus the float32 HU volume).
DEFAULT_MEMORY_BUDGET: int = 8 * 1024**3

# Which pip package brings a decoder for each compressed transfer syntax family.
_PACKAGE_FOR_SYNTAX: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg",  # JPEG extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg",  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",  # RLE lossless
}

# Below this many compressed frames a pool costs more to start than it saves.
_POOL_MIN_FRAMES = 8
# Codecs slow enough (tens of ms per 512 x 512 frame) that a pool pays for pickling
# the frames back; RLE and deflate decode in a few ms and are faster in-process.
_SLOW_CODEC_PREFIX = "1.2.840.10008.1.2.4."


_lenient_lock = threading.Lock()
_lenient_depth = 0
_lenient_previous = False


@contextlib.contextmanager
def lenient_reading() -> Iterator[None]:
    """Read real-world files whose elements have a value length wrong for their VR.

    Some vendors write private tags with a length that does not fit the VR
    (e.g. 6 bytes for a ``US``); pydicom raises unless
    ``convert_wrong_length_to_UN`` is set. The flag is set for the duration of the
    ``with`` block only and restored when the last (possibly nested or
    concurrent) block exits, so importing calcdetect never changes pydicom's
    behaviour for other code. pydicom's per-element warnings are silenced inside
    the block; the loader reports what matters itself.
    """
    global _lenient_depth, _lenient_previous
    with _lenient_lock:
        if _lenient_depth == 0:
            _lenient_previous = pydicom.config.convert_wrong_length_to_UN
            pydicom.config.convert_wrong_length_to_UN = True
        _lenient_depth += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        with _lenient_lock:
            _lenient_depth -= 1
            if _lenient_depth == 0:
                pydicom.config.convert_wrong_length_to_UN = _lenient_previous


def is_slow_codec(transfer_syntax: str | None) -> bool:
    """JPEG / JPEG-LS / JPEG 2000 / HTJ2K: worth decoding in a process pool."""
    return bool(transfer_syntax) and str(transfer_syntax).startswith(_SLOW_CODEC_PREFIX)


def check_decoder(transfer_syntax: str | None) -> None:
    """Raise :class:`DecoderMissingError` when no installed plugin decodes the syntax.

    Parameters
    ----------
    transfer_syntax : str or None
        Transfer Syntax UID from the file meta; ``None`` is treated as implicit
        little endian (files without meta information).
    """
    if not transfer_syntax:
        return
    uid = UID(transfer_syntax)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError as exc:
        raise DecoderMissingError(
            f"transfer syntax {uid if uid.name == str(uid) else f'{uid.name} ({uid})'} is not "
            f"supported by pydicom {pydicom.__version__}'s decoders; "
            "convert the series to an uncompressed or JPEG 2000 transfer syntax "
            "(e.g. with dcmtk's dcmdjpeg or gdcmconv --raw) and try again"
        ) from exc
    if not decoder.is_available:
        package = _PACKAGE_FOR_SYNTAX.get(str(uid), "pylibjpeg and python-gdcm")
        raise DecoderMissingError(
            f"no decoder is installed for transfer syntax {uid.name} ({uid}); "
            f"install {package} (pip install {package}) to read this series"
        )


def check_memory_budget(
    n_frames: int,
    rows: int,
    columns: int,
    samples: int,
    bits_allocated: int,
    budget_bytes: int,
    *,
    output_bytes_per_voxel: int = 4,
) -> int:
    """Refuse to decode when the pixels would need more memory than the budget.

    The estimate counts the decoded integers plus ``output_bytes_per_voxel``
    for the output (4 for one float32 array; the CT loader passes 8 to cover a
    reoriented copy), and
    is made from header values only, before any pixel data is read, so a tiny
    file claiming 65535 x 65535 x 10000 pixels costs nothing to refuse.

    Returns
    -------
    int
        The estimated number of bytes.
    """
    voxels = int(n_frames) * int(rows) * int(columns) * max(int(samples), 1)
    stored = max((int(bits_allocated) + 7) // 8, 1)
    needed = voxels * (stored + output_bytes_per_voxel)
    if needed > budget_bytes:
        raise MemoryBudgetError(
            f"decoding {n_frames} frame(s) of {rows} x {columns} pixels x {samples} sample(s) "
            f"at {bits_allocated} bits would need about {needed / 1024**3:.1f} GiB, over the "
            f"memory budget of {budget_bytes / 1024**3:.1f} GiB; raise memory_budget_bytes "
            "(--memory-budget) if the machine has the memory, or check the file's header "
            "(Rows, Columns, Number of Frames) if the size looks wrong"
        )
    return needed


def read_native_frame(
    path: Path, offset: int, shape: tuple[int, int], dtype: np.dtype, bits_stored: int | None
) -> np.ndarray:
    """Read one uncompressed frame straight from the file (the fast path).

    Equivalent to pydicom's native decoder for single-frame, single-sample data
    (tests compare the two on real files), without parsing the header a second
    time: discovery already recorded where the pixel bytes start. Unused high
    bits are handled like pydicom: masked off (unsigned) or sign-extended.
    """
    count = int(shape[0]) * int(shape[1])
    arr = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    if arr.size != count:
        raise DecodeError(
            f"pixel data ends early ({arr.size} of {count} pixels); the file is truncated"
        )
    arr = arr.reshape(shape)
    bits = arr.dtype.itemsize * 8
    if bits_stored is not None and 0 < bits_stored < bits:
        if arr.dtype.kind == "i":
            shift = bits - bits_stored
            arr = (arr << shift) >> shift
        else:
            arr &= arr.dtype.type((1 << bits_stored) - 1)
    return arr


def _read_frames(path: str, indices: Sequence[int] | None) -> list[np.ndarray]:
    """Decode the given frames (``None``: all frames) of one file, raw stored values."""
    with lenient_reading():
        # force=True: discovery already decided this is DICOM (files without a
        # preamble / file meta are common in old archives).
        ds = pydicom.dcmread(path, force=True)
        _ensure_transfer_syntax(ds)
        if indices is None:
            arr = ds.pixel_array
            n_frames = int(ds.get("NumberOfFrames", 1) or 1)
            if n_frames > 1:
                return [np.asarray(a) for a in arr]
            return [np.asarray(arr)]
        return [
            np.asarray(pydicom.pixels.pixel_array(ds, index=int(i))) for i in indices
        ]


def _ensure_transfer_syntax(ds: pydicom.Dataset) -> None:
    """Files without file meta: take the transfer syntax from how pydicom parsed them."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = True, True
    ds.file_meta.TransferSyntaxUID = (
        pydicom.uid.ImplicitVRLittleEndian
        if implicit
        else pydicom.uid.ExplicitVRLittleEndian
        if little
        else pydicom.uid.ExplicitVRBigEndian
    )


def _safe_read_frames(path: str, indices: Sequence[int] | None) -> list[np.ndarray] | str:
    """Pool worker: frames, or an error message (exceptions do not always pickle)."""
    try:
        return _read_frames(path, indices)
    except Exception as exc:  # a corrupt stream must become a DecodeError in the parent
        # One line: plugin errors come as multi-line lists of every decoder tried.
        return f"{type(exc).__name__}: " + " | ".join(
            line.strip() for line in str(exc).splitlines() if line.strip()
        )


def _pool_workers() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(int(cpus or 1), 8))


def decode_frames(
    requests: Sequence[tuple[Path, Sequence[int] | None]],
    *,
    compressed: bool,
    workers: int | None = None,
    where: str = "",
) -> list[np.ndarray]:
    """Decode frames from files, in the order requested.

    Parameters
    ----------
    requests : sequence of (path, frame indices or None)
        ``None`` decodes every frame of the file (one frame for classic images).
    compressed : bool
        The frames use a slow codec (JPEG family, JPEG-LS, JPEG 2000, HTJ2K): use
        a process pool when there are enough frames to be worth it. The pool
        uses the ``forkserver`` start method: forking a process that already
        runs torch / OpenMP threads is not safe.
    workers : int, optional
        Pool size; default: the CPUs this process may use (at most 8).
    where : str
        Appended to error messages (e.g. " in series s0123...").

    Returns
    -------
    list of numpy.ndarray
        One 2-D (or 3-D for colour) array per frame, stored values before rescale.

    Raises
    ------
    DecodeError
        A frame could not be decoded; the message names the file and the cause.
    """
    n_frames = sum(len(ix) if ix is not None else 1 for _, ix in requests)
    n_workers = workers if workers is not None else _pool_workers()
    results: list[list[np.ndarray] | str] | None = None
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    worth_a_pool = n_workers > 1 and n_frames >= _POOL_MIN_FRAMES and len(requests) > 1
    if compressed and can_fork and worth_a_pool:
        # Chunks keep the per-task overhead low; each worker reads its files once.
        chunksize = max(1, len(requests) // (n_workers * 4))
        try:
            with warnings.catch_warnings():
                # Python >= 3.12 warns about fork in a threaded parent; see above.
                warnings.simplefilter("ignore", DeprecationWarning)
                with ProcessPoolExecutor(
                    max_workers=n_workers, mp_context=multiprocessing.get_context("fork")
                ) as pool:
                    results = list(
                        pool.map(
                            _safe_read_frames,
                            [str(p) for p, _ in requests],
                            [ix for _, ix in requests],
                            chunksize=chunksize,
                        )
                    )
        except BrokenProcessPool:  # a worker died (e.g. out of memory): go serial
            results = None
    if results is None:
        results = [_safe_read_frames(str(p), ix) for p, ix in requests]
    frames: list[np.ndarray] = []
    for number, res in enumerate(results, start=1):
        if isinstance(res, str):
            # Files are named by their place in the series, never by name: folder and
            # file names in clinical exports often carry patient names.
            raise DecodeError(
                f"could not decode the pixel data of file {number} of {len(requests)}{where}: "
                f"{res}; the file may be corrupt or truncated; remove it or re-export the series"
            )
        frames.extend(res)
    return frames
