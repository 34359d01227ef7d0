"""Calcifications and look-alikes of the synthetic CT phantom, with exact truth.

Each lesion is an analytic shape rasterised with supersampling
(:func:`calcdetect.phantoms.geometry.rasterize`) and blended into the HU image
by its covered fraction, before the PSF / slice blur and noise; its truth
record carries the fine-model volume, mass, centroid, extent, level and
anatomical attribution. Private to :mod:`calcdetect.phantoms.ct`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from calcdetect.phantoms import physics
from calcdetect.phantoms.ct_anatomy import _SIDES, _Layout, _rib_point
from calcdetect.phantoms.geometry import (
    Canvas,
    Capsule,
    Ellipsoid,
    EllipticRingArc,
    HollowEllipsoid,
    TubeWallArc,
    Union,
    rasterize,
    rotation,
)
from calcdetect.phantoms.truth import TruthLesion, VertebraTruth, level_span

if TYPE_CHECKING:
    from calcdetect.phantoms.ct import CTPhantomSettings

# --------------------------------------------------------------------------- lesions


class _LesionPainter:
    """Rasterises lesion shapes into the HU image and the instance label volume."""

    def __init__(self, canvas: Canvas, lay: _Layout, settings: CTPhantomSettings) -> None:
        self.canvas = canvas
        self.lay = lay
        self.s = settings
        self.labels = np.zeros(canvas.grid.shape, np.uint16)
        self.records: list[TruthLesion] = []
        self.vertebrae = _vertebra_truth(lay)

    def add(self, shape: Any, density: float | None, *, region: str, kind: str, side: str | None,
            segment: str | None, morphology: str | None = None, pole: str | None = None,
            structure_name: str | None = None, hu: float | None = None,
            extra: dict[str, Any] | None = None, diameter_mm: float | None = None) -> TruthLesion | None:
        """Paint one lesion; returns None when it misses the grid or overlaps another.

        ``diameter_mm`` overrides the equivalent-sphere diameter of the truth
        record (for clusters, whose size is that of their largest focus).
        """
        r = rasterize(shape, self.canvas.grid)
        if r is None:
            return None
        sub_lab = self.labels[r.box]
        if np.any(sub_lab[r.fraction > 0] != 0):
            return None
        lesion_hu = hu if hu is not None else float(physics.density_to_hu(density, self.s.kvp))
        sub = self.canvas.hu[r.box]
        sub += r.fraction * (np.float32(lesion_hu) - sub)
        new_id = len(self.records) + 1
        own = r.fraction >= 0.5
        if not own.any():
            own = r.fraction == r.fraction.max()
        np.copyto(sub_lab, np.uint16(new_id), where=own)
        idx = np.argwhere(r.fraction > 0)
        (k0, j0, i0), (k1, j1, i1) = idx.min(0), idx.max(0) + 1
        off = [s.start for s in r.box]
        bbox = (int(k0 + off[0]), int(j0 + off[1]), int(i0 + off[2]),
                int(k1 + off[0]), int(j1 + off[1]), int(i1 + off[2]))
        z0, z1 = _analytic_z_extent(shape, self.canvas.grid)
        level = level_span(z0, z1, self.vertebrae, centroid_z=r.centroid_lps[2])
        mass = None if density is None else r.volume_mm3 * density / 1000.0
        rec = TruthLesion(
            id=new_id, region=region, kind=kind, side=side, level=level, segment=segment,
            volume_mm3=round(r.volume_mm3, 4), density_mg_cm3=None if density is None else round(float(density), 2),
            mass_mg=None if mass is None else round(mass, 5),
            centroid_lps_mm=tuple(round(c, 3) for c in r.centroid_lps),
            bbox_kji=bbox, bbox_mm=tuple(round(c, 3) for c in r.lo_mm + r.hi_mm),
            morphology=morphology, pole=pole, structure=structure_name,
            diameter_mm=round(diameter_mm if diameter_mm is not None
                              else (6 * r.volume_mm3 / math.pi) ** (1 / 3), 3),
            extra={"peak_fraction": round(float(r.fraction.max()), 4), "hu_unblurred": round(lesion_hu, 1),
                   "z_extent_mm": [round(z0, 3), round(z1, 3)], **(extra or {})},
        )
        self.records.append(rec)
        return rec


def _analytic_z_extent(shape: Any, grid: Any) -> tuple[float, float]:
    """z extent (LPS mm) of a lesion's analytic shape within the scanned range.

    The truth level comes from the geometry, not from the voxels or sub-samples
    it touches, so that the same lesion has the same level at every slice
    thickness; only the part inside the scan (slice centres +- half a slice)
    can be seen and named.
    """
    lo, hi = shape.bounds()
    half = 0.5 * float(grid.spacing[0])
    z_first, z_last = float(np.min(grid.z)) - half, float(np.max(grid.z)) + half
    return max(float(lo[2]), z_first), min(float(hi[2]), z_last)


def _vertebra_truth(lay: _Layout) -> list[VertebraTruth]:
    return [VertebraTruth(v.level, round(v.z_top, 3), round(v.z_bottom, 3))
            for v in lay.vertebrae + [lay.s1]]


def _add_plaques(p: _LesionPainter, rng: np.random.Generator) -> None:
    lay, s = p.lay, p.s
    if s.plaque_burden <= 0:
        return
    renal_z = max(k["hilum"][2] for k in lay.kidneys.values())
    vessel_sets = [("aorta", "aorta", None, None)]
    for sx in (-1, 1):
        side = _SIDES[sx]
        for name, seg in (("cia", "common"), ("eia", "external"), ("iia", "internal")):
            vessel_sets.append((f"{name}_{sx}", "iliac", side, seg))
    n_aorta = int(rng.poisson(2 + 12 * s.plaque_burden))
    n_iliac = int(rng.poisson(1 + 10 * s.plaque_burden))
    g = p.canvas.grid
    jobs = [vessel_sets[0]] * n_aorta + [vessel_sets[1 + int(rng.integers(0, 6))] for _ in range(n_iliac)]
    for name, region, side, seg in jobs:
        tube = lay.tubes[name]
        zlo, zhi = max(tube.z0 + 3, g.z[0]), min(tube.z1 - 3, g.z[-1])
        if name == "aorta":
            # Atherosclerosis concentrates in the infrarenal aorta.
            zhi = min(zhi, renal_z + 40 if rng.random() < 0.8 else zhi)
        if zhi - zlo < 4:
            continue
        # Wall calcification: arcs of the wall 0.5-2 mm thick and 5-35 mm long
        # (punctate foci shorter), 400-1200 mg HA/cm3. On a lateral radiograph
        # the beam is tangential to the anterior and posterior walls, so an arc
        # there is seen edge-on along its chord (~1 cm): the linear densities
        # that AAC-24 grades.
        u = rng.random()
        if u < 0.3:
            morph, half, length = "punctate", rng.uniform(0.2, 0.4), rng.uniform(2, 5)
        elif u < 0.85 + 0.1 * (1 - s.plaque_burden):
            morph, half, length = "curvilinear", rng.uniform(0.4, 0.9), rng.uniform(5, 20)
        else:
            morph, half, length = "plaque", rng.uniform(0.9, 2.0), rng.uniform(12, 35)
        for _ in range(6):
            z0 = rng.uniform(zlo, max(zlo, zhi - length))
            length = min(length, zhi - z0)  # stay on this vessel segment
            # The posterior wall calcifies most, then the anterior and posterolateral
            # walls; the lateral walls least.
            theta = float(rng.choice([math.pi / 2, math.pi / 4, 3 * math.pi / 4, -math.pi / 2, 0.0, math.pi],
                                     p=[0.35, 0.15, 0.15, 0.2, 0.075, 0.075])) + rng.normal(0, 0.2)
            thick = rng.uniform(0.8, 2.0)
            shape = TubeWallArc(tube, z0, z0 + length, theta, half, -0.5, -0.5 + thick)
            zc = z0 + length / 2
            segment = seg if name != "aorta" else ("infrarenal" if zc < renal_z else "suprarenal")
            rec = p.add(shape, rng.uniform(400, 1200), region=region, kind="atherosclerotic", side=side,
                        segment=segment, morphology=morph, structure_name=_vessel_structure(name))
            if rec is not None:
                break


def _vessel_structure(name: str) -> str:
    if name == "aorta":
        return "aorta"
    base, sx = name.split("_")
    side = _SIDES[int(sx)]
    return {"cia": "common_iliac_artery", "eia": "external_iliac_artery", "iia": "internal_iliac_artery"}[base] + f"_{side}"


def _kidney_world(k: dict[str, Any], local: np.ndarray) -> np.ndarray:
    return k["centre"] + k["R"] @ local


def _pole(k: dict[str, Any], z: float) -> str:
    lo, hi = k["z_range"]
    t = (z - lo) / (hi - lo)
    return "lower" if t < 1 / 3 else ("mid" if t < 2 / 3 else "upper")


def _add_renal(p: _LesionPainter, rng: np.random.Generator) -> None:
    lay, s = p.lay, p.s
    for _ in range(s.renal_stones):
        sx = int(rng.choice([-1, 1]))
        k = lay.kidneys[sx]
        side = _SIDES[sx]
        for _ in range(8):
            in_pelvis = rng.random() < 0.3
            if in_pelvis:
                c = _kidney_world(k, k["pelvis"] + rng.normal(0, 2, 3))
                d = rng.uniform(3, 15)
            else:
                _, tip = k["pyramids"][int(rng.integers(0, len(k["pyramids"])))]
                c = _kidney_world(k, tip)
                d = rng.uniform(1.0, 7.0)
            radii = tuple(d / 2 * rng.uniform(0.8, 1.2, 3))
            shape = Ellipsoid(tuple(c), radii, rotation(rng.uniform(0, 180), rng.uniform(0, 180)))
            rec = p.add(shape, rng.uniform(900, 1700), region="renal", kind="stone", side=side,
                        segment="collecting_system", morphology="punctate" if d < 3 else "plaque",
                        pole=_pole(k, c[2]), structure_name=f"collecting_system_{side}")
            if rec is not None:
                break
    if s.nephrocalcinosis:
        sx = int(rng.choice([-1, 1]))
        k = lay.kidneys[sx]
        side = _SIDES[sx]
        for pc, tip in k["pyramids"]:
            foci = []
            for _ in range(int(rng.integers(3, 7))):
                local = pc + 0.5 * (tip - pc) + rng.normal(0, 2.0, 3)
                foci.append(Ellipsoid(tuple(_kidney_world(k, local)), (rng.uniform(0.6, 1.1),) * 3))
            c = _kidney_world(k, pc)
            p.add(Union(tuple(foci)), rng.uniform(500, 900), region="renal", kind="nephrocalcinosis",
                  side=side, segment="medulla", morphology="punctate", pole=_pole(k, c[2]),
                  structure_name=f"kidney_medulla_{side}",
                  diameter_mm=max(2 * f.radii[0] for f in foci), extra={"foci": len(foci)})
    if s.ureteral_stone:
        sx = int(rng.choice([-1, 1]))
        ureter = lay.tubes[f"ureter_{sx}"]
        g = p.canvas.grid
        zlo, zhi = max(ureter.z0 + 5, g.z[0] + 3), min(lay.kidneys[sx]["z_range"][0] - 5, g.z[-1] - 3)
        if zhi > zlo:
            for _ in range(6):
                z = rng.uniform(zlo, zhi)
                c = ureter.point(z)
                d = rng.uniform(2.5, 7.0)
                shape = Ellipsoid(tuple(c), (d / 2, d / 2, d / 2 * 1.3))
                if p.add(shape, rng.uniform(900, 1600), region="renal", kind="ureteral_stone", side=_SIDES[sx],
                         segment="ureter", morphology="punctate", structure_name=f"ureter_{_SIDES[sx]}"):
                    break


def _add_lf(p: _LesionPainter, rng: np.random.Generator) -> None:
    lay, s = p.lay, p.s
    mode = s.lf_calcification
    if mode == "random":
        mode = str(rng.choice(["none", "focal", "segmental", "multilevel"], p=[0.25, 0.3, 0.25, 0.2]))
    if mode == "none":
        return
    g = p.canvas.grid
    zones = [z for z in lay.lf_zones if z["z0"] > g.z[0] + 2 and z["z1"] < g.z[-1] - 2]
    if not zones:
        return
    n_levels = {"focal": 1, "segmental": 1, "multilevel": int(rng.integers(2, 5))}[mode]
    picks = rng.choice(len(zones), size=min(n_levels, len(zones)), replace=False)
    assert lay.canal is not None
    for zi in sorted(picks):
        zone = zones[int(zi)]
        zmid = 0.5 * (zone["z0"] + zone["z1"])
        a, b = (float(v) for v in lay.canal_ab(zmid))
        sides = [1, -1] if (mode != "focal" and rng.random() < 0.5) else [int(rng.choice([-1, 1]))]
        for sx in sides:
            theta = math.pi / 2 - sx * rng.uniform(0.35, 0.9)  # paramedian, posterior wall
            if mode == "focal" or (mode == "multilevel" and rng.random() < 0.5):
                half = rng.uniform(0.15, 0.3)
                span = rng.uniform(3, 7)
                morph = "punctate"
            else:
                half = rng.uniform(0.3, 0.55)
                span = 0.8 * (zone["z1"] - zone["z0"])
                morph = "linear"
            z0 = rng.uniform(zone["z0"], max(zone["z0"], zone["z1"] - span))
            shape = EllipticRingArc(lay.canal, a, b, 0.6, 0.6 + rng.uniform(1.5, 2.8), theta, half, z0, z0 + span)
            p.add(shape, rng.uniform(350, 900), region="ligamentum_flavum", kind="ligament",
                  side=_SIDES[sx], segment=f"{zone['upper']}-{zone['lower']}", morphology=morph,
                  structure_name="ligamentum_flavum_zone")


def _add_distractors(p: _LesionPainter, rng: np.random.Generator) -> None:
    lay = p.lay
    g = p.canvas.grid
    # Pelvic phleboliths: round, central lucency, along the pelvic side walls.
    for _ in range(int(rng.integers(2, 5))):
        for _ in range(8):
            sx = int(rng.choice([-1, 1]))
            c = (sx * rng.uniform(40, 62), lay.y_fh + rng.uniform(5, 35), lay.z_fh + rng.uniform(-20, 25))
            r = rng.uniform(1.6, 3.2)
            if p.add(HollowEllipsoid(Ellipsoid(c, (r, r, r)), 0.4), rng.uniform(600, 1000), region="other",
                     kind="phlebolith", side=_SIDES[sx], segment=None, morphology="ring"):
                break
    # Costal cartilage calcification along the T10 cartilage.
    rib = next((r for r in lay.rib_params if r["cart_end"] > r["phi_end"]), None)
    if rib is not None:
        for _ in range(int(rng.integers(1, 4))):
            sx = int(rng.choice([-1, 1]))
            phi = rng.uniform(rib["phi_end"] + 0.05, rib["cart_end"] - 0.05)
            c = _rib_point(lay, rib, phi, sx)
            r = rng.uniform(1.2, 2.8)
            p.add(Ellipsoid(tuple(c), (r, r, r * 1.5)), rng.uniform(300, 700), region="other",
                  kind="costal_cartilage", side=_SIDES[sx], segment=None, morphology="punctate",
                  structure_name="costal_cartilage")
    # A calcified mesenteric lymph node anterior to the aorta.
    z = rng.uniform(lay.by_level("L4").zc, lay.by_level("L2").zc)
    ac = lay.tubes["aorta"].point(min(max(z, lay.tubes["aorta"].z0 + 5), lay.tubes["aorta"].z1 - 5))
    c = (ac[0] + rng.uniform(-30, 10), ac[1] - lay.aorta_r - rng.uniform(25, 40), ac[2])
    r = rng.uniform(2.5, 4.5)
    p.add(Ellipsoid(c, (r, r * 0.8, r * 1.2)), rng.uniform(500, 900), region="other", kind="lymph_node",
          side=None, segment=None, morphology="plaque")
    # Dense bowel content (ingested tablet / oral contrast remnant) in a bowel loop.
    loops = [e for e, kind in lay.bowel_blobs if kind != "gas" and g.z[0] + 5 < e.centre[2] < g.z[-1] - 5]
    if loops:
        e = loops[int(rng.integers(0, len(loops)))]
        r = rng.uniform(2.0, 4.5)
        p.add(Ellipsoid(e.centre, (r, r * 0.7, r)), rng.uniform(400, 900), region="other", kind="bowel",
              side=None, segment=None, morphology="plaque", structure_name="bowel")


def _add_metal(p: _LesionPainter, rng: np.random.Generator) -> None:
    lay = p.lay
    metal_hu = 3000.0
    c = (lay.x_fh, lay.y_fh, lay.z_fh)
    prosthesis = Union((
        Ellipsoid(c, (lay.r_fh - 1,) * 3),
        Capsule(c, (lay.x_fh + 36, lay.y_fh + 5, lay.z_fh - 30), 6.0),
        Capsule((lay.x_fh + 36, lay.y_fh + 5, lay.z_fh - 30), (lay.x_fh + 32, lay.y_fh, lay.z_fh - 160), 6.5),
    ))
    p.add(prosthesis, None, hu=metal_hu, region="other", kind="metal", side="left", segment=None,
          extra={"device": "hip_prosthesis"})
    for level in ("L4", "L5"):
        v = lay.by_level(level)
        a, _ = lay.canal_ab(v.zc)
        for sx in (-1, 1):
            entry = (sx * (float(a) + 6), float(lay.canal_y(v.zc)) + 10, v.zc + 0.25 * v.h)
            tip = (sx * 7.0, v.yc - 0.4 * v.ay, v.zc + 0.15 * v.h)
            p.add(Capsule(entry, tip, 3.0), None, hu=metal_hu, region="other", kind="metal",
                  side=_SIDES[sx], segment=None, extra={"device": "pedicle_screw", "vertebra": level})


def _add_contrast(p: _LesionPainter, lumen_mask: np.ndarray, contrast_hu: float) -> None:
    """Record the opacified arterial lumen as one 'contrast' look-alike."""
    free = lumen_mask & (p.labels == 0)
    if not free.any():
        return
    new_id = len(p.records) + 1
    p.labels[free] = new_id
    idx = np.argwhere(free)
    lo, hi = idx.min(0), idx.max(0) + 1
    g = p.canvas.grid
    vox = float(np.prod(g.spacing))
    cen = idx.mean(0)
    cen_lps = g.affine[:3, :3] @ cen + g.affine[:3, 3]
    lo_mm = g.affine[:3, :3] @ lo + g.affine[:3, 3]
    hi_mm = g.affine[:3, :3] @ (hi - 1) + g.affine[:3, 3]
    p.records.append(TruthLesion(
        id=new_id, region="other", kind="contrast", side=None,
        level=level_span(float(lo_mm[2]), float(hi_mm[2]), p.vertebrae), segment=None,
        volume_mm3=round(float(free.sum()) * vox, 3), density_mg_cm3=None, mass_mg=None,
        centroid_lps_mm=tuple(round(float(v), 3) for v in cen_lps),
        bbox_kji=tuple(int(v) for v in (*lo, *hi)),  # type: ignore[arg-type]
        bbox_mm=tuple(round(float(v), 3) for v in (*lo_mm, *hi_mm)),  # type: ignore[arg-type]
        morphology=None, structure="aorta", extra={"hu_unblurred": contrast_hu},
        diameter_mm=round((6 * float(free.sum()) * vox / math.pi) ** (1 / 3), 3),
    ))
