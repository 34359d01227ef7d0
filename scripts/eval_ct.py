#!/usr/bin/env python
"""Issue 4's accuracy matrix: held-out CT phantoms across kVp, noise and slice thickness.

Each seed gets one acquisition from a fixed design (so a seed list covers the
grid evenly): kVp 80/100/120/140 (``n % 4``), noise 10/25/40 HU (``n % 3``) and
slice thickness 0.625/1.25/3 mm (``(n // 4) % 3``), where ``n`` is the seed's
position in the list; everything else (anatomy, plaque burden, stones,
distractors, metal, kernel) is drawn by the seed as in ``calcdetect phantom ct
--random``. Contrast is off: the targets are for non-contrast CT.

Each phantom is written as DICOM, run through ``calcdetect run`` (in process,
overlays off) and scored with :func:`calcdetect.evaluate.evaluate`: one line per
case, then the pooled table. Phantoms are cached under ``--cache``.

Tune on seeds below 500; report on held-out seeds (500 and up)::

    .venv/bin/python scripts/eval_ct.py --seeds 500-511 [--matrix 384] [--model models/X.safetensors]
        [--refiner models/calcium_refiner_X.safetensors] [--json metrics.json] [--only 503,507]

Runs go to ``--cache/runs_<arm>`` (``rules``, ``cnn``, ``rules_refiner``,
``cnn_refiner``), so the arms of one cache can be compared side by side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calcdetect.config import RunSettings  # noqa: E402
from calcdetect.evaluate import evaluate  # noqa: E402
from calcdetect.phantoms.ct import generate_ct_phantom, random_settings, write_ct_phantom  # noqa: E402
from calcdetect.pipeline import run  # noqa: E402

KVPS = (80.0, 100.0, 120.0, 140.0)
NOISES_HU = (10.0, 25.0, 40.0)
THICKNESSES_MM = (0.625, 1.25, 3.0)
FOV_MM = 360.0  # in-plane field of view: the phantom body fits, pixel = FOV / matrix


def parse_seeds(text: str) -> list[int]:
    """``"500-511"`` or ``"500,503,510"`` -> list of ints."""
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def case_settings(n: int, seed: int, matrix: int, fov: tuple[str, str] | None):
    overrides = dict(kvp=KVPS[n % 4], noise_sigma_hu=NOISES_HU[n % 3],
                     slice_thickness_mm=THICKNESSES_MM[(n // 4) % 3], matrix=matrix,
                     pixel_mm=round(FOV_MM / matrix, 3), contrast=False)
    if fov is not None:
        overrides["fov"] = fov
    return random_settings(seed, **overrides)


def ensure_case(cache: Path, n: int, seed: int, matrix: int, fov: tuple[str, str] | None) -> Path:
    settings = case_settings(n, seed, matrix, fov)
    tag = f"s{seed}_m{matrix}_kv{settings.kvp:g}_n{settings.noise_sigma_hu:g}_t{settings.slice_thickness_mm:g}"
    if fov is not None:
        tag += f"_{fov[0]}-{fov[1]}"
    study = cache / "cases" / tag
    if not (study / "truth" / "truth.json").is_file():
        if study.exists():
            shutil.rmtree(study)
        write_ct_phantom(generate_ct_phantom(settings), study)
    return study


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="500-511")
    ap.add_argument("--matrix", type=int, default=384)
    ap.add_argument("--fov", default=None, help="TOP-BOTTOM, e.g. T12-S1 (default: the phantom's T10-FH)")
    ap.add_argument("--model", type=Path, default=None, help="anatomy network (calcdetect run --model)")
    ap.add_argument("--refiner", type=Path, default=None, help="calcium refiner (calcdetect run --refiner)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/calcdetect_eval_ct"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--only", default=None,
                    help="run and score only these of --seeds (each keeps its position's acquisition), "
                         "e.g. to re-check the cases a change was for")
    args = ap.parse_args(argv)
    fov = tuple(args.fov.split("-")) if args.fov else None
    settings = RunSettings(overlays=False, write_masks=True, model_path=args.model, refiner_path=args.refiner)
    tag = ("cnn" if args.model else "rules") + ("_refiner" if args.refiner else "")
    runs = args.cache / f"runs_{tag}"
    studies_dir = args.cache / f"selection_{tag}"
    if studies_dir.exists():
        shutil.rmtree(studies_dir)
    studies_dir.mkdir(parents=True)
    if runs.exists():
        shutil.rmtree(runs)
    seeds = parse_seeds(args.seeds)
    only = set(parse_seeds(args.only)) if args.only else set(seeds)
    if not only <= set(seeds):
        ap.error(f"--only {sorted(only - set(seeds))} not in --seeds {args.seeds}")
    print(f"{'case':<40} {'sens>=3mm':>9} {'FP':>4} {'region':>7} {'level':>6} {'sec':>6}", flush=True)
    for n, seed in enumerate(seeds):
        if seed not in only:
            continue
        study = ensure_case(args.cache, n, seed, args.matrix, fov)  # type: ignore[arg-type]
        (studies_dir / study.name).symlink_to(study.resolve())
        out = runs / study.name
        t0 = time.perf_counter()
        run(study / "dicom", out, settings)
        dt = time.perf_counter() - t0
        r = evaluate(out, study)
        sens = "n/a" if r.sensitivity_3mm is None else f"{100 * r.sensitivity_3mm:.0f}%"
        reg = "n/a" if r.region_accuracy is None else f"{100 * r.region_accuracy:.0f}%"
        lev = "n/a" if r.level_accuracy_exact is None else f"{100 * r.level_accuracy_exact:.0f}%"
        print(f"{study.name:<40} {sens:>9} {r.false_positives:>4} {reg:>7} {lev:>6} {dt:>6.1f}", flush=True)
    pooled = evaluate(runs, studies_dir)
    print()
    print(pooled.table())
    if args.json is not None:
        pooled.write_json(args.json)
        args.json.with_suffix(".cases.json").write_text(json.dumps(
            {"seeds": seeds, "only": sorted(only), "matrix": args.matrix, "fov": fov, "model": str(args.model),
             "refiner": str(args.refiner) if args.refiner else None}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
