"""Anatomy of the synthetic CT phantom: layout (random by seed) and painting.

Each structure is evaluated vectorised over its bounding box (see
:mod:`calcdetect.phantoms.geometry`); later paint wins. Dimensions are mean
adult values in mm; HU come from :mod:`calcdetect.phantoms.physics`.
Private to :mod:`calcdetect.phantoms.ct`.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from scipy import ndimage
from scipy.interpolate import PchipInterpolator

from calcdetect.anatomy.regions import structure, vertebra_label
from calcdetect.phantoms import physics
from calcdetect.phantoms.geometry import Canvas, Capsule, Ellipsoid, Grid, Tube, rotation

if TYPE_CHECKING:
    from calcdetect.phantoms.ct import CTPhantomSettings

SPINE_LEVELS = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")
_FOV_BOTTOMS = SPINE_LEVELS + ("S1", "FH")

# Mean adult dimensions (mm). Body heights / widths / depths of the vertebral
# bodies and the disc height below each level (e.g. Zhou et al. 2000, Spine;
# Panjabi et al. 1992, Spine); randomised +-7 % per phantom.
_BODY_H = dict(T10=22.0, T11=23.0, T12=24.0, L1=26.0, L2=27.0, L3=28.0, L4=28.0, L5=27.0)
_BODY_AX = dict(T10=17.5, T11=18.5, T12=20.0, L1=21.0, L2=22.0, L3=23.0, L4=24.0, L5=25.0)
_BODY_AY = dict(T10=14.0, T11=14.5, T12=15.0, L1=15.5, L2=16.0, L3=16.5, L4=16.5, L5=16.5)
_DISC_H = dict(T10=6.0, T11=6.5, T12=7.5, L1=8.5, L2=9.5, L3=10.0, L4=10.0, L5=9.0)
_TP_LEN = dict(T10=14.0, T11=12.0, T12=9.0, L1=15.0, L2=19.0, L3=24.0, L4=20.0, L5=17.0)

_LABEL = {name: structure(name).label for name in (
    "spinal_canal", "ligamentum_flavum_zone", "intervertebral_disc", "aorta",
    "common_iliac_artery_left", "common_iliac_artery_right",
    "external_iliac_artery_left", "external_iliac_artery_right",
    "internal_iliac_artery_left", "internal_iliac_artery_right",
    "kidney_left", "kidney_right", "kidney_medulla_left", "kidney_medulla_right",
    "collecting_system_left", "collecting_system_right", "ureter_left", "ureter_right",
    "ribs", "hip_bones", "femur", "costal_cartilage", "inferior_vena_cava",
    "iliac_vein_left", "iliac_vein_right", "liver", "spleen", "bowel",
    "psoas_left", "psoas_right", "body",
)}
_SACRUM = vertebra_label("S1")
_SIDES = {1: "left", -1: "right"}  # LPS: +x is the patient's left


# --------------------------------------------------------------------------- layout


@dataclass
class _Vertebra:
    level: str
    zc: float
    h: float
    ax: float
    ay: float
    yc: float = 0.0
    tilt: float = 0.0  # radians; axis direction (0, sin, cos)

    @property
    def z_top(self) -> float:
        return self.zc + self.h / 2

    @property
    def z_bottom(self) -> float:
        return self.zc - self.h / 2


@dataclass
class _Layout:
    """Random anatomy parameters of one phantom (all mm, LPS)."""

    vertebrae: list[_Vertebra]
    s1: _Vertebra
    spine_y: PchipInterpolator
    z_fh: float
    y_fh: float
    x_fh: float
    r_fh: float
    sacrum_len: float
    habitus_x: float
    habitus_y: float
    fat: float
    aorta_x: float
    aorta_r: float
    z_bif: float
    bif_level: str
    ectatic: bool
    rng_seed: int
    tubes: dict[str, Tube] = field(default_factory=dict)
    kidneys: dict[int, dict[str, Any]] = field(default_factory=dict)
    canal: Tube | None = None
    lf_zones: list[dict[str, Any]] = field(default_factory=list)
    bowel_blobs: list[tuple[Ellipsoid, str]] = field(default_factory=list)
    rib_params: list[dict[str, float]] = field(default_factory=list)

    def by_level(self, level: str) -> _Vertebra:
        for v in self.vertebrae + [self.s1]:
            if v.level == level:
                return v
        raise KeyError(level)

    def yb(self, z: np.ndarray | float) -> np.ndarray:
        return self.spine_y(z)

    def slope(self, z: np.ndarray | float) -> np.ndarray:
        return self.spine_y.derivative()(z)

    def _interp(self, z, attr: str) -> np.ndarray:
        vs = sorted(self.vertebrae + [self.s1], key=lambda v: v.zc)
        return np.interp(z, [v.zc for v in vs], [getattr(v, attr) for v in vs])

    def ax_v(self, z):
        return self._interp(z, "ax")

    def ay_v(self, z):
        return self._interp(z, "ay")

    def canal_ab(self, z) -> tuple[np.ndarray, np.ndarray]:
        """Canal semi-axes (lateral, AP): wider in the lower lumbar spine."""
        zs = [self.by_level("T10").zc, self.by_level("L1").zc, self.by_level("L5").zc, self.s1.zc - 40]
        return (np.interp(z, zs[::-1], [8.0, 10.0, 12.0, 9.0][::-1]),
                np.interp(z, zs[::-1], [7.5, 8.0, 8.5, 5.5][::-1]))

    def canal_y(self, z) -> np.ndarray:
        tilt = np.arctan(self.slope(z))
        _, b = self.canal_ab(z)
        return self.yb(z) + (self.ay_v(z) + 2.0) / np.cos(tilt) + b

    # Body outline ------------------------------------------------------
    def body_axes(self, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Outer semi-axes (x, y) and centre y of the torso section at z."""
        zt = self.by_level("T10").zc
        zs = np.array([self.z_fh - 60, self.z_fh, self.s1.z_top, self.by_level("L3").zc, zt + 40])
        ax = np.array([178, 176, 166, 156, 150]) * self.habitus_x
        ay = np.array([112, 112, 116, 120, 112]) * self.habitus_y
        a = np.interp(z, zs, ax)
        b = np.interp(z, zs, ay)
        # The back follows the spine: posterior skin ~ spinous tip + fat.
        yo = self.canal_y(z) + 45.0 + self.fat - b
        return a, b, yo


def _layout(s: CTPhantomSettings) -> _Layout:
    rng = np.random.default_rng([s.seed, 1])
    scale = rng.uniform(0.93, 1.07)
    verts: list[_Vertebra] = []
    z = 0.0  # S1 upper endplate at z = 0
    s1_h = 28.0 * scale
    s1 = _Vertebra("S1", -s1_h / 2, s1_h, 25.0 * scale, 16.5 * scale)
    for level in reversed(SPINE_LEVELS):
        z += _DISC_H[level] * scale * rng.uniform(0.9, 1.1)
        h = _BODY_H[level] * scale * rng.uniform(0.95, 1.05)
        verts.append(_Vertebra(level, z + h / 2, h, _BODY_AX[level] * scale, _BODY_AY[level] * scale))
        z += h
    verts.reverse()  # cranial first
    # Lordotic spine curve: body-centre y as a smooth function of z. Apex at L3/L4.
    depth = rng.uniform(12.0, 22.0)
    l3, l4, l1, t10 = (next(v for v in verts if v.level == lv) for lv in ("L3", "L4", "L1", "T10"))
    apex_z = 0.5 * (l3.z_bottom + l4.z_top)
    apex_y = 18.0
    cz = [-140.0, -50.0, 0.0, apex_z, l1.zc, t10.z_top + 60]
    cy = [apex_y + 0.7 * depth + 40, apex_y + 0.7 * depth + 28, apex_y + 0.7 * depth,
          apex_y, apex_y + 0.55 * depth, apex_y + 1.6 * depth]
    spine_y = PchipInterpolator(cz, cy, extrapolate=True)
    for v in verts + [s1]:
        v.yc = float(spine_y(v.zc))
        v.tilt = float(np.arctan(spine_y.derivative()(v.zc)))
    z_fh = -rng.uniform(88.0, 104.0)
    if s.bifurcation_level is None:
        bif_level = str(rng.choice(["L3", "L4", "L4", "L4", "L5"]))
    else:
        bif_level = s.bifurcation_level
    bv = next(v for v in verts if v.level == bif_level)
    z_bif = bv.zc + rng.uniform(-0.35, 0.35) * bv.h
    diam = s.aorta_diameter_mm if s.aorta_diameter_mm is not None else rng.uniform(15.0, 25.0)
    return _Layout(
        vertebrae=verts, s1=s1, spine_y=spine_y, z_fh=z_fh, y_fh=-12.0 + rng.uniform(-5, 5),
        x_fh=rng.uniform(84, 94), r_fh=rng.uniform(21, 25), sacrum_len=rng.uniform(95, 110),
        habitus_x=rng.uniform(0.9, 1.05), habitus_y=rng.uniform(0.88, 1.08), fat=rng.uniform(10, 35),
        aorta_x=rng.uniform(8, 20), aorta_r=diam / 2, z_bif=z_bif, bif_level=bif_level,
        ectatic=s.ectatic, rng_seed=s.seed,
    )


def _grid(s: CTPhantomSettings, lay: _Layout) -> Grid:
    top = lay.by_level(s.fov[0]).z_top + 6.0
    bottom_name = s.fov[1]
    if bottom_name == "FH":
        bottom = lay.z_fh - lay.r_fh - 8.0
    else:
        bottom = lay.by_level(bottom_name).z_bottom - 6.0
    step = s.slice_spacing_mm or s.slice_thickness_mm
    n_k = max(int(math.floor((top - bottom) / step)) + 1, 2)
    z = bottom + step * np.arange(n_k)
    p = s.pixel_mm
    x = (np.arange(s.matrix) - (s.matrix - 1) / 2) * p
    # Centre the FOV on the torso at mid-FOV.
    zc = 0.5 * (top + bottom)
    _, _, yo = lay.body_axes(zc)
    y = (np.arange(s.matrix) - (s.matrix - 1) / 2) * p + float(yo)
    return Grid(x=x, y=y, z=z)


# --------------------------------------------------------------------------- anatomy painting


def _column(canvas: Canvas, zlim: tuple[float, float], params: Callable[[np.ndarray], tuple],
            hu: float, label: int | None, chunk: int = 24, within: "_Layout | None" = None) -> None:
    """Paint an ellipse column whose (cx, cy, ax, ay) vary with z, slab by slab.

    With ``within`` (the layout) the column is clipped to the body under the
    subcutaneous fat, so muscles never bulge out of the skin.
    """
    g = canvas.grid
    ks, _, _ = g.box((0, 0), (0, 0), zlim)

    def slab(k0: int) -> None:
        zz = g.z[k0:min(k0 + chunk, ks.stop)]
        cx, cy, ax, ay = (np.asarray(p, np.float32).reshape(-1) * np.ones(len(zz), np.float32)
                          for p in params(zz))
        _, js, is_ = g.box((float((cx - ax).min()) - 1, float((cx + ax).max()) + 1),
                           (float((cy - ay).min()) - 1, float((cy + ay).max()) + 1), (zz[0], zz[-1]))
        box = (slice(k0, k0 + len(zz)), js, is_)
        if Grid.empty(box):
            return
        X, Y, Z = g.coords(box)
        c = lambda a: a[:, None, None]  # noqa: E731
        q = ((X - c(cx)) / c(ax)) ** 2 + ((Y - c(cy)) / c(ay)) ** 2
        mask = q <= 1.0
        if within is not None:
            ba, bb, byo = within.body_axes(Z)
            inset = 2.5 + 0.7 * within.fat
            mask &= (X / (ba - inset)) ** 2 + ((Y - byo) / (bb - inset)) ** 2 <= 1.0
        canvas.paint(box, mask, hu, label)

    # Slabs are disjoint, and numpy releases the GIL on large arrays: paint in threads.
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(slab, range(ks.start, ks.stop, chunk)))


def _paint_shape(canvas: Canvas, shape: Any, hu: float, label: int | None, margin: float = 1.0) -> None:
    lo, hi = shape.bounds()
    box = canvas.grid.box((lo[0] - margin, hi[0] + margin), (lo[1] - margin, hi[1] + margin),
                          (lo[2] - margin, hi[2] + margin))
    if Grid.empty(box):
        return
    X, Y, Z = canvas.grid.coords(box)
    canvas.paint(box, shape.inside(X, Y, Z), hu, label)


def _paint_body(canvas: Canvas, lay: _Layout) -> None:
    T = physics.TISSUE_HU
    g = canvas.grid
    half_fov = 0.48 * min(g.x[-1] - g.x[0], g.y[-1] - g.y[0])
    fat = lay.fat

    def layer(inset: float, fat_scale: float = 0.0):
        def params(z):
            a, b, yo = lay.body_axes(z)
            a = np.minimum(a, half_fov)
            b = np.minimum(b, half_fov)
            d = inset + fat_scale * fat
            return 0.0, yo, np.maximum(a - d, 5.0), np.maximum(b - d, 5.0)
        return params

    zlim = (g.z[0] - 1, g.z[-1] + 1)
    _column(canvas, zlim, layer(0.0), T["skin"], _LABEL["body"])
    _column(canvas, zlim, layer(2.5), T["fat"], None)
    _column(canvas, zlim, layer(2.5, 1.0), T["muscle"], None)  # abdominal wall muscles
    _column(canvas, zlim, layer(14.0, 1.0), T["visceral_fat"], None)


def _paint_organs(canvas: Canvas, lay: _Layout, rng: np.random.Generator) -> None:
    T = physics.TISSUE_HU
    t11, t12, l1, l3 = (lay.by_level(v) for v in ("T11", "T12", "L1", "L3"))
    # Bowel: loops as walled ellipsoids with gas, fluid or mottled faeces.
    kinds = ["gas", "fluid", "faeces"]
    for n in range(40):
        z = rng.uniform(lay.z_fh - 10, l1.zc)
        a, b, yo = lay.body_axes(z)
        r = rng.uniform(11, 22)
        x = rng.uniform(-0.75, 0.75) * (a - lay.fat - 30 - r)
        # Intraperitoneal: the loop stays >= 25 mm in front of the vertebral bodies,
        # clear of the aorta, IVC, psoas and ureters (retroperitoneum).
        y_hi = float(lay.yb(z)) - float(lay.ay_v(z)) - 25.0 - r
        y_lo = float(yo - b) + lay.fat + 20 + r
        y = rng.uniform(y_lo, max(y_lo, y_hi))
        e = Ellipsoid((x, y, z), (r, r * rng.uniform(0.7, 1.0), r * rng.uniform(0.8, 1.6)),
                      rotation(z_deg=rng.uniform(0, 180)))
        lay.bowel_blobs.append((e, str(rng.choice(kinds, p=[0.25, 0.4, 0.35]))))
    # Colon frame: ascending (right) and descending (left) colon.
    for sx in (-1, 1):
        z0, z1 = lay.z_fh + 30, l1.zc
        zc = 0.5 * (z0 + z1)
        a, b, yo = lay.body_axes(zc)
        e = Ellipsoid((sx * (a - lay.fat - 45), float(yo) + 10 * sx, zc), (20, 20, (z1 - z0) / 2))
        lay.bowel_blobs.append((e, "faeces"))
    for e, kind in lay.bowel_blobs:
        _paint_shape(canvas, e, T["bowel_wall"], _LABEL["bowel"])
        inner = Ellipsoid(e.centre, tuple(max(r - 2.5, 1.0) for r in e.radii), e.rot)
        lo, hi = inner.bounds()
        box = canvas.grid.box((lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2]))
        if Grid.empty(box):
            continue
        X, Y, Z = canvas.grid.coords(box)
        m = inner.inside(X, Y, Z)
        if kind == "gas":
            canvas.paint(box, m, T["bowel_gas"], _LABEL["bowel"])
        elif kind == "fluid":
            canvas.paint(box, m, T["bowel_fluid"], _LABEL["bowel"])
        else:
            # Mottled faeces: soft-tissue-to-fat texture with gas bubbles.
            tex = rng.standard_normal(m.shape, dtype=np.float32)
            ndimage.gaussian_filter(tex, 1.5, output=tex)
            tex /= max(float(tex.std()), 1e-6)
            val = np.where(tex > 1.4, T["bowel_gas"], -20.0 + 35.0 * tex).astype(np.float32)
            canvas.paint(box, m, val, _LABEL["bowel"])
    # Bladder in the anterior pelvis.
    _paint_shape(canvas, Ellipsoid((0.0, lay.y_fh - 45, lay.z_fh + 5), (45, 32, 35)), T["urine"], None)
    # Liver (right upper quadrant) and spleen (left, posterior), clipped to the cavity.
    liver = Ellipsoid((-62.0, float(lay.yb(t11.zc)) - 45, t11.zc + 15), (85, 80, 95), rotation(z_deg=-15))
    spleen = Ellipsoid((88.0, float(lay.yb(t11.zc)) + 5, t11.zc + 5), (28, 50, 55), rotation(z_deg=35))
    for shape, hu, lab in ((liver, T["liver"], _LABEL["liver"]), (spleen, T["spleen"], _LABEL["spleen"])):
        lo, hi = shape.bounds()
        box = canvas.grid.box((lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2]))
        if Grid.empty(box):
            continue
        X, Y, Z = canvas.grid.coords(box)
        a, b, yo = lay.body_axes(Z)
        cavity = (X / (a - lay.fat - 16)) ** 2 + ((Y - yo) / (b - lay.fat - 16)) ** 2 <= 1
        canvas.paint(box, shape.inside(X, Y, Z) & cavity, hu, lab)


def _paint_muscles(canvas: Canvas, lay: _Layout) -> None:
    T = physics.TISSUE_HU
    l1, l3, l5, t10 = (lay.by_level(v) for v in ("L1", "L3", "L5", "T10"))
    g = canvas.grid
    ztop = g.z[-1] + 1
    # Paraspinal muscles (erector spinae + multifidus) either side of the spinous processes.
    for sx in (-1, 1):
        def para(z, sx=sx):
            y = lay.canal_y(z) + 22
            return sx * 34.0, y, 24.0 + 0 * z, 20.0 + 0 * z
        _column(canvas, (lay.s1.zc - 40, ztop), para, T["muscle"], None, within=lay)
        # Quadratus lumborum, T12 to the iliac crest.
        def ql(z, sx=sx):
            return sx * (lay.ax_v(z) + 42.0), lay.yb(z) + 22.0, 16.0 + 0 * z, 11.0 + 0 * z
        _column(canvas, (l5.z_top, t10.zc - 30), ql, T["muscle"], None)
        # Gluteal muscles behind the iliac wings.
        def glut(z, sx=sx):
            t = np.clip((l5.zc - z) / (l5.zc - lay.z_fh + 40), 0, 1)
            return sx * (95.0 + 15 * t), lay.yb(z) + 30 + 10 * t, 40.0 + 15 * t, 30.0 + 10 * t
        _column(canvas, (lay.z_fh - 60, l5.zc), glut, T["muscle"], None, within=lay)
        # Psoas: thin at L1, thickest at L4-L5, then anterolateral into the pelvis.
        pts = [
            (sx * (l1.ax + 10), l1.yc + 4, l1.z_top),
            (sx * (l3.ax + 18), l3.yc - 2, l3.zc),
            (sx * (l5.ax + 22), l5.yc - 12, l5.zc),
            (sx * 55.0, float(lay.yb(-30.0)) - 40, -30.0),
            (sx * 68.0, lay.y_fh - 32, lay.z_fh + 10),
            (sx * 72.0, lay.y_fh - 38, lay.z_fh - 60),
        ]
        psoas = Tube(np.array(pts), np.array([7.0, 16.0, 21.0, 20.0, 17.0, 15.0]))
        psoas.paint(canvas, T["muscle"], _LABEL["psoas_left" if sx > 0 else "psoas_right"])
        lay.tubes[f"psoas_{sx}"] = psoas
        # Iliacus on the inner surface of the iliac wing.
        def iliacus(z, sx=sx):
            return sx * 88.0, lay.yb(z) - 20.0, 22.0 + 0 * z, 14.0 + 0 * z
        _column(canvas, (lay.z_fh + 20, l5.zc), iliacus, T["muscle"], None)


def _vessel_tubes(lay: _Layout) -> None:
    """Centrelines of the aorta, iliac arteries, IVC, iliac veins and ureters."""
    vs = lay.vertebrae
    top = vs[0].z_top + 80
    z_sI = -22.0
    ra = lay.aorta_r

    def aorta_y(z: float) -> float:
        tilt = math.atan(float(lay.slope(z)))
        return float(lay.yb(z)) - float(lay.ay_v(z)) / math.cos(tilt) - 3.0 - ra

    zs = np.linspace(lay.z_bif, top, 12)
    pts = np.array([(lay.aorta_x, aorta_y(z), z) for z in zs])
    radii = np.full(len(zs), ra) * np.linspace(0.92, 1.05, len(zs))
    if lay.ectatic:
        renal_z = lay.kidneys[1]["hilum"][2] if lay.kidneys else lay.by_level("L2").zc
        mid = 0.5 * (renal_z + lay.z_bif)
        radii = radii * (1 + 0.5 * np.exp(-(((zs - mid) / 25.0) ** 2)))
    lay.tubes["aorta"] = Tube(pts, radii)
    yb_end = aorta_y(lay.z_bif)
    sac_front = float(lay.yb(z_sI)) - 17.0
    for sx in (-1, 1):
        cia_end = (sx * 44.0, sac_front - 12.0, z_sI)
        cia = Tube(np.array([
            (lay.aorta_x + sx * 0.4 * ra, yb_end, lay.z_bif + 2),
            (lay.aorta_x * 0.5 + sx * 24.0, 0.5 * (yb_end + cia_end[1]) - 3, 0.5 * (lay.z_bif + z_sI)),
            cia_end,
        ]), np.array([0.55 * ra, 0.52 * ra, 0.5 * ra]).clip(3.5, 6.5))
        # The external iliac passes in front of the acetabulum with the iliopsoas
        # between; placed by hand, its lumen ran against the acetabulum's
        # anterior surface for 3-4 cm, where its plaque fused with the bone.
        brim = np.array([sx * 58.0, sac_front - 35.0, z_sI - 35])
        groin = np.array([sx * (lay.x_fh - 12), lay.y_fh - 38.0, lay.z_fh + 5])
        over_acetabulum = [_clear_of_acetabulum(tuple(brim + f * (groin - brim)), lay, sx, 4.2)
                           for f in (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)]
        eia = Tube(np.array([
            cia_end, *over_acetabulum,
            (sx * (lay.x_fh - 8), lay.y_fh - 45.0, lay.z_fh - 40),
        ]), 4.2)
        iia = Tube(np.array([
            cia_end,
            (sx * 50.0, sac_front + 6.0, z_sI - 25),
            (sx * 56.0, sac_front + 22.0, z_sI - 50),
        ]), 3.3)
        lay.tubes[f"cia_{sx}"], lay.tubes[f"eia_{sx}"], lay.tubes[f"iia_{sx}"] = cia, eia, iia
    # IVC right of the aorta; confluence ~1.5 cm below the bifurcation.
    z_conf = lay.z_bif - 15.0
    ivc_pts = np.array([(-22.0, aorta_y(z) + ra - 8, z) for z in np.linspace(z_conf, top, 10)])
    lay.tubes["ivc"] = Tube(ivc_pts, 10.0)
    for sx in (-1, 1):
        cia_end = lay.tubes[f"cia_{sx}"].point(z_sI)
        civ = Tube(np.array([
            (-20.0 + sx * 4.0, ivc_pts[0, 1] + 2, z_conf + 2),
            (sx * 30.0 - 6, cia_end[1] + 10, 0.5 * (z_conf + z_sI)),
            (sx * 44.0, cia_end[1] + 9, z_sI - 8),
        ]), 6.5)
        eia = lay.tubes[f"eia_{sx}"]
        eiv_pts = [eia.point(z) + np.array([-sx * 11.0, 7.0, 0.0]) for z in np.linspace(lay.z_fh - 40, z_sI - 12, 4)]
        lay.tubes[f"civ_{sx}"] = civ
        lay.tubes[f"eiv_{sx}"] = Tube(np.array(eiv_pts), 6.0)


_ACETABULUM_MM = 13.0  # outer radius of the acetabular shell beyond the femoral head's


def _clear_of_acetabulum(point: tuple[float, float, float], lay: _Layout, sx: int, vessel_r: float,
                         clearance_mm: float = 7.0) -> tuple[float, float, float]:
    """``point`` moved anteriorly, if needed, so that a vessel of radius
    ``vessel_r`` there keeps ``clearance_mm`` (the iliopsoas) off the acetabulum
    (the shell of radius ``r_fh + 13`` painted in :func:`_paint_pelvis`). The
    tube between control points cuts ~2 mm closer: 7 mm here keeps >= 5 mm."""
    x, y, z = point
    need = lay.r_fh + _ACETABULUM_MM + vessel_r + clearance_mm
    dx, dz = x - sx * lay.x_fh, z - lay.z_fh
    in_plane = need * need - dx * dx - dz * dz
    if in_plane <= 0.0:
        return point
    return x, min(y, lay.y_fh - math.sqrt(in_plane)), z


def _kidneys(lay: _Layout, rng: np.random.Generator) -> None:
    """Place both kidneys and their internal parts (in each kidney's local frame)."""
    l1 = lay.by_level("L1")
    for sx in (1, -1):
        zc = l1.zc + (6.0 if sx > 0 else -10.0) + rng.uniform(-6, 6)
        centre = np.array([sx * (float(lay.ax_v(zc)) + 52.0), float(lay.yb(zc)) + 14.0, zc])
        radii = np.array([25.0, 20.0, 54.0]) * rng.uniform(0.92, 1.08)
        a = 30.0 if sx > 0 else 150.0  # local +u lateral-posterior: hilum faces anteromedially
        R = rotation(z_deg=a, y_deg=-12.0)
        sinus_c = np.array([-11.0, 0.0, 0.0])
        pyramids = []
        for n, lw in enumerate(np.linspace(-0.7, 0.7, 7) * radii[2]):
            beta = [0.0, 1.2, -1.2][n % 3]
            f = math.sqrt(max(1 - (lw / radii[2]) ** 2, 0.2))
            pc = np.array([sinus_c[0] + 22.0 * math.cos(beta) * f, 14.0 * math.sin(beta) * f, lw])
            tip = pc + 0.55 * (np.array([sinus_c[0], 0.0, lw * 0.6]) - pc)
            pyramids.append((pc, tip))
        pelvis_c = np.array([-21.0, 0.0, -4.0])
        hilum = centre + R @ np.array([-radii[0] - 4.0, 0.0, -6.0])
        lo_z = centre[2] - float(np.sqrt(((R * radii[None, :]) ** 2).sum(axis=1))[2])
        hi_z = 2 * centre[2] - lo_z
        lay.kidneys[sx] = dict(centre=centre, radii=radii, R=R, sinus=sinus_c, pyramids=pyramids,
                               pelvis=pelvis_c, hilum=hilum, z_range=(lo_z, hi_z))


def _ureter(lay: _Layout, sx: int) -> Tube:
    k = lay.kidneys[sx]
    h = k["hilum"]
    l3, l5 = lay.by_level("L3"), lay.by_level("L5")
    ps = lay.tubes[f"psoas_{sx}"]
    p3 = ps.point(l3.zc)
    p5 = ps.point(l5.zc)
    cia = lay.tubes[f"cia_{sx}"].point(-22.0)
    pts = [
        tuple(h),
        (p3[0] - sx * 2, p3[1] - 18.0, l3.zc),
        (p5[0] - sx * 4, p5[1] - 24.0, l5.zc),
        (cia[0] + sx * 2, cia[1] - 9.0, -22.0),
        (sx * 55.0, float(lay.yb(lay.z_fh + 30)) - 30, lay.z_fh + 30),
        (sx * 32.0, lay.y_fh - 22.0, lay.z_fh + 8),
    ]
    zs = [p[2] for p in pts]
    keep = [pts[0]] + [p for p, zprev in zip(pts[1:], zs[:-1]) if p[2] < zprev - 5]
    return Tube(np.array(keep), 2.5)


def _paint_kidneys(canvas: Canvas, lay: _Layout) -> None:
    T = physics.TISSUE_HU
    for sx, k in lay.kidneys.items():
        side = "left" if sx > 0 else "right"
        centre, radii, R = k["centre"], k["radii"], k["R"]
        outer = Ellipsoid(tuple(centre), tuple(radii), R)
        # Perirenal fat capsule first.
        _paint_shape(canvas, Ellipsoid(tuple(centre), tuple(radii + 8.0), R), T["fat"], None)
        _paint_shape(canvas, outer, T["kidney_cortex"], _LABEL[f"kidney_{side}"])
        for pc, _ in k["pyramids"]:
            _paint_shape(canvas, Ellipsoid(tuple(centre + R @ pc), (7.0, 6.0, 8.0), R),
                         T["kidney_medulla"], _LABEL[f"kidney_medulla_{side}"])
        sinus = Ellipsoid(tuple(centre + R @ k["sinus"]), (13.0, 9.0, 30.0), R)
        _paint_shape(canvas, sinus, T["sinus_fat"], _LABEL[f"kidney_{side}"])
        cs = _LABEL[f"collecting_system_{side}"]
        _paint_shape(canvas, Ellipsoid(tuple(centre + R @ k["pelvis"]), (11.0, 6.0, 12.0), R), T["urine"], cs)
        for pc, tip in k["pyramids"]:
            _paint_shape(canvas, Ellipsoid(tuple(centre + R @ tip), (3.5, 3.5, 3.5), R), T["urine"], cs)
            # Infundibulum joining the calyx to the pelvis.
            _paint_shape(canvas, Capsule(tuple(centre + R @ tip), tuple(centre + R @ k["pelvis"]), 1.8),
                         T["urine"], cs)
        ureter = _ureter(lay, sx)
        lay.tubes[f"ureter_{sx}"] = ureter
        ureter.paint(canvas, T["urine"] + 10, _LABEL[f"ureter_{side}"])


def _paint_vessels(canvas: Canvas, lay: _Layout, contrast_hu: float | None) -> None:
    T = physics.TISSUE_HU
    blood = contrast_hu if contrast_hu is not None else T["blood"]
    for sx in (-1, 1):
        side = "left" if sx > 0 else "right"
        for name in ("civ", "eiv"):
            lay.tubes[f"{name}_{sx}"].paint(canvas, T["blood"], _LABEL[f"iliac_vein_{side}"])
    lay.tubes["ivc"].paint(canvas, T["blood"], _LABEL["inferior_vena_cava"])
    arteries = [("aorta", _LABEL["aorta"])]
    for sx in (-1, 1):
        side = "left" if sx > 0 else "right"
        arteries += [(f"cia_{sx}", _LABEL[f"common_iliac_artery_{side}"]),
                     (f"eia_{sx}", _LABEL[f"external_iliac_artery_{side}"]),
                     (f"iia_{sx}", _LABEL[f"internal_iliac_artery_{side}"])]
    for name, lab in arteries:
        lay.tubes[name].paint(canvas, T["fat"], None, extra_radius=3.5)  # periadventitial fat
    for name, lab in arteries:
        lay.tubes[name].paint(canvas, T["vessel_wall"], lab, extra_radius=1.6)
    for name, lab in arteries:
        lay.tubes[name].paint(canvas, blood, lab)


def _body_local(X, Y, Z, v: _Vertebra):
    """Coordinates in a vertebra's tilted frame: lateral x, AP v, axial w."""
    s, c = math.sin(v.tilt), math.cos(v.tilt)
    dy, dz = Y - v.yc, Z - v.zc
    return X, dy * c - dz * s, dy * s + dz * c


def _vertebra_box(g: Grid, v: _Vertebra, back: float) -> tuple:
    reach = v.h / 2 * abs(math.sin(v.tilt)) + v.ay * abs(math.cos(v.tilt))
    zr = v.h / 2 * abs(math.cos(v.tilt)) + (v.ay + back) * abs(math.sin(v.tilt))
    return g.box((-v.ax - 45, v.ax + 45), (v.yc - reach - 2, v.yc + reach + back), (v.zc - zr - 14, v.zc + zr + 6))


def _paint_spine(canvas: Canvas, lay: _Layout, kvp: float, rng: np.random.Generator) -> None:
    T = physics.TISSUE_HU
    g = canvas.grid
    # Apparent HA densities (mg/cm3) chosen so blurred CT numbers match the real
    # series measured by scripts/realism.py (cancellous ~150-180 HU, cortex peaks
    # ~1100-1400 HU, textured trabecular bone with ~30-45 HU local SD).
    canc = float(physics.density_to_hu(rng.uniform(165, 255), kvp, T["marrow"]))
    cort = float(physics.density_to_hu(rng.uniform(1500, 1800), kvp, T["marrow"]))
    post = float(physics.density_to_hu(750, kvp, T["marrow"]))
    shell = 1.4
    chain = lay.vertebrae + [lay.s1]
    # Discs: between the lower endplate of one body and the upper endplate of the next.
    for up, lo in zip(chain[:-1], chain[1:]):
        mid = _Vertebra("disc", 0.5 * (up.z_bottom + lo.z_top), up.z_bottom - lo.z_top,
                        0.5 * (up.ax + lo.ax), 0.5 * (up.ay + lo.ay),
                        0.5 * (up.yc + lo.yc), 0.5 * (up.tilt + lo.tilt))
        box = _vertebra_box(g, mid, 5)
        if Grid.empty(box):
            continue
        X, Y, Z = g.coords(box)
        _, vu, wu = _body_local(X, Y, Z, up)
        _, vl, wl = _body_local(X, Y, Z, lo)
        _, vm, _ = _body_local(X, Y, Z, mid)
        inside = ((X / mid.ax) ** 2 + (vm / mid.ay) ** 2 <= 1.0) & (wu < -up.h / 2) & (wl > lo.h / 2)
        canvas.paint(box, inside, T["disc"], _LABEL["intervertebral_disc"])
    # Vertebral bodies (kidney-bean ellipse with cortical shell).
    for v in chain:
        lab = vertebra_label(v.level)
        box = _vertebra_box(g, v, 5)
        if Grid.empty(box):
            continue
        X, Y, Z = g.coords(box)
        x, vv, w = _body_local(X, Y, Z, v)
        q = (x / v.ax) ** 2 + (vv / v.ay) ** 2
        bean = (x / (0.45 * v.ax)) ** 2 + ((vv - 1.05 * v.ay) / (0.3 * v.ay)) ** 2 <= 1.0
        body = (q <= 1.0) & (np.abs(w) <= v.h / 2) & ~bean
        inner = ((x / (v.ax - shell)) ** 2 + (vv / (v.ay - shell)) ** 2 <= 1.0) & (np.abs(w) <= v.h / 2 - shell)
        canvas.paint(box, body, cort, lab)
        canvas.paint(box, body & inner & ~bean, canc + _trabecular_texture(body.shape, rng), lab)
    _paint_posterior_elements(canvas, lay, post)
    _paint_sacrum(canvas, lay, canc, cort)
    _paint_canal(canvas, lay)


def _trabecular_texture(shape: tuple[int, ...], rng: np.random.Generator, sd_hu: float = 48.0) -> np.ndarray:
    """Trabecular heterogeneity: smoothed white noise with ``sd_hu`` standard deviation."""

    tex = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(tex, (0.5, 0.9, 0.9), output=tex)
    tex *= np.float32(sd_hu / max(float(tex.std()), 1e-6))
    return tex


def _paint_posterior_elements(canvas: Canvas, lay: _Layout, bone_hu: float) -> None:
    g = canvas.grid
    T = physics.TISSUE_HU
    chain = lay.vertebrae
    lam_lo = {v.level: v.zc - 0.45 * v.h for v in chain}
    lam_hi = {v.level: v.zc + 0.3 * v.h for v in chain}
    lam_hi["S1"] = lay.s1.z_top - 6.0
    # Interlaminar ligamentum flavum zones: from the top edge of the lower lamina
    # up to the middle of the inner surface of the upper one.
    nxt = chain[1:] + [lay.s1]
    lay.lf_zones = [
        dict(upper=u.level, lower=l.level, z0=lam_hi[l.level] - 4.0, z1=u.zc - 0.05 * u.h)
        for u, l in zip(chain, nxt)
    ]
    lf_lab = _LABEL["ligamentum_flavum_zone"]
    for v in chain:
        lab = vertebra_label(v.level)
        z0, z1 = v.zc - 0.5 * v.h - 16, v.zc + 0.5 * v.h + 3
        box = g.box((-v.ax - 50, v.ax + 50), (v.yc - 5, v.yc + 110), (z0, z1))
        if Grid.empty(box):
            continue
        X, Y, Z = g.coords(box)
        a, b = lay.canal_ab(Z)
        cy = lay.canal_y(Z).astype(np.float32)
        a = a.astype(np.float32)
        b = b.astype(np.float32)
        dy = Y - cy
        ax_abs = np.abs(X)
        in_z = lambda lo, hi: (Z >= lo) & (Z <= hi)  # noqa: E731
        ped = in_z(v.zc - 0.1 * v.h, v.zc + 0.45 * v.h) & (
            ((ax_abs - (a + 3.5)) / 4.5) ** 2 + ((dy + 0.2 * b) / (b + 3.0)) ** 2 <= 1.0)
        pillar = in_z(v.zc - 0.5 * v.h - 3, v.zc + 0.5 * v.h + 1) & (
            ((ax_abs - (a + 6.0)) / 5.5) ** 2 + ((dy - 0.8 * b) / 6.5) ** 2 <= 1.0)
        in_lf = np.zeros(np.broadcast_shapes(Z.shape, Y.shape, X.shape), bool)
        for zone in lay.lf_zones:
            if zone["upper"] == v.level or zone["lower"] == v.level:
                in_lf |= in_z(zone["z0"], zone["z1"])
        inset = np.where(in_lf, 3.5, 0.0).astype(np.float32)
        q_out = (X / (a + 11.0)) ** 2 + (dy / (b + 10.0)) ** 2
        q_in = (X / (a + inset)) ** 2 + (dy / (b + inset)) ** 2
        lamina = in_z(lam_lo[v.level], lam_hi[v.level]) & (q_out <= 1.0) & (q_in > 1.0) & (dy > -0.3 * b)
        thoracic = v.level.startswith("T")
        sp_len = 26.0 if thoracic else 30.0
        sp_slope = 0.7 if thoracic else 0.3
        zsp = v.zc - 0.1 * v.h - sp_slope * (dy - b)
        spinous = (ax_abs <= (3.0 if thoracic else 4.0)) & (dy >= b + 4) & (dy <= b + 8 + sp_len) & (
            np.abs(Z - zsp) <= (6.0 if thoracic else 8.0))
        tp_len = _TP_LEN[v.level]
        tp_dy = 0.6 * (ax_abs - a) if thoracic else 0.0 * ax_abs
        tp = (ax_abs >= a + 4) & (ax_abs <= a + 8 + tp_len) & (np.abs(dy - tp_dy) <= 4.5) & (
            np.abs(Z - (v.zc + 0.1 * v.h)) <= 5.0)
        canvas.paint(box, ped | pillar | lamina | spinous | tp, bone_hu, lab)
        # The ligamentum flavum: a 3.5 mm band on the posterior canal wall.
        q_lf = (X / (a + 3.5)) ** 2 + (dy / (b + 3.5)) ** 2
        q_c = (X / a) ** 2 + (dy / b) ** 2
        lf = in_lf & (q_lf <= 1.0) & (q_c > 1.0) & (dy > -0.1 * b)
        canvas.paint(box, lf, T["ligament"], lf_lab)


def _sacrum_half_width(lay: _Layout, t):
    """Half-width (mm) of the sacrum incl. the alae at fraction ``t`` of its length.

    ~100-115 mm across the S1 alae, tapering through S3 (~70 mm) to the apex.
    """
    return (53.0 + 0.8 * (lay.s1.ax - 25.0)) * np.interp(t, [0.0, 0.3, 0.55, 1.0], [1.0, 0.95, 0.62, 0.2])


def _sacrum_mask(lay: _Layout, X, Y, Z, d: float = 0.0) -> np.ndarray:
    """The sacrum (body, alae, dorsal wall) shrunk by ``d`` mm (grown where ``d < 0``).

    The alae are blunt laterally (|x|^4 profile) so that they present a broad
    auricular surface to the iliac bones at the sacro-iliac joints; they reach
    up to the S1 upper endplate, the body part only to mid-S1 (above that the
    generic vertebra painter draws the S1 body with its tilted endplate).
    """
    z_top = lay.s1.z_top
    L = lay.sacrum_len
    t = np.clip((z_top - Z) / L, 0, 1)
    yb = lay.yb(Z).astype(np.float32)
    tilt = np.cos(np.arctan(lay.slope(Z))).astype(np.float32)
    lower = Z <= z_top - 0.5 * lay.s1.h
    body = lower & ((X / (25 * (1 - 0.6 * t) - d)) ** 2
                    + ((Y - yb) / ((16 * (1 - 0.45 * t)) / tilt - d)) ** 2 <= 1)
    ala_w = np.maximum(_sacrum_half_width(lay, t) - d, 1.0)
    ala_b = np.maximum(13.5 * (1 - 0.4 * t) - d, 1.0)
    ala = (Z <= z_top - 2.0) & ((np.abs(X) / ala_w) ** 4 + ((Y - yb - 6) / ala_b) ** 2 <= 1)
    dorsal = lower & ((X / (30 * (1 - 0.5 * t) - d)) ** 2
                      + ((Y - yb - 22 * (1 - 0.3 * t)) / (8.0 - d)) ** 2 <= 1)
    return body | ala | dorsal


def _paint_sacrum(canvas: Canvas, lay: _Layout, canc: float, cort: float) -> None:
    g = canvas.grid
    z_top = lay.s1.z_top
    L = lay.sacrum_len
    half = float(_sacrum_half_width(lay, 0.0)) + 4.0
    box = g.box((-half, half), (lay.s1.yc - 40, lay.s1.yc + 140), (z_top - L, z_top))
    if Grid.empty(box):
        return
    X, Y, Z = g.coords(box)
    outer = _sacrum_mask(lay, X, Y, Z, 0.0)
    inner = _sacrum_mask(lay, X, Y, Z, 1.5)
    # Keep the S1 body (texture, endplate) drawn by the vertebra painter above mid-S1.
    v = lay.s1
    _, vv, _ = _body_local(X, Y, Z, v)
    keep = (Z > z_top - 0.5 * v.h) & ((X / v.ax) ** 2 + (vv / v.ay) ** 2 <= 1.0)
    canvas.paint(box, outer & ~keep, cort, _SACRUM)
    canvas.paint(box, inner & ~keep, canc, _SACRUM)


def _paint_canal(canvas: Canvas, lay: _Layout) -> None:
    T = physics.TISSUE_HU
    ztop = lay.vertebrae[0].z_top + 60
    zbot = lay.s1.z_top - 0.7 * lay.sacrum_len
    zs = np.linspace(zbot, ztop, 40)
    lay.canal = Tube(np.stack([np.zeros_like(zs), lay.canal_y(zs), zs], axis=1), 1.0)
    conus = 0.5 * (lay.by_level("L1").z_bottom + lay.by_level("L2").z_top)
    lab = _LABEL["spinal_canal"]

    def col(scale_a: float, scale_b: float, fixed: tuple[float, float] | None = None):
        def params(z):
            a, b = lay.canal_ab(z)
            if fixed:
                a, b = fixed[0] + 0 * z, fixed[1] + 0 * z
            return 0.0, lay.canal_y(z) - 0.0 * b, a * scale_a, b * scale_b
        return params

    _column(canvas, (zbot, ztop), col(1.0, 1.0), T["epidural_fat"], lab)
    _column(canvas, (lay.s1.z_top - 40, ztop), col(0.75, 0.72), T["csf"], lab)
    _column(canvas, (conus, ztop), col(1, 1, (4.5, 3.5)), T["spinal_cord"], lab)


def _paint_pelvis(canvas: Canvas, lay: _Layout, kvp: float, rng: np.random.Generator) -> None:
    T = physics.TISSUE_HU
    g = canvas.grid
    canc = float(physics.density_to_hu(rng.uniform(130, 200), kvp, T["marrow"]))
    cort = float(physics.density_to_hu(1500, kvp, T["marrow"]))
    # Iliac crest at about the L4 body (lower half), ± 5 mm.
    l4 = lay.by_level("L4")
    crest = 0.5 * (l4.zc + l4.z_bottom) + rng.uniform(-5, 5)
    acet = lay.z_fh + 22.0
    hip = _LABEL["hip_bones"]
    si_gap = 3.0  # sacro-iliac joint space (mm)
    cort_t = 1.8  # cortical thickness of the iliac plate (mm)
    sac_lo = lay.s1.z_top - 0.5 * lay.sacrum_len  # lower end of the SI joint (~S2/S3)
    for sx in (-1, 1):
        box = g.box((sx * 10, sx * 150) if sx > 0 else (-150, -10), (-90, 140), (acet - 5, crest))
        if not Grid.empty(box):
            X, Y, Z = g.coords(box)
            t = np.clip((crest - Z) / (crest - acet), 0, 1)
            yb_s1 = lay.s1.yc
            # Iliac wing: a thin curved plate (elliptic arc in each axial section,
            # convex laterally, concave towards the iliac fossa) flaring laterally
            # and superiorly; narrowing and thickening towards the acetabulum.
            cx = sx * (58.0 + 14.0 * t)
            cy = yb_s1 - 20 - 8.0 * t
            A, B = 68 - 36 * t ** 1.6, 50 - 16 * t
            dx, dy = X - cx, Y - cy
            rho = np.sqrt((dx / A) ** 2 + (dy / B) ** 2)
            theta = np.arctan2(dy, sx * dx)  # 0 lateral, +pi/2 posterior
            grad = np.sqrt((np.cos(theta) / A) ** 2 + (np.sin(theta) / B) ** 2)
            drad = (rho - 1) / np.maximum(grad, 1e-3)
            # Half-thickness: ~3.5 mm in the wing (1.8 mm cortex each side + thin
            # cancellous core), thicker at the crest, posteriorly (iliac
            # tuberosity) and in the body of the ilium above the acetabulum.
            thick = (3.2 + 1.5 * np.clip(1 - (crest - Z) / 8.0, 0, 1)
                     + 6.0 * np.clip((t - 0.6) / 0.4, 0, 1) ** 1.5
                     + 3.0 * np.clip((theta - 1.2) / 0.6, 0, 1))
            # Arched crest: highest mid-wing, lower at the anterior and posterior spines.
            arch = Z <= crest - 10.0 * ((theta - 0.6) / 1.35) ** 2
            arc = (theta > -0.75 + 0.4 * t) & (theta < 1.95 - 0.9 * t) & arch
            wing = arc & (np.abs(drad) <= thick)
            wing_in = arc & (np.abs(drad) <= thick - cort_t)
            # Auricular part: the posterior ilium facing the sacral ala across the
            # SI joint, from just above S1 down to ~S2/S3; its medial (joint) surface
            # follows the ala at ``si_gap`` mm.
            aur_top = min(crest - 6.0, lay.s1.z_top + 10.0)
            zc_a, hz_a = 0.5 * (aur_top + sac_lo), 0.5 * (aur_top - sac_lo)
            aur = np.zeros(wing.shape, bool)
            aur_in = np.zeros(wing.shape, bool)
            x_hi = float(_sacrum_half_width(lay, 0.0)) + si_gap + 19.0
            kk = np.flatnonzero(np.abs(Z[:, 0, 0] - zc_a) <= hz_a)
            ii = np.flatnonzero((sx * X[0, 0, :] >= 15.0) & (sx * X[0, 0, :] <= x_hi))
            if kk.size and ii.size:
                sub = (slice(kk[0], kk[-1] + 1), slice(None), slice(ii[0], ii[-1] + 1))
                Xs, Zs = X[:, :, sub[2]], Z[sub[0]]
                xa = sx * Xs - (_sacrum_half_width(lay, np.clip((lay.s1.z_top - Zs) / lay.sacrum_len, 0, 1))
                                + si_gap + 5.0)
                ya = Y - lay.yb(Zs).astype(np.float32) - 10.0
                za = ((Zs - zc_a) / hz_a) ** 4
                za_in = ((Zs - zc_a) / (hz_a - cort_t)) ** 4
                aur[sub] = (xa / 13.0) ** 2 + (ya / 19.0) ** 2 + za <= 1.0
                aur_in[sub] = (xa / (13.0 - cort_t)) ** 2 + (ya / (19.0 - cort_t)) ** 2 + za_in <= 1.0
            # The joint space: nothing within ``si_gap`` of the sacrum; cortex on the joint surface.
            # (evaluated only on the candidate bone voxels near the sacrum: fast)
            outer = wing | aur
            inner = wing_in | aur_in
            cand = outer & (Z <= lay.s1.z_top + 1.0) & (np.abs(X) <= float(_sacrum_half_width(lay, 0.0)) + 12.0)
            if cand.any():
                shp = cand.shape
                xc, yc, zc = (np.broadcast_to(a, shp)[cand] for a in (X, Y, Z))
                outer[cand] &= ~_sacrum_mask(lay, xc, yc, zc, -si_gap)
                inner[cand] &= ~_sacrum_mask(lay, xc, yc, zc, -(si_gap + cort_t))
            canvas.paint(box, outer, cort, hip)
            canvas.paint(box, inner & outer, canc, hip)
        # Acetabulum: a thick shell around the femoral head, open laterally-inferiorly.
        c = (sx * lay.x_fh, lay.y_fh, lay.z_fh)
        r = lay.r_fh
        shell = Ellipsoid(c, (r + _ACETABULUM_MM,) * 3)
        lo, hi = shell.bounds()
        box = g.box((lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2]))
        if not Grid.empty(box):
            X, Y, Z = g.coords(box)
            d = np.sqrt((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2)
            medial = sx * (X - c[0]) < 0.45 * r
            m = (d <= r + _ACETABULUM_MM) & (d > r + 2) & medial & (Z > c[2] - 0.6 * r)
            canvas.paint(box, m, cort, hip)
            canvas.paint(box, m & (d > r + 3.5) & (d < r + 11.5), canc, hip)
        # Superior pubic ramus and ischium.
        ramus = Capsule((sx * (lay.x_fh - 18), lay.y_fh - 22, lay.z_fh - 4), (sx * 8.0, lay.y_fh - 70, lay.z_fh - 22), 9.0)
        isch = Capsule((sx * (lay.x_fh - 10), lay.y_fh + 30, lay.z_fh - 5), (sx * (lay.x_fh - 22), lay.y_fh + 35, lay.z_fh - 60), 11.0)
        for part in (ramus, isch):
            _paint_shape(canvas, part, cort, hip)
            _paint_shape(canvas, Capsule(part.a, part.b, part.radius - 1.5), canc, hip)
        # Femur: head, neck, greater trochanter.
        fem = _LABEL["femur"]
        head = Ellipsoid(c, (r, r, r))
        neck = Capsule(c, (sx * (lay.x_fh + 38), lay.y_fh + 5, lay.z_fh - 32), 13.0)
        troch = Ellipsoid((sx * (lay.x_fh + 45), lay.y_fh + 8, lay.z_fh - 35), (18, 24, 28))
        shaft = Capsule((sx * (lay.x_fh + 40), lay.y_fh + 5, lay.z_fh - 40), (sx * (lay.x_fh + 30), lay.y_fh, lay.z_fh - 200), 14.0)
        for part in (head, neck, troch, shaft):
            _paint_shape(canvas, part, cort, fem)
        for part in (Ellipsoid(c, (r - 1.5,) * 3), Capsule(neck.a, neck.b, 11.5),
                     Ellipsoid(troch.centre, (16.5, 22.5, 26.5)), Capsule(shaft.a, shaft.b, 9.0)):
            _paint_shape(canvas, part, canc if not isinstance(part, Capsule) or part.radius > 10 else T["marrow"] + 10, fem)


def _rib_geometry(lay: _Layout) -> None:
    """Ribs 7-12: the upper ones start above the field and descend into it anteriorly,
    ending in costal cartilage (7-10); 11 and 12 are floating ribs."""
    lay.rib_params = []
    t10 = lay.by_level("T10")
    pitch = t10.h + _DISC_H["T10"]
    specs = (("T7", 2.45, 3.0), ("T8", 2.4, 2.95), ("T9", 2.35, 2.9), ("T10", 2.25, 2.8),
             ("T11", 1.9, 1.9), ("T12", 1.45, 1.45))
    for n, (level, phi_end, cart_end) in enumerate(specs):
        zc = t10.zc + (3 - n) * pitch if n < 3 else lay.by_level(level).zc
        lay.rib_params.append(dict(level=level, zc=zc, z0=zc + 4.0, phi0=0.42, phi_end=phi_end,
                                   cart_end=cart_end, descent=50.0))


def _rib_point(lay: _Layout, rib: dict[str, float], phi: float, sx: int) -> np.ndarray:
    z = rib["z0"] - rib["descent"] * phi
    a, b, yo = lay.body_axes(z)
    A, B = float(a) - lay.fat - 8.0, float(b) - lay.fat - 8.0
    return np.array([sx * A * math.sin(phi), float(yo) + B * math.cos(phi), z])


def _paint_ribs(canvas: Canvas, lay: _Layout, kvp: float, chunk: int = 16) -> None:
    """Ribs T10-T12 as bands just inside the body wall, descending anteriorly.

    A rib is the set of points whose radial distance to the rib ellipse (the
    body wall inset by the fat) is < 4 mm, whose parametric angle ``phi``
    (0 = posterior midline, pi = anterior) lies in the rib's range and whose z
    is within 6.5 mm of ``z0 - descent * phi``. Only voxels in the thin radial
    band get the (costly) angle computed.
    """
    T = physics.TISSUE_HU
    g = canvas.grid
    _rib_geometry(lay)
    cort = float(physics.density_to_hu(1400, kvp, T["marrow"]))
    canc = float(physics.density_to_hu(200, kvp, T["marrow"]))
    ztop = max(r["z0"] for r in lay.rib_params) + 8
    zbot = min(r["z0"] - r["descent"] * r["cart_end"] for r in lay.rib_params) - 8
    ks, _, _ = g.box((0, 0), (0, 0), (zbot, ztop))
    for k0 in range(ks.start, ks.stop, chunk):
        box = (slice(k0, min(k0 + chunk, ks.stop)), slice(0, g.shape[1]), slice(0, g.shape[2]))
        X, Y, Z = g.coords(box)
        a, b, yo = lay.body_axes(Z)
        A = (a - lay.fat - 8.0).astype(np.float32)
        B = (b - lay.fat - 8.0).astype(np.float32)
        u = np.abs(X) / A
        w = (Y - yo.astype(np.float32)) / B
        rho = np.sqrt(u * u + w * w)
        grad = np.sqrt((u / A) ** 2 + (w / B) ** 2) / np.maximum(rho, 1e-3)
        drad = (rho - 1.0) / np.maximum(grad, 1e-6)
        band = np.nonzero(np.abs(drad) <= 4.0)
        if band[0].size == 0:
            continue
        db = drad[band]
        wb = np.broadcast_to(w, drad.shape)[band]
        ub = np.broadcast_to(u, drad.shape)[band]
        phi = np.arctan2(ub, wb)
        zb = g.z[box[0]][band[0]]
        sub_hu = canvas.hu[box]
        sub_lab = canvas.labels[box]
        for rib in lay.rib_params:
            dz = zb - (rib["z0"] - rib["descent"] * phi)
            on = (phi >= rib["phi0"]) & (phi <= rib["phi_end"])
            # Oval cross-section: 7 mm radially, 11 mm cranio-caudally.
            q = (db / 3.5) ** 2 + (dz / 5.5) ** 2
            outer = on & (q <= 1.0)
            inner = on & ((db / 2.0) ** 2 + (dz / 4.0) ** 2 <= 1.0)
            cart = (phi > rib["phi_end"]) & (phi <= rib["cart_end"]) & (q <= 1.0)
            for m, hu, lab in ((outer, cort, _LABEL["ribs"]), (inner, canc, _LABEL["ribs"]),
                               (cart, T["cartilage"], _LABEL["costal_cartilage"])):
                idx = tuple(ax[m] for ax in band)
                sub_hu[idx] = hu
                sub_lab[idx] = lab
    # Rib necks: from the transverse process tip to the start of the body-wall arc.
    for rib in lay.rib_params:
        zc = rib["zc"]
        if zc - 20 > g.z[-1]:
            continue
        for sx in (-1, 1):
            a, _ = lay.canal_ab(zc)
            tp_tip = np.array([sx * (float(a) + 6 + _TP_LEN.get(rib["level"], 14.0)), float(lay.canal_y(zc)) + 8, zc + 2.0])
            start = _rib_point(lay, rib, rib["phi0"], sx)
            neck = Capsule(tuple(tp_tip), tuple(start), 5.0)
            _paint_shape(canvas, neck, cort, _LABEL["ribs"])
            _paint_shape(canvas, Capsule(neck.a, neck.b, 3.5), canc, _LABEL["ribs"])


def _paint_table(canvas: Canvas, lay: _Layout) -> None:
    """Patient table: a shallow trough of foam (-850 HU) between 2 mm carbon skins (~400 HU)."""
    g = canvas.grid
    _, b, yo = lay.body_axes(g.z)
    y0 = float(np.max(yo + b)) + 8.0  # just below the lowest point of the back
    box = (slice(0, g.shape[0]), slice(0, g.shape[1]), slice(0, g.shape[2]))
    X, Y, _ = g.coords(box)
    top = y0 - 0.0012 * X * X  # curves up at the sides
    depth = Y - top
    half_w = 0.45 * float(g.x[-1] - g.x[0])
    wide = np.abs(X) <= half_w
    foam = wide & (depth >= 0) & (depth <= 24)
    skins = foam & ((depth <= 2.0) | (depth >= 22.0))
    outside = canvas.labels[:, :, :] == 0
    hu = np.where(skins, np.float32(400.0), np.float32(-850.0))
    canvas.paint(box, foam & outside, np.broadcast_to(hu, foam.shape))
