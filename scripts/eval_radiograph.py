#!/usr/bin/env python
"""Evaluate the lateral radiograph stage (vertebral levels, AAC-24) against phantom truth.

Two sources of cases:

* ``phantom`` (default): a synthetic CT phantom (``calcdetect.phantoms.ct``)
  projected into a lateral radiograph (``calcdetect.phantoms.radiograph``) with
  varied quantum noise, magnification (midplane-to-detector distance), obesity
  (extra fat path) and plaque burden; truth = the projected vertebral corners and
  the AAC-24 scored in 3-D from the lesion truth on the aortic walls a lateral view
  sees in profile (anterior and posterior, as Kauppila grades them). The agreement
  with the older truth that also graded left- and right-wall plaque, on the wall it
  leans to, is reported as ``all_walls_truth``.
* ``synthetic``: the radiograph stage's own 2-D drawing
  (``calcdetect.radiograph.synthetic``), fast, for development.

Error breakdown (phantom cases): the AAC-24 MAE of the true aortic calcium scored on
the true corners (the floor of the 2-D rules), of the *detected* calcium on the true
corners (calcium detection and walls) and of the true calcium on the *detected* L1-L4
corners (levels and segment boundaries); see ``calcdetect.radiograph.aac.score_image_mask``.
A ceiling beside them: every aortic lesion's projection (en-face walls too) on the true
corners (``all_walls_on_truth``), what a detector blind to which wall a plaque lies on reaches.
``breakdown_agreement``: the ICC / MAE / bias of each of these on the same cases, which
names the part that limits the agreement.
The same per photon count (``by_dose``: signed error and MAE of each, and the level
accuracy), because the calcium net's error depends on the quantum noise. Wall by wall
(``walls``): the truth x predicted grade confusion, false walls (truth 0 called calcified)
and what they were made of (``false_wall_causes``: the region of the phantom lesion under
the detected pixels), missed walls (calcified truth called 0), overall and per photon count, the grade
excess / shortfall per level and wall, and the severity-group agreement. Lesion by lesion
(``aortic_lesions_found_by_wall``): the aortic truth lesions the detector found (>= 20% of
their projected pixels), per quadrant of the aortic wall they lie on (anterior and posterior
walls are seen in profile on a lateral view, the lateral walls en face).

Metrics: AAC-24 ICC(2,1) (two-way random effects, absolute agreement, single
measurement; Shrout & Fleiss 1979) and mean absolute error against truth, each with a
percentile-bootstrap 95% interval over cases (``aac24_ci95``; ``evaluate.agreement_ci95``);
vertebral level accuracy (each truth body L1-L5 is matched to the detected body
whose centre is nearest; correct when that body carries the same level and lies
within 10 mm); the median corner error (mm) of correctly named bodies.

Usage::

    .venv/bin/python scripts/eval_radiograph.py --source phantom --seeds 120-159
    .venv/bin/python scripts/eval_radiograph.py --seeds 120-159 --calcium-model rules
    .venv/bin/python scripts/eval_radiograph.py --seeds 120-159 --vertebra-model rules   # levels by the rules only
    .venv/bin/python scripts/eval_radiograph.py --seeds 40-99 --threshold 0.65   # tune on dev seeds only
    .venv/bin/python scripts/eval_radiograph.py --source synthetic --seeds 100-139

Cases are cached under ``--cache`` (one case takes ~3.5 s on a quiet core; ``--ct film`` ~15 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calcdetect.errors import CalcdetectError  # noqa: E402
from calcdetect.evaluate import agreement_ci95, icc_2_1, severity_agreement  # noqa: E402
from calcdetect.phantoms.radiograph import FILM_DIVERGENT_GROUPS  # noqa: E402
from calcdetect.radiograph.aac import AAC_LEVELS, score_image_mask  # noqa: E402
from calcdetect.radiograph.aac_net import load_default_calcium_model  # noqa: E402
from calcdetect.radiograph.analyse import ZONE_MARGIN_MM, analyse_radiograph, model_provenance  # noqa: E402
from calcdetect.radiograph.vertebra_net import load_default_vertebra_model  # noqa: E402
from calcdetect.types import AcquisitionInfo, Radiograph  # noqa: E402

LEVELS = ("L1", "L2", "L3", "L4", "L5")
_CORNER_KEYS = ("anterior_superior", "posterior_superior", "posterior_inferior", "anterior_inferior")


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


# 2: per-segment truth and the projected lesion labels; 3: each aortic lesion's wall quadrant;
# 4: AAC-24 truth grades the walls in profile only, the all-walls truth kept as ``aac24_all_walls``;
# 5: the projected aortic calcium on the walls in profile (``aortic_profile_mask``)
CACHE_VERSION = 5


@dataclass(frozen=True)
class PhantomRecipe:
    """How an evaluation seed's phantom is rendered: ``CTPhantomSettings`` fields (``ct``) and
    ``RadiographSettings`` fields (``radiograph``) on top of the seed's own dose and geometry."""

    ct: Mapping[str, object]
    radiograph: Mapping[str, object] = field(default_factory=dict)


#: How the evaluation radiographs are rendered. ``standard``: the README's numbers up to session 27.
#: ``sharp``: finer voxels, thinner slices and a bone kernel, for a realism check: the DRR
#: re-sharpens only the calcium (``calcdetect.phantoms.radiograph._calcium_correction``), so in
#: ``standard`` the bowel gas, faeces and bone edges around it carry the CT's blur (1 mm voxels,
#: B30f ~1.0 mm, 1.5 mm slices) that a real radiograph does not have. Same seeds, same anatomy
#: and lesions; ~3x the generation time. ``film``: ``sharp`` with the anatomy painted at 0.25 mm
#: in z and 128 divergent slabs, so tilted endplates neither step slice by slice nor show one
#: contour per slab (both artefacts are in ``standard`` and ``sharp``); ~4x the generation time.
_SHARP_CT = {"matrix": 572, "pixel_mm": 0.7, "slice_thickness_mm": 1.0, "kernel": "B70f"}
#: The projector's slab count until session 29, pinned here because the caches are keyed by
#: recipe name only: a 'standard' or 'sharp' phantom drawn today must match the cached ones.
_EIGHT_SLABS = {"divergent_groups": 8}
CT_RECIPES: dict[str, PhantomRecipe] = {
    "standard": PhantomRecipe({"matrix": 400, "pixel_mm": 1.0, "slice_thickness_mm": 1.5, "kernel": "B30f"},
                              _EIGHT_SLABS),
    "sharp": PhantomRecipe(_SHARP_CT, _EIGHT_SLABS),
    "film": PhantomRecipe({**_SHARP_CT, "anatomy_dz_mm": 0.25}, {"divergent_groups": FILM_DIVERGENT_GROUPS}),
}


def phantom_recipe(seed: int, ct: str = "standard"):
    """The CT phantom and the radiograph settings of one evaluation seed (plaque burden,
    dose, magnification and obesity drawn from the seed; the CT grid, and for 'film'
    the divergent slabs, from ``CT_RECIPES[ct]``)."""
    from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom
    from calcdetect.phantoms.radiograph import RadiographSettings

    if ct not in CT_RECIPES:
        raise ValueError(f"unknown CT recipe {ct!r}; use one of {', '.join(CT_RECIPES)}")
    recipe = CT_RECIPES[ct]
    rng = np.random.default_rng([seed, 6])
    ct_phantom = generate_ct_phantom(
        CTPhantomSettings(seed=seed, fov=("T11", "FH"), noise_sigma_hu=0.0, plaque_burden=float(rng.uniform(0, 1)),
                          **recipe.ct)  # type: ignore[arg-type]
    )
    settings = RadiographSettings(
        seed=seed,
        detector_pixel_mm=0.3,
        photons_per_pixel=float(rng.choice([1e4, 3e4, 1e5])),
        midplane_to_detector_mm=float(rng.uniform(100, 250)),
        obesity_fat_mm=float(rng.choice([0.0, 0.0, 40.0, 100.0])),
        **recipe.radiograph,  # type: ignore[arg-type]
    )
    return ct_phantom, settings


def phantom_case(seed: int, cache: Path, ct: str = "standard") -> dict:
    """Image, spacing and truth of one projected CT phantom (cached as .npz + .json;
    ``ct``: the key of ``CT_RECIPES``, part of the file name unless ``standard``).

    Truth: the AAC-24 total and per-wall grades, the L1-L5 corners (pixels), the
    projected lesion label image and each lesion's id / region / kind (for
    looking at failures), and the acquisition conditions.
    """
    stem = f"phantom_{seed}" if ct == "standard" else f"phantom_{ct}_{seed}"
    npz, js = cache / f"{stem}.npz", cache / f"{stem}.json"
    if npz.exists() and js.exists():
        meta = json.loads(js.read_text())
        if meta.get("cache_version") == CACHE_VERSION:
            z = np.load(npz)
            return {"image": z["image"], "spacing": tuple(z["spacing"]), "lesion_labels": z["lesion_labels"],
                    "aortic_profile_mask": z["aortic_profile_mask"], **meta}
    from calcdetect.phantoms.radiograph import generate_lateral_radiograph

    ct_phantom, settings = phantom_recipe(seed, ct)
    ph = generate_lateral_radiograph(ct_phantom, settings)
    spacing = tuple(float(s) / ph.magnification for s in ph.pixel_spacing_mm)
    corners = {
        lv: [v["corners_px"][k] for k in _CORNER_KEYS] for lv, v in ph.vertebrae.items() if lv in LEVELS
    }
    truth = {
        "cache_version": CACHE_VERSION,
        "aac24": ph.aac24["total"] if ph.aac24 else None,
        "aac24_segments": ph.aac24["segments"] if ph.aac24 else None,
        "aac24_fraction": ph.aac24["calcified_fraction"] if ph.aac24 else None,
        "aac24_all_walls": ph.aac24_all_walls["total"] if ph.aac24_all_walls else None,
        "aac24_all_walls_segments": ph.aac24_all_walls["segments"] if ph.aac24_all_walls else None,
        "corners": corners,
        "lesions": [{"id": int(r["id"]), "region": r.get("region"), "kind": r.get("kind"),
                     "bbox_px": r.get("bbox_px"), "aortic_wall": r.get("aortic_wall")} for r in ph.lesions],
        "conditions": {"magnification": ph.magnification, "obesity_fat_mm": settings.obesity_fat_mm,
                       "photons_per_pixel": settings.photons_per_pixel, "ct": ct},
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz, image=ph.image, spacing=np.array(spacing), lesion_labels=ph.lesion_labels,
                        aortic_profile_mask=ph.aortic_profile_mask)
    js.write_text(json.dumps(truth))
    return {"image": ph.image, "spacing": spacing, "lesion_labels": ph.lesion_labels,
            "aortic_profile_mask": ph.aortic_profile_mask, **truth}


def synthetic_case(seed: int) -> dict:
    from calcdetect.radiograph.synthetic import make_synthetic_lateral

    rng = np.random.default_rng([seed, 7])
    ph = make_synthetic_lateral(
        seed, spacing_mm=0.3, anterior_left=bool(rng.random() < 0.8), obesity=float(rng.uniform(0.9, 1.6)),
        noise=float(rng.uniform(0.7, 2.0)),
    )
    return {
        "image": ph.image,
        "spacing": (ph.spacing_mm, ph.spacing_mm),
        "aac24": ph.aac24_total,
        "corners": {lv: ph.corners[lv].tolist() for lv in LEVELS},
        "conditions": {"anterior_left": ph.anterior_left},
    }


def presented(case: dict) -> np.ndarray:
    """The image a DX system would send "for presentation": the phantom's unsharp-mask
    equalisation of the log image (``calcdetect.phantoms.radiograph.equalise``, the
    settings' defaults at the 0.3 mm detector pixel)."""
    from calcdetect.phantoms.radiograph import RadiographSettings, equalise

    s = RadiographSettings()
    return equalise(np.asarray(case["image"], np.float32), 0.3, s.equalise_sigma_mm, s.equalise_gain)


def _total(walls) -> int:
    return int(sum(w.grade for w in walls))


def aortic_lesion_mask(case: dict) -> np.ndarray:
    """Where any aortic lesion projects on a phantom case's image, on every wall (the
    wall-blind truth; ``aortic_profile_mask`` keeps the walls in profile only)."""
    aortic_ids = [int(les["id"]) for les in case.get("lesions", []) if les.get("region") == "aorta"]
    return np.isin(np.asarray(case["lesion_labels"]), aortic_ids)


def error_breakdown(case: dict, analysis) -> dict[str, int | None]:
    """AAC-24 totals that swap one part of the pipeline for truth (see the module docstring).

    ``truth_on_truth``: true aortic calcium on the true corners; ``detected_on_truth``:
    the detected calcium mask on the true corners; ``truth_on_detected``: the true
    calcium on the detected L1-L4 corners (``None`` when they were not all found).
    "True calcium" is the projection of the aortic lesion voxels the truth grades (on
    the walls in profile: ``aortic_profile_mask``).

    ``all_walls_on_truth``: the projection of *every* aortic lesion (the left and right
    walls, seen en face over the lumen, too) on the true corners: what a detector reaches
    that finds all aortic calcium exactly but cannot tell a wall in profile from one en face.
    """
    out: dict[str, int | None] = {"truth_on_truth": None, "detected_on_truth": None, "truth_on_detected": None,
                                  "all_walls_on_truth": None}
    if case.get("aac24") is None or "lesion_labels" not in case or not all(lv in case["corners"] for lv in AAC_LEVELS):
        return out
    row_mm = float(case["spacing"][0])
    truth_calc = np.asarray(case["aortic_profile_mask"], bool)
    # the pipeline's wall-split rule (read at call time: --wall-split-gap-mm rebinds it)
    from calcdetect.radiograph import analyse as analyse_module

    gap = analyse_module.WALL_SPLIT_GAP_MM
    out["truth_on_truth"] = _total(score_image_mask(truth_calc, case["corners"], row_mm, zone_margin_mm=ZONE_MARGIN_MM,
                                                    split_gap_mm=gap))
    out["all_walls_on_truth"] = _total(score_image_mask(aortic_lesion_mask(case), case["corners"], row_mm,
                                                        zone_margin_mm=ZONE_MARGIN_MM, split_gap_mm=gap))
    if analysis is None:
        return out
    if analysis.aac24 is not None:
        out["detected_on_truth"] = _total(score_image_mask(analysis.calcification_mask, case["corners"], row_mm,
                                                           split_gap_mm=gap))
    found = {v.level: np.asarray(v.corners_rc) for v in analysis.vertebrae if v.level in AAC_LEVELS}
    if all(lv in found for lv in AAC_LEVELS):
        out["truth_on_detected"] = _total(score_image_mask(truth_calc, found, row_mm, zone_margin_mm=ZONE_MARGIN_MM,
                                                           split_gap_mm=gap))
    return out


def aortic_lesions_found(case: dict, analysis, min_fraction: float = 0.2) -> dict[str, list[int]]:
    """Per aortic wall quadrant (``calcdetect.phantoms.radiograph.aortic_wall_quadrants``),
    ``[found, n]``: aortic truth lesions with projected pixels, and those with at least
    ``min_fraction`` of their projected pixels in the detected calcium."""
    out: dict[str, list[int]] = {}
    if analysis is None or "lesion_labels" not in case:
        return out
    labels = np.asarray(case["lesion_labels"])
    for les in case.get("lesions", []):
        wall = les.get("aortic_wall")
        if les.get("region") != "aorta" or wall is None:
            continue
        proj = labels == les["id"]
        n = int(proj.sum())
        if not n:
            continue
        hit = int((analysis.calcification_mask & proj).sum()) >= min_fraction * n
        tally = out.setdefault(wall, [0, 0])
        tally[0] += int(hit)
        tally[1] += 1
    return out


def false_wall_causes(case: dict, analysis, near_mm: float = 1.5) -> list[str]:
    """What each false wall (truth grade 0, called calcified) was made of: ``"L4 iliac"``.

    The detected pixels on that segment's rows (true corners) are given the region of
    the phantom lesion within ``near_mm`` (``"aorta"``: aortic calcium of the other
    wall or just outside the segment; ``"iliac"``, ``"renal"``, ...; ``"none"``: no
    calcified lesion there, e.g. a bowel-gas rim or a bone edge); a wall with any
    aortic pixel is ``aorta``, else the region with the most pixels.
    ``"boundary"``: no detected pixel on those rows (the detected corners cut the
    segment elsewhere).
    """
    pred = (analysis.aac24 or {}).get("segments") if analysis is not None else None
    truth = case.get("aac24_segments")
    if pred is None or truth is None or "lesion_labels" not in case:
        return []
    from scipy import ndimage

    labels = np.asarray(case["lesion_labels"])
    region = {int(les["id"]): str(les.get("region")) for les in case.get("lesions", [])}
    row_mm = float(case["spacing"][0])
    out: list[str] = []
    for lv in AAC_LEVELS:
        false = [w for w in ("anterior", "posterior") if int(truth[lv][w]) == 0 and int(pred[lv][w]) > 0]
        if not false:
            continue
        k = np.asarray(case["corners"][lv], float)
        r0, r1 = max(0, int(round(k[:2, 0].mean()))), int(round(k[2:, 0].mean()))
        det = np.asarray(analysis.calcification_mask[r0:r1], bool)
        if not det.any():
            out += [f"{lv} boundary"] * len(false)
            continue
        dist, (ir, ic) = ndimage.distance_transform_edt(labels[r0:r1] == 0, return_indices=True)
        near = np.where(dist * row_mm <= near_mm, labels[r0:r1][ir, ic], 0)[det]
        counts: dict[str, int] = {}
        for lab, n in zip(*np.unique(near, return_counts=True)):
            name = region.get(int(lab), "other") if lab else "none"
            counts[name] = counts.get(name, 0) + int(n)
        cause = "aorta" if "aorta" in counts else max(counts, key=counts.get)
        out += [f"{lv} {cause}"] * len(false)
    return out


def _mae(pairs: list[tuple[float, float | None]]) -> float | None:
    ok = [(t, p) for t, p in pairs if p is not None]
    return float(np.mean([abs(t - p) for t, p in ok])) if ok else None


#: The AAC-24 estimates compared by :func:`breakdown_agreement`: the pipeline's, and the
#: three of :func:`error_breakdown` that swap a part of it for truth.
BREAKDOWN_ESTIMATES = ("pred", "truth_on_truth", "detected_on_truth", "truth_on_detected")
#: Ceilings of :func:`error_breakdown` reported beside them: the truth seen by a detector
#: blind to which wall a lesion lies on.
CEILING_ESTIMATES = ("all_walls_on_truth",)


def breakdown_agreement(rows: list[dict]) -> dict:
    """ICC(2,1), MAE and signed bias against the 3-D truth of each AAC-24 estimate in
    ``BREAKDOWN_ESTIMATES``, on the same cases (those where all of them exist).

    Why: the done-criterion is an ICC, and the per-estimate MAEs of ``breakdown_mae`` are
    taken on different case sets (an unscored case drops out of some only) and do not say
    which part limits the agreement. Swapping the detected calcium for truth (or the
    detected vertebrae) on identical cases does: the estimate whose ICC stays far below
    the floor's (``truth_on_truth``) names the part that limits it.
    """
    common = [r for r in rows if r.get("aac24_truth") is not None and r.get("aac24_pred") is not None
              and all((r.get("breakdown") or {}).get(k) is not None for k in BREAKDOWN_ESTIMATES[1:])]
    out: dict = {"n_cases": len(common)}
    if len(common) < 2:
        return out
    truth = np.array([r["aac24_truth"] for r in common], float)
    # the wall-blind ceiling where every common case has it (evaluations before session 23 lack it)
    extra = tuple(k for k in CEILING_ESTIMATES if all(r["breakdown"].get(k) is not None for r in common))
    for key in BREAKDOWN_ESTIMATES + extra:
        est = np.array([r["aac24_pred"] if key == "pred" else r["breakdown"][key] for r in common], float)
        icc = icc_2_1(np.column_stack([truth, est]))
        out[key] = {"icc21": round(float(icc), 3) if icc is not None else None,
                    "mae": round(float(np.abs(est - truth).mean()), 3),
                    "bias": round(float((est - truth).mean()), 3)}
    return out


def _band_stats(rows: list[dict], key: str) -> dict[str, float | int | None]:
    """Signed mean error and MAE of one AAC-24 estimate (``key``: ``pred`` or a
    breakdown name) against the 3-D truth over the rows that have it."""
    diffs = [r["_est"][key] - r["aac24_truth"] for r in rows if r["_est"].get(key) is not None]
    if not diffs:
        return {"n": 0, "bias": None, "mae": None}
    d = np.asarray(diffs, float)
    return {"n": int(d.size), "bias": round(float(d.mean()), 3), "mae": round(float(np.abs(d).mean()), 3)}


def by_dose(rows: list[dict]) -> dict[str, dict]:
    """AAC-24 error per photon count (the quantum noise level): the final score's, and
    the detected calcium's on the true corners (the calcium detector alone) against
    the floor (true calcium on true corners), plus the level accuracy.

    A detector calibrated across noise levels has a signed bias near the floor's in
    every band; under-calling at low dose and over-calling at high dose shows as a
    bias that changes sign with the photon count.
    """
    bands: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("aac24_truth") is None:
            continue
        photons = (r.get("conditions") or {}).get("photons_per_pixel")
        est = {"pred": r["aac24_pred"], **(r.get("breakdown") or {})}
        bands.setdefault(f"{photons:.0e}" if photons else "unknown", []).append({**r, "_est": est})
    out = {}
    for band, rs in sorted(bands.items()):
        ok = [v for r in rs for v in r["levels_ok"].values()]
        out[band] = {"n_cases": len(rs), **{k: _band_stats(rs, k) for k in
                                              ("pred", "detected_on_truth", "truth_on_truth", "truth_on_detected")},
                     "level_accuracy": round(float(np.mean(ok)), 3) if ok else None}
    return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def wall_breakdown(rows: list[dict]) -> dict:
    """Where the AAC-24 error sits, wall by wall (scored cases only).

    ``confusion[t][p]``: how many wall segments (L1-L4 x anterior / posterior) have
    truth grade ``t`` and predicted grade ``p``; ``false_walls``: truth 0 called
    calcified; ``missed_walls``: calcified truth called 0; ``over`` / ``under``: the
    summed grade excess and shortfall per level and wall; the same false / missed
    counts per photon count (the calcium net's behaviour depends on the noise);
    ``severity_agreement``: the share of cases whose predicted AAC-24 falls in the
    truth's severity group (``calcdetect.radiograph.aac.SEVERITY_GROUPING``).
    """
    confusion = [[0] * 4 for _ in range(4)]
    causes: dict[str, int] = {}
    over: dict[str, int] = {}
    under: dict[str, int] = {}
    dose: dict[str, dict[str, int]] = {}
    n_cases = 0
    for r in rows:
        pred, truth = r.get("segments_pred"), r.get("segments_truth")
        if pred is None or truth is None:
            continue
        n_cases += 1
        for cause in r.get("false_wall_causes") or ():
            causes[cause] = causes.get(cause, 0) + 1
        photons = (r.get("conditions") or {}).get("photons_per_pixel")
        band = dose.setdefault(f"{photons:.0e}" if photons else "unknown",
                               {"n_cases": 0, "false_walls": 0, "missed_walls": 0, "walls": 0})
        band["n_cases"] += 1
        for lv in AAC_LEVELS:
            for wall in ("anterior", "posterior"):
                t, p = int(truth[lv][wall]), int(pred[lv][wall])
                confusion[t][p] += 1
                key = f"{lv} {wall}"
                over[key] = over.get(key, 0) + max(p - t, 0)
                under[key] = under.get(key, 0) + max(t - p, 0)
                band["walls"] += 1
                band["false_walls"] += t == 0 and p > 0
                band["missed_walls"] += t > 0 and p == 0
    return {
        "n_cases": n_cases,
        "confusion_truth_by_pred": confusion,
        "false_walls": sum(confusion[0][1:]),
        "missed_walls": sum(confusion[t][0] for t in range(1, 4)),
        "truth_calcified_walls": sum(sum(confusion[t]) for t in range(1, 4)),
        "truth_clean_walls": sum(confusion[0]),
        "false_wall_causes": dict(sorted(causes.items())),
        "over": over,
        "under": under,
        "by_dose": dict(sorted(dose.items())),
        "severity_agreement": _rounded(severity_agreement(
            [(r["aac24_truth"], r["aac24_pred"]) for r in rows
             if r.get("segments_pred") is not None and r.get("segments_truth") is not None])),
    }


def evaluate(cases: list[tuple[int, dict]], calcium_model="default", vertebra_model="default") -> dict:
    pairs, level_hits, level_n, corner_err, times, rows = [], 0, 0, [], [], []
    parts: dict[str, list[tuple[float, float | None]]] = {}
    for seed, case in cases:
        rg = Radiograph(np.asarray(case["image"], np.float32), tuple(case["spacing"]), AcquisitionInfo("DX"),
                        view="lateral")
        t0 = time.perf_counter()
        try:
            a = analyse_radiograph(rg, calcium_model=calcium_model, vertebra_model=vertebra_model)
            error = None
        except CalcdetectError as exc:
            a, error = None, str(exc)
        times.append(time.perf_counter() - t0)
        sp = float(case["spacing"][0])
        hits = {}
        for lv, pts in case["corners"].items():
            t = np.asarray(pts, float)
            level_n += 1
            if a is None or not a.vertebrae:
                hits[lv] = False
                continue
            centre = t.mean(axis=0)
            best = min(a.vertebrae, key=lambda v: float(np.linalg.norm(np.mean(v.corners_rc, axis=0) - centre)))
            dist = float(np.linalg.norm(np.mean(best.corners_rc, axis=0) - centre)) * sp
            ok = best.level == lv and dist < 10.0
            hits[lv] = ok
            level_hits += ok
            if ok:
                corner_err.append(float(np.linalg.norm(np.asarray(best.corners_rc) - t, axis=1).mean()) * sp)
        pred = a.aac24["total"] if a is not None and a.aac24 is not None else None
        breakdown = error_breakdown(case, a)
        if case["aac24"] is not None:
            pairs.append((case["aac24"], pred))
            for name, value in breakdown.items():
                parts.setdefault(name, []).append((case["aac24"], value))
        rows.append({"seed": seed, "aac24_truth": case["aac24"], "aac24_pred": pred, "levels_ok": hits,
                     "aac24_truth_all_walls": case.get("aac24_all_walls"),
                     "error": error, "conditions": case.get("conditions"), "breakdown": breakdown,
                     "segments_pred": a.aac24["segments"] if a is not None and a.aac24 is not None else None,
                     "segments_truth": case.get("aac24_segments"),
                     "false_wall_causes": false_wall_causes(case, a),
                     "aortic_lesions_found": aortic_lesions_found(case, a)})
        print(f"seed {seed}: AAC-24 truth {case['aac24']} (all walls {case.get('aac24_all_walls')}) pred {pred}; levels "
              f"{sum(hits.values())}/{len(hits)}; truth calcium on detected corners {breakdown['truth_on_detected']}, "
              f"detected calcium on true corners {breakdown['detected_on_truth']}"
              f"{'; ' + error if error else ''}", flush=True)
    scored = [(t, p) for t, p in pairs if p is not None]
    agreement = _agreement(scored)
    return {
        "truth": "walls in profile (calcdetect.phantoms.radiograph._aortic_wall_intervals)",
        "n_cases": len(cases),
        "n_scored": len(scored),
        "aac24_icc21": agreement["icc21"],
        "aac24_mae": agreement["mae"],
        "aac24_ci95": agreement["ci95"],
        "all_walls_truth": _agreement([(r["aac24_truth_all_walls"], r["aac24_pred"]) for r in rows]),
        "level_accuracy": level_hits / level_n if level_n else None,
        "corner_error_mm_median": float(np.median(corner_err)) if corner_err else None,
        "seconds_per_case_median": float(np.median(times)) if times else None,
        "breakdown_mae": {name: {"mae": _mae(v), "n": sum(p is not None for _, p in v)} for name, v in parts.items()},
        "breakdown_agreement": breakdown_agreement(rows),
        "by_dose": by_dose(rows),
        "walls": wall_breakdown(rows),
        "aortic_lesions_found_by_wall": _found_by_wall(rows),
        "cases": rows,
    }


def _agreement(pairs: list[tuple[float | None, float | None]]) -> dict[str, object]:
    """ICC(2,1), MAE and their bootstrap 95% intervals (``ci95``) of the scored cases with a truth
    (``None`` on either side: left out)."""
    ok = [(t, p) for t, p in pairs if t is not None and p is not None]
    if not ok:
        return {"n": 0, "icc21": None, "mae": None, "ci95": None}
    arr = np.array(ok, float)
    return {"n": len(ok), "icc21": icc_2_1(arr), "mae": float(np.abs(arr[:, 0] - arr[:, 1]).mean()),
            "ci95": agreement_ci95(arr)}


def _found_by_wall(rows: list[dict]) -> dict[str, dict[str, float | int]]:
    """Aortic truth lesions found by the detector, per wall quadrant, over all cases."""
    total: dict[str, list[int]] = {}
    for row in rows:
        for wall, (hit, n) in row.get("aortic_lesions_found", {}).items():
            t = total.setdefault(wall, [0, 0])
            t[0] += hit
            t[1] += n
    return {wall: {"found": hit, "n": n, "fraction": hit / n if n else None} for wall, (hit, n) in sorted(total.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=("phantom", "synthetic"), default="phantom")
    ap.add_argument("--seeds", default="100-119", help="e.g. 100-119 or 1,5,9 (held out from development)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/calcdetect_eval_radiograph"))
    ap.add_argument("--ct", choices=tuple(CT_RECIPES), default="standard",
                    help="the CT phantoms projected ('sharp': a realism check with less CT blur on the clutter; "
                         "'film': sharp, without stepped or doubled endplates)")
    ap.add_argument("--out", type=Path, default=None, help="write the metrics as JSON here")
    ap.add_argument("--presentation", choices=("log", "equalised"), default="log",
                    help="analyse the raw log-attenuation image or the equalised one a DX file stores")
    ap.add_argument("--calcium-model", default="default",
                    help="'default' (the shipped net when present), 'rules' (no net) or a .safetensors path")
    ap.add_argument("--vertebra-model", default="default",
                    help="'default' (the shipped vertebra net names the levels when present), 'rules' (the count "
                         "from the sacrum only) or a .safetensors path")
    ap.add_argument("--threshold", type=float, default=None,
                    help="operate the calcium net at this probability instead of its stored threshold "
                         "(for choosing one on development seeds < 100)")
    ap.add_argument("--min-length-mm", type=float, default=None,
                    help="drop calcium-net deposits shorter than this along the spine (development seeds only)")
    ap.add_argument("--wall-split-gap-mm", type=float, default=None,
                    help="override analyse.WALL_SPLIT_GAP_MM ('inf': one wall per deposit and row, the "
                         "pre-session-8 rule), for before/after comparisons")
    args = ap.parse_args(argv)
    if args.wall_split_gap_mm is not None:
        import calcdetect.radiograph.analyse as analyse_module

        analyse_module.WALL_SPLIT_GAP_MM = args.wall_split_gap_mm
    cases = []
    for seed in _seeds(args.seeds):
        case = phantom_case(seed, args.cache, args.ct) if args.source == "phantom" else synthetic_case(seed)
        cases.append((seed, case))
    if args.presentation == "equalised":
        cases = [(seed, {**case, "image": presented(case)}) for seed, case in cases]
    model = args.calcium_model
    if model == "rules":
        model = None
    elif model != "default":
        from calcdetect.radiograph.aac_net import load_calcium_model

        model = load_calcium_model(Path(model))
    if args.threshold is not None or args.min_length_mm is not None:
        if args.threshold is not None and not 0.0 < args.threshold < 1.0:
            ap.error(f"--threshold must lie strictly between 0 and 1, got {args.threshold}")
        if model is None:
            ap.error("--threshold / --min-length-mm apply to the calcium net; they have no meaning with "
                     "--calcium-model rules")
        if model == "default":
            model = load_default_calcium_model()
        import dataclasses

        if args.threshold is not None:
            model = dataclasses.replace(model, threshold=args.threshold)
        if args.min_length_mm is not None:
            model = dataclasses.replace(model, min_length_mm=args.min_length_mm)
    vertebra_model = {"rules": None, "default": "default"}.get(args.vertebra_model)
    if vertebra_model is None and args.vertebra_model != "rules":
        from calcdetect.radiograph.vertebra_net import load_vertebra_model

        vertebra_model = load_vertebra_model(Path(args.vertebra_model))
    result = evaluate(cases, model, vertebra_model)
    result["calcium_model"] = args.calcium_model
    result["vertebra_model"] = args.vertebra_model
    # the files and hashes behind "default", so that a table row can be traced to its weights
    result["models"] = model_provenance(
        load_default_vertebra_model() if vertebra_model == "default" else vertebra_model,
        load_default_calcium_model() if model == "default" else model)
    result["threshold"] = args.threshold if args.threshold is not None else (
        model.threshold if model not in (None, "default") else None)
    result["min_length_mm"] = model.min_length_mm if model not in (None, "default") else None
    result["presentation"] = args.presentation
    from calcdetect.radiograph import analyse as analyse_module

    result["wall_split_gap_mm"] = analyse_module.WALL_SPLIT_GAP_MM
    result["source"] = args.source
    result["ct"] = args.ct if args.source == "phantom" else None
    summary = {k: v for k, v in result.items() if k != "cases"}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
