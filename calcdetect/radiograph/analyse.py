"""Lateral lumbar radiograph: vertebrae, aortic zone, calcification, AAC-24, findings.

Entry points: :func:`check_lateral_spine` (refuse what this stage cannot read) and
:func:`analyse_radiograph` (everything else; pure, no I/O).

Decisions about how 2-D measurements fit the 3-D ``Lesion`` / ``Finding`` types
(documented here so the findings.json reader knows):

* one ``Finding`` per calcified aortic segment (L1..L4 with any calcium on either
  wall); ``region`` ``"aorta"``, ``level`` the vertebra, ``kind`` atherosclerotic,
  ``segment`` which wall(s) (``"anterior wall"``, ``"posterior wall"``,
  ``"anterior and posterior walls"``);
* ``Lesion.max_diameter_mm`` = calcified length along the spine within the segment
  (longest of the two walls, union of deposits), in mm at the image's spacing;
* ``Lesion.volume_mm3``, ``agatston`` and ``mass_mg`` are ``0.0``: a projection has
  no volume and no HU. The projected calcified **area** is in
  ``RadiographAnalysis.walls[*].area_mm2`` and in :meth:`RadiographAnalysis.summary`;
* ``Lesion.axes_mm`` = (calcified length, mean deposit thickness, 0);
* ``Lesion.centroid_lps_mm`` = ``(nan, nan, nan)`` (written as ``null`` in JSON): a
  lateral projection has no left-right position; the pixel centroid is in
  ``centroid_kji`` as ``(0, row, col)`` and ``bbox`` is ``(0, r0, c0, 1, r1, c1)``;
* ``peak_hu`` / ``mean_hu`` are ``nan`` (no HU on a radiograph).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from calcdetect.device import Device
from calcdetect.errors import UnsupportedSeriesError
from calcdetect.radiograph.aac import (
    AAC_LEVELS,
    KAUPPILA_BOUNDARIES,
    SEVERITY_GROUPING,
    WALL_SPLIT_GAP_MM as _AAC_WALL_SPLIT_GAP_MM,
    WallExtent,
    aac8_grade,
    detect_calcification,
    estimate_midline,
    score_rows,
    wall_of_pixels,
    severity_group,
)
from calcdetect.radiograph.vertebrae import (
    LEVELS_T12_L5,
    SIDE_ASSUMED,
    SpineDetection,
    find_vertebrae,
    outline_defect,
)
from calcdetect.types import Finding, Kind, Lesion, Morphology, Radiograph

__all__ = [
    "VertebraResult",
    "RadiographAnalysis",
    "check_lateral_spine",
    "analyse_radiograph",
    "radiograph_report_lines",
    "MIN_FIELD_MM",
    "AorticZone",
    "aortic_zone",
    "outline_defects",
    "grades_to_check",
]

#: The smallest field of view (mm, along the spine) that can show L1-L4 and the sacrum.
MIN_FIELD_MM = 150.0
#: Plausibility of a detected lumbar column (see ``_implausible``).
MIN_BODY_HEIGHT_MM = 19.0
MIN_BODY_DEPTH_MM = 20.0
MAX_HEIGHT_CV = 0.3
#: The aortic zone: from this far in front of the anterior vertebral line ...
ZONE_MARGIN_MM = 2.0
#: ... to one vertebral depth in front of it, but at least this (an ectatic aorta).
ZONE_MIN_DEPTH_MM = 32.0
#: A detected deposit's row splits into separately walled runs across a calcium-free
#: gap wider than this (``wall_of_pixels``); infinite: one wall per deposit and row.
#: 3 mm lowered the AAC-24 MAE by ~0.05 with both calcium nets on development seeds
#: 80-99 and 500-539 (a lumen is >= 10 mm wide; a broad plaque has no such gap).
#: Defined in ``aac`` (the evaluation's image-space scorer uses it too); rebinding
#: this module's name changes the pipeline only.
WALL_SPLIT_GAP_MM = _AAC_WALL_SPLIT_GAP_MM

# Body parts / descriptions that are certainly not a lumbar spine (BodyPartExamined
# defined terms plus common free text). Matched as whole words, upper case.
_NOT_SPINE = {
    "HIP", "PELVIS", "CHEST", "THORAX", "HAND", "WRIST", "FINGER", "EXTREMITY", "KNEE", "FOOT",
    "ANKLE", "ELBOW", "SHOULDER", "SKULL", "HEAD", "BREAST", "ARM", "LEG", "FEMUR", "TIBIA",
    "HUMERUS", "CSPINE", "NECK", "JAW", "TMJ", "LUNG", "CLAVICLE", "HEEL", "TOE", "FOREARM",
}  # fmt: skip
_SPINE = {"LSPINE", "TLSPINE", "SPINE", "LUMBAR", "ABDOMEN", "WHOLESPINE", "LSSPINE", "TSPINE"}


@dataclass(frozen=True)
class VertebraResult:
    """One vertebral body: level (``None`` when not anchored), corners, confidence.

    ``corners_rc``: superior-anterior, superior-posterior, inferior-posterior,
    inferior-anterior, each ``(row, col)`` in image pixels.
    """

    level: str | None
    corners_rc: tuple[tuple[float, float], ...]
    confidence: float
    #: why these corners are no body outline (:func:`outline_defects`); ``None`` when they may be one
    outline_defect: str | None = None


@dataclass(frozen=True)
class RadiographAnalysis:
    """Everything the radiograph stage found; JSON view in :meth:`summary`."""

    vertebrae: tuple[VertebraResult, ...]
    aortic_zone: np.ndarray  # (N, 2) polygon (row, col) in image pixels; empty when not scored
    calcification_mask: np.ndarray  # bool, image shape
    aac24: dict[str, Any] | None  # {"total", "segments": {L1: {anterior, posterior}}, "calcified_fraction"}
    aac8: dict[str, Any] | None  # {"total", "walls": {anterior, posterior}}
    severity: str | None  # "low" | "moderate" | "high" (see severity_grouping)
    severity_grouping: str
    findings: tuple[Finding, ...]
    walls: tuple[WallExtent, ...]
    anterior: str  # which side of the image the patient faces
    level_method: str
    spacing_mm: tuple[float, float]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    #: What made the reading: ``{"vertebrae": ..., "calcium": ...}``, each a weights file's
    #: name and SHA-256 or ``"rules"`` (``model_provenance``).
    models: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary (for findings.json ``extra``)."""
        return {
            "aac24": self.aac24,
            "aac8": self.aac8,
            "severity": self.severity,
            "severity_grouping": self.severity_grouping,
            "level_method": self.level_method,
            "anterior_side": self.anterior,
            "vertebrae": [
                {"level": v.level, "corners_rc": [list(map(float, c)) for c in v.corners_rc],
                 "confidence": round(v.confidence, 3), "outline_defect": v.outline_defect}
                for v in self.vertebrae
            ],
            "walls": [
                {"level": w.level, "wall": w.wall, "grade": w.grade, "fraction": round(w.fraction, 3),
                 "length_mm": round(w.length_mm, 1), "area_mm2": round(w.area_mm2, 1)}
                for w in self.walls
            ],
            "calcified_area_mm2": round(
                float(self.calcification_mask.sum()) * self.spacing_mm[0] * self.spacing_mm[1], 1
            ),
            "warnings": list(self.warnings),
            "models": self.models,
        }


def _words(text: str | None) -> set[str]:
    return set(re.findall(r"[A-Z]+", (text or "").upper()))


def check_lateral_spine(
    radiograph: Radiograph, *, body_part: str | None = None, need_spacing: bool = True
) -> None:
    """Refuse radiographs this stage cannot score, with a message that says why.

    Checks, in order: the view (AP / PA refused), the body part (``body_part``,
    e.g. DICOM BodyPartExamined, or one carried on ``radiograph.info``) / description
    (hip, chest, extremities ... refused), the pixel spacing (needed for sizes
    and for the anatomical priors in mm) and the field of view (too small to show
    L1-L4). A ``"unknown"`` view is allowed: the content check in
    :func:`analyse_radiograph` refuses images without a spine column.

    Raises
    ------
    UnsupportedSeriesError
    """
    view = radiograph.view
    if view in ("AP", "PA"):
        raise UnsupportedSeriesError(
            f"this radiograph is an {view} view; aortic calcification (AAC-24) is scored on a "
            "LATERAL lumbar spine radiograph - provide the lateral view"
        )
    info = radiograph.info
    # BodyPartExamined: passed by the caller (see io_image.dicom_body_part) until
    # AcquisitionInfo carries it
    body = body_part or getattr(info, "body_part_examined", None) or getattr(info, "body_part", None)
    words = _words(body) | _words(info.series_description)
    bad = sorted(words & _NOT_SPINE)
    if bad and not (_words(body) & _SPINE):
        raise UnsupportedSeriesError(
            f"this radiograph shows {'/'.join(bad).lower()} (body part / description "
            f"{(body or info.series_description)!r}), not the lumbar spine; AAC-24 needs a lateral "
            "lumbar spine radiograph"
        )
    if radiograph.pixel_spacing is None:
        if need_spacing:
            raise UnsupportedSeriesError(
                "this radiograph has no pixel spacing (no PixelSpacing / ImagerPixelSpacing in the "
                "header), so vertebrae and calcified lengths cannot be measured in mm; for a PNG / "
                "JPEG / TIFF give the spacing on the command line (e.g. --pixel-spacing 0.15)"
            )
        return
    sr, sc = radiograph.pixel_spacing
    rows, cols = radiograph.array.shape
    if rows * sr < MIN_FIELD_MM or cols * sc < 0.4 * MIN_FIELD_MM:
        raise UnsupportedSeriesError(
            f"the field of view is {rows * sr:.0f} x {cols * sc:.0f} mm; a lateral lumbar spine "
            f"radiograph showing L1-L4 needs at least {MIN_FIELD_MM:.0f} mm along the spine - check "
            "the pixel spacing or provide the full lateral lumbar view"
        )


def _strip_mask_to_image(det: SpineDetection, calc: np.ndarray, shape: tuple[int, int],
                         spacing: tuple[float, float]) -> np.ndarray:
    """Paint strip pixels into an image mask (sub-sampled so that no holes appear)."""
    out = np.zeros(shape, bool)
    s, t = np.nonzero(calc)
    if s.size == 0:
        return out
    step_px = det.strip.step_mm / min(spacing)
    k = max(1, int(math.ceil(step_px)) + 1)
    offs = (np.arange(k) + 0.5) / k - 0.5
    ds, dt = np.meshgrid(offs, offs, indexing="ij")
    ss = (s[:, None] + ds.ravel()[None, :]).ravel()
    tt = (t[:, None] + dt.ravel()[None, :]).ravel()
    rc = np.rint(det.strip.to_image(ss, tt)).astype(int)
    ok = (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])
    out[rc[ok, 0], rc[ok, 1]] = True
    return out


def _finding(level: str, walls: list[WallExtent], mask: np.ndarray, index: int,
             confidence: float) -> Finding | None:
    rr, cc = np.nonzero(mask)
    if rr.size == 0:
        return None
    r0, r1, c0, c1 = int(rr.min()), int(rr.max()) + 1, int(cc.min()), int(cc.max()) + 1
    sub = mask[r0:r1, c0:c1][None]
    hit = [w for w in walls if w.grade > 0]
    length = max(w.length_mm for w in hit)
    area = sum(w.area_mm2 for w in hit)
    thickness = area / max(sum(w.length_mm for w in hit), 1e-6)
    which = " and ".join(w.wall for w in hit)
    lesion = Lesion(
        label=index,
        bbox=(0, r0, c0, 1, r1, c1),
        mask=sub,
        voxel_count=int(rr.size),
        volume_mm3=0.0,
        agatston=0.0,
        mass_mg=0.0,
        peak_hu=float("nan"),
        mean_hu=float("nan"),
        centroid_lps_mm=(float("nan"),) * 3,
        centroid_kji=(0.0, float(rr.mean()), float(cc.mean())),
        max_diameter_mm=float(length),
        axes_mm=(float(length), float(thickness), 0.0),
        elongation=float(1.0 - min(1.0, thickness / max(length, 1e-6))),
    )
    return Finding(
        id=f"R{index:03d}",
        lesion=lesion,
        region="aorta",
        side=None,
        level=level,
        kind=Kind.ATHEROSCLEROTIC,
        morphology=Morphology.LINEAR if thickness < 3.0 else Morphology.PLAQUE,
        confidence=float(confidence),
        segment=f"{which} wall{'s' if len(hit) > 1 else ''}",
        structure="aorta",
    )


SIDE_BY_NET = ("the facing side was decided by the vertebra net (no clear posterior elements or body outline); "
               "check the anterior side on the overlay")


def apply_vertebra_net(det: SpineDetection, model: Any, image: np.ndarray, spacing: tuple[float, float]
                       ) -> SpineDetection:
    """The rules' detection with the vertebra net's bodies and names (the net first, the
    rules as fallback).

    The net looks at the patient facing the side the rules saw, and the other way too
    when the rules could not tell or it did not name L1-L4 that way (phantom 699: the
    rules took the posterior elements for the front); the side where it names more,
    and more certain, bodies wins. Its names replace the rules' count and its L1-L5
    the rules' bodies of those levels (:func:`~calcdetect.radiograph.vertebra_net.name_levels`,
    :func:`~calcdetect.radiograph.vertebra_net.put_net_bodies`). When the rules' chain
    still lacks L1-L4 (it ran on the posterior elements, or faced the other way), or its
    strip cuts the net's bodies short (its path left the column,
    :func:`~calcdetect.radiograph.vertebra_net.strip_shortens_bodies`), and the net named
    them, the detection is built from the net's bodies alone
    (:func:`~calcdetect.radiograph.vertebra_net.detection_from_net`).
    """
    from calcdetect.radiograph.vertebra_net import (
        bodies_facing,
        complete,
        detection_from_net,
        name_levels,
        put_net_bodies,
        strip_shortens_bodies,
    )

    found = {det.anterior: bodies_facing(model, image, spacing, det.anterior)}
    if not det.side_known or not complete(found[det.anterior]):
        other = "left" if det.anterior == "right" else "right"
        found[other] = bodies_facing(model, image, spacing, other)
    side = max(found, key=lambda sd: sum(b.probability for b in found[sd]))
    bodies = found[side]
    if side == det.anterior:
        named = put_net_bodies(name_levels(det, bodies, spacing), bodies, spacing)
        # a strip that left the column cuts the net's bodies short: rebuild it through them
        follows = not (complete(bodies) and strip_shortens_bodies(named, spacing))
        if follows and named.anchored and all(lv in named.by_level() for lv in AAC_LEVELS):
            if named.side_known or not complete(bodies):
                return named
            told = tuple(w for w in named.warnings if w != SIDE_ASSUMED) + (SIDE_BY_NET,)
            return replace(named, side_known=True, warnings=told)
    from_net = detection_from_net(image, spacing, bodies, side)
    return from_net if from_net is not None else det


def detect_spine(image: np.ndarray, spacing: tuple[float, float], vertebra_model: Any) -> SpineDetection:
    """The vertebral bodies the analysis works on: the rules' detection, with the vertebra
    net applied when one is given (:func:`apply_vertebra_net`). Training the calcium net
    uses the same, so its aortic zones are the ones it will see."""
    det = find_vertebrae(image, spacing)
    return det if vertebra_model is None else apply_vertebra_net(det, vertebra_model, image, spacing)


def _implausible(det: SpineDetection) -> str | None:
    """Why the detected column is not a lumbar spine (``None`` when it may be one).

    Adult lumbar bodies are ~22-32 mm high and ~30-50 mm deep with similar heights
    from level to level; a hip, pelvis or chest picked up by the rhythm detector
    gives short, irregular "bodies". Thresholds leave room for magnification
    errors and one collapsed vertebra.
    """
    named = [v for v in det.vertebrae if v.level in ("L1", "L2", "L3", "L4", "L5")]
    if not det.anchored or len(named) < 3:
        return None  # nothing will be scored anyway; the warnings say why
    step = det.strip.step_mm if det.strip is not None else 0.5
    heights = np.array([(v.s_inf - v.s_sup) * step for v in named])
    # one odd body is allowed (a collapsed vertebra, or L1 cut short under the ribs)
    typical = np.delete(heights, int(np.argmax(np.abs(heights - np.median(heights))))) if len(heights) > 3 else heights
    mean_h = float(typical.mean())
    cv = float(typical.std() / max(mean_h, 1e-6))
    if mean_h < MIN_BODY_HEIGHT_MM:
        return f"vertebral bodies {mean_h:.0f} mm high on average, lumbar bodies are >= {MIN_BODY_HEIGHT_MM:.0f} mm"
    if det.depth_mm < MIN_BODY_DEPTH_MM:
        return f"vertebral bodies {det.depth_mm:.0f} mm deep, lumbar bodies are >= {MIN_BODY_DEPTH_MM:.0f} mm"
    if cv > MAX_HEIGHT_CV:
        return f"body heights vary by {100 * cv:.0f} % from level to level"
    return None


@dataclass(frozen=True)
class AorticZone:
    """The aortic zone on the straightened strip: in front of L1-L4's anterior line.

    ``t_line[s]``: the anterior vertebral line (strip column) per strip row,
    interpolated through L1-L4's anterior corners; ``zone``: bool ``[s, t]``;
    ``margin`` / ``depth``: its posterior and anterior limits in strip pixels in
    front of ``t_line``; ``s_top`` / ``s_bot``: its rows.
    """

    t_line: np.ndarray
    zone: np.ndarray
    margin: float
    depth: float
    s_top: float
    s_bot: float


def outline_defects(det: SpineDetection, spacing: tuple[float, float]) -> dict[str, str]:
    """Named bodies (T12-L5) whose outline is no vertebral body, with why
    (:func:`~calcdetect.radiograph.vertebrae.outline_defect`; the typical height is the median
    over every body found of its mean anterior and posterior edge)."""
    step = np.asarray(spacing, float)
    heights = [0.5 * (np.linalg.norm((v.corners_rc[3] - v.corners_rc[0]) * step)
                      + np.linalg.norm((v.corners_rc[2] - v.corners_rc[1]) * step)) for v in det.vertebrae]
    if not heights:
        return {}
    typical = float(np.median(heights))
    found = {v.level: outline_defect(v.corners_rc, spacing, typical)
             for v in det.vertebrae if v.level in LEVELS_T12_L5}
    return {lv: why for lv, why in found.items() if why is not None}


def aortic_zone(det: SpineDetection) -> AorticZone:
    """The aortic zone of an anchored detection with L1-L4 (see :class:`AorticZone`)."""
    by = det.by_level()
    strip = det.strip
    S = strip.image
    step = strip.step_mm
    lv_list = [by[lv] for lv in AAC_LEVELS]
    s_knots = np.array([v.s_sup for v in lv_list] + [v.s_inf for v in lv_list])
    t_knots = np.array([v.t_ant for v in lv_list] * 2)
    order = np.argsort(s_knots)
    s_rows = np.arange(S.shape[0])
    t_line = np.interp(s_rows, s_knots[order], t_knots[order])
    s_top = lv_list[0].s_sup - 3.0 / step  # beyond L1-L4: segments are cut in image rows, not strip rows
    s_bot = min(lv_list[-1].s_inf + 3.0 / step, S.shape[0] - 1)
    # the anterior cortex is itself a thin bright line and the corner-to-corner line
    # cuts the body's concave waist: keep 2 mm off it (the posterior aortic wall
    # lies a few mm in front of the spine)
    margin = ZONE_MARGIN_MM / step
    depth = max(det.depth_mm / step, ZONE_MIN_DEPTH_MM / step)
    tt = np.arange(S.shape[1])[None, :]
    in_rows = (s_rows >= s_top) & (s_rows <= s_bot)
    zone = in_rows[:, None] & (tt <= (t_line[:, None] - margin)) & (tt >= (t_line[:, None] - depth))
    return AorticZone(t_line, zone, float(margin), float(depth), float(s_top), float(s_bot))


#: Half-width, in logits, of the threshold band a grade is re-read at: probabilities 0.3 and 0.7
#: around an operating point of 0.5.
GRADE_CHECK_LOGIT = math.log(0.7 / 0.3)
#: A calcified fraction this near a grade boundary (``KAUPPILA_BOUNDARIES``) makes its grade one to check.
GRADE_CHECK_FRACTION = 0.05


def _find_calcium(S: np.ndarray, zg: AorticZone, step: float, calcium_model: Any,
                  level_centre_rows: dict[str, float] | None = None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Calcified strip pixels (the shipped 2-D net when given, else the rule detector), and the
    net's pixels at a lenient and a strict threshold (``GRADE_CHECK_LOGIT``; none for the rules)."""
    if calcium_model is None:
        return detect_calcification(S, zg.zone, step), ()
    from calcdetect.radiograph.aac_net import calcium_mask, calcium_zone_logits

    zl = calcium_zone_logits(calcium_model, S, zg.t_line, zg.zone, step, level_centre_rows)
    if zl is None:
        return np.zeros(zg.zone.shape, bool), ()
    return calcium_mask(calcium_model, zl), tuple(
        calcium_mask(calcium_model, zl, d) for d in (-GRADE_CHECK_LOGIT, GRADE_CHECK_LOGIT))


def _score_walls(strip: Any, calc: np.ndarray, t_line: np.ndarray, depth_px: float,
                 segments: dict[str, tuple[float, float]], n_rows: int, row_mm: float) -> list[WallExtent]:
    """Kauppila extents of both walls in each segment from calcified strip pixels."""
    step = strip.step_mm
    cs, ct = np.nonzero(calc)
    # distance in front of the anterior vertebral line (strip pixels) of each deposit pixel
    midline_u = -estimate_midline(-(t_line[cs] - ct), 0.0, depth_px)
    posterior = wall_of_pixels(calc, t_line - midline_u, WALL_SPLIT_GAP_MM / step)
    rows_by_wall, area_by_wall = _calcified_rows(strip, calc, posterior, n_rows, row_mm)
    return [replace(w, area_mm2=_segment_area(area_by_wall[w.wall], w.s_range))
            for w in score_rows(rows_by_wall, segments, row_mm)]


def grades_to_check(walls: list[WallExtent], rereads: list[list[WallExtent]]) -> list[str]:
    """Walls ("L2 posterior") whose grade a reviewer should check first: the calcified fraction
    lies within ``GRADE_CHECK_FRACTION`` of a grade boundary, or the grade changes when the net
    is read at a lenient or a strict threshold (``rereads``, walls in the same order).

    Why: on 3200 held-out film phantom walls (seeds 1100-1499, v8) these are 19% of the walls
    (1.5 a radiograph) and 48% of them carry a wrong grade, against 20% of the others; they hold
    36% of the wrong grades. Standard (400) and sharp (160) phantoms alike.

    >>> w = [WallExtent("L1", "anterior", 1, 0.31, 10.0, 0.0, (0, 30)),
    ...      WallExtent("L1", "posterior", 2, 0.50, 15.0, 0.0, (0, 30))]
    >>> grades_to_check(w, [[replace(w[0], grade=1), replace(w[1], grade=3)]])
    ['L1 anterior', 'L1 posterior']
    >>> grades_to_check(w[1:], [w[1:]])
    []
    """
    out = []
    for i, w in enumerate(walls):
        near = w.fraction > 0 and min(abs(w.fraction - b) for b in KAUPPILA_BOUNDARIES) < GRADE_CHECK_FRACTION
        if near or any(r[i].grade != w.grade for r in rereads):
            out.append(f"{w.level} {w.wall}")
    return out


def _segment_rows(by: dict, levels: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Image rows of each level's height at mid-depth: the mean row of the two superior
    corners to that of the two inferior corners (how the phantom truth cuts the
    aortic segment in z, the patient's long axis)."""
    out = {}
    for lv in levels:
        k = np.asarray(by[lv].corners_rc, float)
        out[lv] = (float(k[:2, 0].mean()), float(k[2:, 0].mean()))
    return out


def _calcified_rows(strip, calc: np.ndarray, posterior: np.ndarray, n_rows: int,
                    row_mm: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Image rows covered by calcium of each wall, and the calcified area (mm2) per row."""
    rows = {w: np.zeros(n_rows, bool) for w in ("anterior", "posterior")}
    area = {w: np.zeros(n_rows) for w in ("anterior", "posterior")}
    ss, tt = np.nonzero(calc)
    if ss.size == 0:
        return rows, area
    half = 0.5 * strip.step_mm / row_mm  # a strip pixel spans this many image rows either side
    r = strip.to_image(ss.astype(float), tt.astype(float))[:, 0]
    for wall, sel in (("anterior", ~posterior[ss, tt]), ("posterior", posterior[ss, tt])):
        lo = np.clip(np.floor(r[sel] - half + 0.5).astype(int), 0, n_rows - 1)
        hi = np.clip(np.floor(r[sel] + half + 0.5).astype(int), 0, n_rows - 1)
        cover = np.zeros(n_rows + 1, int)
        np.add.at(cover, lo, 1)
        np.add.at(cover, hi + 1, -1)
        rows[wall] = np.cumsum(cover)[:n_rows] > 0
        np.add.at(area[wall], np.clip(np.rint(r[sel]).astype(int), 0, n_rows - 1), strip.step_mm**2)
    return rows, area


def _segment_area(area_rows: np.ndarray, rng: tuple[float, float]) -> float:
    lo, hi = int(np.floor(rng[0])), int(np.ceil(rng[1]))
    return float(area_rows[max(lo, 0): max(hi, 0)].sum())


def analyse_radiograph(
    radiograph: Radiograph, device: Device | None = None, *, body_part: str | None = None,
    calcium_model: Any = "default", vertebra_model: Any = "default", spine: SpineDetection | None = None,
) -> RadiographAnalysis:
    """Find T12-L5, the aortic zone, aortic calcification and the AAC-24 score.

    Parameters
    ----------
    radiograph
        A lateral lumbar spine radiograph (bright = dense) with pixel spacing.
    device
        Accepted for the pipeline's uniform signature; the rule-based method runs
        on the CPU (it takes well under a second).
    body_part
        DICOM BodyPartExamined when the caller has it (see :func:`check_lateral_spine`).
    calcium_model
        ``"default"``: the shipped aortic-calcium net (``models/radiograph_aac_v8``)
        when present, else the rule detector; ``None``: rules only; or a model
        from :func:`calcdetect.radiograph.aac_net.load_calcium_model`.
    vertebra_model
        ``"default"``: the shipped vertebra net (``models/radiograph_vertebrae_v0``)
        outlines and names L1-L5 when present (:func:`apply_vertebra_net`);
        ``None``: the rules' bodies and count from the sacrum only; or a model from
        :func:`calcdetect.radiograph.vertebra_net.load_vertebra_model`.
    spine
        The :func:`detect_spine` result of this same image with this ``vertebra_model``
        when the caller has it: skips the detection, so that several calcium models
        can be compared on one set of vertebrae.

    Returns
    -------
    RadiographAnalysis

    Raises
    ------
    UnsupportedSeriesError
        From :func:`check_lateral_spine`, or when no spine column with at least
        three regularly spaced vertebral bodies is found (not a lateral spine).

    Examples
    --------
    >>> from calcdetect.radiograph.synthetic import make_synthetic_lateral
    >>> from calcdetect.types import AcquisitionInfo, Radiograph
    >>> ph = make_synthetic_lateral(3, spacing_mm=0.5)
    >>> rg = Radiograph(ph.image, (0.5, 0.5), AcquisitionInfo("DX"), view="lateral")
    >>> result = analyse_radiograph(rg)
    >>> [v.level for v in result.vertebrae]
    ['T12', 'L1', 'L2', 'L3', 'L4', 'L5']
    >>> sorted(result.aac24), result.severity
    (['calcified_fraction', 'grades_to_check', 'interval', 'segments', 'total'], 'high')
    >>> result.aac24["interval"]["coverage"]  # of held-out phantom readings within its points
    0.8
    """
    del device  # CPU only: rules plus, when shipped, a small 2-D net (see docstring)
    if isinstance(calcium_model, str) and calcium_model == "default":
        from calcdetect.radiograph.aac_net import load_default_calcium_model

        calcium_model = load_default_calcium_model()
    if isinstance(vertebra_model, str) and vertebra_model == "default":
        from calcdetect.radiograph.vertebra_net import load_default_vertebra_model

        vertebra_model = load_default_vertebra_model()
    check_lateral_spine(radiograph, body_part=body_part)
    models = model_provenance(vertebra_model, calcium_model)
    spacing = tuple(float(s) for s in radiograph.pixel_spacing)  # type: ignore[union-attr]
    image = np.asarray(radiograph.array, np.float32)
    warnings = list(radiograph.warnings)
    det = spine if spine is not None else detect_spine(image, spacing, vertebra_model)  # type: ignore[arg-type]
    warnings += list(det.warnings)
    if len(det.vertebrae) < 3:
        raise UnsupportedSeriesError(
            f"no spine column with regularly spaced vertebral bodies was found (found "
            f"{len(det.vertebrae)}); this does not look like a lateral lumbar spine radiograph"
        )
    reason = _implausible(det)
    if reason is None and not det.side_known:
        reason = "no posterior elements or body outline show which way the patient faces"
    if reason and radiograph.view != "lateral":
        # nothing says this is a lateral spine and the content disagrees: refuse
        raise UnsupportedSeriesError(
            f"no lateral lumbar spine was recognised ({reason}); AAC-24 needs a lateral lumbar spine "
            "radiograph - check the view, the body part and the pixel spacing"
        )
    if reason:
        # a declared lateral view (e.g. a thoracic one): keep the bodies, name no levels
        warnings.append(f"no lumbar spine recognised ({reason}): levels not named, AAC-24 not scored")
        det = replace(det, anchored=False,
                      vertebrae=tuple(replace(v, level=None) for v in det.vertebrae))
    defects = outline_defects(det, spacing)  # named bodies only: none when the count is not anchored
    verts = tuple(
        VertebraResult(v.level, tuple((float(r), float(c)) for r, c in v.corners_rc), v.confidence,
                       defects.get(v.level))
        for v in det.vertebrae
        if v.level is None or v.level in LEVELS_T12_L5
    )
    level_method = (
        "levels counted upwards from the lumbosacral junction (L5-S1 disc); transitional "
        "vertebrae are not recognised"
    )
    if det.bodies_by == "net":
        level_method = ("bodies L1-L5 outlined and named by a network trained on radiographs reconstructed from CT "
                        "phantoms (the count from the lumbosacral junction as fallback); transitional vertebrae are "
                        "not recognised")
    empty = np.zeros(image.shape, bool)
    by = det.by_level()
    missing = [lv for lv in AAC_LEVELS if lv not in by]
    for lv, why in defects.items():
        scored = lv in AAC_LEVELS
        warnings.append(f"the outline found for {lv} is no vertebral body ({why})"
                        + (": AAC-24 not scored" if scored else "") + "; check the vertebrae on the overlay")
    if not det.anchored or missing or any(lv in AAC_LEVELS for lv in defects):
        if det.anchored and missing:
            warnings.append(f"vertebrae {', '.join(missing)} not found: AAC-24 not scored")
        return RadiographAnalysis(verts, np.zeros((0, 2)), empty, None, None, None, SEVERITY_GROUPING, (),
                                  (), det.anterior, level_method, spacing, tuple(warnings), models)

    strip = det.strip
    S = strip.image
    step = strip.step_mm
    depth_px = det.depth_mm / step
    zg = aortic_zone(det)
    t_line, zone, margin, zone_depth, s_top, s_bot = zg.t_line, zg.zone, zg.margin, zg.depth, zg.s_top, zg.s_bot
    s_rows = np.arange(S.shape[0])
    calc, reread_masks = _find_calcium(S, zg, step, calcium_model,
                                       {lv: 0.5 * (by[lv].s_sup + by[lv].s_inf) for lv in AAC_LEVELS})
    segments = _segment_rows(by, AAC_LEVELS)
    row_mm = spacing[0]
    walls = _score_walls(strip, calc, t_line, depth_px, segments, image.shape[0], row_mm)
    rereads = [_score_walls(strip, m, t_line, depth_px, segments, image.shape[0], row_mm) for m in reread_masks]
    aac_segments = {lv: {w.wall: w.grade for w in walls if w.level == lv} for lv in AAC_LEVELS}
    fractions = {lv: {w.wall: round(w.fraction, 4) for w in walls if w.level == lv} for lv in AAC_LEVELS}
    total = int(sum(w.grade for w in walls))
    aac24 = {"total": total, "segments": aac_segments, "calcified_fraction": fractions,
             "grades_to_check": grades_to_check(walls, rereads)}
    bound = getattr(calcium_model, "aac24_error_bound", None)
    if bound is not None:
        aac24["interval"] = bound.as_json(total)
    aac8_walls = {
        wall: aac8_grade(sum(w.fraction for w in walls if w.wall == wall)) for wall in ("anterior", "posterior")
    }
    aac8 = {"total": int(sum(aac8_walls.values())), "walls": aac8_walls}

    # zone polygon in image coordinates (anterior boundary down, posterior boundary up)
    srows = np.linspace(s_top, s_bot, 24)
    tl = np.interp(srows, s_rows, t_line)
    front = strip.to_image(srows, tl - zone_depth)
    back = strip.to_image(srows[::-1], tl[::-1] - margin)
    zone_poly = np.vstack([front, back])
    mask_img = _strip_mask_to_image(det, calc, image.shape, spacing)  # type: ignore[arg-type]

    findings: list[Finding] = []
    for lv in AAC_LEVELS:
        lw = [w for w in walls if w.level == lv]
        if not any(w.grade for w in lw):
            continue
        r0, r1 = segments[lv]
        seg_img = np.zeros_like(mask_img)
        seg_img[max(0, int(np.floor(r0))): max(0, int(np.ceil(r1)))] = mask_img[
            max(0, int(np.floor(r0))): max(0, int(np.ceil(r1)))]
        f = _finding(lv, lw, seg_img, len(findings) + 1, by[lv].confidence)
        if f is not None:
            findings.append(f)
    return RadiographAnalysis(
        vertebrae=verts,
        aortic_zone=zone_poly,
        calcification_mask=mask_img,
        aac24=aac24,
        aac8=aac8,
        severity=severity_group(total),
        severity_grouping=SEVERITY_GROUPING,
        findings=tuple(findings),
        walls=tuple(walls),
        anterior=det.anterior,
        level_method=level_method,
        spacing_mm=spacing,  # type: ignore[arg-type]
        warnings=tuple(dict.fromkeys(warnings)),
        models=models,
    )


def model_provenance(vertebra_model: Any, calcium_model: Any) -> dict[str, Any]:
    """Which nets (file name and SHA-256) or rules found the vertebrae and the calcium: an
    AAC-24 reading means little without the net that made it, and nets change between releases."""
    def one(model: Any) -> Any:
        if model is None:
            return "rules"
        return dict(getattr(model, "source", None) or {"file": "built in memory"})

    return {"vertebrae": one(vertebra_model), "calcium": one(calcium_model)}


def _level_span(levels: list[str]) -> str:
    if not levels:
        return ""
    return levels[0] if len(levels) == 1 else f"{levels[0]}-{levels[-1]}"


def radiograph_report_lines(analysis: RadiographAnalysis) -> tuple[list[str], list[str]]:
    """Findings lines and Impression lines for a lateral lumbar radiograph.

    >>> # e.g. (["Calcification of the abdominal aorta anterior to L2-L4 ..."], [...])
    """
    findings: list[str] = []
    impression: list[str] = []
    if analysis.aac24 is None:
        findings.append(
            "Aortic calcification was not scored: the L1-L4 vertebrae could not be identified "
            "with confidence on this image."
        )
        return findings, impression
    total = analysis.aac24["total"]
    levels = [lv for lv in AAC_LEVELS if any(analysis.aac24["segments"][lv].values())]
    per_level = "; ".join(
        f"{lv} anterior {analysis.aac24['segments'][lv]['anterior']}, posterior "
        f"{analysis.aac24['segments'][lv]['posterior']}"
        for lv in AAC_LEVELS
    )
    group = f"{analysis.severity}; {analysis.severity_grouping}"
    interval = analysis.aac24.get("interval")
    range_note = f"; estimated range {interval['low']}-{interval['high']}" if interval else ""
    if total == 0:
        findings.append("No calcification of the abdominal aorta anterior to L1-L4 (AAC-24 score 0).")
        impression.append(f"No abdominal aortic calcification (AAC-24 score 0, {analysis.severity}{range_note}).")
    else:
        span = _level_span(levels)
        where = f"anterior to {span}" if len(levels) > 1 else f"anterior to {levels[0]}"
        findings.append(f"Calcification of the abdominal aorta {where}; AAC-24 score {total} ({group}).")
        findings.append(f"Kauppila wall grades (0-3): {per_level}.")
        if analysis.aac8 is not None:
            findings.append(f"AAC-8 score {analysis.aac8['total']}.")
        impression.append(
            f"Abdominal aortic calcification {where}, AAC-24 score {total} ({analysis.severity}{range_note})."
        )
    if interval:
        findings.append(
            f"Estimated AAC-24 range {interval['low']}-{interval['high']} (severity {interval['severity']}): "
            f"{round(100 * interval['coverage'])}% of this network's readings of held-out phantom radiographs "
            f"lay within {interval['points']} points of the true score; its accuracy on patient radiographs "
            "has not been measured."
        )
    check = analysis.aac24.get("grades_to_check")
    if check:
        findings.append(
            f"Wall grades to check first on the overlay (marked '?'): {', '.join(check)}; each lies near a grade "
            "boundary or changes with the detection threshold."
        )
    findings.append(f"Vertebral {analysis.level_method}.")
    return findings, impression
