"""Work handed to the pipeline's background thread during the anatomy: the
calling thread waits for it only where it needs it, and the map is the one the
anatomy makes on one thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from calcdetect.anatomy import build_anatomy
from calcdetect.anatomy.grid import work_grid
from calcdetect.device import Device
from calcdetect.types import AnatomyMap, Volume


def test_kidneys_searched_beside_are_joined_after_the_work_that_does_not_need_them(trunk, monkeypatch):
    """On the pipeline's thread the kidneys may still run when the vessels are
    done: the calling thread builds the bone layers first (the kidney search
    here waits to see that happen) and the map is the one-thread map."""
    import calcdetect.anatomy.build as build

    one = build_anatomy(trunk.volume, Device("cpu"), workers=1)
    other_bone_done = threading.Event()
    seen: list[bool] = []
    real_kidneys, real_other_bone = build.find_kidneys, build._other_bone

    def slow_kidneys(*args, **kwargs):
        seen.append(other_bone_done.wait(timeout=20))
        return real_kidneys(*args, **kwargs)

    def other_bone(*args, **kwargs):
        out = real_other_bone(*args, **kwargs)
        other_bone_done.set()
        return out

    monkeypatch.setattr(build, "find_kidneys", slow_kidneys)
    monkeypatch.setattr(build, "_other_bone", other_bone)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="beside") as pool:
        beside = build_anatomy(trunk.volume, Device("cpu"), workers=1, beside=pool)
    assert seen == [True]
    np.testing.assert_array_equal(one.labels, beside.labels)
    assert one.source == beside.source and list(one.source) == list(beside.source)
    assert one.slice_levels == beside.slice_levels and one.notes == beside.notes


@pytest.mark.parametrize("thread_busy", [False, True])
def test_map_summaries_worked_out_beside_are_the_whole_map_answers(trunk, thread_busy):
    """On a CT finer than the work grid the map's boxes and per-slice counts are
    worked out beside the upsampling, or here when that thread is still busy:
    either way they are what whole-map passes give."""
    vol = trunk.volume
    fine = Volume(np.repeat(np.repeat(vol.array, 2, axis=1), 2, axis=2),
                  (vol.spacing[0], vol.spacing[1] / 2, vol.spacing[2] / 2), vol.affine, vol.info)
    assert not work_grid(fine.shape, fine.spacing).identity
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        if thread_busy:
            pool.submit(release.wait, 60)  # busy until the anatomy is built
        am = build_anatomy(fine, Device("cpu"), workers=1, beside=pool)
        release.set()
    assert am.knows_structure_boxes
    assert len(am.structure_boxes) > 5  # spine, vessels, kidneys ...
    whole = AnatomyMap(am.labels, np.eye(4), (None,) * am.labels.shape[0])
    assert am.structure_boxes == whole.structure_boxes
    np.testing.assert_array_equal(am.slice_label_counts, whole.slice_label_counts)
