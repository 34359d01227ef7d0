"""Compare tissue CT numbers and noise of the synthetic CT phantom with real scans.

Usage::

    .venv/bin/python scripts/realism.py OUT.png [--real-root ../shared/data/real] [--seed 3]

Measures, with the same automatic ROI method on every series, the mean and the
noise (median standard deviation of 7x7-pixel ROIs that lie wholly inside one
tissue class) of air, fat, soft tissue, cancellous bone, and the cortical-bone
level (99.5th percentile of bone voxels); plus aortic blood from a hand-placed
ROI in each real series and from the aorta label in the phantom. Prints a table
and writes a side-by-side PNG (real vs phantom, W400/L40 and W1500/L300).

Real series are read with pydicom directly, sorted by ImagePositionPatient z,
rescaled to HU. They are opened read-only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calcdetect.anatomy.regions import structure  # noqa: E402
from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom  # noqa: E402

# Hand-placed aorta ROIs (slice fraction, row, column) for the two real series.
AORTA_ROI = {
    "ct_abdomen_petct_siemens": (0.5, 296, 264),
    "ct_thorax_philips": (0.5, 269, 265),  # descending aorta, left-anterior of the spine
}

CLASSES = {
    "air": (-1010.0, -950.0),
    "fat": (-150.0, -50.0),
    "soft tissue": (20.0, 80.0),
    "cancellous bone": (110.0, 400.0),
}


def load_series(folder: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    pydicom.config.convert_wrong_length_to_UN = True
    dss = [pydicom.dcmread(f) for f in sorted(folder.iterdir()) if f.is_file()]
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    vol = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])
    dz = abs(float(dss[1].ImagePositionPatient[2]) - float(dss[0].ImagePositionPatient[2]))
    ps = [float(v) for v in dss[0].PixelSpacing]
    return vol.astype(np.float32), (dz, ps[0], ps[1])


def roi_stats(sl: np.ndarray, lo: float, hi: float, body: np.ndarray, inside: bool, size: int = 7):
    """Median mean / median std of size x size ROIs wholly inside the class mask."""
    smooth = ndimage.gaussian_filter(sl, 1.5)
    mask = (smooth >= lo) & (smooth <= hi) & (body if inside else ~body) & (sl > -1020)
    core = ndimage.minimum_filter(mask, size=size + 2)
    m = ndimage.uniform_filter(sl.astype(np.float64), size)
    m2 = ndimage.uniform_filter(sl.astype(np.float64) ** 2, size)
    sd = np.sqrt(np.maximum(m2 - m * m, 0))
    sel = core[::3, ::3]
    if sel.sum() < 5:
        return None
    return float(np.median(m[::3, ::3][sel])), float(np.median(sd[::3, ::3][sel])), int(sel.sum())


def body_mask(sl: np.ndarray) -> np.ndarray:
    m = ndimage.gaussian_filter(sl, 2) > -500
    lab, n = ndimage.label(m)
    if n == 0:
        return m
    sizes = ndimage.sum(m, lab, range(1, n + 1))
    return ndimage.binary_fill_holes(lab == (1 + int(np.argmax(sizes))))


def measure(vol: np.ndarray, ks: list[int]) -> dict[str, tuple[float, float] | None]:
    out: dict[str, list] = {name: [] for name in CLASSES}
    cortical = []
    for k in ks:
        sl = vol[k]
        body = body_mask(sl)
        for name, (lo, hi) in CLASSES.items():
            r = roi_stats(sl, lo, hi, body, inside=name != "air")
            if r is not None:
                out[name].append(r)
        bone = sl[body & (sl > 400)]
        if bone.size:
            cortical.append(float(np.percentile(bone, 99.5)))
    res: dict[str, tuple[float, float] | None] = {}
    for name, rows in out.items():
        res[name] = (float(np.median([r[0] for r in rows])), float(np.median([r[1] for r in rows]))) if rows else None
    res["cortical bone p99.5"] = (float(np.median(cortical)), float("nan")) if cortical else None
    return res


def aorta_from_labels(hu: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    m = ndimage.binary_erosion(labels == structure("aorta").label, iterations=3)
    v = hu[m]
    return float(np.mean(v)), float(np.std(v))


def aorta_auto(vol: np.ndarray, k: int) -> tuple[float, float] | None:
    """Descending aorta in a thorax slice: the roundest 15-30 mm soft-tissue blob left-anterior of the spine."""
    sl = ndimage.gaussian_filter(vol[k], 1.0)
    m = (sl > 20) & (sl < 90)
    m = ndimage.binary_opening(m, iterations=4)
    lab, n = ndimage.label(m)
    best = None
    for i in range(1, n + 1):
        comp = lab == i
        area = comp.sum()
        if not 150 < area < 900:
            continue
        rr, cc = np.nonzero(comp)
        h, w = np.ptp(rr) + 1, np.ptp(cc) + 1
        roundness = area / (np.pi * h * w / 4)
        if roundness > 0.85 and 0.8 < h / w < 1.25 and (best is None or roundness > best[0]):
            best = (roundness, comp)
    if best is None:
        return None
    core = ndimage.binary_erosion(best[1], iterations=3)
    v = vol[k][core]
    return float(v.mean()), float(v.std())


def window(a: np.ndarray, w: float, level: float) -> np.ndarray:
    return (np.clip((a - (level - w / 2)) / w, 0, 1) * 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("png", type=Path)
    ap.add_argument("--real-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/real")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--noise", type=float, default=None, help="phantom noise sigma (default: phantom default)")
    args = ap.parse_args(argv)

    columns: dict[str, dict] = {}
    slices: dict[str, np.ndarray] = {}
    for name in AORTA_ROI:
        folder = args.real_root / name
        if not folder.is_dir():
            print(f"skipping {name}: {folder} not found", file=sys.stderr)
            continue
        vol, _ = load_series(folder)
        n = vol.shape[0]
        ks = sorted({int(n * f) for f in (0.2, 0.35, 0.5, 0.65, 0.8)})
        res = measure(vol, ks)
        frac, r, c = AORTA_ROI[name]
        k = int(n * frac)
        if r is not None:
            roi = vol[k - 1:k + 2, r - 4:r + 5, c - 4:c + 5]
            res["aortic blood"] = (float(roi.mean()), float(vol[k, r - 4:r + 5, c - 4:c + 5].std()))
        else:
            res["aortic blood"] = aorta_auto(vol, k)
        columns[name] = res
        slices[name] = vol[int(n * 0.5)]

    kwargs = {} if args.noise is None else {"noise_sigma_hu": args.noise}
    settings = CTPhantomSettings(seed=args.seed, pixel_mm=0.977, slice_thickness_mm=3.0, slice_spacing_mm=2.0,
                                 kernel="B38f", fov=("T10", "L3"), **kwargs)
    ph = generate_ct_phantom(settings)
    n = ph.hu.shape[0]
    ks = sorted({int(n * f) for f in (0.2, 0.35, 0.5, 0.65, 0.8)})
    res = measure(ph.hu, ks)
    res["aortic blood"] = aorta_from_labels(ph.hu, ph.anatomy_labels)
    columns["phantom"] = res
    # Phantom slice at the same anatomy as the Siemens series (thoracolumbar junction).
    t12 = next(v for v in ph.anatomy["vertebrae"] if v["level"] == "T12")
    zk = int(round((0.5 * (t12["z_top_mm"] + t12["z_bottom_mm"]) - ph.affine[2, 3]) / ph.affine[2, 0]))
    slices["phantom"] = ph.hu[int(np.clip(zk, 0, n - 1))]

    rows = list(CLASSES) + ["cortical bone p99.5", "aortic blood"]
    names = list(columns)
    print(f"{'tissue (mean / noise SD, HU)':30s}" + "".join(f"{c:>28s}" for c in names))
    for row in rows:
        cells = []
        for c in names:
            v = columns[c].get(row)
            cells.append("n/a" if v is None else (f"{v[0]:8.1f}" if np.isnan(v[1]) else f"{v[0]:8.1f} / {v[1]:5.1f}"))
        print(f"{row:30s}" + "".join(f"{cell:>28s}" for cell in cells))

    tiles = []
    for name in names:
        sl = slices[name]
        tiles.append(np.concatenate([window(sl, 400, 40), window(sl, 1500, 300)], axis=0))
    h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 0))) for t in tiles]
    args.png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(args.png)
    print(f"wrote {args.png} (columns: {', '.join(names)}; top W400/L40, bottom W1500/L300)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
