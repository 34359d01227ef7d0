"""Command line: a thin layer over the API. The device is resolved here, once.

Exit codes: 0 at least one series processed (or the command succeeded);
1 an unexpected internal error; 2 bad arguments or settings; 3 no usable series.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from calcdetect import __version__
from calcdetect.errors import CalcdetectError, ConfigError, DeviceError, InputError

__all__ = ["app", "main", "EXIT_OK", "EXIT_ERROR", "EXIT_BAD_ARGUMENTS", "EXIT_NO_USABLE_SERIES"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_ARGUMENTS = 2
EXIT_NO_USABLE_SERIES = 3

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="calcdetect: find and describe calcifications on spine CT and radiographs "
    "(a research and draft-report aid, not a diagnosis).",
)
phantom_app = typer.Typer(no_args_is_help=True, help="Generate synthetic phantoms with ground truth.")
app.add_typer(phantom_app, name="phantom")

err = Console(stderr=True)
out = Console()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        force=True,
    )


def _aac24_note(aac24: dict | None) -> str:
    """A radiograph's reading for the console table: 'AAC-24 7 (high; range 5-9)'."""
    if aac24 is None:
        return ""
    if not aac24["scored"]:
        return "AAC-24 not scored (see warnings)"
    span = f"; range {aac24['range'][0]}-{aac24['range'][1]}" if aac24.get("range") else ""
    return f"AAC-24 {aac24['total']} ({aac24['severity']}{span})"


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"calcdetect {__version__}")
        raise typer.Exit(EXIT_OK)


@app.command()
def run(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="DICOM folder (searched recursively), DICOM file, NIfTI file, or a PNG / JPEG / TIFF radiograph.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (created; must not be inside INPUT).")],
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    anatomy: Annotated[Optional[Path], typer.Option(help="Folder of TotalSegmentator masks to use instead of calcdetect's anatomy estimate.")] = None,
    model: Annotated[Optional[Path], typer.Option(help="Anatomy network weights (.safetensors) to use.")] = None,
    refiner: Annotated[Optional[Path], typer.Option(help="Calcium refiner weights (.safetensors): reportable findings it takes for look-alikes are reported as 'other' (off by default).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Run settings YAML (default: configs/run.yaml).")] = None,
    pixel_spacing: Annotated[Optional[float], typer.Option("--pixel-spacing", help="Pixel spacing in mm for a PNG / JPEG / TIFF radiograph.")] = None,
    no_overlays: Annotated[bool, typer.Option("--no-overlays", help="Skip overlay PNGs.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Detect, measure and describe calcifications; write run.json and one folder per series."""
    _setup_logging(verbose)
    from calcdetect.config import load_run_settings
    from calcdetect.pipeline import PROCESSED, run as run_pipeline

    if anatomy is not None and not anatomy.is_dir():
        raise _fail(f"--anatomy {anatomy} is not a folder of TotalSegmentator masks", EXIT_BAD_ARGUMENTS)
    if model is not None and not model.is_file():
        raise _fail(f"--model {model} does not exist; pass a .safetensors file from models/ or a training run", EXIT_BAD_ARGUMENTS)
    if refiner is not None and not refiner.is_file():
        raise _fail(f"--refiner {refiner} does not exist; pass a .safetensors file such as models/calcium_refiner_phantom_v0.safetensors", EXIT_BAD_ARGUMENTS)
    try:
        overrides = {"outputs": {"overlays": False}} if no_overlays else None
        settings = load_run_settings(
            config, device=device, anatomy_dir=anatomy, model_path=model, refiner_path=refiner,
            pixel_spacing_mm=pixel_spacing, overrides=overrides,
        )
        summary = run_pipeline(input_path, output, settings)
    except (InputError, ConfigError, DeviceError) as exc:
        raise _fail(str(exc), EXIT_BAD_ARGUMENTS) from None
    except CalcdetectError as exc:
        raise _fail(str(exc), EXIT_ERROR) from None

    table = Table(title=f"calcdetect {__version__} on {summary.device}: {summary.n_files} file(s)")
    for column in ("series", "kind", "images", "status", "findings", "note"):
        table.add_column(column)
    for s in summary.series:
        table.add_row(s.key, s.kind, str(s.n_images), s.status,
                      "" if s.n_findings is None else str(s.n_findings), s.reason or _aac24_note(s.aac24))
    out.print(table)
    if summary.skipped_files:
        out.print("skipped files: " + ", ".join(f"{n} {why}" for why, n in summary.skipped_files.items()))
    out.print(f"results: {output / 'run.json'}")
    if summary.n_processed == 0:
        raise _fail("no usable series found in the input (see run.json for each series' reason)", EXIT_NO_USABLE_SERIES)


def _phantom_errors(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except FileExistsError as exc:
        raise _fail(f"{exc}; pass --overwrite to replace it", EXIT_BAD_ARGUMENTS) from None
    except ValueError as exc:
        raise _fail(str(exc), EXIT_BAD_ARGUMENTS) from None


@phantom_app.command("ct")
def phantom_ct(
    output: Annotated[Path, typer.Option("-o", "--output", help="Study folder to write (dicom/ and truth/).")],
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same phantom.")] = 0,
    randomise: Annotated[bool, typer.Option("--random/--no-random", help="Draw kVp, noise, pixel size, slice thickness and findings from clinical ranges by seed.")] = False,
    matrix: Annotated[Optional[int], typer.Option(help="Image matrix (default 512).")] = None,
    pixel_mm: Annotated[Optional[float], typer.Option(help="Pixel size 0.6-1.0 mm.")] = None,
    slice_thickness: Annotated[Optional[float], typer.Option(help="Slice thickness 0.625-5 mm.")] = None,
    kvp: Annotated[Optional[float], typer.Option(help="Tube voltage 80-140 kVp.")] = None,
    noise: Annotated[Optional[float], typer.Option(help="Noise sigma 10-40 HU.")] = None,
    top: Annotated[Optional[str], typer.Option(help="Top of the field of view (T10..L5).")] = None,
    bottom: Annotated[Optional[str], typer.Option(help="Bottom of the field of view (a vertebra, S1 or FH).")] = None,
    contrast: Annotated[Optional[bool], typer.Option("--contrast/--no-contrast", help="Arterial-phase iodinated contrast.")] = None,
    metal: Annotated[Optional[bool], typer.Option("--metal/--no-metal", help="Hip prosthesis and pedicle screws.")] = None,
    table: Annotated[Optional[bool], typer.Option("--table/--no-table", help="Include the scanner table under the patient.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing study folder.")] = False,
) -> None:
    """A synthetic torso CT (T10 to the femoral heads) with exact calcification truth."""
    from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom, random_settings, write_ct_phantom

    options = {
        "matrix": matrix, "pixel_mm": pixel_mm, "slice_thickness_mm": slice_thickness, "kvp": kvp,
        "noise_sigma_hu": noise, "contrast": contrast, "metal": metal, "table": table,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if top or bottom:
        default = CTPhantomSettings().fov
        options["fov"] = (top or default[0], bottom or default[1])
    settings = _phantom_errors(random_settings if randomise else lambda seed, **o: CTPhantomSettings(seed=seed, **o), seed, **options)
    phantom = _phantom_errors(generate_ct_phantom, settings)
    path = _phantom_errors(write_ct_phantom, phantom, output, overwrite=overwrite)
    out.print(f"CT phantom (seed {seed}): {len(phantom.lesions)} lesion(s) -> {path}/dicom, truth in {path}/truth")


@phantom_app.command("radiograph")
def phantom_radiograph(
    output: Annotated[Path, typer.Option("-o", "--output", help="Study folder to write (dicom/ and truth/).")],
    seed: Annotated[int, typer.Option(help="Random seed of the underlying CT phantom and the radiograph noise.")] = 0,
    obesity_mm: Annotated[float, typer.Option(help="Extra soft tissue path (mm of fat).")] = 0.0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing study folder.")] = False,
) -> None:
    """A digitally reconstructed lateral lumbar radiograph with AAC-24 truth."""
    from calcdetect.phantoms.radiograph import cli_phantom_radiograph

    path = _phantom_errors(cli_phantom_radiograph, output, seed, overwrite=overwrite, obesity_fat_mm=obesity_mm)
    out.print(f"radiograph phantom (seed {seed}) -> {path}/dicom, truth in {path}/truth")


@phantom_app.command("qrm")
def phantom_qrm(
    output: Annotated[Path, typer.Option("-o", "--output", help="Study folder to write (dicom/ and truth/).")],
    slice_thickness: Annotated[float, typer.Option("--slice-thickness", help="Slice thickness in mm (0.5-5).")],
    kvp: Annotated[float, typer.Option(help="Tube voltage (80-140 kVp).")] = 120.0,
    noise: Annotated[float, typer.Option(help="Noise sigma in HU.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing study folder.")] = False,
) -> None:
    """A QRM-like calibration insert: 1/3/5 mm cylinders at 200/400/800 mg HA/cm3, with true volume and mass."""
    from calcdetect.phantoms.qrm import cli_phantom_qrm

    path = _phantom_errors(cli_phantom_qrm, output, slice_thickness, kvp=kvp, noise_sigma_hu=noise, seed=seed, overwrite=overwrite)
    out.print(f"QRM phantom ({slice_thickness} mm slices) -> {path}/dicom, truth in {path}/truth")


@app.command()
def evaluate(
    pred_dir: Annotated[Path, typer.Argument(help="A `calcdetect run` output folder (or one series folder).")],
    truth_dir: Annotated[Path, typer.Argument(help="A phantom study folder, or a folder of them.")],
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the metrics as JSON here.")] = None,
) -> None:
    """Score predictions against phantom ground truth (sensitivity, FP per scan, accuracy, errors)."""
    from calcdetect.evaluate import evaluate as evaluate_dirs
    from calcdetect.export.atomic import atomic_write_json

    try:
        result = evaluate_dirs(pred_dir, truth_dir)
    except CalcdetectError as exc:
        raise _fail(str(exc), EXIT_BAD_ARGUMENTS) from None
    out.print(result.table(), markup=False, highlight=False)
    if json_path:
        atomic_write_json(json_path, result.to_dict())
        out.print(f"metrics: {json_path}")


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Argument(metavar="[CONFIG.yaml]", help="Training recipe (default: configs/train.yaml).")] = None,
    data: Annotated[list[str], typer.Option("--data", help="KIND=PATH, repeatable; KIND: totalsegmentator, nnunet, dicomseg, phantom (PATH = seeds, e.g. 0-19).")] = [],  # noqa: B006
    output: Annotated[Path, typer.Option("-o", "--output", help="Run folder: checkpoints, metrics CSV, model.safetensors + card.")] = Path("runs/train"),
    epochs: Annotated[Optional[int], typer.Option(help="Override the number of epochs.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from the run folder's last checkpoint.")] = False,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", help="Start from a trained model's weights (fine-tune), e.g. models/anatomy_phantom_v2.safetensors; same recipe.")] = None,
    new_head: Annotated[bool, typer.Option("--new-head", help="With --init-from: keep the features, learn the output layer anew.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Train the anatomy network; the result can be passed to `calcdetect run --model`."""
    _setup_logging(verbose)
    from calcdetect.device import resolve_device
    from calcdetect.training import TrainConfig, train as train_model

    default = Path(__file__).resolve().parent.parent / "configs" / "train.yaml"
    pairs = []
    for item in data:
        kind, sep, path = item.partition("=")
        if not sep or not kind or not path:
            raise _fail(f"--data {item!r} must look like KIND=PATH (e.g. --data nnunet=/data/Dataset042)", EXIT_BAD_ARGUMENTS)
        pairs.append((kind.strip(), Path(path) if kind.strip() != "phantom" else path))
    try:
        resolved = resolve_device(device)
        recipe = TrainConfig.from_yaml(config or default)
        result = train_model(recipe, pairs, output, resolved, epochs=epochs, resume=resume, init_from=init_from, new_head=new_head)
    except CalcdetectError as exc:
        raise _fail(str(exc), EXIT_BAD_ARGUMENTS) from None
    out.print(f"trained {result.epochs_completed} epoch(s): model {result.model_path}, card {result.card_path}")


def main() -> None:
    """Console entry point: typer handles usage errors (exit 2); nothing else escapes raw."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug, not a user error: say so, keep the trace out of the way
        if "-v" in sys.argv or "--verbose" in sys.argv:
            raise
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc}\n"
            "This is a calcdetect bug; rerun with -v for the traceback and report it "
            "(without patient data).",
            highlight=False,
        )
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
