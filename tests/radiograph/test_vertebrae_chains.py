"""Choosing between body chains of one column (issue #6 level accuracy).

A strip that runs behind the bodies (on the pedicles and facets) dips about twice per
vertebra, so its chain has more "bodies" than the chain on the bodies, each 8-17 mm
high. Ranking chains by their number of bodies kept such sliver chains (development
phantoms 422 and 439: every level unnamed, "bodies 16 mm high"); whole bodies rank
first now. And a chain whose posterior edge lies near the strip's posterior border can
still be checked for bone in front of it, so that a chain left on the posterior elements
names no levels.
"""

from __future__ import annotations

import numpy as np
import pytest

import calcdetect.radiograph.vertebrae as vertebrae
from calcdetect.radiograph.vertebrae import (
    POSTERIOR_BAND_TRIGGER,
    STEP_MM,
    SpineStrip,
    Vertebra,
    _chain_size,
    _onto_bodies_in_front,
    _PathBodies,
    bone_beside,
)


def _chain(heights_mm: list[float], gap_mm: float = 9.0, t_ant: float = 100.0, t_post: float = 170.0) -> list[Vertebra]:
    out, s = [], 20.0
    for h in heights_mm:
        out.append(Vertebra(None, np.zeros((4, 2)), 1.0, s, s + h / STEP_MM, t_ant, t_post))
        s += (h + gap_mm) / STEP_MM
    return out


def _found(verts: list[Vertebra], S: np.ndarray) -> _PathBodies:
    n = S.shape[0]
    strip = SpineStrip(S, np.column_stack([np.arange(n, dtype=float), np.full(n, 300.0)]),
                       np.tile([0.0, 1.0], (n, 1)), 260, STEP_MM, False, 1000)
    return _PathBodies(strip, np.ones(n, bool), int(verts[0].t_ant), int(verts[0].t_post), verts, [], S.mean(1), 70.0)


def test_whole_bodies_outrank_a_chain_cut_into_slivers():
    on_bodies = _chain([23, 33, 32, 29, 32])  # phantom 439, chain on the bodies
    slivers = _chain([22, 13, 22, 16, 11, 15, 24, 34], gap_mm=6.0)  # the same column, path moved
    assert _chain_size(on_bodies) > _chain_size(slivers)
    # between chains of whole bodies the longer one still wins (a body found under the ribs)
    assert _chain_size(_chain([25, 30, 30, 31, 30])) > _chain_size(_chain([30, 30, 31, 30]))


def test_a_moved_path_that_cuts_the_bodies_into_slivers_is_not_taken(monkeypatch):
    S = np.zeros((700, 401), np.float32)
    found = _found(_chain([23, 33, 32, 29, 32]), S)
    moved = _found(_chain([22, 13, 22, 16, 11, 15, 24, 34], gap_mm=6.0), S)
    # the moved chain "stands out" more from its surroundings, as in phantom 439
    monkeypatch.setattr(vertebrae, "bone_beside", lambda f, **k: 0.08 if f is found else -0.5)
    monkeypatch.setattr(vertebrae, "_bodies_along", lambda *a, **k: moved)
    cols = np.full(100, 150)
    kept = _onto_bodies_in_front(found, S, (0.3, 0.3), cols, np.arange(100), np.ones(100), False)
    assert kept is found

    # a moved chain of whole bodies is still taken when it stands out clearly better
    whole = _found(_chain([24, 30, 26, 29, 24]), S)
    monkeypatch.setattr(vertebrae, "bone_beside", lambda f, **k: 0.08 if f is found else -0.5)
    monkeypatch.setattr(vertebrae, "_bodies_along", lambda *a, **k: whole)
    assert _onto_bodies_in_front(found, S, (0.3, 0.3), cols, np.arange(100), np.ones(100), False) is whole


@pytest.mark.parametrize("posterior_room_mm", [15.0, 45.0])
def test_bone_in_front_of_a_deep_chain_is_seen_near_the_strips_border(posterior_room_mm):
    """A chain on the pedicles 48 mm deep with the bodies 10-40 mm in front of it: its
    posterior edge can lie less than 40 mm from the strip's posterior border (phantoms
    60, 71, 91, 422: no value at all). The partial measure sees the bone in front."""
    t_ant, t_post = 200, 296
    width = t_post + int(posterior_room_mm / STEP_MM)
    S = np.full((600, width), 0.3, np.float32)
    S[:, t_ant - int(40 / STEP_MM): t_ant - int(8 / STEP_MM)] = 1.0  # the bodies, in front
    S[:, t_ant: t_post] = 0.6  # pedicles and facets
    found = _found(_chain([20, 20, 20, 20], t_ant=t_ant, t_post=t_post), S)
    score = bone_beside(found, partial=True)
    assert score is not None and score > vertebrae.CHAIN_BESIDE_BODIES
    if posterior_room_mm < 40:
        assert bone_beside(found) is None  # the shifted-path choice keeps the full bands

    S[:, t_ant - int(40 / STEP_MM): t_ant - int(8 / STEP_MM)] = 0.3  # soft tissue in front
    S[:, t_ant: t_post] = 1.0  # a chain on the bodies
    on_bodies = _found(_chain([20, 20, 20, 20], t_ant=t_ant, t_post=t_post), S)
    assert bone_beside(on_bodies, partial=True) < POSTERIOR_BAND_TRIGGER


def test_a_chain_with_denser_bone_beside_it_names_no_levels(monkeypatch, lateral_left):
    """Where no shifted path repairs a chain on the posterior elements (a strongly curved
    column, development phantom 71: every level 23-48 mm off), the bodies beside it are
    clearly denser than its "bodies"; naming L1-L5 there would score the wrong zone."""
    sp = (lateral_left.spacing_mm, lateral_left.spacing_mm)
    assert vertebrae.find_vertebrae(lateral_left.image, sp).anchored
    monkeypatch.setattr(vertebrae, "bone_beside", lambda found, **k: vertebrae.CHAIN_BESIDE_BODIES + 0.1)
    det = vertebrae.find_vertebrae(lateral_left.image, sp)
    assert det.vertebrae and not det.anchored
    assert all(v.level is None for v in det.vertebrae)
    assert any("posterior elements" in w for w in det.warnings)


def test_extrapolated_l1_sits_on_l2s_inferior_endplate_when_l2_came_out_too_tall():
    """The chain's top body (L2 when L1 is extrapolated) had its superior endplate found
    in the L1-L2 disc, ~6 mm high: L1 was placed 9-12 mm too high (development phantoms
    3, 11, 43). L1 is placed from L2's inferior endplate and the lower bodies' height."""
    height, gap = 60, 18  # strip rows: 30 mm bodies, 9 mm discs, 1 image px per strip row
    tops = {"L2": 200, "L3": 278, "L4": 356, "L5": 434}
    verts = []
    for lv, top in tops.items():
        s_sup = top - (12 if lv == "L2" else 0)  # L2's top found 6 mm into the disc above
        corners = np.array([[s_sup, 300], [s_sup, 360], [top + height, 360], [top + height, 300]], float)
        verts.append(Vertebra(lv, corners, 1.0, float(s_sup), float(top + height), 100.0, 160.0))
    l1 = vertebrae._extrapolate_l1(verts)
    assert l1 is not None
    true_l1 = np.array([tops["L2"] - gap - height, tops["L2"] - gap], float)  # rows of its endplates
    assert abs(l1.s_sup - true_l1[0]) <= 2 and abs(l1.s_inf - true_l1[1]) <= 2
    rows = np.asarray(l1.corners_rc)[:, 0]
    assert abs(rows.min() - true_l1[0]) <= 2 and abs(rows.max() - true_l1[1]) <= 2
