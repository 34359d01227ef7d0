"""The recipe: input -> series -> Volume -> anatomy + candidates -> findings -> report -> outputs.

Each step is a plain function of its inputs (see DESIGN.md); this module only wires
them together and decides what is written where. Read ``run`` top to bottom.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from calcdetect import __version__, io
from calcdetect.anatomy import build_anatomy, regions_in_fov, regions_not_found
from calcdetect.anatomy.build import body_on_work_grid
from calcdetect.bone import segment_bone
from calcdetect.candidates import CandidateSettings, Candidates, find_candidates
from calcdetect.candidates.noise import estimate_noise_hu
from calcdetect.classify import classify
from calcdetect.config import RunSettings
from calcdetect.device import Device
from calcdetect.errors import CalcdetectError, InputError, UnsupportedSeriesError
from calcdetect.export.atomic import atomic_write_json, atomic_write_text
from calcdetect.export.findings_json import (
    RUN_SCHEMA,
    findings_document,
    radiograph_summary,
    volume_summary,
)
from calcdetect.export.overlays import write_overlays
from calcdetect.ids import series_key
from calcdetect.radiograph import analyse_radiograph, load_plain_image, radiograph_report_lines, write_radiograph_overlay
from calcdetect.radiograph.io_image import PLAIN_IMAGE_SUFFIXES
from calcdetect.report import DRAFT_HEADER, draft_report
from calcdetect.types import AnatomyMap, Finding, Radiograph, Report, Volume
from calcdetect.workers import resolve_workers, result_unless_queued, thread_map

__all__ = ["CTAnalysis", "SeriesOutcome", "RunSummary", "analyse_ct", "run"]

log = logging.getLogger("calcdetect")


PROCESSED = "processed"
SKIPPED = "skipped"
FAILED = "failed"
NOT_ANALYSED = "loaded_not_analysed"


@dataclass(frozen=True)
class CTAnalysis:
    """Everything one CT series produced, before anything is written."""

    volume: Volume
    candidates: Candidates
    anatomy: AnatomyMap
    findings: tuple[Finding, ...]
    report: Report
    warnings: tuple[str, ...]
    # The calcium refiner's record (findings.json "refiner"): model, threshold,
    # p(calcification) per scored finding, the findings it demoted; None when off.
    refiner: dict[str, Any] | None = None


@dataclass(frozen=True)
class SeriesOutcome:
    key: str
    kind: str
    modality: str | None
    n_images: int
    status: str
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    n_findings: int | None = None
    outputs: tuple[str, ...] = ()
    input_summary: dict[str, Any] | None = None
    #: A radiograph's reading at a glance (total, severity, range; ``None``: not scored), so that a
    #: run over an archive can be tabulated from run.json without opening every findings.json.
    aac24: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunSummary:
    series: tuple[SeriesOutcome, ...]
    skipped_files: dict[str, int]
    n_files: int
    seconds: float
    device: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_processed(self) -> int:
        return sum(1 for s in self.series if s.status == PROCESSED)


# --------------------------------------------------------------------------- CT


def analyse_ct(volume: Volume, settings: RunSettings) -> CTAnalysis:
    """Detect, locate, measure and describe calcifications in one CT volume."""
    with _small_pages():
        return _analyse_ct(volume, settings)


@contextlib.contextmanager
def _small_pages() -> Iterator[None]:
    """numpy's large arrays without its request for 2 MiB kernel pages, restored after.

    numpy asks the kernel for huge pages (madvise) on every array of 4 MiB and
    more. The first write into a 2 MiB page then makes the kernel zero and commit
    all of it: the stages' CT-sized masks (100 MB each, dozens per scan), many
    written sparsely or in boxes, committed ~300 MiB more peak memory at 512 x 512
    x 400 and cost seconds of system time on 2 cores (scripts/bench_pipeline.py).
    4 KiB pages change no result. Left alone when the user chose with
    NUMPY_MADVISE_HUGEPAGE.
    """
    multiarray = getattr(getattr(np, "_core", None) or getattr(np, "core", None), "multiarray", None)
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is None or "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        yield
        return
    previous = setter(False)
    try:
        yield
    finally:
        setter(previous)


def _analyse_ct(volume: Volume, settings: RunSettings) -> CTAnalysis:
    """analyse_ct's stages and their schedule on the CPUs."""
    device = settings.device
    workers = resolve_workers(settings.workers)
    # With a spare CPU, what needs no anatomy runs beside the (single-threaded)
    # anatomy stage: the noise estimate, and the candidates found without the
    # anatomy's masks, whose lesions the final candidate stage reuses where a
    # component comes out the same (most: the masks act only near bone and
    # vessels). Results are the same with or without this.
    overlap = workers > 1 and not device.is_cuda
    with ThreadPoolExecutor(max_workers=1) as background:
        noise = (background.submit(estimate_noise_hu, volume.array)
                 if overlap and settings.candidates.min_peak_snr > 0 else None)
        # The anatomy's first step (the CT on its work grid, the body) needs no
        # bone mask: it runs there too, mostly in the bone segmentation's
        # single-threaded end.
        prepared = background.submit(body_on_work_grid, volume, workers=1) if overlap else None
        bone_mask = segment_bone(volume.array, volume.spacing, device, workers=workers)
        early = (background.submit(_candidates_without_anatomy, volume, settings, bone_mask, noise)
                 if overlap and not volume.info.contrast_agent else None)
        # The background pass keeps one CPU busy: the anatomy gets the others.
        # (Every CPU was tried on the 512 x 512 x 400 benchmark: ~0.1 s faster on
        # a quiet machine, 8 % slower at a load of 3-4, +0.3-1 s of CPU -- the
        # vessel search holds the GIL -- and +130 MiB of peak memory. Tried again
        # with the vessels' per-slice search on one thread and the kidneys beside
        # it: +0.55 s of CPU at a load of ~8, wall time not measurable there.)
        # The femoral heads (~0.3 s) and the kidney search (~0.4 s) queue on the
        # background thread instead, in that order: they start there once the
        # early candidates are done, beside the vessel search, or run here when
        # needed if that thread has not started them (started, the kidneys are
        # waited for only after the anatomy's layers that do not need them).
        anatomy = build_anatomy(volume, device, bone_mask=bone_mask, external_dir=settings.anatomy_dir,
                                workers=max(1, workers - 1) if early is not None else workers,
                                beside=background if early is not None else None,
                                prepared=result_unless_queued(prepared))
        if settings.model_path is not None:
            anatomy = _with_cnn_anatomy(anatomy, volume, settings)
        blood_pool, protect, ligament = _structure_masks(
            anatomy, volume, (("aorta",), _PROTECTED, ("ligamentum_flavum_zone",)), workers)
        if overlap and not anatomy.knows_structure_boxes:
            # Classification and the report ask the map for its per-structure
            # boxes and per-slice counts (~0.6 s of whole-map passes at 512 x 512
            # x 400, cached on the map; the rules' map comes with them, worked
            # out on the work grid): a map without them gets them beside the final
            # candidate stage. Should this fail, classify simply computes them.
            background.submit(lambda: anatomy.slice_label_counts)
        candidates = find_candidates(
            volume, device, settings.candidates,
            blood_pool_mask=blood_pool,
            # On contrast scans enhanced vessels pass the default bone threshold: let
            # the candidate stage segment bone at its contrast-adapted threshold.
            bone_mask=None if volume.info.contrast_agent else bone_mask,
            # Plaque on the vertebral cortex and ligamentum flavum calcium against the
            # laminae fuse with bone; the anatomy says where they may lie.
            protect_mask=protect,
            ligament_mask=ligament,
            noise_sd_hu=noise.result() if noise is not None else None,
            workers=workers,
            measured=_early_candidates(early),
            # Nothing reads the bone mask or the early pass after this: they are
            # edited, not copied.
            edit_in_place=True,
        )
    findings = tuple(classify(candidates.lesions, anatomy, volume, threshold_hu=candidates.threshold_hu,
                              blood_pool_hu=candidates.blood_pool_hu, device=device))
    refiner = None
    if settings.refiner_path is not None:
        findings, refiner = _refined(findings, volume, settings)
    report = draft_report(findings, regions_in_fov(anatomy), notes=anatomy.notes + candidates.warnings,
                          not_found=regions_not_found(anatomy))
    warnings = tuple(volume.warnings) + tuple(candidates.warnings)
    return CTAnalysis(volume, candidates, anatomy, findings, report, warnings, refiner)


def _refined(findings: tuple[Finding, ...], volume: Volume,
             settings: RunSettings) -> tuple[tuple[Finding, ...], dict[str, Any]]:
    """The refiner's fusion with the rules (issue #5): a reportable finding survives
    where the network agrees it is calcification; the measurements stay the HU
    candidate stage's (``calcdetect.nets.refiner.refine_findings``). Runs on the
    run's device."""
    from calcdetect.nets.refiner import refine_findings

    path = Path(settings.refiner_path)  # type: ignore[arg-type]
    r = refine_findings(findings, volume, _network(path, settings.device, "refiner"), settings.device)
    record = {"model": path.name, "threshold": r.threshold, "p_calcification": r.p_calcification,
              "demoted": list(r.demoted)}
    return r.findings, record


def _candidates_without_anatomy(volume: Volume, settings: RunSettings, bone_mask: np.ndarray,
                                noise: Future[float | None] | None) -> Candidates:
    """The candidate stage before the anatomy is known (no blood pool, protected
    zones or ligament zone), on one thread: only its measured lesions and its bone
    margin are used (the final pass reuses them)."""
    return find_candidates(volume, settings.device, settings.candidates, bone_mask=bone_mask,
                           noise_sd_hu=noise.result() if noise is not None else None, workers=1,
                           keep_bone_margin=True)


def _early_candidates(early: Future[Candidates] | None) -> Candidates | None:
    """The early candidates, or None if that optional work ran out of memory (the
    final candidate stage then measures everything itself: the same result).

    Only memory exhaustion is absorbed: the early pass runs beside the anatomy, so
    it can fail for want of memory where the final pass alone would not. Any other
    error is a bug the final pass would hit too, so it is raised here, not hidden.
    """
    if early is None:
        return None
    try:
        return early.result()
    except MemoryError:
        log.warning("early candidate search ran out of memory; measuring every candidate after the anatomy")
        return None


_NETWORK_OPTION = {"anatomy": "--model", "refiner": "--refiner"}


@functools.lru_cache(maxsize=4)
def _network(path: Path, device: Device, task: str) -> Any:
    """Load a network once per run (per path, device and task); it must be a ``task`` network."""
    from calcdetect.nets import load_model

    model = load_model(path, device)
    if model.spec.task != task:
        raise InputError(f"{_NETWORK_OPTION[task]} {path.name} holds a {model.spec.task!r} network, "
                         f"not an {task!r} one; pass the matching .safetensors file from models/")
    return model


def _anatomy_model(path: Path, device: Device) -> Any:
    """The anatomy network of ``--model`` (loaded once per run)."""
    return _network(path, device, "anatomy")


def _with_cnn_anatomy(rules: AnatomyMap, volume: Volume, settings: RunSettings) -> AnatomyMap:
    """The network's labels for the classes its model card trusts; the rules keep the rest.

    Which classes (and whether the levels) come from the network is measured at
    training time and stored in the weights (``calcdetect.nets.fusion``); a model
    without that record is trusted for every class it segments.
    """
    from calcdetect.nets import anatomy_with_model

    path = Path(settings.model_path)
    return anatomy_with_model(rules, volume, _anatomy_model(path, settings.device), settings.device,
                              model_name=path.name)


_PROTECTED = (
    "aorta",
    "common_iliac_artery_left", "common_iliac_artery_right",
    "external_iliac_artery_left", "external_iliac_artery_right",
    "internal_iliac_artery_left", "internal_iliac_artery_right",
)


def _structure_masks(anatomy: AnatomyMap, volume: Volume, groups: tuple[tuple[str, ...], ...],
                     workers: int = 1) -> list[np.ndarray | None]:
    """For each group of structure names, the union of their voxels on the CT grid
    (:meth:`AnatomyMap.mask_of`); ``None`` for every group when the map is on
    another grid.

    When the map already knows its structures' boxes (the rules' map, from
    build_anatomy, has them from its work grid), each mask reads
    only its structures' box (~0.05 s at 512 x 512 x 400). Otherwise a first
    box pass would cost ~0.45 s, and the label ranges are compared over the
    whole map slab by slab instead (:meth:`AnatomyMap.masks_of`, ~0.25 s of CPU).
    """
    from calcdetect.anatomy.regions import structure

    if anatomy.labels.shape != volume.shape:
        return [None] * len(groups)
    ids = [[structure(n).label for n in names] for names in groups]
    if anatomy.knows_structure_boxes:
        return thread_map(anatomy.mask_of, ids, workers)
    return anatomy.masks_of(ids, workers)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _finding_labels(findings: tuple[Finding, ...], shape: tuple[int, int, int]) -> np.ndarray:
    """Each finding's own lesion mask painted with its label.

    Painted from the findings, not copied from the candidate label map, because
    classification may split a component (a bilateral ligamentum flavum V becomes
    a left and a right finding) and the new part has a label of its own.
    """
    labels = np.zeros(shape, dtype=np.uint16)
    for f in findings:
        k0, j0, i0, k1, j1, i1 = f.lesion.bbox
        labels[k0:k1, j0:j1, i0:i1][f.lesion.mask] = f.lesion.label
    return labels


def _write_ct_outputs(analysis: CTAnalysis, series_dir: Path, settings: RunSettings) -> list[Path]:
    volume = analysis.volume
    doc = findings_document(
        volume_summary(volume),
        analysis.findings,
        analysis.report,
        analysis.warnings,
        extra={
            "threshold_hu": analysis.candidates.threshold_hu,
            "blood_pool_hu": analysis.candidates.blood_pool_hu,
            "noise_sd_hu": _round(analysis.candidates.noise_sd_hu),
            "noise_gate_hu": _round(analysis.candidates.noise_gate_hu),
            "anatomy": {
                "source": analysis.anatomy.source,
                "notes": list(analysis.anatomy.notes),
                "levels_in_fov": sorted(
                    {lv for lv in analysis.anatomy.slice_levels if lv and "-" not in lv}
                ),
            },
            "device": str(settings.device),
            **({"refiner": analysis.refiner} if analysis.refiner is not None else {}),
        },
    )
    written = [
        atomic_write_json(series_dir / "findings.json", doc),
        atomic_write_text(series_dir / "report.txt", analysis.report.text()),
    ]
    labels = _finding_labels(analysis.findings, volume.shape) if settings.write_masks or settings.overlays else None
    if settings.write_masks:
        written.append(io.write_nifti(labels, volume.affine, series_dir / "lesions.nii.gz"))
        if analysis.anatomy.labels.shape == volume.shape:
            written.append(
                io.write_nifti(analysis.anatomy.labels.astype(np.uint8), volume.affine, series_dir / "anatomy.nii.gz")
            )
    if settings.overlays:
        written += write_overlays(
            volume, labels, analysis.findings, series_dir / "overlays",
            max_slices=settings.max_overlay_slices,
        )
    return written


# -------------------------------------------------------------------- radiograph


def _process_radiograph(radiograph: Radiograph, key: str, out_dir: Path, settings: RunSettings) -> SeriesOutcome:
    """AAC-24 on a lateral lumbar radiograph; refusals (AP view, hip ...) raise UnsupportedSeriesError."""
    analysis = analyse_radiograph(radiograph, settings.device)
    findings_lines, impression_lines = radiograph_report_lines(analysis)
    report = Report(
        header=DRAFT_HEADER,
        findings="\n".join(findings_lines),
        impression="\n".join(f"{n}. {t}" for n, t in enumerate(impression_lines, start=1)) or "1. Not scored.",
    )
    warnings = tuple(radiograph.warnings) + tuple(analysis.warnings)
    doc = findings_document(
        radiograph_summary(radiograph), analysis.findings, report, warnings,
        extra={"aac24": analysis.aac24, "radiograph": analysis.summary(), "device": str(settings.device)},
    )
    series_dir = out_dir / key
    written = [
        atomic_write_json(series_dir / "findings.json", doc),
        atomic_write_text(series_dir / "report.txt", report.text()),
    ]
    if settings.overlays:
        written.append(write_radiograph_overlay(radiograph, analysis, series_dir / "overlays" / "radiograph.png"))
    return SeriesOutcome(
        key=key, kind="radiograph", modality=radiograph.info.modality, n_images=1, status=PROCESSED,
        warnings=warnings, n_findings=len(analysis.findings),
        outputs=tuple(str(p.relative_to(out_dir)) for p in written),
        input_summary=radiograph_summary(radiograph), aac24=_aac24_glance(analysis),
    )


def _aac24_glance(analysis: Any) -> dict[str, Any]:
    """The run.json entry of one radiograph: ``scored``, and when scored the total, its severity
    group and the calcium net's measured range (``None`` without a measured bound)."""
    if analysis.aac24 is None:
        return {"scored": False}
    interval = analysis.aac24.get("interval")
    return {"scored": True, "total": analysis.aac24["total"], "severity": analysis.severity,
            "range": [interval["low"], interval["high"]] if interval else None}


# ------------------------------------------------------------------------ input


def _is_plain_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in PLAIN_IMAGE_SUFFIXES


def _inputs(input_path: Path) -> tuple[list[Any], dict[str, int], int]:
    """Series groups (DICOM), or a single NIfTI or plain image, with skipped-file counts."""
    if io.is_nifti(input_path) or _is_plain_image(input_path):
        return [input_path], {}, 1
    discovery = io.discover(input_path)
    return list(discovery.groups), dict(discovery.skipped_files), discovery.n_files


def _check_paths(input_path: Path, out_dir: Path) -> None:
    if not input_path.exists():
        raise InputError(f"input {input_path} does not exist; pass a DICOM folder, a DICOM file or a NIfTI file")
    inp, out = input_path.resolve(), out_dir.resolve()
    if inp.is_dir() and (out == inp or inp in out.parents):
        raise InputError(
            "the output folder is inside the input folder; calcdetect never writes into its input. "
            "Choose an output folder outside the input (e.g. -o ./calcdetect_out)."
        )


def _process_volume(volume: Volume, key: str, out_dir: Path, settings: RunSettings) -> SeriesOutcome:
    analysis = analyse_ct(volume, settings)
    written = _write_ct_outputs(analysis, out_dir / key, settings)
    return SeriesOutcome(
        key=key, kind="ct_volume", modality=volume.info.modality, n_images=volume.shape[0],
        status=PROCESSED, warnings=analysis.warnings, n_findings=len(analysis.findings),
        outputs=tuple(str(p.relative_to(out_dir)) for p in written),
    )


def _process_group(group: Any, out_dir: Path, settings: RunSettings) -> SeriesOutcome:
    base = SeriesOutcome(
        key=group.key, kind=group.kind, modality=group.modality, n_images=group.n_images,
        status=SKIPPED, reason=group.reason,
    )
    try:
        if group.kind in ("ct_volume", "enhanced_ct"):
            volume = io.load_ct(group, memory_budget_bytes=settings.memory_budget_bytes)
            return replace(_process_volume(volume, group.key, out_dir, settings), kind=group.kind)
        if group.kind == "radiograph":
            radiograph = io.load_radiograph(group, memory_budget_bytes=settings.memory_budget_bytes)
            return _process_radiograph(radiograph, group.key, out_dir, settings)
    except UnsupportedSeriesError as exc:  # valid, but not what calcdetect analyses
        log.info("series %s skipped: %s", group.key, exc)
        return replace(base, status=SKIPPED, reason=str(exc))
    except CalcdetectError as exc:
        log.warning("series %s not processed: %s", group.key, exc)
        return replace(base, status=FAILED, reason=f"{type(exc).__name__}: {exc}")
    return base


def _outcomes(input_path: Path, out_dir: Path, settings: RunSettings, items: list[Any]) -> Iterator[SeriesOutcome]:
    for item in items:
        if isinstance(item, Path):  # a NIfTI volume or a plain radiograph image
            key = series_key("file:" + item.name)
            try:
                if _is_plain_image(item):
                    radiograph = load_plain_image(item, settings.pixel_spacing_mm)
                    yield _process_radiograph(radiograph, key, out_dir, settings)
                else:
                    yield _process_volume(io.load_nifti(item), key, out_dir, settings)
            except UnsupportedSeriesError as exc:
                yield SeriesOutcome(key, "radiograph", None, 1, SKIPPED, str(exc))
            except CalcdetectError as exc:
                yield SeriesOutcome(key, "file", None, 0, FAILED, f"{type(exc).__name__}: {exc}")
            continue
        log.info("series %s: %s, %d image(s)", item.key, item.kind, item.n_images)
        yield _process_group(item, out_dir, settings)


def run(input_path: Path, out_dir: Path, settings: RunSettings) -> RunSummary:
    """Process every usable series under ``input_path``; write ``out_dir/run.json``.

    Each processed series gets ``out_dir/<key>/`` with findings.json, report.txt,
    masks and overlays, where ``<key>`` is a hash of the Series Instance UID.
    """
    input_path, out_dir = Path(input_path), Path(out_dir)
    _check_paths(input_path, out_dir)
    start = time.perf_counter()
    items, skipped_files, n_files = _inputs(input_path)
    outcomes = tuple(_outcomes(input_path, out_dir, settings, items))
    summary = RunSummary(outcomes, skipped_files, n_files, time.perf_counter() - start, str(settings.device))
    atomic_write_json(out_dir / "run.json", run_document(summary))
    return summary


def run_document(summary: RunSummary) -> dict[str, Any]:
    # The input path itself is not recorded: folder names in archives often carry
    # patient names.
    return {
        "schema": RUN_SCHEMA,
        "calcdetect_version": __version__,
        "device": summary.device,
        "seconds": round(summary.seconds, 2),
        "n_files": summary.n_files,
        "skipped_files": summary.skipped_files,
        "n_series": len(summary.series),
        "n_processed": summary.n_processed,
        "series": [
            {
                "key": s.key,
                "kind": s.kind,
                "modality": s.modality,
                "n_images": s.n_images,
                "status": s.status,
                "reason": s.reason,
                "warnings": list(s.warnings),
                "n_findings": s.n_findings,
                "outputs": list(s.outputs),
                **({"input": s.input_summary} if s.input_summary else {}),
                **({"aac24": s.aac24} if s.aac24 is not None else {}),
            }
            for s in summary.series
        ],
    }
