"""The pipeline's background thread finds the femoral heads while the aorta is
tracked: the vessels are the same whether the heads were found there, or here
because that thread was still busy when they were needed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import calcdetect.anatomy.vessels as vessels
from calcdetect.anatomy.build import _body_front
from calcdetect.anatomy.spine import body_masks, find_spine


@pytest.mark.parametrize("thread_busy", [False, True])
def test_vessels_with_heads_found_beside_match_one_thread(trunk, monkeypatch, thread_busy):
    hu = trunk.volume.array
    spacing = tuple(float(v) for v in trunk.volume.spacing)
    bone = hu >= 200.0
    spine = find_spine(hu, spacing, bone=bone, body=body_masks(hu))
    sacrum_top = max((g.k1 for g in spine.segments if g.sacrum), default=None)
    assert spine.found and sacrum_top is not None
    column = spine.column | spine.bodies
    front = _body_front(spine, hu.shape[0])
    kwargs = dict(spine_mask=column, sacrum_top_k=sacrum_top, workers=1)
    one = vessels.find_vessels(hu, spacing, spine.body_centre, front, bone, **kwargs)

    ran_on: list[str] = []
    real = vessels.find_femoral_heads

    def spy(*args, **kw):
        ran_on.append(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(vessels, "find_femoral_heads", spy)
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="beside") as pool:
        if thread_busy:
            pool.submit(release.wait, 60)  # busy until the vessels are found
        heads = vessels.femoral_heads_beside(pool, bone, spacing, spine.body_centre, column, sacrum_top)
        assert heads is not None
        if not thread_busy:
            heads.result()  # the thread was free: the heads are ready when needed
        got = vessels.find_vessels(hu, spacing, spine.body_centre, front, bone, heads_beside=heads, **kwargs)
        release.set()
    assert one.bifurcation_k is not None and one.bifurcation_k == got.bifurcation_k
    # Found once: there when the thread was free, here (the queued job cancelled) when it was busy.
    assert len(ran_on) == 1 and ran_on[0].startswith("beside") != thread_busy
    np.testing.assert_array_equal(one.aorta, got.aorta)
    assert one.iliac.keys() == got.iliac.keys() and any(m.any() for m in one.iliac.values())
    for name in one.iliac:
        np.testing.assert_array_equal(one.iliac[name], got.iliac[name])


def test_no_sacrum_no_heads_searched():
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert vessels.femoral_heads_beside(pool, np.zeros((4, 4, 4), bool), (1.0, 1.0, 1.0),
                                            np.zeros((4, 2)), None, None) is None
