"""Compare a ``calcdetect run`` output with phantom ground truth.

``evaluate(pred_dir, truth_dir)`` pairs every truth study (``DIR/truth/truth.json``)
with a predicted series (``findings.json``), matches lesions one-to-one and
aggregates detection, placement, measurement and AAC-24 agreement metrics over all
studies.

Pairing studies
---------------
A truth study is paired with the predicted series whose
``findings.json["input"]["series_uid_hash"]`` equals the truth's
``series_uid_hash`` (when truth.json lacks it, the hash of the
SeriesInstanceUID of the study's first file under ``DIR/dicom/``). When there
is exactly one truth study and one predicted series they are paired regardless.
When several truth studies or predictions share one hash (phantoms of one seed
at different scan settings carry the same UIDs), a truth study is paired only
with the prediction of that hash that lies under a folder named like the study
folder (``eval_ct``'s ``runs/<study>/``); otherwise its lesions count as missed.
A truth study without a prediction counts all of its lesions as missed (and
says so in ``warnings``); a prediction without truth is ignored (also with a
warning).

Matching lesions
----------------
Truth lesions (targets *and* distractors) and predicted findings are matched
one-to-one with the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``):

* **Mask overlap** when both ``truth/lesions.nii.gz`` and the prediction's
  ``lesions.nii.gz`` exist on the same grid: a pair is admissible when the two
  masks share at least one voxel; the assignment maximises the shared voxel count.
  A predicted finding's label value is its ``mask_label`` or, failing that, the
  numeric part of its ``id`` (``"F007"`` -> 7).
* **Centroid distance** otherwise: a pair is admissible when the centroids are
  within ``max(5 mm, 0.5 x truth max diameter)``; the assignment minimises the
  distance normalised by that tolerance. The truth diameter is the lesion's
  ``max_diameter_mm`` (or ``diameter_mm``) or, failing that, the diameter of
  the sphere of its volume.

Metrics
-------
* **Targets** are truth lesions with ``region != "other"``; **distractors** those
  with ``region == "other"`` (phleboliths, costal cartilage, lymph nodes, bowel,
  metal, contrast), except **calibration inserts** (``CALIBRATION_KINDS``, the
  QRM phantom's), which are only counted as detected and measured. A target
  counts as detected when any prediction is matched to it (its region label is
  scored separately by region accuracy); ``sensitivity_right_region`` also
  requires the predicted region to be the truth's.
* Sensitivity is pooled, and split by region, by truth volume (``SIZE_BINS_MM3``)
  and by truth ``kind`` (atherosclerotic, stone, nephrocalcinosis, ligament ...).
* **False positives** are predicted findings with a reportable region (not
  ``"other"``) that match nothing or match a distractor. An unmatched finding
  that is a *piece* of a truth lesion (shares voxels with it; without masks,
  its centroid is within that lesion's tolerance or bounding box grown by
  ``FRAGMENT_MARGIN_MM``) is counted as a fragment, not
  a false positive -- unless the lesion is a distractor: a piece of a
  phlebolith called vascular is still a false positive. Conversely a truth
  lesion left unmatched whose voxels lie inside a finding matched to another
  lesion (two plaques fused by the threshold) counts as found, with that
  finding's region, side and level (its volume and mass are not scored).
* **Distractors mislabelled**: distractors matched to a prediction whose region is
  not ``"other"``; the rate is over all distractors.
* Region / side / level accuracy are over matched targets. Sides compare as given
  (``None`` for midline structures must be predicted as ``None``). Levels are
  exact (string equality) or "within one level": the level spans (``"L2-L4"``
  spans L2..L4, a disc ``"L3-L4"`` spans L3..L4) are at most one level apart.
  Targets without a truth level are left out of the level accuracy.
  **Fused calcifications** (``level_accuracy_exact``, the headline): when one
  finding reports several truth lesions that touch in the truth mask (26-connected
  voxels: one connected calcification), the level a reader would give that one
  finding is the union of their spans, so each of them is scored against the
  union (``format_level_span`` of their levels). Truth lesions that the finding
  joins but that are separate in the truth mask (a partial-volume or noise bridge)
  keep their own level: that fusion is a detection error. Without masks nothing
  is fused. ``level_accuracy_exact_strict`` scores every lesion against its own
  level; "within one" is strict too.
* Where the errors are: ``region_confusion`` (truth region -> predicted region
  or ``"missed"``, over all targets) and ``errors``, one row per missed target,
  wrong region / side / level and false positive, with the truth and predicted
  region, side, level and centroid (``eval_ct.py --json`` writes them).
* Measurement errors (volume, Agatston, mass) are signed and absolute percentage
  errors ``100 x (pred - truth) / truth`` over matched targets and calibration
  inserts whose truth value is present and positive.
* AAC-24 (radiograph studies): ICC(2,1) of Shrout & Fleiss (1979), two-way random
  effects, absolute agreement, single rater, between truth and predicted totals;
  mean absolute and mean signed error; exact agreement of the severity group
  (``AAC24_GROUPS``); exact agreement and MAE of the per-wall grades where both
  sides report ``segments``. ICC(2,1) rather than ICC(3,1) because a systematic
  offset of the predictor is a disagreement, not a nuisance.
  Lesion-level matching is not done for radiograph studies: their truth lesions
  live on the detector plane and their predictions carry no CT centroids.
* Vertebral bodies (radiograph studies, when findings.json has ``vertebrae``
  ``[{"level", "corners_rc"}]``): predicted bodies are matched to the truth's
  T12-L5 by corner centroid (Hungarian, within ``VERTEBRA_MATCH_MM`` in the
  patient plane); detection rate, level accuracy and mean corner error (mm).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cc3d
import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

from calcdetect.anatomy.regions import VERTEBRA_LEVELS, Region, format_level_span
from calcdetect.errors import InputError
from calcdetect.export.atomic import atomic_write_json
from calcdetect.ids import hash_uid
from calcdetect.radiograph.aac import AAC24_GROUPS
from calcdetect.radiograph.aac import severity_group as aac24_group

__all__ = [
    "TRUTH_SCHEMA",
    "CALIBRATION_KINDS",
    "SIZE_BINS_MM3",
    "AAC24_GROUPS",
    "MIN_MATCH_DISTANCE_MM",
    "VERTEBRA_MATCH_MM",
    "EvaluationReport",
    "evaluate",
    "icc_2_1",
    "agreement_ci95",
    "paired_error_difference",
    "severity_agreement",
    "aac24_group",
    "level_distance",
]

TRUTH_SCHEMA = "calcdetect-truth/1"
TRUTH_KINDS = ("ct", "radiograph", "qrm")
# Truth kinds with region "other" that are measured, not avoided (QRM calcium inserts).
CALIBRATION_KINDS = ("calibration_insert",)

# Size bins for sensitivity, on the truth volume in mm3: (label, low, high), half-open.
SIZE_BINS_MM3: tuple[tuple[str, float, float], ...] = (
    ("<10 mm3", 0.0, 10.0),
    ("10-100 mm3", 10.0, 100.0),
    (">=100 mm3", 100.0, math.inf),
)


# Centroid matching tolerance: max(MIN_MATCH_DISTANCE_MM, MATCH_DIAMETER_FRACTION x diameter).
MIN_MATCH_DISTANCE_MM = 5.0
# Issue 4's sensitivity target counts lesions of at least this diameter (truth
# ``diameter_mm``; equivalent-sphere diameter when absent).
TARGET_MIN_DIAMETER_MM = 3.0
FRAGMENT_MARGIN_MM = 2.0  # the blur of a phantom's slice profile and PSF
MATCH_DIAMETER_FRACTION = 0.5

_REGIONS = tuple(r.value for r in Region)
_OTHER = Region.OTHER.value
# (name, truth key, prediction key): both volumes are scored against the true volume.
_MEASURES = (("volume", "volume_mm3", "volume_mm3"),
             ("volume (PV-corrected)", "volume_mm3", "volume_pv_mm3"),
             ("agatston", "agatston", "agatston"), ("mass", "mass_mg", "mass_mg"))
_FINDING_REQUIRED = ("id", "region", "centroid_lps_mm")
_FINDINGS_TOP_REQUIRED = ("schema", "input", "findings")
_PROJECTION_MODALITIES = ("DX", "CR", "DR", "RG", "PX")


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class _TruthStudy:
    path: Path  # the study folder
    kind: str
    series_uid_hash: str | None
    lesions: tuple[dict[str, Any], ...]
    aac24: dict[str, Any] | None
    mask_path: Path | None
    vertebrae: dict[str, Any] | None = None  # radiograph: level -> {"corners_px": {...}}
    patient_mm_per_px: float | None = None  # radiograph: imager spacing / magnification


@dataclass(frozen=True)
class _PredSeries:
    path: Path  # the series folder
    series_uid_hash: str | None
    findings: tuple[dict[str, Any], ...]
    aac24: dict[str, Any] | None
    mask_path: Path | None
    vertebrae: tuple[dict[str, Any], ...] = ()  # radiograph: [{"level", "corners_rc"}]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc}); regenerate the file") from None


def _check_centroid(value: Any, where: str) -> None:
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    if not ok or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
        raise InputError(f"{where}: 'centroid_lps_mm' must be three finite numbers, got {value!r}")


def _check_region(value: Any, where: str) -> None:
    if value not in _REGIONS:
        raise InputError(f"{where}: region {value!r} is not one of {', '.join(_REGIONS)}")


def _check_aac24(value: Any, where: str) -> None:
    if value is None:
        return
    total = value.get("total") if isinstance(value, dict) else None
    if not isinstance(total, (int, float)) or not 0 <= total <= 24:
        raise InputError(f"{where}: 'aac24' must be an object with a 'total' between 0 and 24, got {value!r}")


def _series_hash_from_dicom(dicom_dir: Path) -> str | None:
    """``hash_uid(SeriesInstanceUID)`` of the study's first DICOM file, if there is one.

    Lets truth written without ``series_uid_hash`` still pair with its prediction.
    """
    if not dicom_dir.is_dir():
        return None
    import pydicom  # only needed for this fallback

    for path in sorted(dicom_dir.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        except Exception:  # not DICOM (or unreadable): try the next file
            continue
        uid = ds.get("SeriesInstanceUID")
        if uid:
            return hash_uid(str(uid))
    return None


def _load_truth(study_dir: Path) -> _TruthStudy:
    path = study_dir / "truth" / "truth.json"
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("schema") != TRUTH_SCHEMA:
        raise InputError(f"{path}: schema is {doc.get('schema')!r}, expected {TRUTH_SCHEMA!r}")
    kind = doc.get("kind")
    if kind not in TRUTH_KINDS:
        raise InputError(f"{path}: kind {kind!r} is not one of {', '.join(TRUTH_KINDS)}")
    lesions = doc.get("lesions")
    if not isinstance(lesions, list):
        raise InputError(f"{path}: 'lesions' must be a list")
    for n, les in enumerate(lesions):
        where = f"{path}: lesions[{n}]"
        if not isinstance(les, dict):
            raise InputError(f"{where}: expected an object")
        for key in ("id", "region"):
            if key not in les:
                raise InputError(f"{where}: missing key {key!r}")
        _check_region(les["region"], where)
        if kind != "radiograph":
            if "centroid_lps_mm" not in les:
                raise InputError(f"{where}: missing key 'centroid_lps_mm'")
            _check_centroid(les["centroid_lps_mm"], where)
    _check_aac24(doc.get("aac24"), str(path))
    mask = study_dir / "truth" / "lesions.nii.gz"
    return _TruthStudy(
        path=study_dir,
        kind=kind,
        series_uid_hash=doc.get("series_uid_hash") or _series_hash_from_dicom(study_dir / "dicom"),
        lesions=tuple(lesions),
        aac24=doc.get("aac24"),
        mask_path=mask if mask.is_file() else None,
        vertebrae=doc.get("vertebrae") if isinstance(doc.get("vertebrae"), dict) else None,
        patient_mm_per_px=_patient_mm_per_px(doc.get("image")),
    )


def _patient_mm_per_px(image: Any) -> float | None:
    """Patient-plane mm per pixel of a radiograph truth's ``image`` block."""
    if not isinstance(image, dict):
        return None
    try:
        return float(image["imager_pixel_spacing_mm"][0]) / float(image.get("magnification") or 1.0)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _load_prediction(series_dir: Path) -> _PredSeries:
    path = series_dir / "findings.json"
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    for key in _FINDINGS_TOP_REQUIRED:
        if key not in doc:
            raise InputError(f"{path}: missing top-level key {key!r} (is this a calcdetect findings.json?)")
    if not isinstance(doc["input"], dict):
        raise InputError(f"{path}: 'input' must be an object")
    if not isinstance(doc["findings"], list):
        raise InputError(f"{path}: 'findings' must be a list")
    # Radiograph findings live on the image plane: their CT centroid may be null.
    projection = str(doc["input"].get("modality") or "CT").upper() in _PROJECTION_MODALITIES
    for n, fnd in enumerate(doc["findings"]):
        where = f"{path}: findings[{n}]"
        if not isinstance(fnd, dict):
            raise InputError(f"{where}: expected an object")
        for key in _FINDING_REQUIRED:
            if key not in fnd:
                raise InputError(f"{where}: missing key {key!r}")
        _check_region(fnd["region"], where)
        if not (projection and fnd["centroid_lps_mm"] is None):
            _check_centroid(fnd["centroid_lps_mm"], where)
    _check_aac24(doc.get("aac24"), str(path))
    mask = series_dir / "lesions.nii.gz"
    return _PredSeries(
        path=series_dir,
        series_uid_hash=doc["input"].get("series_uid_hash"),
        findings=tuple(doc["findings"]),
        aac24=doc.get("aac24"),
        mask_path=mask if mask.is_file() else None,
        vertebrae=tuple(v for v in (doc.get("vertebrae") or []) if isinstance(v, dict)),
    )


def _find_truth_studies(truth_dir: Path) -> list[Path]:
    if not truth_dir.is_dir():
        raise InputError(f"{truth_dir}: truth folder not found")
    if (truth_dir / "truth" / "truth.json").is_file():
        return [truth_dir]
    if truth_dir.name == "truth" and (truth_dir / "truth.json").is_file():
        return [truth_dir.parent]
    studies = sorted(p for p in truth_dir.iterdir() if (p / "truth" / "truth.json").is_file())
    if not studies:
        raise InputError(
            f"{truth_dir}: no truth/truth.json found here or in its subfolders; point TRUTH_DIR "
            "at a phantom study folder or at a folder of them"
        )
    return studies


def _find_pred_series(pred_dir: Path) -> list[Path]:
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: prediction folder not found")
    if (pred_dir / "findings.json").is_file():
        return [pred_dir]
    # A run output is run.json + one folder per series; allow one extra level of nesting.
    found = sorted(p.parent for p in pred_dir.glob("*/findings.json"))
    found += sorted(p.parent for p in pred_dir.glob("*/*/findings.json"))
    if not found:
        raise InputError(
            f"{pred_dir}: no findings.json found here or in its series subfolders; point PRED_DIR "
            "at a 'calcdetect run' output folder or at one series folder"
        )
    return found


def _pair(
    truths: list[_TruthStudy], preds: list[_PredSeries], warnings: list[str]
) -> list[tuple[_TruthStudy, _PredSeries | None]]:
    if len(truths) == 1 and len(preds) == 1:
        t, p = truths[0], preds[0]
        if t.series_uid_hash and p.series_uid_hash and t.series_uid_hash != p.series_uid_hash:
            warnings.append(f"{t.path} and {p.path}: series_uid_hash differs; paired anyway (one study each)")
        return [(t, p)]
    preds_by_hash: dict[str, list[_PredSeries]] = {}
    for p in preds:
        if p.series_uid_hash:
            preds_by_hash.setdefault(p.series_uid_hash, []).append(p)
    truths_per_hash = Counter(t.series_uid_hash for t in truths if t.series_uid_hash)
    used: set[Path] = set()
    pairs: list[tuple[_TruthStudy, _PredSeries | None]] = []
    for t in truths:
        same_hash = preds_by_hash.get(t.series_uid_hash, []) if t.series_uid_hash else []
        if len(same_hash) > 1 or truths_per_hash[t.series_uid_hash] > 1:
            # One hash, several scans: a hash match alone would score one prediction
            # against every study of that seed.
            named = [p for p in same_hash if t.path.name in p.path.parts]
            p = named[0] if len(named) == 1 and named[0].path not in used else None
            if p is None:
                warnings.append(
                    f"{t.path}: several studies or predictions share its series_uid_hash and no single "
                    "prediction folder is named after this study; all its lesions count as missed "
                    "(write each study's run into a folder named like the study folder)"
                )
        else:
            p = same_hash[0] if same_hash else None
            if p is None:
                warnings.append(
                    f"{t.path}: no predicted series with this series_uid_hash; all its lesions count as missed"
                )
        if p is not None:
            used.add(p.path)
        pairs.append((t, p))
    for p in preds:
        if p.path not in used:
            warnings.append(f"{p.path}: prediction has no matching truth study; ignored")
    return pairs


# --------------------------------------------------------------------------- matching


def _truth_diameter_mm(les: Mapping[str, Any]) -> float:
    for key in ("max_diameter_mm", "diameter_mm"):
        d = les.get(key)
        if isinstance(d, (int, float)) and d > 0:
            return float(d)
    v = les.get("volume_mm3")
    if isinstance(v, (int, float)) and v > 0:
        return float((6.0 * v / math.pi) ** (1.0 / 3.0))
    return 0.0


def _match_by_centroid(
    truth: Sequence[Mapping[str, Any]], pred: Sequence[Mapping[str, Any]]
) -> list[tuple[int, int]]:
    """Hungarian matching on centroid distance normalised by the per-truth tolerance."""
    if not truth or not pred:
        return []
    t_xyz = np.array([t["centroid_lps_mm"] for t in truth], dtype=np.float64)
    p_xyz = np.array([p["centroid_lps_mm"] for p in pred], dtype=np.float64)
    tol = np.array(
        [max(MIN_MATCH_DISTANCE_MM, MATCH_DIAMETER_FRACTION * _truth_diameter_mm(t)) for t in truth]
    )
    dist = np.linalg.norm(t_xyz[:, None, :] - p_xyz[None, :, :], axis=-1)
    cost = dist / tol[:, None]
    admissible = cost <= 1.0
    # Inadmissible pairs get a cost no admissible assignment can beat, then are dropped.
    big = 1e6
    rows, cols = linear_sum_assignment(np.where(admissible, cost, big))
    return [(int(r), int(c)) for r, c in zip(rows, cols) if admissible[r, c]]


def _pred_mask_label(fnd: Mapping[str, Any]) -> int | None:
    if isinstance(fnd.get("mask_label"), int):
        return int(fnd["mask_label"])
    m = re.search(r"(\d+)\s*$", str(fnd.get("id", "")))
    return int(m.group(1)) if m else None


def _load_label_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib  # only needed when masks exist

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises several unrelated types
        raise InputError(f"{path}: cannot read the label volume ({exc})") from None
    if not np.issubdtype(data.dtype, np.integer):
        data = np.rint(data).astype(np.int32)  # labels saved as float: round, keep it small
    # Keep the stored integer type: a 512 x 512 x 400 volume is 100 M voxels.
    return data, np.asarray(img.affine)


def _match_by_mask(
    truth: Sequence[Mapping[str, Any]],
    pred: Sequence[Mapping[str, Any]],
    truth_mask: Path,
    pred_mask: Path,
    warnings: list[str],
) -> tuple[list[tuple[int, int]], np.ndarray, set[frozenset[int]]] | None:
    """Hungarian matching maximising shared voxels, the truth x prediction
    overlap (voxels) and the pairs of truth rows that one finding overlaps and that
    touch in the truth mask (:func:`_touching_pairs`); ``None`` when the grids differ."""
    t_lab, t_aff = _load_label_volume(truth_mask)
    p_lab, p_aff = _load_label_volume(pred_mask)
    if t_lab.shape != p_lab.shape or not np.allclose(t_aff, p_aff, atol=1e-3):
        warnings.append(
            f"{pred_mask}: grid differs from {truth_mask}; matched by centroid distance instead"
        )
        return None
    if not truth or not pred:
        return [], np.zeros((len(truth), len(pred))), set()
    both = (t_lab > 0) & (p_lab > 0)
    t_vals, p_vals = t_lab[both].astype(np.int64), p_lab[both].astype(np.int64)
    pairs, counts = np.unique(np.stack([t_vals, p_vals]), axis=1, return_counts=True)
    overlap_by_label = {(int(a), int(b)): int(c) for (a, b), c in zip(pairs.T, counts)}
    t_ids = [int(t["id"]) if str(t["id"]).lstrip("-").isdigit() else None for t in truth]
    p_ids = [_pred_mask_label(p) for p in pred]
    overlap = np.zeros((len(truth), len(pred)))
    for r, tid in enumerate(t_ids):
        for c, pid in enumerate(p_ids):
            if tid is not None and pid is not None:
                overlap[r, c] = overlap_by_label.get((tid, pid), 0)
    rows, cols = linear_sum_assignment(-overlap)
    matches = [(int(r), int(c)) for r, c in zip(rows, cols) if overlap[r, c] > 0]
    shared = [[r for r in np.flatnonzero(overlap[:, c] > 0)] for c in range(len(pred))]
    groups = [[t_ids[r] for r in rs] for rs in shared if len(rs) > 1]
    touching = _touching_pairs(t_lab, [[i for i in g if i is not None] for g in groups])
    row_of = {tid: r for r, tid in enumerate(t_ids) if tid is not None}
    return matches, overlap, {frozenset(row_of[i] for i in pair) for pair in touching}


def _touching_pairs(labels: np.ndarray, groups: Sequence[Sequence[int]]) -> set[frozenset[int]]:
    """Pairs of label ids, each pair within one group, with 26-neighbouring voxels.

    Only the box around each group's lesions is read: a CT-sized label map is
    10^8 voxels, a group a few thousand.
    """
    out: set[frozenset[int]] = set()
    groups = [sorted(set(g)) for g in groups if len(set(g)) > 1]
    if not groups:
        return out
    boxes = ndi.find_objects(np.asarray(labels))
    for ids in groups:
        parts = [boxes[i - 1] for i in ids if 0 < i <= len(boxes) and boxes[i - 1] is not None]
        if len(parts) < 2:
            continue
        box = tuple(slice(max(min(p[a].start for p in parts) - 1, 0), max(p[a].stop for p in parts) + 1)
                    for a in range(3))
        crop = np.where(np.isin(labels[box], ids), labels[box], 0)
        out.update(frozenset((int(a), int(b))) for a, b in cc3d.region_graph(crop, connectivity=26))
    return out


# --------------------------------------------------------------------------- metrics helpers


def _level_span(level: str) -> tuple[int, int] | None:
    try:
        idx = [VERTEBRA_LEVELS.index(p.strip()) for p in str(level).split("-")]
    except ValueError:
        return None
    return min(idx), max(idx)


def level_distance(a: str | None, b: str | None) -> int | None:
    """Levels between two level spans (0 when they overlap); ``None`` if either is unknown.

    >>> level_distance("L3", "L2-L3"), level_distance("L1", "L3"), level_distance("L1", None)
    (0, 2, None)
    """
    if a is None or b is None:
        return None
    sa, sb = _level_span(a), _level_span(b)
    if sa is None or sb is None:
        return None
    return max(0, sb[0] - sa[1], sa[0] - sb[1])


def _size_bin(volume_mm3: Any) -> str:
    if not isinstance(volume_mm3, (int, float)):
        return "unknown size"
    for label, lo, hi in SIZE_BINS_MM3:
        if lo <= volume_mm3 < hi:
            return label
    return "unknown size"


def icc_2_1(ratings: np.ndarray) -> float | None:
    """ICC(2,1) of Shrout & Fleiss (1979): two-way random, absolute agreement, single rater.

    Parameters
    ----------
    ratings : ndarray, shape (n_targets, k_raters)

    Returns
    -------
    float or None
        ``(BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n)``; ``None`` when
        undefined (fewer than two targets, or no variance at all).

    Examples
    --------
    >>> icc_2_1(np.array([[1, 1], [2, 2], [5, 5]]))
    1.0
    """
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        return None
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    jms = ss_cols / (k - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    denom = bms + (k - 1) * ems + k * (jms - ems) / n
    if denom <= 0 or not math.isfinite(denom):
        return None
    return float((bms - ems) / denom)


def agreement_ci95(pairs: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> dict[str, list[float] | None]:
    """Percentile-bootstrap 95 % intervals of ICC(2,1) and of the mean absolute error.

    ``pairs``: shape ``(n_cases, 2)``, truth and estimate per case. Cases are resampled
    with replacement (``seed`` fixes the draw, so a rerun reports the same interval).
    Why: AAC-24 on 40-80 phantoms moves by more between blocks of seeds than between
    nets, so a point estimate alone says little about whether a target is met.
    """
    x = np.asarray(pairs, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] < 3:
        return {"icc21": None, "mae": None}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(n_resamples, x.shape[0]))
    maes = np.abs(x[idx, 0] - x[idx, 1]).mean(axis=1)
    iccs = np.array([v for v in (icc_2_1(x[i]) for i in idx) if v is not None])
    return {"icc21": np.percentile(iccs, [2.5, 97.5]).round(3).tolist() if iccs.size else None,
            "mae": np.percentile(maes, [2.5, 97.5]).round(3).tolist()}


def paired_error_difference(truth: Sequence[float | None], base: Sequence[float | None],
                            other: Sequence[float | None]) -> dict[str, float | int | None]:
    """How much ``other``'s absolute error differs from ``base``'s on the same cases.

    Returns the mean of ``|other - truth| - |base - truth|`` (negative: ``other`` is closer),
    its standard error, and how many cases each side wins, over the cases all three name
    (``None``: not scored, left out). Why paired: AAC-24 blocks of seeds differ by more
    than nets do, so only the per-case difference on shared cases separates two nets.
    """
    if not len(truth) == len(base) == len(other):
        raise ValueError(f"paired readings need one value per case each: got {len(truth)} truths, "
                         f"{len(base)} and {len(other)} readings")
    rows = [(t, a, b) for t, a, b in zip(truth, base, other) if None not in (t, a, b)]
    if not rows:
        return {"n": 0, "mean": None, "se": None, "better": 0, "worse": 0}
    x = np.array(rows, dtype=np.float64)
    d = np.abs(x[:, 2] - x[:, 0]) - np.abs(x[:, 1] - x[:, 0])
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else None
    return {"n": int(d.size), "mean": float(d.mean()), "se": se,
            "better": int((d < 0).sum()), "worse": int((d > 0).sum())}


def severity_agreement(pairs: Sequence[tuple[float | None, float | None]]) -> float | None:
    """The share of ``(truth, reading)`` AAC-24 pairs whose reading falls in the truth's
    severity group (``aac24_group``: low / moderate / high), over the pairs with both values."""
    scored = [(t, p) for t, p in pairs if t is not None and p is not None]
    if not scored:
        return None
    return sum(aac24_group(t) == aac24_group(p) for t, p in scored) / len(scored)


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass
class _Counter:
    """Hits over a denominator, keyed by a group name."""

    hits: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, hit: bool) -> None:
        self.total[key] = self.total.get(key, 0) + 1
        self.hits[key] = self.hits.get(key, 0) + int(hit)

    def to_dict(self, order: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
        """Per-key hits, totals and rates; keys in ``order`` first, the rest sorted."""
        keys = [k for k in order if k in self.total] + sorted(k for k in self.total if k not in order)
        return {
            k: {"hits": self.hits[k], "total": self.total[k], "rate": _rate(self.hits[k], self.total[k])}
            for k in keys
        }


@dataclass
class _Tally:
    """Everything summed over studies before the report is built."""

    n_scans: int = 0
    sens_region: _Counter = field(default_factory=_Counter)
    sens_region_3mm: _Counter = field(default_factory=_Counter)
    sens_size: _Counter = field(default_factory=_Counter)
    sens_right_region: _Counter = field(default_factory=_Counter)
    sens_kind: _Counter = field(default_factory=_Counter)
    region_acc: _Counter = field(default_factory=_Counter)
    side_acc: _Counter = field(default_factory=_Counter)
    level_exact: _Counter = field(default_factory=_Counter)
    level_exact_strict: _Counter = field(default_factory=_Counter)
    level_within1: _Counter = field(default_factory=_Counter)
    false_positives: int = 0
    fp_unmatched: int = 0
    fp_on_distractor: int = 0
    fragments: int = 0
    fp_by_region: dict[str, int] = field(default_factory=dict)
    distractors: int = 0
    distractors_mislabelled: int = 0
    errors: dict[str, list[float]] = field(default_factory=lambda: {m[0]: [] for m in _MEASURES})
    aac_truth: list[float] = field(default_factory=list)
    aac_pred: list[float] = field(default_factory=list)
    aac_wall_pairs: list[tuple[int, int]] = field(default_factory=list)
    vert_found: int = 0
    vert_total: int = 0
    vert_level_correct: int = 0
    vert_corner_errors_mm: list[float] = field(default_factory=list)
    inserts: _Counter = field(default_factory=_Counter)
    per_study: list[dict[str, Any]] = field(default_factory=list)
    region_confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    error_cases: list[dict[str, Any]] = field(default_factory=list)


def _score_lesions(
    truth: _TruthStudy, pred: _PredSeries | None, tally: _Tally, warnings: list[str]
) -> dict[str, Any]:
    """Match one study's lesions and add its counts to ``tally``; returns the study row."""
    t_les = list(truth.lesions)
    p_fnd = list(pred.findings) if pred is not None else []
    matches: list[tuple[int, int]] | None = None
    overlap: np.ndarray | None = None
    touching: set[frozenset[int]] = set()
    method = "centroid"
    if pred is not None and truth.mask_path is not None and pred.mask_path is not None:
        by_mask = _match_by_mask(t_les, p_fnd, truth.mask_path, pred.mask_path, warnings)
        if by_mask is not None:
            matches, overlap, touching = by_mask
            method = "mask"
    if matches is None:
        matches = _match_by_centroid(t_les, p_fnd)
    t_to_p = dict(matches)
    p_matched = {c: r for r, c in matches}
    fragments = _fragments(t_les, p_fnd, p_matched, overlap)

    row = {"study": str(truth.path), "prediction": str(pred.path) if pred else None,
           "kind": truth.kind, "match_method": method, "targets": 0, "detected": 0,
           "false_positives": 0, "distractors": 0, "distractors_mislabelled": 0}
    roles = [_role(les) for les in t_les]
    for r, les in enumerate(t_les):
        col = t_to_p.get(r)
        fnd = p_fnd[col] if col is not None else None
        merged = False
        if fnd is None and overlap is not None and overlap.shape[1] and overlap[r].max() > 0:
            # Merged: this lesion's voxels are inside a finding matched to a
            # neighbouring lesion (two plaques fused by the threshold): found,
            # but its measurements are the fused finding's, so not scored.
            col = int(np.argmax(overlap[r]))
            fnd = p_fnd[col]
            row["merged"] = row.get("merged", 0) + 1
            merged = True
        expected_level = _expected_level(r, col, t_les, overlap, touching)
        if roles[r] == "calibration":
            tally.inserts.add("calibration inserts", fnd is not None)
            if fnd is not None:
                _add_errors(les, fnd, tally)
            continue
        if roles[r] == "distractor":
            row["distractors"] += 1
            tally.distractors += 1
            if fnd is not None and fnd["region"] != _OTHER:
                row["distractors_mislabelled"] += 1
                tally.distractors_mislabelled += 1
            continue
        row["targets"] += 1
        row["detected"] += int(fnd is not None)
        tally.sens_region.add(les["region"], fnd is not None)
        if _truth_diameter_mm(les) >= TARGET_MIN_DIAMETER_MM:
            tally.sens_region_3mm.add(les["region"], fnd is not None)
        tally.sens_size.add(_size_bin(les.get("volume_mm3")), fnd is not None)
        tally.sens_right_region.add(les["region"], fnd is not None and fnd["region"] == les["region"])
        tally.sens_kind.add(str(les.get("kind") or "unknown"), fnd is not None)
        _confuse(tally, les["region"], fnd["region"] if fnd is not None else MISSED)
        for error in _lesion_errors(les, fnd, expected_level):
            tally.error_cases.append(_error_case(truth, error, les, fnd, expected_level))
        if fnd is None:
            continue
        tally.region_acc.add(les["region"], fnd["region"] == les["region"])
        tally.side_acc.add(les["region"], fnd.get("side") == les.get("side"))
        if les.get("level") is not None:
            dist = level_distance(fnd.get("level"), les["level"])
            tally.level_exact.add(les["region"], fnd.get("level") == expected_level)
            tally.level_exact_strict.add(les["region"], fnd.get("level") == les["level"])
            tally.level_within1.add(les["region"], dist is not None and dist <= 1)
        if not merged:
            _add_errors(les, fnd, tally)
    row["fragments"] = len(fragments)
    tally.fragments += len(fragments)
    for c, fnd in enumerate(p_fnd):
        if fnd["region"] == _OTHER:
            continue
        owner = p_matched.get(c, fragments.get(c))
        if owner is None:
            tally.fp_unmatched += 1
        elif roles[owner] == "distractor":
            tally.fp_on_distractor += 1
        else:
            continue
        row["false_positives"] += 1
        tally.fp_by_region[fnd["region"]] = tally.fp_by_region.get(fnd["region"], 0) + 1
        tally.error_cases.append(_error_case(truth, "false_positive", None, fnd))
    tally.false_positives += row["false_positives"]
    return row


MISSED = "missed"  # the predicted "region" of an undetected target in the confusion table


def _confuse(tally: _Tally, truth_region: str, predicted: str) -> None:
    row = tally.region_confusion.setdefault(truth_region, {})
    row[predicted] = row.get(predicted, 0) + 1


def _expected_level(r: int, col: int | None, truth: Sequence[Mapping[str, Any]], overlap: np.ndarray | None,
                    touching: set[frozenset[int]]) -> str | None:
    """The level truth row ``r`` is scored against when finding ``col`` reports it.

    Its own level, or -- when the finding also covers truth lesions that touch it in
    the truth mask, directly or through one another (one connected calcification) --
    the union of all their spans (see the module docstring).
    """
    own = truth[r].get("level")
    if own is None or col is None or overlap is None or not touching:
        return own
    covered = set(np.flatnonzero(overlap[:, col] > 0).tolist())
    group, todo = {r}, [r]
    while todo:
        a = todo.pop()
        for b in covered - group:
            if frozenset((a, b)) in touching:
                group.add(b)
                todo.append(b)
    return format_level_span([truth[n].get("level") for n in sorted(group)]) or own


def _lesion_errors(les: Mapping[str, Any], fnd: Mapping[str, Any] | None,
                   expected_level: str | None = None) -> list[str]:
    """What is wrong with one target's prediction: ``missed``, or any of region / side / level
    (against ``expected_level``, the merge-aware level, when given)."""
    if fnd is None:
        return ["missed"]
    out = []
    if fnd["region"] != les["region"]:
        out.append("region")
    if fnd.get("side") != les.get("side"):
        out.append("side")
    level = expected_level if expected_level is not None else les.get("level")
    if level is not None and fnd.get("level") != level:
        out.append("level")
    return out


def _error_case(truth: _TruthStudy, error: str, les: Mapping[str, Any] | None,
                fnd: Mapping[str, Any] | None, expected_level: str | None = None) -> dict[str, Any]:
    """One row of the error list: enough to find the lesion again and see what went wrong."""
    case: dict[str, Any] = {"study": Path(truth.path).name, "error": error}
    if les is not None:
        case["truth"] = {k: les.get(k) for k in ("id", "region", "kind", "side", "level", "segment")}
        if expected_level is not None and expected_level != les.get("level"):
            # fused with touching truth lesions: scored against their union
            case["truth"]["level_fused"] = expected_level
        case["truth"]["diameter_mm"] = _truth_diameter_mm(les)
        case["truth"]["centroid_lps_mm"] = les.get("centroid_lps_mm")
    if fnd is not None:
        case["predicted"] = {k: fnd.get(k) for k in ("id", "region", "kind", "side", "level", "segment",
                                                     "peak_hu", "centroid_lps_mm")}
    return case


def _fragments(truth: Sequence[Mapping[str, Any]], pred: Sequence[Mapping[str, Any]],
               matched: Mapping[int, int], overlap: np.ndarray | None) -> dict[int, int]:
    """Unmatched predictions that are pieces of a truth lesion: prediction -> truth index.

    A cluster of nephrocalcinosis foci or a plaque broken by noise is one truth
    lesion but several components; the extra pieces are not false positives.
    A piece shares voxels with the truth lesion, or its centroid lies in the
    truth lesion's bounding box grown by ``FRAGMENT_MARGIN_MM`` (the truth masks
    are unblurred, so a blurred focus of a cluster can miss them), or -- without
    masks -- within the truth lesion's matching tolerance.
    """
    out: dict[int, int] = {}
    boxes = [_truth_box_mm(t) for t in truth]
    for c in range(len(pred)):
        if c in matched:
            continue
        if overlap is not None and overlap.shape[0] and overlap[:, c].max() > 0:
            out[c] = int(np.argmax(overlap[:, c]))
            continue
        xyz = np.asarray(pred[c]["centroid_lps_mm"], dtype=np.float64)
        inside = [r for r, b in enumerate(boxes)
                  if b is not None and np.all(xyz >= b[0] - FRAGMENT_MARGIN_MM) and np.all(xyz <= b[1] + FRAGMENT_MARGIN_MM)]
        if inside:
            out[c] = inside[0]
            continue
        if overlap is None:
            hits = _match_by_centroid(truth, [pred[c]])
            if hits:
                out[c] = hits[0][0]
    return out


def _truth_box_mm(les: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The truth lesion's LPS bounding box (``bbox.mm`` = x0, y0, z0, x1, y1, z1), if given."""
    box = les.get("bbox")
    mm = box.get("mm") if isinstance(box, Mapping) else None
    if not isinstance(mm, (list, tuple)) or len(mm) != 6:
        return None
    arr = np.asarray(mm, dtype=np.float64)
    return np.minimum(arr[:3], arr[3:]), np.maximum(arr[:3], arr[3:])


def _role(les: Mapping[str, Any]) -> str:
    """``"target"`` (region not other), ``"calibration"`` (a QRM insert) or ``"distractor"``."""
    if les["region"] != _OTHER:
        return "target"
    return "calibration" if les.get("kind") in CALIBRATION_KINDS else "distractor"


def _add_errors(les: Mapping[str, Any], fnd: Mapping[str, Any], tally: _Tally) -> None:
    for name, t_key, p_key in _MEASURES:
        t, p = les.get(t_key), fnd.get(p_key)
        if isinstance(t, (int, float)) and isinstance(p, (int, float)) and t > 0:
            tally.errors[name].append(100.0 * (p - t) / t)


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class EvaluationReport:
    """Aggregated metrics over all evaluated studies (see the module docstring)."""

    n_studies: int
    n_scans_scored: int
    sensitivity_by_region: dict[str, dict[str, Any]]
    sensitivity_by_region_3mm: dict[str, dict[str, Any]]
    sensitivity_3mm: float | None
    sensitivity_by_size: dict[str, dict[str, Any]]
    sensitivity_by_kind: dict[str, dict[str, Any]]
    sensitivity_overall: float | None
    sensitivity_right_region: float | None
    false_positives: int
    false_positives_per_scan: float | None
    false_positives_unmatched: int
    false_positives_on_distractors: int
    fragments: int
    false_positives_by_region: dict[str, int]
    region_accuracy: float | None
    side_accuracy: float | None
    side_errors: int
    level_accuracy_exact: float | None
    level_accuracy_within_one: float | None
    distractors: int
    distractors_mislabelled: int
    distractor_mislabel_rate: float | None
    measurement_error_pct: dict[str, dict[str, Any]]
    calibration_inserts_detected: dict[str, Any] | None
    aac24: dict[str, Any] | None
    vertebrae: dict[str, Any] | None
    per_study: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...] = ()
    # truth region -> predicted region (or "missed") -> count, over all targets
    region_confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    # one row per missed target, wrong region / side / level, and false positive
    errors: tuple[dict[str, Any], ...] = ()
    # every target against its own truth level, fused or not (level_accuracy_exact is merge-aware)
    level_accuracy_exact_strict: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (``schema`` ``calcdetect-evaluation/1``)."""
        out: dict[str, Any] = {"schema": "calcdetect-evaluation/1"}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def _lesion_rows(self) -> list[tuple[str, str]]:
        rows = [("sensitivity, all targets", _fmt(self.sensitivity_overall)),
                ("  found and in the right region", _fmt(self.sensitivity_right_region))]
        for name, d in self.sensitivity_by_region.items():
            rows.append((f"  sensitivity {name}", _fmt_count(d)))
        rows.append((f"sensitivity, targets >= {TARGET_MIN_DIAMETER_MM:g} mm", _fmt(self.sensitivity_3mm)))
        for name, d in self.sensitivity_by_region_3mm.items():
            rows.append((f"  >= {TARGET_MIN_DIAMETER_MM:g} mm {name}", _fmt_count(d)))
        for name, d in self.sensitivity_by_size.items():
            rows.append((f"  sensitivity {name}", _fmt_count(d)))
        for name, d in self.sensitivity_by_kind.items():
            rows.append((f"  sensitivity {name}", _fmt_count(d)))
        rows += [
            ("false positives per scan", _fmt(self.false_positives_per_scan, pct=False)),
            ("  unmatched / on distractors",
             f"{self.false_positives_unmatched} / {self.false_positives_on_distractors}"),
            ("pieces of a found lesion (not FP)", str(self.fragments)),
            ("region accuracy", _fmt(self.region_accuracy)),
            ("side accuracy (errors)", f"{_fmt(self.side_accuracy)} ({self.side_errors})"),
            ("level accuracy exact", _fmt(self.level_accuracy_exact)),
            ("  strict (fused lesions each at own level)", _fmt(self.level_accuracy_exact_strict)),
            ("level accuracy within one", _fmt(self.level_accuracy_within_one)),
            ("distractors mislabelled",
             f"{self.distractors_mislabelled}/{self.distractors} ({_fmt(self.distractor_mislabel_rate)})"),
        ]
        if self.calibration_inserts_detected is not None:
            rows.append(("calibration inserts detected", _fmt_count(self.calibration_inserts_detected)))
        return rows

    def _error_lines(self) -> list[str]:
        """Where the errors are: the region confusion, and error counts by kind and truth region."""
        if not self.region_confusion:
            return []
        lines = ["", "region confusion (truth -> predicted: count):"]
        for truth_region, row in self.region_confusion.items():
            cells = ", ".join(f"{pred} {n}" for pred, n in sorted(row.items(), key=lambda kv: -kv[1]))
            lines.append(f"  {truth_region}: {cells}")
        counts: dict[str, dict[str, int]] = {}
        for case in self.errors:
            where = (case.get("truth") or case.get("predicted") or {}).get("region") or "?"
            by_region = counts.setdefault(case["error"], {})
            by_region[where] = by_region.get(where, 0) + 1
        if counts:
            lines.append("errors by kind (truth region; false positives: predicted region):")
            for kind in ("missed", "region", "side", "level", "false_positive"):
                if kind in counts:
                    cells = ", ".join(f"{r} {n}" for r, n in sorted(counts[kind].items(), key=lambda kv: -kv[1]))
                    lines.append(f"  {kind} ({sum(counts[kind].values())}): {cells}")
        return lines

    def write_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` atomically to ``path`` (the CLI's ``--json FILE``)."""
        return atomic_write_json(path, self.to_dict())

    def table(self) -> str:
        """A plain-text table of the headline metrics (lesion rows only when CT was scored)."""
        rows: list[tuple[str, str]] = [
            ("studies (scored for lesions)", f"{self.n_studies} ({self.n_scans_scored})"),
        ]
        if self.n_scans_scored:
            rows += self._lesion_rows()
        for name, d in self.measurement_error_pct.items():
            if d["n"]:
                rows.append((f"{name} error % (signed / abs, n)",
                             f"{d['mean_signed']:+.1f} / {d['mean_absolute']:.1f}, n={d['n']}"))
        if self.aac24 is not None:
            a = self.aac24
            icc = "n/a" if a["icc_2_1"] is None else f"{a['icc_2_1']:.3f}"
            rows += [
                ("AAC-24 studies", str(a["n"])),
                ("AAC-24 ICC(2,1)", icc),
                ("AAC-24 MAE", f"{a['mae']:.2f}"),
                ("AAC-24 group agreement", _fmt(a["group_agreement"])),
                ("AAC-24 wall grades exact (n)",
                 f"{_fmt(a['wall_grade_exact_agreement'])} ({a['wall_grades_n']})"),
            ]
        if self.vertebrae is not None:
            v = self.vertebrae
            err = "n/a" if v["corner_error_mm_mean"] is None else f"{v['corner_error_mm_mean']:.1f}"
            rows += [
                ("vertebral bodies found", f"{v['found']}/{v['truth_bodies']} ({_fmt(v['detection_rate'])})"),
                ("vertebral level accuracy", _fmt(v["level_accuracy"])),
                ("vertebral corner error mm (mean)", err),
            ]
        width = max(len(r[0]) for r in rows)
        lines = [f"{'metric'.ljust(width)}  value", f"{'-' * width}  {'-' * 20}"]
        lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
        lines += self._error_lines()
        if self.warnings:
            lines += ["", "warnings:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)


def _fmt(value: float | None, pct: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:.2f}"


def _fmt_count(d: Mapping[str, Any] | None) -> str:
    if d is None:
        return "n/a"
    return f"{_fmt(d['rate'])} ({d['hits']}/{d['total']})"


def _pooled(counter: _Counter) -> float | None:
    return _rate(sum(counter.hits.values()), sum(counter.total.values()))


def _error_summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean_signed": None, "mean_absolute": None}
    arr = np.asarray(values)
    return {"n": int(arr.size), "mean_signed": float(arr.mean()), "mean_absolute": float(np.abs(arr).mean())}


def _wall_pairs(truth: Mapping[str, Any], pred: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(truth, predicted) wall grades for every segment and wall both sides report."""
    out = []
    t_seg, p_seg = truth.get("segments") or {}, pred.get("segments") or {}
    for level, walls in t_seg.items():
        other = p_seg.get(level)
        if not isinstance(walls, dict) or not isinstance(other, dict):
            continue
        for wall in ("anterior", "posterior"):
            a, b = walls.get(wall), other.get(wall)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                out.append((int(a), int(b)))
    return out


# Predicted corners_rc order (calcdetect.radiograph): SA, SP, IP, IA.
_CORNER_ORDER = ("anterior_superior", "posterior_superior", "posterior_inferior", "anterior_inferior")
# A predicted body matches a truth body when their corner centroids are this close.
VERTEBRA_MATCH_MM = 15.0


def _score_vertebrae(truth: _TruthStudy, pred: _PredSeries | None, tally: _Tally, row: dict[str, Any]) -> None:
    """Match predicted vertebral bodies to the truth's by corner centroid; add corner errors.

    Distances are in patient-plane mm (pixels x imager spacing / magnification).
    A matched body's level counts as correct when the predicted level equals the
    truth's; its corner error is the mean distance of the four corresponding corners.
    """
    if not truth.vertebrae or truth.patient_mm_per_px is None:
        return
    names = sorted(truth.vertebrae)
    t_corners = np.array([[truth.vertebrae[n]["corners_px"][c] for c in _CORNER_ORDER] for n in names], float)
    tally.vert_total += len(names)
    row["vertebrae_truth"] = len(names)
    preds = [v for v in (pred.vertebrae if pred else ()) if np.shape(v.get("corners_rc")) == (4, 2)]
    if not preds:
        row["vertebrae_found"] = 0
        return
    p_corners = np.array([v["corners_rc"] for v in preds], float)
    scale = truth.patient_mm_per_px
    dist = np.linalg.norm(t_corners.mean(1)[:, None] - p_corners.mean(1)[None], axis=-1) * scale
    rows, cols = linear_sum_assignment(np.where(dist <= VERTEBRA_MATCH_MM, dist, 1e6))
    found = 0
    for r, c in zip(rows, cols):
        if dist[r, c] > VERTEBRA_MATCH_MM:
            continue
        found += 1
        tally.vert_level_correct += int(preds[c].get("level") == names[r])
        err = np.linalg.norm(t_corners[r] - p_corners[c], axis=-1).mean() * scale
        tally.vert_corner_errors_mm.append(float(err))
    tally.vert_found += found
    row["vertebrae_found"] = found


def _vertebra_summary(tally: _Tally) -> dict[str, Any] | None:
    if not tally.vert_total:
        return None
    errors = np.asarray(tally.vert_corner_errors_mm)
    return {
        "truth_bodies": tally.vert_total,
        "found": tally.vert_found,
        "detection_rate": tally.vert_found / tally.vert_total,
        "level_accuracy": _rate(tally.vert_level_correct, tally.vert_found),
        "corner_error_mm_mean": float(errors.mean()) if errors.size else None,
        "corner_error_mm_median": float(np.median(errors)) if errors.size else None,
        "match_distance_mm": VERTEBRA_MATCH_MM,
    }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _aac24_summary(
    truth: list[float], pred: list[float], walls: list[tuple[int, int]]
) -> dict[str, Any] | None:
    if not truth:
        return None
    t, p = np.asarray(truth), np.asarray(pred)
    agree = [aac24_group(a) == aac24_group(b) for a, b in zip(t, p)]
    w = np.asarray(walls, dtype=float).reshape(-1, 2)
    return {
        "n": int(t.size),
        "icc_2_1": icc_2_1(np.stack([t, p], axis=1)),
        "mae": float(np.abs(t - p).mean()),
        "mean_signed_error": float((p - t).mean()),
        "group_agreement": float(np.mean(agree)),
        # JSON has no infinity: an open end is null.
        "groups": {label: [_finite_or_none(lo), _finite_or_none(hi)] for label, lo, hi in AAC24_GROUPS},
        "wall_grades_n": int(len(w)),
        "wall_grade_exact_agreement": float(np.mean(w[:, 0] == w[:, 1])) if len(w) else None,
        "wall_grade_mae": float(np.abs(w[:, 0] - w[:, 1]).mean()) if len(w) else None,
    }


def evaluate(pred_dir: Path, truth_dir: Path) -> EvaluationReport:
    """Evaluate a ``calcdetect run`` output against phantom truth.

    Parameters
    ----------
    pred_dir : Path
        A run output folder (series subfolders with ``findings.json``) or one
        series folder.
    truth_dir : Path
        A phantom study folder (with ``truth/truth.json``) or a folder of them.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    calcdetect.errors.InputError
        When a folder, ``truth.json`` or ``findings.json`` is missing or malformed;
        the message names the file and the problem.
    """
    pred_dir, truth_dir = Path(pred_dir), Path(truth_dir)
    truths = [_load_truth(p) for p in _find_truth_studies(truth_dir)]
    preds = [_load_prediction(p) for p in _find_pred_series(pred_dir)]
    warnings: list[str] = []
    tally = _Tally()
    for truth, pred in _pair(truths, preds, warnings):
        if truth.kind == "radiograph":
            row = {"study": str(truth.path), "prediction": str(pred.path) if pred else None,
                   "kind": truth.kind}
            if truth.aac24 is None:
                warnings.append(f"{truth.path}: radiograph truth has no aac24; AAC-24 not scored")
            elif pred is None or pred.aac24 is None:
                warnings.append(f"{truth.path}: no predicted aac24; AAC-24 not scored for this study")
            else:
                tally.aac_truth.append(float(truth.aac24["total"]))
                tally.aac_pred.append(float(pred.aac24["total"]))
                tally.aac_wall_pairs.extend(_wall_pairs(truth.aac24, pred.aac24))
                row["aac24_truth"], row["aac24_pred"] = truth.aac24["total"], pred.aac24["total"]
            _score_vertebrae(truth, pred, tally, row)
            tally.per_study.append(row)
            continue
        tally.n_scans += 1
        tally.per_study.append(_score_lesions(truth, pred, tally, warnings))

    side_total = sum(tally.side_acc.total.values())
    side_hits = sum(tally.side_acc.hits.values())
    return EvaluationReport(
        n_studies=len(truths),
        n_scans_scored=tally.n_scans,
        sensitivity_by_region=tally.sens_region.to_dict(_REGIONS),
        sensitivity_by_region_3mm=tally.sens_region_3mm.to_dict(_REGIONS),
        sensitivity_3mm=_pooled(tally.sens_region_3mm),
        sensitivity_by_size=tally.sens_size.to_dict([label for label, _, _ in SIZE_BINS_MM3]),
        sensitivity_by_kind=tally.sens_kind.to_dict(),
        sensitivity_overall=_pooled(tally.sens_region),
        sensitivity_right_region=_pooled(tally.sens_right_region),
        false_positives=tally.false_positives,
        false_positives_per_scan=_rate(tally.false_positives, tally.n_scans),
        false_positives_unmatched=tally.fp_unmatched,
        false_positives_on_distractors=tally.fp_on_distractor,
        fragments=tally.fragments,
        false_positives_by_region={r: tally.fp_by_region[r] for r in _REGIONS if r in tally.fp_by_region},
        region_accuracy=_pooled(tally.region_acc),
        side_accuracy=_rate(side_hits, side_total),
        side_errors=side_total - side_hits,
        level_accuracy_exact=_pooled(tally.level_exact),
        level_accuracy_within_one=_pooled(tally.level_within1),
        level_accuracy_exact_strict=_pooled(tally.level_exact_strict),
        distractors=tally.distractors,
        distractors_mislabelled=tally.distractors_mislabelled,
        distractor_mislabel_rate=_rate(tally.distractors_mislabelled, tally.distractors),
        measurement_error_pct={name: _error_summary(v) for name, v in tally.errors.items()},
        calibration_inserts_detected=tally.inserts.to_dict().get("calibration inserts"),
        aac24=_aac24_summary(tally.aac_truth, tally.aac_pred, tally.aac_wall_pairs),
        vertebrae=_vertebra_summary(tally),
        per_study=tuple(tally.per_study),
        warnings=tuple(warnings),
        region_confusion={r: dict(sorted(tally.region_confusion[r].items()))
                          for r in _REGIONS if r in tally.region_confusion},
        errors=tuple(tally.error_cases),
    )
