"""Figure: the CNN path's anatomy on the shared real CT series, before and after the fat-plane boundaries.

For each series: one axial crop around the aorta (rules yellow, CNN aorta as
fused cyan, after :func:`calcdetect.nets.boundary.refine_aorta` magenta) and,
where the kidneys are in the field of view, one crop of a kidney (rules
yellow, after :func:`calcdetect.nets.boundary.grow_kidneys` magenta). No
patient identifiers: a panel is named by the series' hashed key (as run outputs are),
never by its folder, which may carry a name.

Usage::

    .venv/bin/python scripts/figure_real_anatomy.py -o docs/figures/real_cnn_boundaries.png \\
        ../shared/data/real/ct_abdomen_petct_siemens ../shared/data/real/ct_thorax_philips
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.segmentation import find_boundaries

from calcdetect import io
from calcdetect.anatomy import build_anatomy
from calcdetect.anatomy.regions import structure
from calcdetect.bone import segment_bone
from calcdetect.device import Device
from calcdetect.nets import load_model, segment_anatomy
from calcdetect.nets.fusion import fuse_anatomy, fuse_model_anatomy, trusted_classes

YELLOW, CYAN, MAGENTA = (255, 220, 0), (0, 230, 255), (255, 0, 200)
CROP_MM = 90.0
PANEL_PX = 320


def _window(hu: np.ndarray) -> np.ndarray:
    return (np.clip((hu + 160.0) / 400.0, 0.0, 1.0) * 255).astype(np.uint8)


def _panel(hu: np.ndarray, masks: list[tuple[np.ndarray, tuple[int, int, int]]], centre: tuple[float, float],
           spacing: tuple[float, float], title: str) -> Image.Image:
    half = (int(CROP_MM / 2 / spacing[0]), int(CROP_MM / 2 / spacing[1]))
    j0, i0 = int(centre[0]) - half[0], int(centre[1]) - half[1]
    box = (slice(max(j0, 0), j0 + 2 * half[0]), slice(max(i0, 0), i0 + 2 * half[1]))
    rgb = np.repeat(_window(hu[box])[..., None], 3, axis=2)
    for mask, colour in masks:
        rgb[find_boundaries(mask[box], mode="inner")] = colour
    img = Image.fromarray(rgb).resize((PANEL_PX, PANEL_PX), Image.NEAREST)
    ImageDraw.Draw(img).text((4, 4), title, fill=(255, 255, 255))
    return img


def _centre(mask2d: np.ndarray) -> tuple[float, float]:
    jj, ii = np.nonzero(mask2d)
    return float(jj.mean()), float(ii.mean())


def series_panels(folder: Path, model) -> list[Image.Image]:
    group = next(g for g in io.discover(folder).loadable() if g.kind != "radiograph")
    vol = io.load_ct(group)
    dev = Device("cpu")
    rules = build_anatomy(vol, dev, bone_mask=segment_bone(vol.array, vol.spacing, dev))
    cnn = segment_anatomy(vol, model, dev)
    spec = model.spec
    plain = fuse_anatomy(rules, cnn, spec.classes, trusted=trusted_classes(spec.classes, spec.extra),
                         levels=spec.extra.get("fuse_levels", "cnn"))
    refined = fuse_model_anatomy(rules, cnn, vol, spec)
    aorta = structure("aorta").label
    panels = []
    sizes = (refined.labels == aorta).sum(axis=(1, 2))
    if sizes.any():
        k = int(np.argsort(sizes)[len(sizes) - max(1, int((sizes > 0).sum()) // 2)])  # a middle-sized slice
        masks = [(rules.labels[k] == aorta, YELLOW), (plain.labels[k] == aorta, CYAN),
                 (refined.labels[k] == aorta, MAGENTA)]
        panels.append(_panel(vol.array[k], masks, _centre(refined.labels[k] == aorta), vol.spacing[1:],
                             f"{group.key} k{k}: aorta"))
    for side in ("left", "right"):
        kidney = [structure(f"{n}_{side}").label for n in ("kidney", "kidney_medulla", "collecting_system")]
        per_slice = np.isin(rules.labels, kidney).sum(axis=(1, 2))
        if per_slice.max() < 100:  # not in the field of view (or a sliver of a pole)
            continue
        k = int(np.argmax(per_slice))
        masks = [(np.isin(refined.labels[k], kidney), MAGENTA), (np.isin(rules.labels[k], kidney), YELLOW)]
        panels.append(_panel(vol.array[k], masks, _centre(np.isin(rules.labels[k], kidney)), vol.spacing[1:],
                             f"{group.key} k{k}: {side} kidney"))
    return panels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series", type=Path, nargs="+")
    ap.add_argument("--model", type=Path, default=Path("models/anatomy_phantom_v3.safetensors"))
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args(argv)
    model = load_model(args.model, Device("cpu"))
    panels = [p for folder in args.series for p in series_panels(folder, model)]
    sheet = Image.new("RGB", (PANEL_PX * len(panels), PANEL_PX))
    for n, p in enumerate(panels):
        sheet.paste(p, (n * PANEL_PX, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.png")
    sheet.save(tmp)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({len(panels)} panels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
