"""A chain already on the bodies is not moved onto the tissue in front of them (issue #6).

Where the band in front of the bodies is dense (thick abdominal fat, the noisiest dose),
the check for bone in front of the chain fires on a correct chain, and the path moved
20-30 mm anteriorly finds "bodies" that merge the soft tissue in front with the real
bodies behind: 45-52 mm deep instead of ~30 mm, every level 10-25 mm too anterior and
several rows off (development phantoms 547 and 612: all five levels wrong). A chain on
the posterior elements moved onto the bodies keeps about its depth, and is still taken.
"""

from __future__ import annotations

import numpy as np

import calcdetect.radiograph.vertebrae as vertebrae
from calcdetect.radiograph.vertebrae import (
    MOVED_CHAIN_MAX_DEPTH_RATIO,
    STEP_MM,
    SpineStrip,
    Vertebra,
    _onto_bodies_in_front,
    _PathBodies,
)


def _chain(heights_mm: list[float], depth_mm: float, t_ant: float = 230.0, gap_mm: float = 9.0) -> list[Vertebra]:
    out, s = [], 20.0
    for h in heights_mm:
        out.append(Vertebra(None, np.zeros((4, 2)), 1.0, s, s + h / STEP_MM, t_ant, t_ant + depth_mm / STEP_MM))
        s += (h + gap_mm) / STEP_MM
    return out


def _found(verts: list[Vertebra]) -> _PathBodies:
    S = np.zeros((700, 401), np.float32)
    n = S.shape[0]
    strip = SpineStrip(S, np.column_stack([np.arange(n, dtype=float), np.full(n, 300.0)]),
                       np.tile([0.0, 1.0], (n, 1)), 260, STEP_MM, False, 1000)
    return _PathBodies(strip, np.ones(n, bool), int(verts[0].t_ant), int(verts[0].t_post), verts, [], S.mean(1), 80.0)


def _choose(monkeypatch, found: _PathBodies, moved: _PathBodies) -> _PathBodies:
    # the moved chain stands out more from its surroundings (phantom 612: -0.00 -> -0.25)
    monkeypatch.setattr(vertebrae, "bone_beside", lambda f, **k: 0.0 if f is found else -0.25)
    monkeypatch.setattr(vertebrae, "_bodies_along", lambda *a, **k: moved)
    return _onto_bodies_in_front(found, np.zeros((100, 100), np.float32), (0.27, 0.27),
                                 np.full(100, 150), np.arange(100), np.ones(100), False)


def test_a_chain_on_the_bodies_is_not_moved_onto_the_tissue_in_front(monkeypatch):
    on_bodies = _found(_chain([22, 36, 31, 28, 31], depth_mm=32.0))  # phantom 612, first chain
    merged = _found(_chain([22, 19, 34, 34, 26, 24, 28], depth_mm=52.0, t_ant=213.0))  # its moved path
    assert _choose(monkeypatch, on_bodies, merged) is on_bodies


def test_a_chain_on_the_posterior_elements_is_still_moved_onto_the_bodies(monkeypatch):
    posterior = _found(_chain([18, 20, 22], depth_mm=24.0))  # phantom 94, first chain
    bodies = _found(_chain([23, 21, 28, 26, 24], depth_mm=27.0, t_ant=206.0))  # its moved path
    assert 27.0 / 24.0 < MOVED_CHAIN_MAX_DEPTH_RATIO
    assert _choose(monkeypatch, posterior, bodies) is bodies


def test_a_moved_chain_of_whole_bodies_that_stands_out_less_clearly_is_taken(monkeypatch):
    """Phantom 586 (noisiest dose): a chain of two whole bodies on the posterior elements;
    the path 30 mm anterior finds five whole bodies of about the same depth, standing out
    from their surroundings by 0.198 more (the old gain of 0.2 just missed it)."""
    posterior = _found(_chain([17, 27, 24], depth_mm=26.0))
    bodies = _found(_chain([26, 30, 29, 27, 28], depth_mm=28.5, t_ant=229.0))
    monkeypatch.setattr(vertebrae, "bone_beside", lambda f, **k: 0.153 if f is posterior else -0.045)
    monkeypatch.setattr(vertebrae, "_bodies_along", lambda *a, **k: bodies)
    chosen = _onto_bodies_in_front(posterior, np.zeros((100, 100), np.float32), (0.26, 0.26),
                                   np.full(100, 150), np.arange(100), np.ones(100), False)
    assert chosen is bodies
