"""The anatomy rules give the same answer on one thread and on several: the
vessel and kidney searches split their work (slices, sides, the femoral heads
beside the aorta) so that only the wall time depends on the worker count."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcdetect.anatomy.build import _body_front
from calcdetect.anatomy.grid import block_majority, block_mean, to_fine_labels, work_grid
from calcdetect.anatomy.kidneys import find_kidneys
from calcdetect.anatomy.spine import body_masks, find_spine
from calcdetect.anatomy.vessels import find_vessels


@pytest.fixture(scope="module")
def rules_input(trunk):
    hu = trunk.volume.array
    spacing = tuple(float(v) for v in trunk.volume.spacing)
    bone = hu >= 200.0
    spine = find_spine(hu, spacing, bone=bone, body=body_masks(hu))
    assert spine.found
    sacrum_top = max((g.k1 for g in spine.segments if g.sacrum), default=None)
    return hu, spacing, bone, spine, sacrum_top


def test_vessels_do_not_depend_on_worker_count(rules_input):
    hu, spacing, bone, spine, sacrum_top = rules_input
    front = _body_front(spine, hu.shape[0])
    runs = [find_vessels(hu, spacing, spine.body_centre, front, bone, spine_mask=spine.column | spine.bodies,
                         sacrum_top_k=sacrum_top, workers=w) for w in (1, 3)]
    one, many = runs
    assert one.aorta.any() and one.bifurcation_k is not None  # the synthetic aorta bifurcates at L4
    assert np.array_equal(one.aorta, many.aorta)
    assert one.bifurcation_k == many.bifurcation_k
    assert one.iliac.keys() == many.iliac.keys()
    assert any(m.any() for m in one.iliac.values())
    for name in one.iliac:
        assert np.array_equal(one.iliac[name], many.iliac[name]), name
    np.testing.assert_array_equal(one.aorta_tube.centre, many.aorta_tube.centre)


def test_kidneys_do_not_depend_on_worker_count(rules_input):
    hu, spacing, _, spine, _ = rules_input
    runs = [find_kidneys(hu, spacing, spine.body_centre, spine.column | spine.bodies, workers=w) for w in (1, 2)]
    one, many = runs
    assert list(one) == list(many) == ["left", "right"]
    for side in one:
        for part in ("cortex", "medulla", "collecting_system"):
            assert np.array_equal(getattr(one[side], part), getattr(many[side], part)), (side, part)


@pytest.mark.parametrize("fine_shape, spacing", [((41, 37, 53), (1.0, 0.78, 0.78)), ((23, 30, 30), (0.6, 1.0, 0.5))])
def test_work_grid_passes_do_not_depend_on_worker_count(fine_shape, spacing):
    # shapes that are not whole blocks: the far-edge rows must come out the same
    rng = np.random.default_rng(3)
    hu = rng.normal(0.0, 300.0, fine_shape).astype(np.float32)
    grid = work_grid(fine_shape, spacing)
    assert not grid.identity
    mask = hu > 100.0
    coarse_labels = rng.integers(0, 40, grid.shape).astype(np.uint8)
    for w in (2, 3, 64):
        assert np.array_equal(block_mean(hu, grid, workers=w), block_mean(hu, grid, workers=1))
        assert block_mean(hu, grid, workers=w).dtype == np.float32
        assert np.array_equal(block_majority(mask, grid, workers=w), block_majority(mask, grid, workers=1))
        fine = to_fine_labels(coarse_labels, grid, workers=w)
        assert fine.shape == fine_shape
        assert np.array_equal(fine, to_fine_labels(coarse_labels, grid, workers=1))
    # and one pass is what it claims: a coarse voxel fills its block
    fk, fj, fi = grid.factors
    fine = to_fine_labels(coarse_labels, grid, workers=2)
    assert np.array_equal(fine[::fk, ::fj, ::fi][: grid.shape[0], : grid.shape[1], : grid.shape[2]], coarse_labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_body_masks_holes_in_the_body_box_match_the_whole_stack(seed):
    # A cropped search for holes must give what labelling the whole stack gives:
    # holes are background not 6-connected to the stack's in-plane border.
    rng = np.random.default_rng(seed)
    hu = np.where(ndi.binary_opening(rng.random((12, 48, 56)) > 0.35), 40.0, -900.0).astype(np.float32)
    hu[:, :, :3] = -900.0  # air beside the body at the edge of the field of view
    if seed == 2:
        hu[:, 0, 10:30] = 40.0  # the body cut by the field of view
    got = body_masks(hu)
    lab, _ = ndi.label(hu > -400.0)
    counts = np.bincount(lab.ravel())
    counts[0] = 0
    body = lab == int(np.argmax(counts))
    bg, n = ndi.label(~body)
    border = np.unique(np.concatenate([bg[:, 0, :].ravel(), bg[:, -1, :].ravel(), bg[:, :, 0].ravel(),
                                       bg[:, :, -1].ravel()]))
    expected = body | (np.isin(bg, np.setdiff1d(np.arange(1, n + 1), border)))
    assert np.array_equal(got, expected)
    assert (got & ~body).any() or seed == 2  # the random body has holes to fill


@pytest.mark.parametrize("aorta_says_contrast", [False, True])
def test_kidneys_searched_beside_the_vessels_match_one_thread(trunk, monkeypatch, aorta_says_contrast):
    """With a spare CPU the kidneys are searched beside the vessels on the header's
    contrast answer; when the aorta's HU disagrees they are searched again, so
    the map is the one-thread map either way."""
    import calcdetect.anatomy.build as build
    from calcdetect.anatomy import build_anatomy
    from calcdetect.device import Device

    assert not trunk.volume.info.contrast_agent
    calls: list[bool] = []
    real = build.find_kidneys

    def spy(*args, **kwargs):
        calls.append(bool(kwargs["contrast"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "find_kidneys", spy)
    monkeypatch.setattr(build, "_contrast_suspected", lambda *a: aorta_says_contrast)
    one = build_anatomy(trunk.volume, Device("cpu"), workers=1)
    assert calls == [aorta_says_contrast]
    calls.clear()
    two = build_anatomy(trunk.volume, Device("cpu"), workers=2)
    # beside the vessels on the header's answer (no contrast), again only if the aorta disagrees
    assert calls == ([False, True] if aorta_says_contrast else [False])
    np.testing.assert_array_equal(one.labels, two.labels)
    assert one.slice_levels == two.slice_levels and one.notes == two.notes


@pytest.mark.parametrize("caller_thread_busy", [False, True])
def test_kidneys_on_the_callers_thread_match_one_thread(trunk, monkeypatch, caller_thread_busy):
    """The pipeline hands the anatomy its background thread for the kidneys: they
    run there when it is free, on the calling thread when it is still busy once
    the vessels are done (never waited for), and the map is the one-thread map."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import calcdetect.anatomy.build as build
    from calcdetect.anatomy import build_anatomy
    from calcdetect.device import Device

    one = build_anatomy(trunk.volume, Device("cpu"), workers=1)
    ran_on: list[str] = []
    real = build.find_kidneys

    def spy(*args, **kwargs):
        ran_on.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "find_kidneys", spy)
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="beside") as pool:
        if caller_thread_busy:
            pool.submit(release.wait, 60)  # busy until the anatomy is built
        beside = build_anatomy(trunk.volume, Device("cpu"), workers=1, beside=pool)
        release.set()
    assert len(ran_on) == 1
    assert ran_on[0].startswith("beside") != caller_thread_busy
    np.testing.assert_array_equal(one.labels, beside.labels)
    assert one.slice_levels == beside.slice_levels and one.notes == beside.notes


def test_anatomy_from_a_body_prepared_ahead_is_the_same(trunk):
    """The pipeline prepares the work-grid CT and body beside the bone
    segmentation; the map is the one build_anatomy makes on its own, and a
    preparation for another grid is refused rather than used."""
    from calcdetect.anatomy import build_anatomy
    from calcdetect.anatomy.build import body_on_work_grid
    from calcdetect.device import Device

    vol = trunk.volume
    alone = build_anatomy(vol, Device("cpu"), workers=1)
    ahead = build_anatomy(vol, Device("cpu"), workers=1, prepared=body_on_work_grid(vol, workers=1))
    np.testing.assert_array_equal(alone.labels, ahead.labels)
    assert alone.slice_levels == ahead.slice_levels and alone.notes == ahead.notes
    coarser = body_on_work_grid(vol, (5.0, 3.0, 3.0))
    with pytest.raises(ValueError, match="work grid"):
        build_anatomy(vol, Device("cpu"), prepared=coarser)
