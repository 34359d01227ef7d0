"""Run settings: YAML in ``configs/`` parsed into frozen, typed dataclasses.

Unknown keys are errors (a typo must not silently fall back to a default), and
nothing in a config is ever evaluated as code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from calcdetect.candidates import CandidateSettings
from calcdetect.device import Device, resolve_device
from calcdetect.errors import ConfigError
from calcdetect.workers import resolve_workers

__all__ = ["RunSettings", "load_run_settings", "DEFAULT_RUN_CONFIG"]

DEFAULT_RUN_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "run.yaml"
GIB = 1024**3


@dataclass(frozen=True)
class RunSettings:
    device: Device = field(default_factory=lambda: Device("cpu"))
    memory_budget_bytes: int = 8 * GIB
    anatomy_dir: Path | None = None
    model_path: Path | None = None
    # Calcium refiner weights (calcdetect run --refiner): reportable findings it
    # rejects become look-alikes ("other"). None: the rules' classification alone.
    refiner_path: Path | None = None
    candidates: CandidateSettings = field(default_factory=CandidateSettings)
    overlays: bool = True
    write_masks: bool = True
    max_overlay_slices: int = 40
    pixel_spacing_mm: float | None = None  # for PNG / JPEG / TIFF radiographs only
    # Threads for the CPU voxel core; None: every CPU this process may use
    # (calcdetect.workers). Results never depend on it.
    # Threads for the CPU voxel core; None: every CPU this process may use
    # (calcdetect.workers). Results never depend on it.
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None:
            resolve_workers(self.workers)  # the one place the count is checked


def _check_keys(section: str, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} in section {section!r} of the run config; "
            f"allowed: {sorted(allowed)}"
        )


def _candidate_settings(data: dict[str, Any]) -> CandidateSettings:
    names = {f.name for f in dataclasses.fields(CandidateSettings)}
    _check_keys("candidates", data, names)
    try:
        return CandidateSettings(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid 'candidates' settings: {exc}") from None


def load_run_settings(
    path: Path | None = None,
    *,
    device: str = "auto",
    anatomy_dir: Path | None = None,
    model_path: Path | None = None,
    refiner_path: Path | None = None,
    pixel_spacing_mm: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunSettings:
    """Read a run config (default ``configs/run.yaml``) and resolve the device once."""
    path = Path(path) if path else DEFAULT_RUN_CONFIG
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"run config {path} is not valid YAML: {exc}") from None
    elif path != DEFAULT_RUN_CONFIG:
        raise ConfigError(f"run config {path} does not exist")
    if not isinstance(data, dict):
        raise ConfigError(f"run config {path} must be a mapping at the top level")
    data.update(overrides or {})
    _check_keys("<top>", data, {"memory_budget_gb", "candidates", "outputs", "workers"})
    outputs = data.get("outputs") or {}
    _check_keys("outputs", outputs, {"overlays", "masks", "max_overlay_slices"})
    budget_gb = float(data.get("memory_budget_gb", 8))
    if budget_gb <= 0:
        raise ConfigError(f"memory_budget_gb must be positive, got {budget_gb}")
    workers = data.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be a whole number >= 1, or null for all available CPUs; got {workers!r}")
    return RunSettings(
        device=resolve_device(device),
        memory_budget_bytes=int(budget_gb * GIB),
        anatomy_dir=anatomy_dir,
        model_path=model_path,
        refiner_path=refiner_path,
        candidates=_candidate_settings(data.get("candidates") or {}),
        overlays=bool(outputs.get("overlays", True)),
        write_masks=bool(outputs.get("masks", True)),
        max_overlay_slices=int(outputs.get("max_overlay_slices", 40)),
        pixel_spacing_mm=pixel_spacing_mm,
        workers=workers,
    )
