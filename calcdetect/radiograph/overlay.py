"""Overlay PNG of a radiograph analysis: outlines, aortic zone, calcium, score table.

Only calcdetect's own labels are drawn (levels, grades, the score and a "draft"
line); nothing from the DICOM header (no name, ID, date or institution) ever
reaches the picture. The image is resampled to square display pixels (a CT-derived radiograph has
2 mm rows and 0.98 mm columns) and to at most ``MAX_SIDE`` pixels on its long
side (a 2500 x 2000 RGB PNG is slow to write and no easier to read).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from calcdetect.export.atomic import atomic_write_with
from calcdetect.radiograph.aac import AAC_LEVELS
from calcdetect.radiograph.analyse import RadiographAnalysis
from calcdetect.types import Radiograph

__all__ = ["write_radiograph_overlay", "render_overlay", "MAX_SIDE"]

MAX_SIDE = 1400
_GRADE_COLOURS = {0: (90, 200, 90), 1: (255, 220, 0), 2: (255, 140, 0), 3: (255, 40, 40)}
_VERTEBRA = (0, 200, 255)
_ZONE = (255, 255, 120)
_CALCIUM = (255, 0, 0)
_OUTLINE_DEFECT = (255, 0, 255)  # an outline that is no body (crossed), for the reader to check; no grade's colour


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _grey(array: np.ndarray, size: tuple[int, int]) -> Image.Image:
    a = np.asarray(array, np.float32)
    lo, hi = np.percentile(a, (0.5, 99.8))
    g = np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)
    img = Image.fromarray((g * 255).astype(np.uint8))
    if size != img.size:
        img = img.resize(size, Image.BILINEAR)
    return img.convert("RGB")


def _scales(shape: tuple[int, int], spacing: tuple[float, float] | None) -> tuple[float, float]:
    """Row and column zoom so that display pixels are square and the long side fits."""
    sr, sc = spacing or (1.0, 1.0)
    target = max(min(sr, sc), max(shape[0] * sr, shape[1] * sc) / MAX_SIDE)
    return sr / target, sc / target


def render_overlay(radiograph: Radiograph, analysis: RadiographAnalysis) -> Image.Image:
    """The overlay as a Pillow image (see the module docstring)."""
    rows, cols = radiograph.array.shape
    zr, zc = _scales((rows, cols), radiograph.pixel_spacing)
    size = (max(1, round(cols * zc)), max(1, round(rows * zr)))
    img = _grey(radiograph.array, size)
    # calcium first, so outlines stay visible on top
    if analysis.calcification_mask.any():
        m = Image.fromarray(analysis.calcification_mask.astype(np.uint8) * 255)
        if m.size != img.size:
            m = m.resize(img.size, Image.BOX)
        mk = np.asarray(m) > 40
        arr = np.asarray(img).copy()
        arr[mk] = _CALCIUM
        img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    font = _font(max(12, int(round(16 * max(img.size) / 1000))))
    lw = max(1, int(round(max(img.size) / 600)))

    def xy(points: np.ndarray) -> list[tuple[float, float]]:
        return [(float(c) * zc, float(r) * zr) for r, c in points]

    for v in analysis.vertebrae:
        pts = xy(np.asarray(v.corners_rc))
        colour = _VERTEBRA if v.outline_defect is None else _OUTLINE_DEFECT
        draw.polygon(pts, outline=colour, width=lw)
        label = (v.level or "?") + ("" if v.outline_defect is None else " check")
        # label on the posterior side of the body, away from the aorta
        x = max(p[0] for p in pts) + 4 if analysis.anterior == "left" else min(p[0] for p in pts) - 30
        y = sum(p[1] for p in pts) / 4 - 8
        draw.text((x, y), label, fill=colour, font=font)
    if len(analysis.aortic_zone):
        draw.polygon(xy(analysis.aortic_zone), outline=_ZONE, width=lw)
    # score table, top corner on the posterior side (the aorta is anterior)
    lines = ["calcdetect DRAFT - not a diagnosis"]
    if analysis.aac24 is not None:
        lines.append(f"AAC-24: {analysis.aac24['total']} ({analysis.severity})")
        interval = analysis.aac24.get("interval")
        if interval:
            lines.append(f"{round(100 * interval['coverage'])}% range: {interval['low']}-{interval['high']}")
        table_row = len(lines) + 1  # the first level's line, for the grade bars below
        lines.append("level  ant  post")
        check = set(analysis.aac24.get("grades_to_check", ()))
        for lv in AAC_LEVELS:
            seg = analysis.aac24["segments"][lv]
            mark = {w: "?" if f"{lv} {w}" in check else " " for w in ("anterior", "posterior")}
            lines.append(f"{lv:<5}  {seg['anterior']:>3}{mark['anterior']} {seg['posterior']:>4}{mark['posterior']}")
        if analysis.aac8 is not None:
            lines.append(f"AAC-8: {analysis.aac8['total']}")
        lines.append("groups: low 0-1, mod 2-5, high >=6")
        if check:
            lines.append("? grade to check first")
    else:
        lines.append("AAC-24: not scored")
    text = "\n".join(lines)
    box = draw.multiline_textbbox((0, 0), text, font=font)
    w, h = box[2] - box[0] + 12, box[3] - box[1] + 12
    x0 = img.size[0] - w - 6 if analysis.anterior == "left" else 6
    draw.rectangle((x0, 6, x0 + w, 6 + h), fill=(0, 0, 0))
    draw.multiline_text((x0 + 6, 10), text, fill=(255, 255, 255), font=font)
    # grade colours along the walls: a short bar per segment and wall inside the table
    if analysis.aac24 is not None:
        line_h = (box[3] - box[1]) / len(lines)
        for i, lv in enumerate(AAC_LEVELS):
            seg = analysis.aac24["segments"][lv]
            yy = 10 + (table_row + i) * line_h + line_h / 2
            for j, wall in enumerate(("anterior", "posterior")):
                xx = x0 + w - 22 + j * 9
                draw.rectangle((xx, yy - 3, xx + 6, yy + 3), fill=_GRADE_COLOURS[int(seg[wall])])
    return img


def write_radiograph_overlay(radiograph: Radiograph, analysis: RadiographAnalysis, path: str | Path) -> Path:
    """Write the overlay PNG atomically and return its path.

    Examples
    --------
    >>> # write_radiograph_overlay(rg, analyse_radiograph(rg), "out/overlay.png")
    """
    img = render_overlay(radiograph, analysis)
    # no PNG text chunks: the file carries pixels only
    return atomic_write_with(Path(path), lambda p: img.save(p, format="PNG", optimize=False), suffix=".png")
