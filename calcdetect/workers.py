"""How many threads the voxel core may use, and an ordered thread map.

Threads, not processes: the heavy calls of the CPU path (numpy element-wise and
fancy indexing, ``np.bincount``, ``scipy.ndimage`` filters, morphology and
distance transforms, qhull) release the GIL, and threads share the CT volume
instead of copying it (a process pool would double the 2 GiB memory budget).
connected-components-3d holds the GIL; work built on it gains nothing here.

Every user of :func:`thread_map` splits its work so that the result does not
depend on the number of workers (tests compare 1 and several workers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["available_cpus", "resolve_workers", "result_unless_queued", "thread_map"]

T = TypeVar("T")
R = TypeVar("R")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(requested: int | None) -> int:
    """The worker count for a run: ``requested``, or every available CPU when ``None``."""
    if requested is None:
        return available_cpus()
    if int(requested) < 1:
        raise ValueError(f"workers must be >= 1 (or null for all available CPUs), got {requested}")
    return int(requested)


def thread_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """``[fn(x) for x in items]``, on up to ``workers`` threads, results in input order."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def result_unless_queued(job: Future[T] | None) -> T | None:
    """The job's result if it has started (waiting for it if it is still running),
    or None, cancelling it, if the other thread has not got to it yet: the caller
    then does the work itself rather than wait behind that thread's queue."""
    if job is None or job.cancel():
        return None
    return job.result()
