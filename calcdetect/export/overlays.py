"""Overlay pictures for review: where each finding is, coloured by region.

Display follows the radiological convention: axial images are seen from the feet
(patient's left on the image right, anterior at the top); coronal images have the
patient's left on the image right and superior at the top. Nothing but calcdetect's
own labels is drawn: no patient or study identifiers ever reach an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from calcdetect.anatomy.regions import Region
from calcdetect.export.atomic import atomic_write_with
from calcdetect.types import Finding, Kind, Volume

__all__ = ["REGION_COLOURS", "window", "axial_overlay", "mip_overlay", "write_overlays"]

REGION_COLOURS: dict[str, tuple[int, int, int]] = {
    Region.AORTA.value: (230, 40, 40),
    Region.ILIAC.value: (255, 140, 0),
    Region.LIGAMENTUM_FLAVUM.value: (40, 200, 60),
    Region.RENAL.value: (250, 230, 30),
    Region.OTHER.value: (90, 140, 255),
}

# A window that shows soft tissue and calcium apart (calcium bright, fat dark).
SOFT_TISSUE_WINDOW = (40.0, 400.0)
BONE_WINDOW = (300.0, 1500.0)
_BANNER = "calcdetect draft overlay - for review, not for diagnosis"


def window(array: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map HU to uint8 grey levels with a (center, width) window."""
    lo = center - width / 2.0
    scaled = (np.asarray(array, dtype=np.float32) - lo) * (255.0 / width)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _blend(grey: np.ndarray, masks: Sequence[tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    for mask, colour in masks:
        if mask.any():
            rgb[mask] = 0.35 * rgb[mask] + 0.65 * np.asarray(colour, np.float32)
    return rgb.astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=2) & ~mask


def _with_legend(image: Image.Image, min_width: int = 512) -> Image.Image:
    """Upscale small images for reading and add a banner + colour key strip on top."""
    if image.width < min_width:
        scale = min_width / image.width
        image = image.resize((min_width, max(1, round(image.height * scale))), Image.Resampling.NEAREST)
    strip = 30
    canvas = Image.new("RGB", (image.width, image.height + strip), (0, 0, 0))
    canvas.paste(image, (0, strip))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), _BANNER, fill=(255, 255, 255))
    x = 4
    for name, colour in REGION_COLOURS.items():
        draw.rectangle([x, 18, x + 8, 26], fill=colour)
        draw.text((x + 11, 16), name, fill=colour)
        x += 12 + 6 * len(name) + 10
    return canvas


def axial_overlay(volume: Volume, labels: np.ndarray, findings: Sequence[Finding], k: int) -> Image.Image:
    """Slice ``k`` in a soft-tissue window with findings outlined and numbered."""
    grey = window(volume.array[k], *SOFT_TISSUE_WINDOW)
    masks = []
    for f in findings:
        m = labels[k] == f.lesion.label
        if m.any():
            masks.append((_outline(m), REGION_COLOURS[f.region]))
            masks.append((m, REGION_COLOURS[f.region]))
    image = Image.fromarray(_blend(grey, masks))
    scale = max(1.0, 512 / image.width)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    for f in findings:
        jj, ii = np.nonzero(labels[k] == f.lesion.label)
        if jj.size:
            xy = (int((ii.max() + 4) * scale), int((jj.min() - 4) * scale))
            draw.text(xy, f.id, fill=REGION_COLOURS[f.region])
    return _with_legend(image)


def mip_overlay(volume: Volume, labels: np.ndarray, findings: Sequence[Finding], axis: int) -> Image.Image:
    """Coronal (``axis=1``) or sagittal (``axis=2``) maximum intensity projection.

    The image is resampled to square pixels so distances look right, and flipped
    so that superior is at the top.
    """
    grey = window(volume.array.max(axis=axis), *BONE_WINDOW)[::-1]
    # Unnamed specks (noise, bone edges) would bury the picture: the overview
    # shows reported findings and named look-alikes; findings.json keeps all.
    shown = [f for f in findings if not (f.region == Region.OTHER.value and f.kind == Kind.UNKNOWN)]
    lab = _project_labels(labels, [f.lesion.label for f in shown], axis)[::-1]
    region_of = {f.lesion.label: f.region for f in shown}
    masks = []
    for region, colour in REGION_COLOURS.items():
        ids = [lbl for lbl, r in region_of.items() if r == region]
        if ids:
            masks.append((np.isin(lab, ids), colour))
    image = Image.fromarray(_blend(grey, masks))
    other = 2 if axis == 1 else 1
    sk, s_other = volume.spacing[0], volume.spacing[other]
    height = max(1, int(round(image.height * sk / s_other)))
    image = image.resize((image.width, height), Image.Resampling.BILINEAR)
    return _with_legend(image)


def _project_labels(labels: np.ndarray, keep: Sequence[int], axis: int) -> np.ndarray:
    """Max projection of only the ``keep`` labels (others are zeroed first)."""
    if not keep:
        return np.zeros(np.delete(labels.shape, axis), dtype=np.int32)
    return np.where(np.isin(labels, keep), labels, 0).max(axis=axis)


def _save_png(image: Image.Image, path: Path) -> Path:
    return atomic_write_with(path, lambda p: image.save(p, format="PNG"), suffix=".png")


def write_overlays(
    volume: Volume,
    labels: np.ndarray,
    findings: Sequence[Finding],
    out_dir: Path,
    *,
    max_slices: int = 40,
) -> list[Path]:
    """Write ``mip_coronal.png``, ``mip_sagittal.png`` and one axial PNG per finding.

    Findings sharing a slice share a picture; at most ``max_slices`` axial pictures
    keep archive runs small.
    """
    out_dir = Path(out_dir)
    written = [
        _save_png(mip_overlay(volume, labels, findings, axis=1), out_dir / "mip_coronal.png"),
        _save_png(mip_overlay(volume, labels, findings, axis=2), out_dir / "mip_sagittal.png"),
    ]
    chosen: dict[int, None] = {}
    # Reported findings first (largest first); look-alikes only if room is left.
    for f in sorted(findings, key=lambda f: (f.region == Region.OTHER.value, -f.lesion.volume_mm3)):
        chosen.setdefault(int(round(f.lesion.centroid_kji[0])), None)
        if len(chosen) >= max_slices:
            break
    for k in sorted(chosen):
        on_slice = [f for f in findings if f.lesion.bbox[0] <= k < f.lesion.bbox[3]]
        written.append(_save_png(axial_overlay(volume, labels, on_slice, k), out_dir / f"axial_{k:04d}.png"))
    return written
