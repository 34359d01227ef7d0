"""`calcdetect run` end to end: exit codes, mixed folders, outputs, no identifiers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from typer.testing import CliRunner

from calcdetect.cli import EXIT_BAD_ARGUMENTS, EXIT_NO_USABLE_SERIES, EXIT_OK, app
from calcdetect.export.findings_json import FINDING_KEYS, FINDINGS_SCHEMA
from calcdetect.io.dicom_write import write_ct_series
from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom

PATIENT = {"PatientName": "Doe^Jane", "PatientID": "MRN-4711-XYZ", "PatientBirthDate": "19450102",
           "AccessionNumber": "ACC-998877"}
IDENTIFIERS = [b"Doe", b"Jane", b"MRN-4711", b"19450102", b"ACC-998877"]

runner = CliRunner()


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """A CT phantom series + a localizer + a secondary capture + an empty and a text file."""
    root = tmp_path_factory.mktemp("mixed")
    ph = generate_ct_phantom(CTPhantomSettings(
        seed=5, matrix=160, pixel_mm=2.0, slice_thickness_mm=3.0, fov=("L2", "L5"),
        noise_sigma_hu=10.0, plaque_burden=0.8, renal_stones=1, distractors=False,
    ))
    write_ct_series(ph.hu, ph.spacing, ph.affine, root / "a" / "ct", extra_tags=PATIENT, seed=1)
    scout = np.full((1, 64, 64), -500.0, np.float32)
    write_ct_series(scout, (1.0, 1.0, 1.0), np.eye(4), root / "b" / "scout", seed=2,
                    extra_tags={**PATIENT, "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]})
    sc = Dataset()
    sc.file_meta = FileMetaDataset()
    sc.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    sc.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    sc.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sc.SOPClassUID, sc.SOPInstanceUID = SecondaryCaptureImageStorage, sc.file_meta.MediaStorageSOPInstanceUID
    sc.StudyInstanceUID, sc.SeriesInstanceUID = generate_uid(), generate_uid()
    sc.Modality, sc.ImageType = "OT", ["DERIVED", "SECONDARY"]
    for key, value in PATIENT.items():
        setattr(sc, key, value)
    sc.Rows = sc.Columns = 8
    sc.SamplesPerPixel, sc.PhotometricInterpretation = 1, "MONOCHROME2"
    sc.BitsAllocated, sc.BitsStored, sc.HighBit, sc.PixelRepresentation = 8, 8, 7, 0
    sc.PixelData = bytes(64)
    (root / "c").mkdir()
    sc.save_as(root / "c" / "IM0001", enforce_file_format=True)
    (root / "empty.dcm").write_bytes(b"")
    (root / "notes.txt").write_text("not DICOM")
    return root


@pytest.fixture(scope="module")
def mixed_run(mixed_folder, tmp_path_factory):
    before = _tree_digest(mixed_folder)
    out = tmp_path_factory.mktemp("out") / "run"
    result = runner.invoke(app, ["run", str(mixed_folder), "-o", str(out), "--device", "cpu"])
    return result, out, before


def test_mixed_folder_processes_the_ct_and_skips_the_rest(mixed_run, mixed_folder):
    result, out, before = mixed_run
    assert result.exit_code == EXIT_OK, result.output
    run = json.loads((out / "run.json").read_text())
    kinds = {s["kind"]: s for s in run["series"]}
    assert kinds["ct_volume"]["status"] == "processed"
    assert kinds["localizer"]["status"] == "skipped" and kinds["localizer"]["reason"]
    assert kinds["secondary_capture"]["status"] == "skipped"
    assert sum(run["skipped_files"].values()) == 2  # the empty file and the text file
    assert _tree_digest(mixed_folder) == before  # the input is never modified


def test_findings_json_follows_the_contract(mixed_run):
    _, out, _ = mixed_run
    run = json.loads((out / "run.json").read_text())
    key = next(s["key"] for s in run["series"] if s["status"] == "processed")
    doc = json.loads((out / key / "findings.json").read_text())
    assert doc["schema"] == FINDINGS_SCHEMA
    assert {"schema", "input", "warnings", "findings", "report"} <= set(doc)
    assert doc["input"]["modality"] == "CT" and len(doc["input"]["shape"]) == 3
    assert doc["input"]["spacing_mm"] == pytest.approx([3.0, 2.0, 2.0], abs=0.01)
    assert doc["findings"], "the phantom has calcifications"
    for f in doc["findings"]:
        assert set(FINDING_KEYS) <= set(f)
        assert f["region"] in {"aorta", "iliac", "ligamentum_flavum", "renal", "other"}
    assert "DRAFT" in doc["report"]["header"]
    assert (out / key / "report.txt").read_text().startswith("COMPUTER-GENERATED DRAFT")
    assert (out / key / "lesions.nii.gz").exists() and (out / key / "overlays" / "mip_coronal.png").exists()


def test_no_patient_identifier_in_any_output(mixed_run):
    result, out, _ = mixed_run
    for path in [p for p in out.rglob("*") if p.is_file()]:
        data = path.read_bytes()
        if path.suffix == ".gz":
            import gzip
            data = gzip.decompress(data)
        for ident in IDENTIFIERS:
            assert ident not in data, f"{ident!r} leaked into {path.name}"
        assert not any(ident.decode() in path.name for ident in IDENTIFIERS)
    for ident in IDENTIFIERS:
        assert ident.decode() not in result.output


def test_no_usable_series_exit_code(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("nothing here")
    result = runner.invoke(app, ["run", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert result.exit_code == EXIT_NO_USABLE_SERIES
    assert (tmp_path / "out" / "run.json").exists()


@pytest.mark.parametrize("case", ["missing", "inside", "device"])
def test_bad_arguments_exit_code(tmp_path, case):
    (tmp_path / "in").mkdir()
    args = {
        "missing": ["run", str(tmp_path / "nope"), "-o", str(tmp_path / "out")],
        "inside": ["run", str(tmp_path / "in"), "-o", str(tmp_path / "in" / "out")],
        "device": ["run", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--device", "tpu"],
    }[case]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_BAD_ARGUMENTS, result.output
    assert "error:" in result.output
    assert not (tmp_path / "in" / "out").exists()


def test_model_option_uses_the_shipped_network(mixed_folder, tmp_path):
    model = Path(__file__).resolve().parents[1] / "models" / "anatomy_phantom_v0.safetensors"
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(mixed_folder), "-o", str(out), "--device", "cpu",
                                 "--model", str(model), "--no-overlays"])
    assert result.exit_code == EXIT_OK, result.output
    run = json.loads((out / "run.json").read_text())
    key = next(s["key"] for s in run["series"] if s["status"] == "processed")
    doc = json.loads((out / key / "findings.json").read_text())
    assert doc["anatomy"]["source"]["model"] == model.name
    assert doc["anatomy"]["source"]["aorta"] == "cnn+fat-plane"
    assert not (out / key / "overlays").exists()


def test_missing_model_file_is_a_bad_argument(mixed_folder, tmp_path):
    result = runner.invoke(app, ["run", str(mixed_folder), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "x.safetensors")])
    assert result.exit_code == EXIT_BAD_ARGUMENTS
    assert "does not exist" in " ".join(result.output.split())  # rich folds long paths over lines


SAMPLE_RADIOGRAPH = Path(__file__).resolve().parents[1] / "data_samples" / "radiograph_phantom" / "dicom"


@pytest.fixture(scope="module")
def ct_and_radiograph_run(mixed_folder, tmp_path_factory):
    """The CT series of ``mixed_folder`` beside the sample lateral radiograph (DX), both carrying
    a patient's name, ID, birth date and accession number."""
    import shutil

    import pydicom

    root = tmp_path_factory.mktemp("ct_and_dx")
    shutil.copytree(mixed_folder / "a", root / "a")
    for n, src in enumerate(sorted(SAMPLE_RADIOGRAPH.iterdir())):
        ds = pydicom.dcmread(src)
        for key, value in PATIENT.items():
            setattr(ds, key, value)
        (root / "dx").mkdir(exist_ok=True)
        ds.save_as(root / "dx" / f"IM{n:04d}", enforce_file_format=True)
    before = _tree_digest(root)
    out = tmp_path_factory.mktemp("out") / "run"
    result = runner.invoke(app, ["run", str(root), "-o", str(out), "--device", "cpu"])
    return result, out, root, before


def test_a_folder_of_ct_and_a_lateral_radiograph_runs_each_by_its_modality(ct_and_radiograph_run):
    """Issue #6: `calcdetect run` picks the radiograph path by modality in a mixed folder, and a
    researcher reads each radiograph's AAC-24, severity and range from run.json and the console."""
    result, out, root, before = ct_and_radiograph_run
    assert result.exit_code == EXIT_OK, result.output
    run = json.loads((out / "run.json").read_text())
    by_kind = {s["kind"]: s for s in run["series"]}
    assert by_kind["ct_volume"]["status"] == "processed" and "aac24" not in by_kind["ct_volume"]
    dx = by_kind["radiograph"]
    assert dx["status"] == "processed" and dx["modality"] == "DX"
    doc = json.loads((out / dx["key"] / "findings.json").read_text())
    glance, aac24 = dx["aac24"], doc["aac24"]
    assert glance == {"scored": True, "total": aac24["total"], "severity": doc["radiograph"]["severity"],
                      "range": [aac24["interval"]["low"], aac24["interval"]["high"]]}
    assert "AAC-24" in result.output  # the console table's note (rich wraps it to the terminal's width)
    report = (out / dx["key"] / "report.txt").read_text()
    assert report.startswith("COMPUTER-GENERATED DRAFT") and f"AAC-24 score {aac24['total']}" in report
    assert (out / dx["key"] / "overlays" / "radiograph.png").exists()
    assert glance["range"][0] <= glance["total"] <= glance["range"][1]
    for path in [p for p in out.rglob("*") if p.is_file() and p.suffix != ".gz"]:
        assert not any(ident in path.read_bytes() for ident in IDENTIFIERS), path.name
    assert not any(ident.decode() in result.output for ident in IDENTIFIERS)
    assert _tree_digest(root) == before  # the input is never modified
