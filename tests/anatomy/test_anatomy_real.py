"""Rule anatomy on a real low-dose PET/CT series (thoracolumbar junction).

Read with pydicom directly (independent of calcdetect.io): sorted by z, rescaled
to HU; axial DICOM with IOP (1,0,0,0,1,0) already has rows going posterior and
columns going left, so only k (increasing z = superior) needs ordering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calcdetect.anatomy import build_anatomy
from calcdetect.anatomy.regions import structure
from calcdetect.device import Device
from calcdetect.types import AcquisitionInfo, Volume

SERIES = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "ct_abdomen_petct_siemens"


def _load(folder: Path) -> Volume:
    pydicom = pytest.importorskip("pydicom")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    ds = [pydicom.dcmread(str(p)) for p in files]
    ds = [d for d in ds if hasattr(d, "ImagePositionPatient")]
    ds.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    try:
        arr = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
    except Exception as exc:  # no JPEG 2000 decoder installed
        pytest.skip(f"cannot decode the series: {exc}")
    assert [float(v) for v in ds[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    ps = [float(v) for v in ds[0].PixelSpacing]
    z = [float(d.ImagePositionPatient[2]) for d in ds]
    sk = float(np.median(np.diff(z)))
    aff = np.zeros((4, 4))
    aff[0, 2], aff[1, 1], aff[2, 0] = ps[1], ps[0], sk
    aff[:3, 3] = [float(v) for v in ds[0].ImagePositionPatient]
    aff[3, 3] = 1.0
    return Volume(arr.astype(np.float32), (sk, ps[0], ps[1]), aff, AcquisitionInfo("CT"))


@pytest.fixture(scope="module")
def real_anatomy():
    if not SERIES.is_dir():
        pytest.skip(f"real data not present at {SERIES}")
    vol = _load(SERIES)
    return vol, build_anatomy(vol, Device("cpu"))


def test_canal_found_on_every_slice(real_anatomy):
    vol, am = real_anatomy
    canal = am.labels == structure("spinal_canal").label
    sj, si = vol.spacing[1], vol.spacing[2]
    for k in range(vol.shape[0]):
        assert canal[k].any(), k
        area = canal[k].sum() * sj * si
        assert 80.0 < area < 600.0, (k, area)  # an adult canal is ~1.5-3 cm2
    # the canal is dark (CSF / cord / epidural fat), not bone
    assert np.median(vol.array[canal]) < 100.0


def test_aorta_anterior_left_of_the_spine(real_anatomy):
    vol, am = real_anatomy
    aorta = am.labels == structure("aorta").label
    canal = am.labels == structure("spinal_canal").label
    ok = 0
    for k in range(vol.shape[0]):
        if not (aorta[k].any() and canal[k].any()):
            continue
        ja, ia = np.argwhere(aorta[k]).mean(axis=0)
        jc, ic = np.argwhere(canal[k]).mean(axis=0)
        # patient left = larger column; anterior = smaller row, in front of the body
        if ia > ic + 3 and ja < jc - 40:
            ok += 1
    assert ok >= 0.8 * vol.shape[0]
    # the lumen is blood (this study is contrast-enhanced: ~150 HU), not bone or fat
    assert 0.0 < np.median(vol.array[aorta]) < 300.0


def test_no_levels_without_anchors_on_a_partial_scan(real_anatomy):
    _, am = real_anatomy
    # 40 mm around the thoracolumbar junction: neither sacrum nor a rib-free
    # vertebra below the last rib is visible, so levels must stay unassigned
    assert all(lv is None for lv in am.slice_levels)
    assert any("not assigned" in n for n in am.notes)


THORAX = SERIES.parent / "ct_thorax_philips"


@pytest.fixture(scope="module")
def thorax_anatomy():
    if not THORAX.is_dir():
        pytest.skip(f"real data not present at {THORAX}")
    from calcdetect.bone import segment_bone

    vol = _load(THORAX)
    return vol, build_anatomy(vol, Device("cpu"), bone_mask=segment_bone(vol.array, vol.spacing, Device("cpu")))


def test_descending_aorta_found_on_a_chest_ct(thorax_anatomy):
    """A chest CT (no sacrum, the aorta narrowing towards the arch at the top):
    the descending aorta is tracked over most of the scan, beside the spine,
    with the bone mask the pipeline uses."""
    vol, am = thorax_anatomy
    aorta = am.labels == structure("aorta").label
    canal = am.labels == structure("spinal_canal").label
    slices = [k for k in range(vol.shape[0]) if aorta[k].any()]
    assert len(slices) >= 0.5 * vol.shape[0]
    # left of the canal (larger i) on the slices where both are labelled
    both = [k for k in slices if canal[k].any()]
    left = [k for k in both
            if np.argwhere(aorta[k])[:, 1].mean() > np.argwhere(canal[k])[:, 1].mean()]
    assert len(left) >= 0.8 * len(both)


LABELLED = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "ct_upper_abdomen_3slice_labelled"


def test_rule_spine_overlaps_the_expert_spine_label_of_a_real_ct() -> None:
    """Issue 5 asks for the spine Dice against this series' spine label. Measured
    0.72: the label also covers the canal and posterior elements we call soft
    tissue (3 slices: no levels can be counted). A drop below 0.65 is a regression."""
    sitk = pytest.importorskip("SimpleITK")
    from calcdetect.anatomy.regions import STRUCTURES

    if not LABELLED.is_dir():
        pytest.skip(f"real data not present at {LABELLED}")
    vol = _load(LABELLED / "ct-3slice")
    seg = sitk.ReadImage(str(LABELLED / "spine_seg.nrrd"))
    truth = sitk.GetArrayFromImage(seg) > 0  # [k, j, i], same grid (origin and spacing checked)
    assert np.allclose(seg.GetOrigin()[:2], vol.affine[:2, 3], atol=0.01)
    if seg.GetOrigin()[2] != pytest.approx(float(vol.affine[2, 3]), abs=0.01):
        truth = truth[::-1]
    from calcdetect.config import RunSettings
    from calcdetect.pipeline import analyse_ct

    am = analyse_ct(vol, RunSettings(overlays=False)).anatomy  # the anatomy `calcdetect run` uses
    spine = [s.label for s in STRUCTURES if s.name.startswith("vertebrae_") or s.name == "sacrum"]
    pred = np.isin(am.labels, spine)
    dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert dice >= 0.65, dice


def test_canal_follows_the_thoracic_kyphosis_on_a_chest_ct(thorax_anatomy):
    """Over a chest CT the canal moves ~45 mm forward from the lower to the upper
    thorax. A scan-wide reference once rejected the true canal in the upper
    slices (an extrapolated canal ~30 mm behind it, at the spinous processes) and
    took the hole beside a rib's neck for it at one level (a 14 px jump): the
    ligament zone followed, and two calcifications there were reported as
    ligamentum flavum. The canal must move smoothly, slice to slice."""
    vol, am = thorax_anatomy
    canal = am.labels == structure("spinal_canal").label
    ks = [k for k in range(vol.shape[0]) if canal[k].any()]
    assert len(ks) >= 0.9 * vol.shape[0]
    centres = np.array([np.argwhere(canal[k]).mean(axis=0) for k in ks]) * np.array(vol.spacing[1:])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() <= 5.0, f"canal centre jumps {steps.max():.1f} mm between slices"
    # upper slices: the canal lies in front of where it lies at the bottom
    assert centres[-5:, 0].mean() < centres[:5, 0].mean() - 20.0
