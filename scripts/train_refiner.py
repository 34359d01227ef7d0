#!/usr/bin/env python
"""Train the CT calcium refiner (issue #5) on the findings of rules-pipeline runs over phantoms.

A sample is one finding of ``calcdetect run`` (``runs_rules/<case>/<series>/``:
``findings.json`` + ``lesions.nii.gz``) on a phantom written by
``scripts/eval_ct.py`` (``cases/<case>/{dicom,truth}``): a 2-channel patch
(:func:`calcdetect.nets.refiner.lesion_patches`: HU + the finding's own mask) and
a target: **calcification** when the finding shares voxels with a truth target
(aorta, iliac, renal, ligamentum flavum lesion), **look-alike** when it overlaps
only distractors (phleboliths, costal cartilage, nodes, bowel, metal) or nothing
(bone pieces, noise). Every finding in a reportable region is kept; findings
the rules already called "other" are sub-sampled (``--max-other`` per case), as
the refiner only ever judges reportable ones.

Steps (each is a sub-command)::

    # 1. patches of every case (cached as .npz under --data); caches from eval_ct.py --cache
    train_refiner.py build --cache CACHE_A --cache CACHE_B --data D
    # 2. train (validation split by case), save the weights with a provisional threshold
    train_refiner.py train --data D --cases 1800-1823 --minutes 12 --reportable-weight 3 --select all \
        --out models/calcium_refiner_phantom_v0.safetensors
    # 3. sweep thresholds on other cases' rules runs (simulated demotion, scored by evaluate)
    train_refiner.py tune --model M --cache CACHE_B --data D --json sweep.json
    # 4. store the chosen threshold in the weights (re-saved; card rewritten)
    train_refiner.py threshold --model M --threshold 0.02 --source "chosen on ..."
    # 5. (re)write the model card, with notes (e.g. the pipeline comparison) appended
    train_refiner.py card --model M [--notes FILE]

Then compare the pipeline with and without it on a third set:
``eval_ct.py --seeds S --cache C [--refiner M]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import eval_ct  # noqa: E402
from calcdetect import io  # noqa: E402
from calcdetect.device import Device  # noqa: E402
from calcdetect.io.nifti import read_nifti_array  # noqa: E402
from calcdetect.nets.builders import NetConfig, build_calcium_refiner  # noqa: E402
from calcdetect.nets.classes import REFINER_CLASSES  # noqa: E402
from calcdetect.nets.refiner import (  # noqa: E402
    REFINED_REGIONS,
    REFINER_INTENSITY,
    REFINER_PATCH,
    lesion_patches,
    masks_from_labels,
    score_candidates,
)
from calcdetect.nets.weights import ModelSpec, load_model, read_spec, save_model, write_model_card  # noqa: E402

#: Extra voxels on each side of the stored patches: random crops shift the lesion by up to this.
SHIFT_VOX = 2
#: Calibration inserts are neither targets nor look-alikes (calcdetect.evaluate).
CALIBRATION_KINDS = ("calibration_insert",)
ARCH = NetConfig(arch="refiner_cnn", in_channels=2, out_channels=len(REFINER_CLASSES), channels=(8, 16, 32),
                 dropout=0.2)


# ----------------------------------------------------------------------------- data


def parse_seeds(text: str) -> set[int]:
    """``"1800-1823"`` or ``"1800,1805"`` -> set of ints (eval_ct's syntax)."""
    return set(eval_ct.parse_seeds(text))


def case_seed(name: str) -> int:
    m = re.match(r"s(\d+)_", name)
    if not m:
        raise ValueError(f"case folder {name!r} is not named like eval_ct's s<seed>_...")
    return int(m.group(1))


def cache_cases(spec: str) -> list[tuple[Path, Path]]:
    """``DIR[:SEEDS]`` -> (case folder, rules-run series folder) per case with a run."""
    root, _, seeds = spec.partition(":")
    wanted = parse_seeds(seeds) if seeds else None
    out = []
    for case in sorted((Path(root) / "cases").iterdir()):
        if wanted is not None and case_seed(case.name) not in wanted:
            continue
        series = sorted((Path(root) / "runs_rules" / case.name).glob("*/findings.json"))
        if len(series) == 1 and (case / "truth" / "truth.json").is_file():
            out.append((case, series[0].parent))
    return out


def load_case_volume(case: Path) -> Any:
    groups = [g for g in io.discover(case / "dicom").groups if g.kind in ("ct_volume", "enhanced_ct")]
    if len(groups) != 1:
        raise RuntimeError(f"{case}: expected one CT series, found {len(groups)}")
    return io.load_ct(groups[0])


@dataclass(frozen=True)
class FindingTarget:
    finding_id: str
    mask_label: int
    predicted_region: str
    target: int  # 1 calcification, 0 look-alike
    truth_kind: str  # the overlapped truth lesion's kind (a target's if any), "none" when nothing


def finding_targets(findings: list[dict[str, Any]], pred_labels: np.ndarray, truth_labels: np.ndarray,
                    truth: list[dict[str, Any]]) -> list[FindingTarget]:
    """Target of each finding from the truth lesions its mask overlaps."""
    by_id = {int(t["id"]): t for t in truth}
    masks = masks_from_labels(pred_labels, [int(f["mask_label"]) for f in findings])
    out = []
    for f, m in zip(findings, masks):
        if m is None:
            continue
        k0, j0, i0, k1, j1, i1 = m.bbox
        ids = {int(v) for v in np.unique(truth_labels[k0:k1, j0:j1, i0:i1][m.mask]) if v > 0}
        hit = [by_id[i] for i in ids if i in by_id and by_id[i].get("kind") not in CALIBRATION_KINDS]
        targets = [t for t in hit if t["region"] != "other"]
        kind = targets[0]["kind"] if targets else (hit[0]["kind"] if hit else "none")
        out.append(FindingTarget(f["id"], int(f["mask_label"]), f["region"], int(bool(targets)), kind))
    return out


def build_case(case: Path, series: Path, out: Path, max_other: int) -> Path:
    """Patches (``SHIFT_VOX`` larger than the model's) and targets of one case -> ``out/<case>.npz``."""
    dest = out / f"{case.name}.npz"
    if dest.is_file():
        return dest
    doc = json.loads((series / "findings.json").read_text())
    truth = json.loads((case / "truth" / "truth.json").read_text())["lesions"]
    volume = load_case_volume(case)
    pred_labels, _, _ = read_nifti_array(series / "lesions.nii.gz", dtype=np.uint16)
    truth_labels, _, _ = read_nifti_array(case / "truth" / "lesions.nii.gz", dtype=np.uint16)
    if pred_labels.shape != volume.shape or truth_labels.shape != volume.shape:
        raise RuntimeError(f"{case}: label maps {pred_labels.shape}/{truth_labels.shape} vs CT {volume.shape}")
    rows = finding_targets(doc["findings"], pred_labels, truth_labels, truth)
    rng = np.random.default_rng(case_seed(case.name))
    reportable = [r for r in rows if r.predicted_region in REFINED_REGIONS]
    other = [r for r in rows if r.predicted_region not in REFINED_REGIONS]
    if len(other) > max_other:
        other = [other[i] for i in sorted(rng.choice(len(other), max_other, replace=False))]
    rows = reportable + other
    masks = masks_from_labels(pred_labels, [r.mask_label for r in rows])
    size, spacing = REFINER_PATCH
    patches = lesion_patches(volume, masks, size=size + 2 * SHIFT_VOX, spacing_mm=spacing)  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        dest, hu=patches[:, 0].astype(np.float16), mask=patches[:, 1].astype(np.uint8),
        target=np.array([r.target for r in rows], np.int64),
        region=np.array([r.predicted_region for r in rows]), kind=np.array([r.truth_kind for r in rows]),
        finding=np.array([r.finding_id for r in rows]),
    )
    return dest


@dataclass
class PatchSet:
    x: np.ndarray  # [N, 2, S, S, S] float32 (S = patch + 2 * SHIFT_VOX)
    target: np.ndarray
    region: np.ndarray
    kind: np.ndarray
    case: np.ndarray
    finding: np.ndarray

    def subset(self, keep: np.ndarray) -> "PatchSet":
        return PatchSet(self.x[keep], self.target[keep], self.region[keep], self.kind[keep], self.case[keep],
                        self.finding[keep])


def load_patches(data: Path, seeds: set[int] | None) -> PatchSet:
    parts = []
    for f in sorted(data.glob("*.npz")):
        if seeds is not None and case_seed(f.stem) not in seeds:
            continue
        z = np.load(f)
        if len(z["target"]) == 0:
            continue
        x = np.stack([z["hu"].astype(np.float32), z["mask"].astype(np.float32)], axis=1)
        parts.append(PatchSet(x, z["target"], z["region"], z["kind"], np.array([f.stem] * len(x)), z["finding"]))
    if not parts:
        raise SystemExit(f"no patches under {data} for those seeds; run the build step")
    return PatchSet(*(np.concatenate([getattr(p, k) for p in parts]) for k in
                      ("x", "target", "region", "kind", "case", "finding")))


def validation_cases(names: set[str], fraction: float) -> set[str]:
    """Case-level split: the ``fraction`` of cases first in the order of a hash of
    their names (a scan is never in both sets; the split does not depend on the
    order the cases were built in)."""
    ranked = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    return set(ranked[: max(1, round(fraction * len(ranked)))])


# ---------------------------------------------------------------------------- train


def centre_crop(x: np.ndarray) -> np.ndarray:
    s = SHIFT_VOX
    return x[:, :, s:-s, s:-s, s:-s] if s else x


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random shift (crop) by up to SHIFT_VOX voxels, random flips along k (S-I) and i (L-R).

    No anterior-posterior flip: which side of a lesion the canal, the vertebral
    body or the aortic lumen lies on is part of what tells calcium from bone.
    """
    n, size = len(x), x.shape[-1] - 2 * SHIFT_VOX
    out = np.empty((n, 2, size, size, size), np.float32)
    for b in range(n):
        o = rng.integers(0, 2 * SHIFT_VOX + 1, size=3)
        p = x[b, :, o[0]:o[0] + size, o[1]:o[1] + size, o[2]:o[2] + size]
        if rng.random() < 0.5:
            p = p[:, ::-1]
        if rng.random() < 0.5:
            p = p[:, :, :, ::-1]
        out[b] = p
    return out


def roc_auc(target: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half)."""
    pos, neg = score[target == 1], score[target == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    # average ranks over ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def metrics(ps: PatchSet, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUC and accuracy, overall and on findings the rules called reportable."""
    rep = np.isin(ps.region, REFINED_REGIONS)
    out: dict[str, Any] = {}
    for name, keep in (("all", np.ones(len(p), bool)), ("reportable", rep)):
        t, q = ps.target[keep], p[keep]
        pred = (q >= threshold).astype(int)
        out[name] = {
            "n": int(keep.sum()), "positives": int(t.sum()), "negatives": int((t == 0).sum()),
            "auc": roc_auc(t, q), "accuracy": float((pred == t).mean()) if len(t) else None,
            "positives_kept": float(pred[t == 1].mean()) if (t == 1).any() else None,
            "lookalikes_rejected": float((pred[t == 0] == 0).mean()) if (t == 0).any() else None,
        }
    return out


def train(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    ps = load_patches(args.data, parse_seeds(args.cases))
    val = np.isin(ps.case, sorted(validation_cases(set(ps.case.tolist()), args.val_fraction)))
    tr, va = ps.subset(~val), ps.subset(val)
    va_x = centre_crop(va.x)
    print(f"train {len(tr.x)} patches ({tr.target.sum()} calcification) in {len(set(tr.case))} cases; "
          f"validation {len(va.x)} ({va.target.sum()}) in {len(set(va.case))} cases", flush=True)
    # Class-balanced cross-entropy: the weight of a class is inverse to its count.
    counts = np.bincount(tr.target, minlength=2).astype(np.float64)
    weight = torch.tensor(counts.sum() / (2 * np.maximum(counts, 1)), dtype=torch.float32)
    sample_weight = np.where(np.isin(tr.region, REFINED_REGIONS), args.reportable_weight, 1.0).astype(np.float32)
    model = build_calcium_refiner(ARCH)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    device = Device("cpu")
    deadline = time.time() + 60 * args.minutes
    best: tuple[float, dict[str, torch.Tensor], int] | None = None
    history = []
    epoch = 0
    while time.time() < deadline and epoch < args.max_epochs:
        epoch += 1
        model.train()
        order = rng.permutation(len(tr.x))
        losses = []
        for start in range(0, len(order), args.batch):
            idx = order[start:start + args.batch]
            x = torch.from_numpy(augment(tr.x[idx], rng))
            per_sample = F.cross_entropy(model(x), torch.from_numpy(tr.target[idx]), weight=weight, reduction="none")
            # Findings the rules called reportable are the ones the refiner will judge: more weight.
            loss = (per_sample * torch.from_numpy(sample_weight[idx])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if time.time() > deadline:
                break
        p = score_candidates(va_x, model, device)
        m = metrics(va, p, 0.5)
        auc = (m[args.select]["auc"] or m["all"]["auc"] or 0.0)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), **{k: m[k]["auc"] for k in m}})
        print(f"epoch {epoch}: loss {np.mean(losses):.4f} val auc all {m['all']['auc']} "
              f"reportable {m['reportable']['auc']} acc {m['all']['accuracy']:.3f}", flush=True)
        if best is None or auc > best[0]:
            best = (auc, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
    assert best is not None
    model.load_state_dict(best[1])
    p = score_candidates(va_x, model, device)
    threshold = provisional_threshold(va, p, args.keep_positives)
    m = metrics(va, p, threshold)
    print(json.dumps({"best_epoch": best[2], "threshold": threshold, **m}, indent=1), flush=True)
    size, spacing = REFINER_PATCH
    spec = ModelSpec(
        task="refiner", net=ARCH, classes=REFINER_CLASSES, spacing_mm=(spacing,) * 3,
        intensity=dict(REFINER_INTENSITY), patch_size=(size,) * 3,
        extra={
            "threshold": f"{threshold:.4f}",
            "threshold_source": f"validation cases, keeps {args.keep_positives:.0%} of reportable calcifications",
            "applies_to": ",".join(REFINED_REGIONS),
            "training_cases": ",".join(sorted(set(tr.case))),
            "validation_cases": ",".join(sorted(set(va.case))),
            "dataset": json.dumps(dataset_summary(tr, va)),
            "validation_metrics": json.dumps(m),
            "recipe": json.dumps({"epochs": epoch, "best_epoch": best[2], "minutes": args.minutes,
                                  "batch": args.batch, "lr": args.lr, "threads": args.threads,
                                  "reportable_weight": args.reportable_weight, "select": args.select,
                                  "shift_vox": SHIFT_VOX, "flips": "k,i", "loss": "class-weighted CE",
                                  "history": history}),
        },
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out, spec)
    write_card(args.out, None)
    print(f"saved {args.out}", flush=True)
    return 0


def provisional_threshold(ps: PatchSet, p: np.ndarray, keep: float) -> float:
    """Highest threshold that keeps ``keep`` of the reportable calcifications (the
    refiner must cost almost no sensitivity); 0.5 when there are none."""
    rep = np.isin(ps.region, REFINED_REGIONS) & (ps.target == 1)
    if not rep.any():
        return 0.5
    return float(np.quantile(p[rep], 1.0 - keep))


def dataset_summary(*sets: PatchSet) -> dict[str, Any]:
    out = {}
    for name, s in zip(("train", "validation"), sets):
        rep = np.isin(s.region, REFINED_REGIONS)
        out[name] = {
            "cases": len(set(s.case)),
            "calcification_by_kind": dict(Counter(s.kind[s.target == 1].tolist())),
            "lookalike_by_kind": dict(Counter(s.kind[s.target == 0].tolist())),
            "reportable": {"calcification": int(s.target[rep].sum()), "lookalike": int((s.target[rep] == 0).sum())},
            "rules_other": {"calcification": int(s.target[~rep].sum()),
                            "lookalike": int((s.target[~rep] == 0).sum())},
        }
    return out


# ----------------------------------------------------------------------------- tune


def demote(findings_json: Path, dest: Path, p_by_id: dict[str, float], threshold: float) -> int:
    """Copy a findings.json with the refiner's rule applied (as calcdetect.nets.refiner.refine_findings)."""
    doc = json.loads(findings_json.read_text())
    n = 0
    for f in doc["findings"]:
        p = p_by_id.get(f["id"])
        if f["region"] in REFINED_REGIONS and p is not None and p < threshold:
            f.update(region="other", kind="unknown", side=None, segment=None, structure=None)
            n += 1
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "findings.json").write_text(json.dumps(doc))
    return n


def tune(args: argparse.Namespace) -> int:
    """Simulate the refiner on rules runs for a grid of thresholds, scored by evaluate."""
    from calcdetect.evaluate import evaluate

    model = load_model(args.model, Device("cpu"))
    cases = [c for spec in args.cache for c in cache_cases(spec)]
    ps = load_patches(args.data, {case_seed(c.name) for c, _ in cases})
    p = score_candidates(centre_crop(ps.x), model, Device("cpu"))
    scores = {(c, f): float(v) for c, f, v in zip(ps.case, ps.finding, p)}
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    rows = []
    for threshold in [0.0] + [float(t) for t in args.thresholds.split(",")]:
        runs, truth = work / f"t{threshold:g}" / "runs", work / f"t{threshold:g}" / "truth"
        truth.mkdir(parents=True)
        demoted = 0
        for case, series in cases:
            (truth / case.name).symlink_to(case.resolve())
            dest = runs / case.name / series.name
            demoted += demote(series / "findings.json", dest, {f: v for (c, f), v in scores.items()
                                                               if c == case.name}, threshold)
            os.symlink((series / "lesions.nii.gz").resolve(), dest / "lesions.nii.gz")
        r = evaluate(runs, truth)
        rows.append({"threshold": threshold, "demoted": demoted, "fp_per_scan": r.false_positives_per_scan,
                     "false_positives": r.false_positives, "sensitivity_3mm": r.sensitivity_3mm,
                     "sensitivity": r.sensitivity_overall, "region_accuracy": r.region_accuracy,
                     "distractors_mislabelled": r.distractors_mislabelled})
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"cases": [c.name for c, _ in cases], "rows": rows}, indent=1))
    return 0


def store_threshold(args: argparse.Namespace) -> int:
    """Re-save a model with a new threshold (and its source) in its spec; rewrite the card."""
    spec = read_spec(args.model)
    model = load_model(args.model, Device("cpu"))
    extra = dict(spec.extra, threshold=f"{args.threshold:.4f}", threshold_source=args.source)
    save_model(model, args.model, ModelSpec(spec.task, spec.net, spec.classes, spec.spacing_mm, spec.intensity,
                                            spec.patch_size, extra))
    write_card(args.model, args.notes)
    return 0


# ----------------------------------------------------------------------------- card


def write_card(weights: Path, notes: Path | None) -> Path:
    spec = read_spec(weights)
    e = spec.extra
    ds = json.loads(e["dataset"])
    vm = json.loads(e["validation_metrics"])
    recipe = json.loads(e["recipe"])
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    ds_lines = ["| set | cases | calcification (by truth kind) | look-alike (by truth kind; none = no truth lesion) "
                "| reportable calc / look-alike | rules-other calc / look-alike |", "|---|---|---|---|---|---|"]
    for name, d in ds.items():
        ds_lines.append(f"| {name} | {d['cases']} | {json.dumps(d['calcification_by_kind'])} | "
                        f"{json.dumps(d['lookalike_by_kind'])} | {d['reportable']['calcification']} / "
                        f"{d['reportable']['lookalike']} | {d['rules_other']['calcification']} / "
                        f"{d['rules_other']['lookalike']} |")
    m_lines = ["| validation findings | n | calc / look-alike | AUC | accuracy | calcifications kept | look-alikes rejected |",
               "|---|---|---|---|---|---|---|"]
    for name, d in vm.items():
        m_lines.append(f"| {name} | {d['n']} | {d['positives']} / {d['negatives']} | {fmt(d['auc'])} | "
                       f"{fmt(d['accuracy'])} | {fmt(d['positives_kept'])} | {fmt(d['lookalikes_rejected'])} |")
    sections = {
        "Intended use": (
            "`calcdetect run --refiner PATH` on CT: after the rules classify the HU candidates, a finding placed in "
            f"a reportable region ({e['applies_to']}) whose p(calcification) is below the stored threshold "
            f"(**{e['threshold']}**, {e['threshold_source']}) is reported as a look-alike (region other, kind unknown); "
            "its HU measurements are unchanged and p is recorded in findings.json (`refiner`). Trained on "
            "synthetic phantoms only: it has never seen a real CT."),
        "Training data": (
            "Findings of the rules pipeline (`scripts/eval_ct.py`, runs_rules) on synthetic CT phantoms "
            "(`calcdetect.phantoms.ct`, eval_ct's acquisition design: 384 matrix, kVp 80-140, noise 10-40 HU, "
            "0.625-3 mm slices, non-contrast). Target: calcification when the finding's mask overlaps a truth "
            "target lesion (aorta, iliac, renal, ligamentum flavum), look-alike otherwise (a distractor or no truth "
            "lesion). All findings in reportable regions; up to 60 'other' findings per case at random. Split by "
            f"case (hash of the case name).\n\nTraining cases: {e['training_cases']}\n\nValidation cases: "
            f"{e['validation_cases']}\n\n" + "\n".join(ds_lines)),
        "Recipe": (
            f"`scripts/train_refiner.py train` on CPU ({recipe['threads']} thread(s), nice 10, shared machine): "
            f"{recipe['epochs']} epochs in {recipe['minutes']} min budget, best validation AUC "
            f"({recipe.get('select', 'reportable')} findings) at epoch {recipe['best_epoch']} kept; batch "
            f"{recipe['batch']}, AdamW lr {recipe['lr']}, {recipe['loss']} (weights inverse to class counts; "
            f"findings the rules called reportable weighted x{recipe.get('reportable_weight', 1.0):g}), augmentation: random shift up to {recipe['shift_vox']} voxels, "
            f"flips along {recipe['flips']} (no anterior-posterior flip). Patch {list(spec.patch_size)} voxels "
            f"of {spec.spacing_mm[0]} mm (HU + the finding's own mask)."),
        "Metrics": ("Validation cases (never trained on), at the provisional threshold set on them by "
                    "`train` (the one that keeps 99% of their reportable calcifications; the stored threshold "
                    "may since have been chosen on other cases, see below):\n\n" + "\n".join(m_lines)),
        "Limitations": (
            "Phantom look-alikes are simple shapes; on the dev phantoms the rules already make few false "
            "positives, so there are few hard negatives in reportable regions to learn from. Says nothing about "
            "real CT."),
    }
    if notes is not None:
        sections["Pipeline comparison"] = Path(notes).read_text()
    return write_model_card(weights, title=f"{weights.stem}: CT calcium refiner trained on synthetic phantoms only",
                            sections=sections,
                            licence="Apache-2.0. Trained only on synthetic data generated by calcdetect; "
                                    "no third-party data.")


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="patches + targets of every case")
    b.add_argument("--cache", action="append", required=True, help="eval_ct cache DIR[:SEEDS] (repeatable)")
    b.add_argument("--data", type=Path, required=True)
    b.add_argument("--max-other", type=int, default=60)
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--cases", required=True, help="seeds of the cases to train and validate on")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--minutes", type=float, default=6.0)
    t.add_argument("--max-epochs", type=int, default=100)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--val-fraction", type=float, default=0.2)
    t.add_argument("--keep-positives", type=float, default=0.99)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--reportable-weight", type=float, default=1.0,
                   help="loss weight of findings the rules called reportable (the refiner's real inputs)")
    t.add_argument("--select", choices=("all", "reportable"), default="reportable",
                   help="validation AUC that picks the kept epoch")
    u = sub.add_parser("tune")
    u.add_argument("--model", type=Path, required=True)
    u.add_argument("--cache", action="append", required=True)
    u.add_argument("--data", type=Path, required=True)
    u.add_argument("--thresholds", default="0.02,0.05,0.1,0.2,0.3,0.5,0.7")
    u.add_argument("--work", type=Path, default=Path("/tmp/calcdetect_refiner_tune"))
    u.add_argument("--json", type=Path, default=None)
    s = sub.add_parser("threshold", help="store a chosen threshold in the weights")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--threshold", type=float, required=True)
    s.add_argument("--source", required=True)
    s.add_argument("--notes", type=Path, default=None)
    c = sub.add_parser("card")
    c.add_argument("--model", type=Path, required=True)
    c.add_argument("--notes", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        for spec in args.cache:
            for case, series in cache_cases(spec):
                t0 = time.perf_counter()
                dest = build_case(case, series, args.data, args.max_other)
                z = np.load(dest)
                print(f"{case.name}: {len(z['target'])} patches, {int(z['target'].sum())} calcification "
                      f"({time.perf_counter() - t0:.1f} s)", flush=True)
        return 0
    if args.cmd == "train":
        return train(args)
    if args.cmd == "tune":
        return tune(args)
    if args.cmd == "threshold":
        return store_threshold(args)
    write_card(args.model, args.notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
