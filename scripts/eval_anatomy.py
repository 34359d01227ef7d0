"""Evaluate the rule-based anatomy against CT phantom truth.

For each seed: generate a phantom, run ``build_anatomy`` and report Dice of the
aorta, iliac arteries, kidneys (per side, parenchyma + collecting system),
vertebral column (all vertebra labels together), spinal canal, and the per-slice
level accuracy (exact match of ``slice_levels`` with the truth level; disc slices
count as correct when the predicted level names the same disc).

Usage::

    .venv/bin/python scripts/eval_anatomy.py --seeds 1 2 3 [--pixel-mm 1.0 --thickness 2.5 --matrix 384]
        [--classify]   # also candidates + classify against the lesion truth
        [--random]     # acquisition drawn per seed (held-out check: --seeds 200 ... 209 --random)

Classification metrics are over truth lesions that a finding overlaps: region
accuracy (also per truth region), side and exact level (string equality, as
``calcdetect evaluate``) over the vascular / renal / ligament lesions that have one.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from calcdetect.anatomy import build_anatomy
from calcdetect.anatomy.regions import STRUCTURES, Region, structure
from calcdetect.bone import segment_bone
from calcdetect.device import Device
from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom, random_settings
from calcdetect.types import AcquisitionInfo, Volume


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    s = int(a.sum()) + int(b.sum())
    return None if s == 0 else round(2.0 * float((a & b).sum()) / s, 3)


def truth_levels(phantom, nk: int) -> list[str | None]:
    """Per-slice truth level of a generated phantom (see calcdetect.phantoms.truth)."""
    from calcdetect.phantoms.truth import truth_slice_levels

    return truth_slice_levels(phantom.anatomy["vertebrae"], phantom.affine, nk)


def phantom_settings(seed: int, pixel_mm: float, thickness: float, matrix: int, randomised: bool = False,
                     **kw) -> CTPhantomSettings:
    """Fixed acquisition, or (``randomised``) kVp / noise / pixel / thickness / kernel /
    lesion mix drawn by the seed with the thickness capped at 3 mm (issue #4's range)."""
    if randomised:
        st = random_settings(seed, matrix=matrix, **kw)
        if st.slice_thickness_mm > 3.0:
            st = replace(st, slice_thickness_mm=3.0)
        return st
    return CTPhantomSettings(seed=seed, matrix=matrix, pixel_mm=pixel_mm, slice_thickness_mm=thickness, **kw)


def evaluate(seed: int, pixel_mm: float, thickness: float, matrix: int, classify_too: bool = False,
             randomised: bool = False, **kw) -> dict:
    st = phantom_settings(seed, pixel_mm, thickness, matrix, randomised, **kw)
    ph = generate_ct_phantom(st)
    vol = Volume(ph.hu, tuple(ph.spacing), ph.affine, AcquisitionInfo("CT", kvp=ph.settings.kvp))
    t0 = time.perf_counter()
    # as the pipeline does: one bone segmentation shared by anatomy and candidates
    bone = segment_bone(vol.array, vol.spacing, Device("cpu"))
    am = build_anatomy(vol, Device("cpu"), bone_mask=bone)
    secs = time.perf_counter() - t0
    pred, true = am.labels, ph.anatomy_labels
    vert = [s.label for s in STRUCTURES if s.is_bone and s.name.startswith(("vertebrae_", "sacrum"))]
    iliac = [s.label for s in STRUCTURES if s.region is Region.ILIAC]

    def lab(name: str) -> int:
        return structure(name).label

    res: dict = {"seed": seed, "shape": list(vol.shape), "spacing": [round(v, 3) for v in vol.spacing],
                 "kvp": st.kvp, "noise_hu": st.noise_sigma_hu, "contrast": st.contrast,
                 "seconds": round(secs, 1)}
    res["dice_aorta"] = dice(pred == lab("aorta"), true == lab("aorta"))
    res["dice_iliac"] = dice(np.isin(pred, iliac), np.isin(true, iliac))
    for side in ("left", "right"):
        names = [f"kidney_{side}", f"kidney_medulla_{side}", f"collecting_system_{side}"]
        ids = [lab(n) for n in names]
        res[f"dice_kidney_{side}"] = dice(np.isin(pred, ids), np.isin(true, ids))
    for seg in ("common", "external", "internal"):
        ids = [lab(f"{seg}_iliac_artery_{side}") for side in ("left", "right")]
        # per segment, sides kept apart: a left label on the right artery is wrong
        res[f"dice_iliac_{seg}"] = dice(*(np.stack([arr == i for i in ids]) for arr in (pred, true)))
    res["dice_vertebrae"] = dice(np.isin(pred, vert), np.isin(true, vert))
    res["dice_lf_zone"] = dice(pred == lab("ligamentum_flavum_zone"), true == lab("ligamentum_flavum_zone"))
    res["dice_canal"] = dice(pred == lab("spinal_canal"), true == lab("spinal_canal"))
    tl = truth_levels(ph, vol.shape[0])
    pl = list(am.slice_levels)
    body = [k for k, t in enumerate(tl) if t and "-" not in t]
    disc = [k for k, t in enumerate(tl) if t and "-" in t]
    res["level_acc_body_slices"] = round(float(np.mean([pl[k] == tl[k] for k in body])), 3) if body else None
    res["level_acc_disc_slices"] = round(float(np.mean([pl[k] == tl[k] for k in disc])), 3) if disc else None
    res["level_within_one_slice_or_disc"] = round(float(np.mean([
        bool(pl[k] is not None and tl[k] is not None and set(pl[k].split("-")) & set(tl[k].split("-")))
        for k in body + disc])), 3)
    res["levels_unassigned"] = int(sum(p is None for p, t in zip(pl, tl) if t))
    res["notes"] = list(am.notes)
    res["true_bifurcation"] = ph.anatomy.get("bifurcation", {}).get("level")
    if classify_too:
        res.update(_classify_eval(ph, vol, am, bone))
    return res


def _classify_eval(ph, vol: Volume, am, bone: np.ndarray) -> dict:
    """Classify the candidate lesions and compare with the truth lesion each overlaps.

    Region accuracy over truth lesions that a candidate hits; look-alike errors
    count truth "other" lesions (phleboliths, costal cartilage, nodes, bowel)
    called vascular or renal.
    """
    from calcdetect.candidates import find_candidates
    from calcdetect.classify import classify

    aorta = am.labels == structure("aorta").label
    cands = find_candidates(vol, Device("cpu"), blood_pool_mask=aorta if aorta.any() else None, bone_mask=bone)
    findings = classify(cands.lesions, am, vol)
    truth = {t.id: t for t in ph.lesions}
    hits, region_ok, kind_ok, level_ok, lookalike_err = 0, 0, 0, 0, 0
    side_n = side_ok = level_n = level_exact = 0
    by_region: dict[str, list[int]] = {}
    confusions: dict[str, int] = {}
    false_pos: dict[str, int] = {}
    for f in findings:
        les = f.lesion
        k0, j0, i0, k1, j1, i1 = les.bbox
        ids = ph.lesion_labels[k0:k1, j0:j1, i0:i1][les.mask]
        ids = ids[ids > 0]
        if ids.size == 0:
            # a finding on no truth lesion: a false positive, counted by region
            false_pos[f.region] = false_pos.get(f.region, 0) + 1
            continue
        t = truth[int(np.bincount(ids).argmax())]
        hits += 1
        region_ok += f.region == t.region
        kind_ok += f.kind.value == t.kind
        level_ok += bool(f.level and t.level and (set(f.level.split("-")) & set(t.level.split("-"))))
        tally = by_region.setdefault(t.region, [0, 0])
        tally[0] += 1
        tally[1] += f.region == t.region
        if t.side is not None and t.region != "other":
            side_n += 1
            side_ok += f.side == t.side
        if t.level is not None and t.region != "other":
            # as calcdetect.evaluate: exact string equality, truth levels only
            level_n += 1
            level_exact += f.level == t.level
        if t.region == "other" and f.region in ("aorta", "iliac", "renal"):
            lookalike_err += 1
        if f.region != t.region or f.kind.value != t.kind:
            key = f"{t.region}/{t.kind}->{f.region}/{f.kind.value}"
            confusions[key] = confusions.get(key, 0) + 1
    return {"cls_findings_on_truth": hits,
            "cls_region_acc": round(region_ok / hits, 3) if hits else None,
            "cls_kind_acc": round(kind_ok / hits, 3) if hits else None,
            "cls_level_overlap_acc": round(level_ok / hits, 3) if hits else None,
            "cls_level_exact_acc": round(level_exact / level_n, 3) if level_n else None,
            "cls_side_acc": round(side_ok / side_n, 3) if side_n else None,
            "cls_region_acc_by_truth_region": {r: f"{ok}/{n}" for r, (n, ok) in sorted(by_region.items())},
            "cls_lookalike_called_vascular_or_renal": lookalike_err,
            "cls_confusions": confusions, "cls_false_positive_findings_by_region": false_pos}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--pixel-mm", type=float, default=1.0)
    ap.add_argument("--thickness", type=float, default=2.5)
    ap.add_argument("--matrix", type=int, default=None, help="384 (fixed acquisition) or 512 (--random)")
    ap.add_argument("--contrast", action="store_true")
    ap.add_argument("--classify", action="store_true", help="also run candidates + classify vs lesion truth")
    ap.add_argument("--random", action="store_true",
                    help="acquisition drawn per seed (random_settings: kVp 80-140, noise 10-40 HU, "
                         "pixel 0.6-1 mm, slices 0.625-3 mm, kernels, contrast in ~20%%)")
    args = ap.parse_args()
    kw = {"contrast": True} if args.contrast else {}
    matrix = args.matrix or (512 if args.random else 384)
    rows = []
    for s in args.seeds:
        rows.append(evaluate(s, args.pixel_mm, args.thickness, matrix, args.classify,
                             randomised=args.random, **kw))
        print(json.dumps(rows[-1]), flush=True)
    keys = [k for k in rows[0] if k.startswith(("dice_", "level_acc", "cls_"))
            and k not in ("cls_confusions", "cls_false_positive_findings_by_region",
                          "cls_region_acc_by_truth_region")]
    summary = {k: round(float(np.mean([r[k] for r in rows if r.get(k) is not None])), 3)
               for k in keys if any(r.get(k) is not None for r in rows)}
    print("mean", json.dumps(summary))


if __name__ == "__main__":
    main()
