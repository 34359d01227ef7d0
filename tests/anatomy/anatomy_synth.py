"""Small synthetic CT volumes with known anatomy for the anatomy / classify tests.

Geometry: canonical ``[k, j, i]`` (k superior, j posterior, i left), built from
boxes, cylinders and ellipsoids in mm. Independent of calcdetect.phantoms so the
anatomy rules are tested against hand-checkable shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calcdetect.types import AcquisitionInfo, Lesion, Volume

SPACING = (2.5, 1.5, 1.5)  # (sk, sj, si) mm
NJ = NI = 200  # 300 mm in plane
BODY_CENTRE = (100.0, 100.0)  # (j, i) index
VB_CENTRE_J_MM = 35.0  # vertebral body centre, mm posterior of the body centre
VB_RADIUS_MM = 20.0
CANAL_OFFSET_MM = 32.0  # canal centre posterior of the body centre
CANAL_RADIUS_MM = 8.0
AORTA_OFFSET_MM = (-30.0, 18.0)  # (j, i) of the aorta centre from the body centre (anterior, left)
AORTA_RADIUS_MM = 10.0


def affine_for(shape: tuple[int, int, int], spacing=SPACING, origin=(-150.0, -150.0, 0.0)) -> np.ndarray:
    """(k, j, i, 1) -> LPS: i -> x (left), j -> y (posterior), k -> z (superior)."""
    sk, sj, si = spacing
    a = np.zeros((4, 4))
    a[0, 2] = si
    a[1, 1] = sj
    a[2, 0] = sk
    a[:3, 3] = origin
    a[3, 3] = 1.0
    return a


@dataclass
class Synth:
    volume: Volume
    # truth
    segments: list[tuple[str, float, float]] = field(default_factory=list)  # (level, z0, z1) mm
    aorta: np.ndarray | None = None
    kidneys: dict[str, np.ndarray] = field(default_factory=dict)
    sinus: dict[str, np.ndarray] = field(default_factory=dict)
    canal: np.ndarray | None = None
    bifurcation_z: float | None = None
    lesions: dict[str, np.ndarray] = field(default_factory=dict)  # name -> mask

    def k_of(self, z_mm: float) -> int:
        return int(round(z_mm / SPACING[0]))


def make_ct(*, n_lumbar: int = 5, ribs: bool = True, sacrum: bool = True, kidneys: bool = True,
            n_thoracic: int = 2, aorta: bool = True, seed: int = 0, noise: float = 5.0,
            lesions: bool = True) -> Synth:
    """A trunk: box vertebrae with discs on a sacrum, ribs on the thoracic ones,
    an aorta anterior-left bifurcating at L4, kidneys at T12-L2."""
    rng = np.random.default_rng(seed)
    sk, sj, si = SPACING
    disc_mm, body_mm, sacrum_mm = 8.0, 25.0, 40.0
    levels = [f"T{12 - n}" for n in range(n_thoracic - 1, -1, -1)] + [f"L{n}" for n in range(1, n_lumbar + 1)]
    # cranial first -> build from the bottom
    z = 5.0
    segs: list[tuple[str, float, float]] = []
    if sacrum:
        segs.append(("S1", z, z + sacrum_mm))
        z += sacrum_mm + disc_mm
    for lv in reversed(levels):
        segs.append((lv, z, z + body_mm))
        z += body_mm + disc_mm
    nk = int(np.ceil((z + 5.0) / sk))
    # broadcastable coordinates (mm); full-size grids would dominate test time
    kk = (np.arange(nk) * sk)[:, None, None]
    jj = (np.arange(NJ) * sj)[None, :, None]
    ii = (np.arange(NI) * si)[None, None, :]
    jc, ic = BODY_CENTRE[0] * sj, BODY_CENTRE[1] * si
    dj, di = jj - jc, ii - ic
    hu = np.full((nk, NJ, NI), -1000.0, dtype=np.float32)

    def full(m: np.ndarray) -> np.ndarray:
        return np.broadcast_to(m, hu.shape)

    body = (dj / 100.0) ** 2 + (di / 130.0) ** 2 <= 1.0
    hu[full(body)] = -90.0  # fat
    # muscle ring at the body wall
    hu[full(body & ((dj / 90.0) ** 2 + (di / 120.0) ** 2 > 1.0))] = 50.0
    vb_j = VB_CENTRE_J_MM
    canal_j = vb_j + CANAL_OFFSET_MM
    canal = (dj - canal_j) ** 2 + di**2 <= CANAL_RADIUS_MM**2
    # discs run continuously; bodies overwrite
    in_column_z = (kk >= segs[0][1]) & (kk <= segs[-1][2])
    disc = in_column_z & ((dj - vb_j) ** 2 + di**2 <= VB_RADIUS_MM**2)
    hu[full(disc)] = 80.0
    hu[full(in_column_z & canal)] = 15.0
    for lv, z0, z1 in segs:
        zin = (kk >= z0) & (kk <= z1)
        if lv == "S1":
            sac = zin & (np.abs(di) <= 55.0) & (np.abs(dj - vb_j) <= 18.0)
            hu[full(sac)] = 300.0
            # iliac wings lateral, joined across a thin SI joint
            wing = zin & (np.abs(di) > 57.0) & (np.abs(di) <= 110.0) & (np.abs(dj - vb_j - 5.0) <= 12.0)
            hu[full(wing)] = 350.0
            continue
        hu[full(zin & ((dj - vb_j) ** 2 + di**2 <= VB_RADIUS_MM**2))] = 260.0
        # neural arch on the upper 60 % of the vertebra: a ring around the canal
        zarch = (kk >= z0 + 0.3 * (z1 - z0)) & (kk <= z1)
        ring = ((dj - canal_j) ** 2 + di**2 <= (CANAL_RADIUS_MM + 6.0) ** 2) & ~canal
        ring &= dj > vb_j + VB_RADIUS_MM - 4.0
        hu[full(zarch & ring)] = 450.0
        spinous = zarch & (np.abs(di) <= 3.0) & (dj > canal_j + CANAL_RADIUS_MM) & (dj < canal_j + 40.0)
        hu[full(spinous)] = 450.0
        # transverse processes (lumbar-length, short of the rib test distance)
        tp = zarch & (np.abs(dj - canal_j + 4.0) <= 3.0) & (np.abs(di) <= 45.0) & (np.abs(di) > 10.0)
        hu[full(tp)] = 400.0
        if ribs and lv.startswith("T"):
            zc = 0.5 * (z0 + z1)
            # a rib: a 6 mm bar leaving the transverse process laterally and
            # curving anteriorly, 1 mm gap at the costotransverse joint
            t = np.linspace(0.0, 1.0, 200)
            for side in (-1.0, 1.0):
                pi = side * (47.0 + 90.0 * np.sin(t * np.pi / 2))
                pj = canal_j - 4.0 - 110.0 * (1 - np.cos(t * np.pi / 2))
                pz = zc - 20.0 * t
                for a, b, c in zip(pz[::4], pj[::4], pi[::4]):
                    k0, k1 = int((a - 3.0) / sk), int((a + 3.0) / sk) + 1
                    j0, j1 = int((jc + b - 3.0) / sj), int((jc + b + 3.0) / sj) + 2
                    i0, i1 = int((ic + c - 3.0) / si), int((ic + c + 3.0) / si) + 2
                    box = (slice(max(k0, 0), k1), slice(max(j0, 0), j1), slice(max(i0, 0), i1))
                    m = (jj[:, box[1], :] - jc - b) ** 2 + (ii[:, :, box[2]] - ic - c) ** 2 <= 9.0
                    sub = hu[box]
                    sub[np.broadcast_to(m, sub.shape)] = 500.0
    out = Synth(volume=None)  # type: ignore[arg-type]
    out.segments = segs
    out.canal = full(in_column_z & canal)
    if aorta:
        aj, ai = vb_j - VB_RADIUS_MM - 15.0, 18.0
        bif_z = next((0.5 * (z0 + z1) for lv, z0, z1 in segs if lv == "L4"), None)
        am = np.zeros(hu.shape, bool)
        zabove = kk >= (bif_z if bif_z is not None else 0.0)
        am |= zabove & ((dj - aj) ** 2 + (di - ai) ** 2 <= AORTA_RADIUS_MM**2)
        if bif_z is not None:
            # iliacs: two 6 mm tubes diverging laterally below the bifurcation
            below = kk < bif_z
            drift = np.clip(bif_z - kk, 0, None) * 0.7
            for side in (-1.0, 1.0):
                am |= below & ((dj - aj) ** 2 + (di - ai - side * (8.0 + drift)) ** 2 <= 6.0**2)
        hu[am] = 40.0
        out.aorta = am
        out.bifurcation_z = bif_z
    if kidneys:
        zc = next((z1 for lv, z0, z1 in segs if lv == "L1"), None)
        if zc is not None:
            for side, name in ((1.0, "left"), (-1.0, "right")):
                kc_i, kc_j = side * 68.0, vb_j + 5.0
                kid = ((di - kc_i) / 25.0) ** 2 + ((dj - kc_j) / 20.0) ** 2 + ((kk - zc) / 50.0) ** 2 <= 1.0
                sinus = (((di - kc_i + side * 14.0) / 10.0) ** 2 + ((dj - kc_j) / 8.0) ** 2
                         + ((kk - zc) / 20.0) ** 2 <= 1.0)
                # open the sinus medially (hilum)
                hilum = (np.abs(dj - kc_j) <= 6.0) & (np.abs(kk - zc) <= 12.0) & (side * (di - kc_i) < -12.0) & kid
                hu[full(kid)] = 30.0
                hu[full((sinus | hilum) & kid)] = -60.0
                out.kidneys[name] = full(kid & ~(sinus | hilum))
                out.sinus[name] = full((sinus | hilum) & kid)
    if lesions:
        _add_lesions(out, hu, kk, jj, ii, jc, ic, segs, vb_j)
    hu += rng.normal(0.0, noise, hu.shape).astype(np.float32)
    hu[full(~body)] = -1000.0
    out.volume = Volume(hu.astype(np.float32), SPACING, affine_for(hu.shape), AcquisitionInfo("CT", kvp=120.0))
    return out


def _add_lesions(out: Synth, hu: np.ndarray, kk, jj, ii, jc: float, ic: float, segs, vb_j: float) -> None:
    """Calcifications with known identity: an aortic wall plaque at L2, a stone
    in the left renal sinus, a ring-shaped phlebolith low in the pelvis."""
    shape = hu.shape
    dj, di = jj - jc, ii - ic
    z = {lv: 0.5 * (z0 + z1) for lv, z0, z1 in segs}
    if out.aorta is not None and "L2" in z:
        aj, ai = vb_j - VB_RADIUS_MM - 15.0, 18.0
        r = np.sqrt((dj - aj) ** 2 + (di - ai) ** 2)
        ang = np.arctan2(dj - aj, di - ai)
        plaque = (np.abs(kk - z["L2"]) <= 4.0) & (r >= AORTA_RADIUS_MM - 0.5) & (r <= AORTA_RADIUS_MM + 1.5)
        plaque &= (ang > -2.4) & (ang < -1.2)  # anterior-left arc of the wall
        out.lesions["aortic_plaque"] = np.broadcast_to(plaque, shape).copy()
    if "left" in out.sinus and "L1" in z:
        zc = next(z1 for lv, z0, z1 in segs if lv == "L1")
        stone = ((kk - zc) ** 2 + (dj - (vb_j + 5.0)) ** 2 + (di - (68.0 - 14.0)) ** 2) <= 3.0**2
        out.lesions["renal_stone"] = np.broadcast_to(stone, shape).copy()
    if "S1" in z:
        # pelvis, anterior of the sacrum, away from the iliac arteries
        d2 = (kk - (z["S1"] - 10.0)) ** 2 + (dj - (vb_j - 45.0)) ** 2 + (di - 70.0) ** 2
        ring = (d2 <= 3.0**2) & (d2 > 1.2**2)
        out.lesions["phlebolith"] = np.broadcast_to(ring, shape).copy()
    for m in out.lesions.values():
        hu[m] = 450.0


def make_lesion(volume: Volume, mask: np.ndarray, *, central_lucency: bool = False) -> Lesion:
    """A Lesion from a full-volume bool mask with simple shape descriptors."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    sp = np.asarray(volume.spacing, dtype=float)
    pts = idx * sp
    ev = np.sort(np.linalg.eigvalsh(np.cov((pts - pts.mean(axis=0)).T)))[::-1]
    axes = 4.0 * np.sqrt(np.clip(ev, 0.0, None))
    diam = float(np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max()) + float(sp.min())
    cen = idx.mean(axis=0)
    n = len(idx)
    return Lesion(
        label=1, bbox=(*lo.tolist(), *hi.tolist()), mask=mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]],
        voxel_count=n, volume_mm3=n * float(np.prod(sp)), agatston=0.0, mass_mg=0.0, peak_hu=450.0,
        mean_hu=450.0, centroid_lps_mm=tuple(float(v) for v in volume.index_to_lps(cen)),
        centroid_kji=tuple(float(v) for v in cen), max_diameter_mm=diam,
        axes_mm=tuple(float(a) for a in axes), elongation=float(1.0 - axes[1] / axes[0]) if axes[0] else 0.0,
        central_lucency=central_lucency,
    )
