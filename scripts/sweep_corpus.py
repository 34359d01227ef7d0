"""Run discover + load over DICOM corpora and print what loaded and what was refused.

Every group found is loaded with ``load_ct`` / ``load_radiograph``; every image
file is also decoded on its own (first frame, under the memory budget) so each
transfer syntax is exercised even where the file is not a volume. The outcome is
"loaded", a calcdetect error class, or "RAW <type>" for an exception that is not
a ``CalcdetectError`` (a bug: the sweep exits with status 1).

Usage::

    .venv/bin/python scripts/sweep_corpus.py [ROOT ...] [--budget-gib 8] [--verbose]

Without roots it sweeps ``../shared/data/real/dicom_corpus`` and pydicom's bundled
test files.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from calcdetect.errors import CalcdetectError
from calcdetect.io import discover, load_ct, load_radiograph
from calcdetect.io.decode import check_decoder, check_memory_budget, decode_frames
from calcdetect.io.discovery import SeriesGroup

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROOTS = (
    ROOT / ".." / "shared" / "data" / "real" / "dicom_corpus",
    Path(pydicom.__file__).parent / "data" / "test_files",
)


@dataclass
class SweepResult:
    """Counts and details of one sweep."""

    n_files: int = 0
    skipped_files: Counter = field(default_factory=Counter)
    groups: Counter = field(default_factory=Counter)  # (kind, outcome) -> count
    files: Counter = field(default_factory=Counter)  # per-file decode outcome -> count
    raw: list[str] = field(default_factory=list)  # non-calcdetect exceptions (bugs)
    details: list[tuple[str, str, str]] = field(default_factory=list)
    slowest: tuple[float, str] = (0.0, "")
    seconds: float = 0.0


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, CalcdetectError):
        return type(exc).__name__
    return f"RAW {type(exc).__name__}"


def _load_group(group: SeriesGroup, budget: int) -> str:
    if group.reason is not None and group.kind not in ("derived",):
        # Skipped by discovery; loading must still refuse with a typed error.
        try:
            load_ct(group, memory_budget_bytes=budget)
        except CalcdetectError:
            return f"skipped ({group.kind})"
        return "RAW loaded a skipped group"
    if group.kind == "radiograph":
        load_radiograph(group, memory_budget_bytes=budget)
    else:
        load_ct(group, memory_budget_bytes=budget)
    return "loaded"


def _decode_file(group: SeriesGroup, budget: int) -> list[str]:
    outcomes = []
    for h in group.headers:
        try:
            check_memory_budget(1, h.rows, h.columns, h.samples, h.bits_allocated, budget)
            check_decoder(h.transfer_syntax)
            decode_frames([(h.path, [0] if h.frames > 1 else None)], compressed=False)
            outcomes.append("decoded")
        except Exception as exc:  # classified below; never fatal for the sweep
            outcomes.append(_outcome(exc))
    return outcomes


def sweep(roots: list[Path], budget: int, *, decode_files: bool = True) -> SweepResult:
    """Discover and load everything under ``roots``; never raises for bad files."""
    result = SweepResult()
    t_start = time.perf_counter()
    for root in roots:
        if not root.exists():
            print(f"(missing: {root})", file=sys.stderr)
            continue
        found = discover(root)
        result.n_files += found.n_files
        result.skipped_files.update(found.skipped_files)
        for group in found.groups:
            t0 = time.perf_counter()
            try:
                outcome = _load_group(group, budget)
                message = ""
            except Exception as exc:
                outcome, message = _outcome(exc), str(exc)
            elapsed = time.perf_counter() - t0
            where = f"{root.name}/{group.files[0].relative_to(root) if group.files[0] != root else group.files[0].name}"
            if elapsed > result.slowest[0]:
                result.slowest = (elapsed, where)
            result.groups[(group.kind, outcome)] += 1
            result.details.append((where, outcome, message))
            if outcome.startswith("RAW"):
                result.raw.append(f"{where}: {outcome}: {message}")
            if decode_files and group.kind not in ("dose_report",):
                for o in _decode_file(group, budget):
                    result.files[o] += 1
                    if o.startswith("RAW"):
                        result.raw.append(f"{where}: decode {o}")
    result.seconds = time.perf_counter() - t_start
    return result


def print_table(result: SweepResult, verbose: bool = False) -> None:
    print(f"files: {result.n_files}   time: {result.seconds:.1f} s   "
          f"slowest group: {result.slowest[0]:.2f} s ({result.slowest[1]})")
    print("\nskipped files (not images):")
    for reason, n in sorted(result.skipped_files.items()):
        print(f"  {reason:<28} {n:>5}")
    print("\ngroups by kind and outcome:")
    for (kind, outcome), n in sorted(result.groups.items()):
        print(f"  {kind:<18} {outcome:<36} {n:>5}")
    print("\nper-image decode (first frame):")
    for outcome, n in sorted(result.files.items()):
        print(f"  {outcome:<36} {n:>5}")
    if verbose:
        print("\ndetails:")
        for where, outcome, message in result.details:
            print(f"  {outcome:<28} {where}  {message[:160]}")
    if result.raw:
        print("\nRAW EXCEPTIONS (bugs):")
        for line in result.raw:
            print("  " + line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path)
    parser.add_argument("--budget-gib", type=float, default=8.0)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--no-file-decode", action="store_true")
    args = parser.parse_args(argv)
    roots = args.roots or list(DEFAULT_ROOTS)
    result = sweep(roots, int(args.budget_gib * 1024**3), decode_files=not args.no_file_decode)
    print_table(result, args.verbose)
    return 1 if result.raw else 0


if __name__ == "__main__":
    sys.exit(main())
