"""Benchmark discover + load_ct on a synthetic 400-slice 512 x 512 CT series.

Writes the series to a temporary folder in several transfer syntaxes
(uncompressed, JPEG 2000 lossless, RLE lossless), then times ``discover`` and
``load_ct`` ``--repeats`` times each and prints the medians. Compressed slices
are encoded from ``--distinct`` different images and reused (only the position
changes), which keeps set-up short while every slice is still decoded.

Usage::

    .venv/bin/python scripts/bench_load.py [--slices 400] [--repeats 3]
        [--syntax uncompressed jpeg2000 rle] [--workers N]

Targets on 2 cores: uncompressed <= 1.5 s, JPEG 2000 lossless <= 10 s. Other
processes on the machine make wall times noisy; the load average and the CPU
seconds of ``load_ct`` (own + pool workers, independent of machine load) are
printed too.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from calcdetect.io import discover, load_ct
from calcdetect.io import decode as decode_module

SYNTAXES = {
    "uncompressed": ExplicitVRLittleEndian,
    "jpeg2000": JPEG2000Lossless,
    "rle": RLELossless,
}


def phantom_slice(rng: np.random.Generator, size: int = 512, k: int = 0) -> np.ndarray:
    """A CT-like slice in stored values (HU + 1024): air, a body, a spine, noise."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    c = size / 2
    hu = np.full((size, size), -1000.0, np.float32)
    body = ((xx - c) / (0.42 * size)) ** 2 + ((yy - c) / (0.32 * size)) ** 2 <= 1
    hu[body] = 40.0
    spine = (xx - c) ** 2 + (yy - c - 0.15 * size - 2 * np.sin(k / 9)) ** 2 <= (0.05 * size) ** 2
    hu[spine] = 700.0
    hu += rng.normal(0.0, 15.0, hu.shape).astype(np.float32)
    return np.clip(hu + 1024.0, 0, 4095).astype(np.uint16)


def _dataset(series_uid: str, study_uid: str, for_uid: str, k: int, syntax: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [-250.0, -250.0, -400.0 + k * 1.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.9765625, 0.9765625]
    ds.SliceThickness = 1.0
    ds.InstanceNumber = k + 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def write_series(out: Path, n_slices: int, syntax: str, distinct: int, seed: int = 0) -> float:
    """Write the benchmark series; returns seconds spent."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    uids = generate_uid(), generate_uid(), generate_uid()
    uid = SYNTAXES[syntax]
    cache: list[tuple[bytes, bool]] = []
    for j in range(min(distinct, n_slices)):
        ds = _dataset(*uids, j, ExplicitVRLittleEndian)
        arr = phantom_slice(rng, k=j)
        if uid == ExplicitVRLittleEndian:
            cache.append((arr.tobytes(), False))
        else:
            ds.PixelData = arr.tobytes()
            ds.compress(uid, arr, encoding_plugin="pylibjpeg")
            cache.append((ds.PixelData, True))
    order = np.random.default_rng(seed + 1).permutation(n_slices)  # names not in z order
    for name_index, k in enumerate(order):
        ds = _dataset(*uids, int(k), uid)
        data, encapsulated = cache[int(k) % len(cache)]
        ds.PixelData = data
        ds["PixelData"].VR = "OB" if encapsulated else "OW"
        if encapsulated:
            ds["PixelData"].is_undefined_length = True
        ds.save_as(out / f"IMG{name_index:05d}", enforce_file_format=True)
    return time.perf_counter() - t0


def _cpu_seconds() -> float:
    """User + system CPU of this process and its (finished) pool workers."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench(folder: Path, repeats: int) -> tuple[float, float, float, tuple[int, ...]]:
    """Median wall seconds of discover and load_ct, and median CPU seconds of load_ct.

    CPU seconds do not depend on how busy the machine is: on an idle machine with
    N cores the pooled JPEG 2000 load takes about ``cpu / N`` wall seconds.
    """
    discover_times, load_times, load_cpu = [], [], []
    shape: tuple[int, ...] = ()
    for _ in range(repeats):
        t0 = time.perf_counter()
        found = discover(folder)
        t1 = time.perf_counter()
        c1 = _cpu_seconds()
        volume = load_ct(found.groups[0])
        t2 = time.perf_counter()
        load_cpu.append(_cpu_seconds() - c1)
        discover_times.append(t1 - t0)
        load_times.append(t2 - t1)
        shape = volume.shape
        del volume
    return (
        statistics.median(discover_times),
        statistics.median(load_times),
        statistics.median(load_cpu),
        shape,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--distinct", type=int, default=16)
    parser.add_argument("--syntax", nargs="+", default=list(SYNTAXES), choices=list(SYNTAXES))
    parser.add_argument("--workers", type=int, default=None, help="decode pool size")
    args = parser.parse_args()
    if args.workers is not None:
        default = decode_module._pool_workers
        decode_module._pool_workers = lambda: args.workers  # type: ignore[assignment]
        del default
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0]
    print(f"cpus: {cpus}   load average: {load:.1f}   slices: {args.slices} x 512 x 512")
    print(
        f"{'syntax':<14}{'write s':>9}{'discover s':>12}{'load s':>9}{'total s':>9}"
        f"{'load cpu s':>12}  shape"
    )
    with tempfile.TemporaryDirectory(prefix="calcdetect-bench-") as tmp:
        for syntax in args.syntax:
            folder = Path(tmp) / syntax
            t_write = write_series(folder, args.slices, syntax, args.distinct)
            t_disc, t_load, cpu_load, shape = bench(folder, args.repeats)
            print(
                f"{syntax:<14}{t_write:>9.1f}{t_disc:>12.2f}{t_load:>9.2f}"
                f"{t_disc + t_load:>9.2f}{cpu_load:>12.2f}  {shape}"
            )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
