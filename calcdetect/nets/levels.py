"""Vertebral levels counted from the sacrum on a coarse anatomy class map.

The coarse anatomy net (``COARSE_ANATOMY_CLASSES``) segments the vertebral
column as one class, with the sacrum and the intervertebral discs as their own
classes. Levels are then counted, not learnt: walking cranially from the top of
the sacrum, the slices alternate between disc runs and vertebral-body runs; the
first body run is L5, the next L4, and so on. Bodies are told from posterior
elements by lying anterior to the spinal canal (the posterior elements overlap
the discs in z and would blur the alternation).

Where the sacrum is not in the field of view (or the count is implausible) no
level is returned and the caller keeps the rule-based count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calcdetect.anatomy.regions import VERTEBRA_LEVELS, structure, vertebra_label

__all__ = ["count_levels", "label_vertebrae_by_level"]


def _runs(states: Sequence[str]) -> list[tuple[str, int, int]]:
    """``[(state, start, stop), ...]`` of equal consecutive states."""
    out: list[tuple[str, int, int]] = []
    for k, s in enumerate(states):
        if out and out[-1][0] == s:
            out[-1] = (s, out[-1][1], k + 1)
        else:
            out.append((s, k, k + 1))
    return out


def _slice_states(
    classes_map: np.ndarray, classes: Sequence[str], spacing_mm: Sequence[float], min_area_mm2: float,
    centre_radius_mm: float = 5.0,
) -> list[str]:
    """Per slice: ``"S"`` sacrum, ``"B"`` vertebral body, ``"D"`` disc, ``"-"`` none.

    The call is made on a small disc around the body's centre line (smoothed
    over neighbouring slices): discs are tilted by the lordosis, and a slice
    through the front of one disc and the back of the next body is named by
    what lies on the centre line, as levels are defined.
    """
    c_col = classes.index("vertebrae_unlabelled")
    c_sac = classes.index("sacrum")
    c_disc = classes.index("intervertebral_disc")
    c_canal = classes.index("spinal_canal") if "spinal_canal" in classes else None
    sj, si = float(spacing_mm[1]), float(spacing_mm[2])
    min_vox = max(1.0, min_area_mm2 / (sj * si))
    nk, nj, ni = classes_map.shape
    # the canal's front edge per slice (row index; j increases posteriorly), interpolated where missing
    front = np.full(nk, np.nan)
    if c_canal is not None:
        for k in range(nk):
            rows = np.flatnonzero((classes_map[k] == c_canal).any(axis=1))
            if rows.size:
                front[k] = rows[0]
        ok = np.isfinite(front)
        if ok.any():
            front = np.interp(np.arange(nk), np.flatnonzero(ok), front[ok])
    # centre of body + disc + sacrum (anterior to the canal) per slice
    cj = np.full(nk, np.nan)
    ci = np.full(nk, np.nan)
    present = np.zeros(nk, bool)
    for k in range(nk):
        sl = classes_map[k]
        m = (sl == c_col) | (sl == c_disc) | (sl == c_sac)
        if np.isfinite(front[k]):
            m[int(front[k]):] = False
        if m.sum() >= min_vox:
            jj, ii = np.nonzero(m)
            cj[k], ci[k], present[k] = jj.mean(), ii.mean(), True
    if not present.any():
        return ["-"] * nk
    ks = np.flatnonzero(present)
    half = max(1, int(round(15.0 / float(spacing_mm[0]))))
    cj_s = np.array([np.median(cj[ks[(ks >= k - half) & (ks <= k + half)]]) if present[k] else np.nan for k in range(nk)])
    ci_s = np.array([np.median(ci[ks[(ks >= k - half) & (ks <= k + half)]]) if present[k] else np.nan for k in range(nk)])
    rj, ri = max(1, int(round(centre_radius_mm / sj))), max(1, int(round(centre_radius_mm / si)))
    states = []
    for k in range(nk):
        if not present[k]:
            states.append("-")
            continue
        j0, i0 = int(round(cj_s[k])), int(round(ci_s[k]))
        win = classes_map[k, max(j0 - rj, 0) : j0 + rj + 1, max(i0 - ri, 0) : i0 + ri + 1]
        n_body, n_disc, n_sac = float((win == c_col).sum()), float((win == c_disc).sum()), float((win == c_sac).sum())
        best = max(n_body, n_disc, n_sac)
        if best == 0:
            states.append("-")
        elif best == n_sac:
            states.append("S")
        elif best == n_disc:
            states.append("D")
        else:
            states.append("B")
    return states


def count_levels(
    classes_map: np.ndarray,
    classes: Sequence[str],
    spacing_mm: Sequence[float],
    *,
    min_area_mm2: float = 60.0,
    min_body_mm: float = 9.0,
) -> tuple[str | None, ...] | None:
    """Per-slice vertebral level of a coarse class map ``[k, j, i]`` (``k`` superior).

    Parameters
    ----------
    classes_map
        Class ids in ``classes`` (needs ``vertebrae_unlabelled``, ``sacrum`` and
        ``intervertebral_disc``; ``spinal_canal`` sharpens the body/disc call).
    spacing_mm
        Voxel spacing ``(k, j, i)``.
    min_area_mm2
        Smallest cross-section of body, disc or sacrum that counts on a slice.
    min_body_mm
        Body runs shorter than this are noise and are absorbed by their
        neighbours (a real body is >= 15 mm tall).

    Returns
    -------
    tuple or None
        ``"L3"`` on body slices, ``"L3-L4"`` on disc slices (cranial first),
        ``"S1"`` on sacrum slices, ``None`` outside the counted spine; ``None``
        (the whole result) when there is no sacrum to count from or the count
        runs past C1.
    """
    needed = ("vertebrae_unlabelled", "sacrum", "intervertebral_disc")
    if any(n not in classes for n in needed):
        return None
    states = _slice_states(classes_map, classes, spacing_mm, min_area_mm2)
    sk = float(spacing_mm[0])
    min_body = max(1, int(round(min_body_mm / sk)))
    # short body runs between discs (or a disc and nothing) are noise: make them discs
    runs = _runs(states)
    for idx, (s, a, b) in enumerate(runs):
        if s == "B" and b - a < min_body:
            for k in range(a, b):
                states[k] = "D"
    runs = _runs(states)
    sacrum = [r for r in runs if r[0] == "S"]
    if not sacrum:
        return None
    top = max(sacrum, key=lambda r: r[2] - r[1])  # the main sacral run
    levels: list[str | None] = [None] * len(states)
    for k in range(top[1], top[2]):
        levels[k] = "S1"
    # everything below the sacrum's main run that is spine stays None (coccyx, femoral heads)
    s1 = VERTEBRA_LEVELS.index("S1")
    current = s1  # index of the level just below the walk
    pending_disc: list[int] = []
    for s, a, b in (r for r in runs if r[1] >= top[2]):
        if s == "B":
            current -= 1
            if current < 0:
                return None
            name = VERTEBRA_LEVELS[current]
            for k in pending_disc:
                levels[k] = f"{name}-{VERTEBRA_LEVELS[current + 1]}"
            pending_disc = []
            for k in range(a, b):
                levels[k] = name
        elif s in ("D", "S"):
            pending_disc.extend(range(a, b))
        else:  # no spine on these slices: stop counting above a gap
            if b - a > 1 or current == s1:
                break
    return tuple(levels)


def label_vertebrae_by_level(
    structure_labels: np.ndarray, levels: Sequence[str | None]
) -> np.ndarray:
    """Replace ``vertebrae_unlabelled`` voxels by the vertebra label of their slice's level.

    Disc slices give their voxels (posterior elements) to the cranial vertebra;
    slices without a level keep ``vertebrae_unlabelled``. Works in place on a
    copy and returns it.
    """
    out = structure_labels.copy()
    col = structure("vertebrae_unlabelled").label
    for k, lv in enumerate(levels):
        if lv is None:
            continue
        name = lv.split("-")[0]
        sl = out[k]
        sl[sl == col] = vertebra_label(name)
    return out
