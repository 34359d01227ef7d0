"""A small synthetic lateral lumbar radiograph with known truth (for tests and benchmarks).

This is *not* the project's phantom (``calcdetect.phantoms.radiograph`` projects a
full CT phantom); it is a fast 2-D drawing that the radiograph stage is developed and
unit-tested against, so that its tests do not depend on another package.

What is drawn (bright = dense, values are line integrals of attenuation in
arbitrary units, like a lateral projection of a CT):

* the abdomen as an elliptic cross-section (path length through soft tissue),
* vertebral bodies T11-L5 and the sacrum along a lordotic curve, with a cortical
  rim, darker discs and posterior elements,
* ribs over T11-L1, the iliac crest over L5-S1 and bowel-gas lucencies,
* the abdominal aorta anterior to T12-L4 with calcified anterior / posterior wall
  deposits (the truth AAC-24 is computed from the drawn deposits with the same
  segment definition as :mod:`calcdetect.radiograph.aac`),
* blur, magnification (pixel spacing) and noise that grows with obesity.

The image is drawn with the patient facing the left of the image (anterior =
column 0 side), superior at the top; ``anterior_left=False`` mirrors it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from calcdetect.radiograph.aac import AAC_LEVELS, kauppila_grade, union_length

__all__ = ["SyntheticLateral", "make_synthetic_lateral"]

_LEVELS = ("T11", "T12", "L1", "L2", "L3", "L4", "L5")


@dataclass(frozen=True)
class SyntheticLateral:
    """A synthetic lateral image and its truth (pixel coordinates ``(row, col)``)."""

    image: np.ndarray
    spacing_mm: float
    corners: dict[str, np.ndarray]  # level -> (4, 2): sup-ant, sup-post, inf-post, inf-ant
    calcification_mask: np.ndarray
    aac24_segments: dict[str, dict[str, int]]
    anterior_left: bool
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def aac24_total(self) -> int:
        return int(sum(v for seg in self.aac24_segments.values() for v in seg.values()))


def make_synthetic_lateral(
    seed: int = 0,
    *,
    spacing_mm: float = 0.3,
    size_mm: tuple[float, float] = (420.0, 330.0),
    noise: float = 1.0,
    obesity: float = 1.0,
    plaque_burden: float | None = None,
    anterior_left: bool = True,
    magnification: float = 1.0,
) -> SyntheticLateral:
    """Draw a synthetic lateral lumbar radiograph.

    Parameters
    ----------
    seed
        Random seed: anatomy sizes, curvature and plaque pattern.
    spacing_mm
        Pixel spacing at the patient plane before magnification.
    size_mm
        Field of view (height, width) in mm at the patient plane.
    noise
        Noise multiplier (1 = typical).
    obesity
        Soft-tissue thickness multiplier (>1 thicker abdomen, lower contrast-to-noise).
    plaque_burden
        Probability that a wall segment carries calcium (``None``: drawn at random).
    anterior_left
        Patient facing the left of the image (the usual display).
    magnification
        Geometric magnification; the image shows the anatomy larger by this factor
        while ``spacing_mm`` stays the detector spacing divided by nothing, i.e.
        the caller must divide sizes by it (reported in ``notes``).

    Examples
    --------
    >>> ph = make_synthetic_lateral(1, spacing_mm=1.0)
    >>> ph.image.ndim, sorted(ph.aac24_segments)[:2]
    (2, ['L1', 'L2'])
    """
    rng = np.random.default_rng(seed)
    px = spacing_mm / magnification  # mm of anatomy per pixel
    h, w = int(round(size_mm[0] * magnification / spacing_mm)), int(round(size_mm[1] * magnification / spacing_mm))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ymm, xmm = yy * px, xx * px
    height_mm, width_mm = h * px, w * px

    # --- spine geometry: a lordotic curve, levels from T11 down to the sacrum.
    depth = rng.uniform(32, 42)  # vertebral body AP depth
    heights = {lv: rng.uniform(22, 27) + 1.0 * i * rng.uniform(0.3, 0.8) for i, lv in enumerate(_LEVELS)}
    disc = {lv: rng.uniform(7, 11) for lv in _LEVELS}
    x_axis0 = width_mm * rng.uniform(0.56, 0.66)  # column centre (anterior on the left)
    lordosis = rng.uniform(6, 20)  # mm of anterior bulge at mid-lumbar
    top = height_mm * rng.uniform(0.04, 0.12)

    def axis_x(y: np.ndarray | float) -> np.ndarray | float:
        t = (np.asarray(y) - top) / max(height_mm - top, 1.0)
        return x_axis0 - lordosis * np.sin(np.pi * np.clip(t, 0, 1.2))

    def axis_angle(y: float) -> float:
        dy = 1.0
        return math.atan2(float(axis_x(y + dy) - axis_x(y - dy)), 2 * dy)

    img = np.zeros((h, w), np.float32)
    # soft tissue: elliptic abdomen, AP semi-axis a, LR semi-axis b (path length 2b*sqrt(..))
    a_ap = (depth * 2.6 + 40) * obesity
    b_lr = 150 * obesity
    x_centre = x_axis0 - depth * 0.2 - a_ap * 0.35
    rel = (xmm - x_centre) / a_ap
    soft = 2 * b_lr * np.sqrt(np.clip(1 - rel**2, 0, None)) * 0.02
    img += soft.astype(np.float32)

    mu_bone = 0.030  # per mm LR path on top of soft tissue (cancellous)
    lr_body = 45.0
    corners: dict[str, np.ndarray] = {}
    y = top
    body_rows: dict[str, tuple[float, float, float]] = {}
    for lv in _LEVELS:
        hh = heights[lv]
        yc = y + hh / 2
        th = axis_angle(yc)
        xc = float(axis_x(yc))
        # local frame: u along the axis (down), v perpendicular (posterior, +x)
        du = (ymm - yc) * math.cos(th) + (xmm - xc) * math.sin(th)
        dv = (xmm - xc) * math.cos(th) - (ymm - yc) * math.sin(th)
        inside = (np.abs(du) <= hh / 2) & (np.abs(dv) <= depth / 2)
        path = lr_body * np.sqrt(np.clip(1 - (2 * dv / depth) ** 2, 0.05, None))
        rim = ((hh / 2 - np.abs(du)) < 1.5) | ((depth / 2 - np.abs(dv)) < 1.5)
        body = np.where(inside, mu_bone * path + np.where(rim, 0.6, 0.0), 0.0)
        # posterior elements: pedicles behind the body, a spinous process further back
        ped = (np.abs(du) <= hh * 0.35) & (dv > depth / 2 + 1) & (dv < depth / 2 + 22)
        spin = (np.abs(du + hh * 0.1) <= hh * 0.3) & (dv >= depth / 2 + 22) & (dv < depth / 2 + 55)
        body = body + np.where(ped, 0.45, 0.0) + np.where(spin, 0.35, 0.0)
        img += body.astype(np.float32)
        # truth corners in mm -> pixels
        pts = []
        for su, sv in ((-1, -1), (-1, 1), (1, 1), (1, -1)):
            u, v = su * hh / 2, sv * depth / 2
            xm = xc + u * math.sin(th) + v * math.cos(th)
            ym = yc + u * math.cos(th) - v * math.sin(th)
            pts.append((ym / px, xm / px))
        corners[lv] = np.array(pts, dtype=np.float64)
        body_rows[lv] = (y, y + hh, th)
        y += hh + disc[lv]
    # sacrum: a long wedge tilted posteriorly below L5-S1
    ys = y
    th_s = axis_angle(ys) - 0.5
    xs = float(axis_x(ys))
    du = (ymm - ys) * math.cos(th_s) + (xmm - xs) * math.sin(th_s)
    dv = (xmm - xs) * math.cos(th_s) - (ymm - ys) * math.sin(th_s)
    sac = (du >= 0) & (du <= 90) & (np.abs(dv) <= depth / 2 * (1 - du / 140))
    img += np.where(sac, mu_bone * lr_body * 0.8 + np.where(du < 1.5, 0.6, 0.0), 0.0).astype(np.float32)
    # disc material is a little denser than fat but not bone: nothing to add.

    # --- distractors: ribs over T11-L1, iliac crest over L5-S1, bowel gas.
    for lv in ("T11", "T12"):
        y0, y1, _ = body_rows[lv]
        yc = (y0 + y1) / 2 + rng.uniform(-5, 10)
        x0 = float(axis_x(yc))
        curve = yc + 0.004 * (xmm - x0) ** 2 * rng.uniform(0.6, 1.2) + (x0 - xmm) * rng.uniform(0.15, 0.35)
        rib = (np.abs(ymm - curve) < rng.uniform(4, 6)) & (xmm > x0 - depth * 1.4) & (xmm < x0 + 90)
        img += np.where(rib, 0.35, 0.0).astype(np.float32)
    y5 = body_rows["L5"][0]
    crest = ((xmm - (float(axis_x(y5)) + rng.uniform(-10, 25))) / 70) ** 2 + ((ymm - (y5 + 55)) / 60) ** 2 < 1
    img += ndimage.gaussian_filter(np.where(crest, 0.5, 0.0).astype(np.float32), 4 / px)
    for _ in range(rng.integers(3, 8)):
        gy = rng.uniform(top, height_mm)
        gx = float(axis_x(gy)) - depth / 2 - rng.uniform(20, 120)
        r = rng.uniform(8, 25)
        gas = ((xmm - gx) ** 2 + (ymm - gy) ** 2) < r**2
        img -= ndimage.gaussian_filter(np.where(gas, 0.5, 0.0).astype(np.float32), 2 / px)

    # --- aorta and its calcified walls, anterior to T12-L4 (bifurcation at L4).
    radius = rng.uniform(8, 12)
    gap = rng.uniform(1.5, 5)
    burden = rng.uniform(0.0, 0.8) if plaque_burden is None else plaque_burden
    y_top = body_rows["T12"][0] - 20
    y_bif = body_rows["L4"][1] - rng.uniform(0, 8)
    calc = np.zeros((h, w), bool)
    walls: dict[str, list[tuple[float, float]]] = {"anterior": [], "posterior": []}
    for wall, sign in (("posterior", +1), ("anterior", -1)):
        y_cur = y_top
        while y_cur < y_bif:
            seg = rng.uniform(3, 25)
            if rng.random() < burden:
                y0, y1 = y_cur, min(y_cur + seg, y_bif)
                walls[wall].append((y0, y1))
                thick = rng.uniform(0.9, 2.0)
                band = (ymm >= y0) & (ymm <= y1)
                xw = axis_x(ymm) - depth / 2 - gap - radius + sign * radius
                hit = band & (np.abs(xmm - xw) <= thick / 2)
                calc |= hit
                img += np.where(hit, rng.uniform(0.25, 0.5), 0.0).astype(np.float32)
            y_cur += seg + rng.uniform(2, 30)
    # truth AAC-24: union of deposits along the axis within each vertebral height
    # (the vertical extent approximates the axial one: the aorta segments are short).
    aac: dict[str, dict[str, int]] = {}
    for lv in AAC_LEVELS:
        y0, y1, th = body_rows[lv]
        aac[lv] = {}
        for wall in ("anterior", "posterior"):
            frac = union_length(walls[wall], y0, y1) / (y1 - y0)
            aac[lv][wall] = kauppila_grade(frac)

    # --- imaging: blur, noise growing with obesity.
    img = ndimage.gaussian_filter(img, 0.4 / px)
    sigma = 0.05 * noise * obesity**1.5 * (0.3 / spacing_mm)
    img = img + rng.normal(0, sigma, img.shape).astype(np.float32)
    img = img + ndimage.gaussian_filter(rng.normal(0, sigma * 3, img.shape).astype(np.float32), 1.0 / px)
    if not anterior_left:
        img = img[:, ::-1].copy()
        calc = calc[:, ::-1].copy()
        corners = {lv: np.column_stack([c[:, 0], (w - 1) - c[:, 1]]) for lv, c in corners.items()}
    return SyntheticLateral(
        image=img.astype(np.float32),
        spacing_mm=float(spacing_mm),
        corners=corners,
        calcification_mask=calc,
        aac24_segments=aac,
        anterior_left=anterior_left,
        notes={"magnification": magnification, "depth_mm": depth, "noise_sigma": float(sigma)},
    )
