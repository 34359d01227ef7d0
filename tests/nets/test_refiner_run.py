"""The calcium refiner in the CT pipeline (issue #5): train, save, load, `calcdetect run --refiner`,
and the fusion rule (a rejected finding keeps its HU measurements but is reported as "other")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from calcdetect.cli import EXIT_OK, app
from calcdetect.device import Device
from calcdetect.io.dicom_write import write_ct_series
from calcdetect.nets import NetConfig, ModelSpec, build_calcium_refiner, load_model, save_model, write_model_card
from calcdetect.nets.classes import REFINER_CLASSES
from calcdetect.nets.refiner import (
    REFINED_REGIONS,
    REFINER_INTENSITY,
    lesion_patches,
    mask_of_lesion,
    masks_from_labels,
    refine_findings,
)
from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom
from calcdetect.types import AcquisitionInfo, Finding, Kind, Lesion, Morphology, Volume

runner = CliRunner()
REPORTABLE = {"aorta", "iliac", "renal", "ligamentum_flavum"}
TINY = NetConfig(arch="refiner_cnn", in_channels=2, out_channels=len(REFINER_CLASSES), channels=(4, 8))


def _trained_tiny_refiner(path: Path, threshold: float) -> Path:
    """One optimiser step on a handful of synthetic patches, saved with a card (as train_refiner.py does)."""
    torch.manual_seed(0)
    model = build_calcium_refiner(TINY)
    x = torch.randn(6, 2, 8, 8, 8)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    spec = ModelSpec(task="refiner", net=TINY, classes=REFINER_CLASSES, spacing_mm=(1.25,) * 3,
                     intensity=dict(REFINER_INTENSITY), patch_size=(8,) * 3, extra={"threshold": str(threshold)})
    save_model(model, path, spec)
    write_model_card(path, title="tiny test refiner", sections={"Training data": "six random patches"})
    return path


@pytest.fixture(scope="module")
def small_ct(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refiner_ct")
    ph = generate_ct_phantom(CTPhantomSettings(
        seed=5, matrix=128, pixel_mm=2.5, slice_thickness_mm=3.0, fov=("L3", "L5"),
        noise_sigma_hu=10.0, plaque_burden=0.8, renal_stones=1, distractors=False,
    ))
    write_ct_series(ph.hu, ph.spacing, ph.affine, root / "ct", seed=1)
    return root / "ct"


def _findings(out: Path) -> dict:
    docs = list(out.glob("*/findings.json"))
    assert len(docs) == 1
    return json.loads(docs[0].read_text())


def test_refiner_trained_saved_loaded_and_run_by_the_pipeline(small_ct, tmp_path):
    """A refiner that rejects everything (threshold above any p) turns every
    reportable finding into a look-alike, with the same measurements; the run
    without --refiner is the rules' result."""
    weights = _trained_tiny_refiner(tmp_path / "ref.safetensors", threshold=1.01)
    loaded = load_model(weights, Device("cpu"))  # the card's sha256 is checked
    assert loaded.spec.task == "refiner" and loaded.spec.extra["threshold"] == "1.01"

    base = runner.invoke(app, ["run", str(small_ct), "-o", str(tmp_path / "rules"), "--device", "cpu",
                               "--no-overlays"])
    refined = runner.invoke(app, ["run", str(small_ct), "-o", str(tmp_path / "ref"), "--device", "cpu",
                                  "--no-overlays", "--refiner", str(weights)])
    assert base.exit_code == EXIT_OK and refined.exit_code == EXIT_OK, refined.output
    before, after = _findings(tmp_path / "rules"), _findings(tmp_path / "ref")
    assert set(REFINED_REGIONS) == REPORTABLE
    reportable = [f for f in before["findings"] if f["region"] in REPORTABLE]
    assert reportable, "the phantom must give the rules something to report"
    assert "refiner" not in before
    rec = after["refiner"]
    assert rec["model"] == "ref.safetensors" and rec["threshold"] == pytest.approx(1.01)
    assert set(rec["p_calcification"]) == {f["id"] for f in reportable}
    assert sorted(rec["demoted"]) == sorted(f["id"] for f in reportable)
    by_id = {f["id"]: f for f in after["findings"]}
    assert len(by_id) == len(before["findings"])
    for f in before["findings"]:
        g = by_id[f["id"]]
        for key in ("volume_mm3", "agatston", "mass_mg", "peak_hu", "mean_hu", "voxel_count", "bbox_kji"):
            assert g[key] == f[key]
        assert g["region"] == ("other" if f["region"] in REPORTABLE else f["region"])


class _MaskSizeRefiner(nn.Module):
    """p(calcification) rises with the candidate's mask size in the patch: small specks are rejected."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x[:, 1].flatten(1).sum(dim=1)
        return torch.stack([torch.zeros_like(n), (n - 20.0) / 5.0], dim=1)


def _lesion(label: int, box: tuple[slice, slice, slice], hu: float) -> Lesion:
    mask = np.ones(tuple(s.stop - s.start for s in box), bool)
    centre = tuple(float((s.start + s.stop - 1) / 2) for s in box)
    return Lesion(label, (box[0].start, box[1].start, box[2].start, box[0].stop, box[1].stop, box[2].stop), mask,
                  int(mask.sum()), float(mask.sum()), 12.5 * label, 3.0 * label, hu, hu, centre, centre,  # type: ignore[arg-type]
                  4.0)


def test_rejected_finding_keeps_its_measurements_but_becomes_other():
    hu = np.full((30, 40, 40), 40.0, np.float32)
    big = (slice(10, 14), slice(10, 14), slice(10, 14))  # 64 voxels: p high, kept
    speck = (slice(20, 22), slice(25, 27), slice(25, 27))  # 8 voxels: p low, rejected
    bone = (slice(3, 5), slice(30, 32), slice(30, 32))  # already "other": never scored
    for box in (big, speck, bone):
        hu[box] = 500.0
    vol = Volume(hu, (1.25, 1.25, 1.25), np.diag([1.25, 1.25, 1.25, 1.0]), AcquisitionInfo("CT"))
    les = [_lesion(1, big, 500.0), _lesion(2, speck, 500.0), _lesion(3, bone, 500.0)]
    findings = [
        Finding("F001", les[0], "aorta", None, "L3", Kind.ATHEROSCLEROTIC, Morphology.PLAQUE, 0.9, "infrarenal",
                "aorta"),
        Finding("F002", les[1], "ligamentum_flavum", "left", "L4", Kind.LIGAMENT, Morphology.PUNCTATE, 0.7, None,
                "ligamentum_flavum_zone"),
        Finding("F003", les[2], "other", None, "L2", Kind.BONE, Morphology.PUNCTATE, 0.5),
    ]
    model = _MaskSizeRefiner()
    r = refine_findings(findings, vol, model, Device("cpu"), threshold=0.5)
    assert set(r.p_calcification) == {"F001", "F002"}
    assert r.p_calcification["F001"] > 0.5 > r.p_calcification["F002"]
    assert r.demoted == ("F002",)
    kept, rejected, other = r.findings
    assert kept == findings[0] and other == findings[2]
    assert (rejected.region, rejected.kind, rejected.side, rejected.structure) == ("other", Kind.UNKNOWN, None, None)
    assert rejected.lesion is les[1]  # volume, Agatston, mass, HU: the candidate stage's, untouched
    assert (rejected.lesion.agatston, rejected.lesion.mass_mg, rejected.lesion.volume_mm3) == (25.0, 6.0, 8.0)
    assert rejected.id == "F002" and rejected.level == "L4"


def test_training_masks_and_pipeline_masks_give_the_same_patch():
    """train_refiner.py cuts patches from lesions.nii.gz, the pipeline from each finding's lesion:
    the network must see the same input both ways."""
    hu = np.random.default_rng(0).normal(40, 20, (24, 30, 30)).astype(np.float32)
    box = (slice(8, 12), slice(9, 15), slice(10, 13))
    hu[box] = 450.0
    vol = Volume(hu, (2.5, 0.8, 0.8), np.diag([2.5, 0.8, 0.8, 1.0]), AcquisitionInfo("CT"))
    les = _lesion(7, box, 450.0)
    labels = np.zeros(hu.shape, np.uint16)
    labels[box] = 7
    from_labels = masks_from_labels(labels, [7, 9])
    assert from_labels[1] is None
    a = lesion_patches(vol, [mask_of_lesion(les)], size=12, spacing_mm=1.25)
    b = lesion_patches(vol, [from_labels[0]], size=12, spacing_mm=1.25)  # type: ignore[list-item]
    np.testing.assert_array_equal(a, b)
    assert a[0, 1].sum() > 0 and a[0, 0].max() == pytest.approx(0.45, abs=1e-3)


def test_shipped_refiner_loads_with_its_card_and_a_threshold():
    """models/calcium_refiner_phantom_v0 must load (sha256 on its card) and carry the threshold the pipeline uses."""
    from calcdetect.nets.refiner import refiner_threshold

    path = Path(__file__).resolve().parents[2] / "models" / "calcium_refiner_phantom_v0.safetensors"
    model = load_model(path, Device("cpu"))
    assert model.spec.task == "refiner" and model.spec.classes == REFINER_CLASSES
    assert 0.0 < refiner_threshold(model) < 1.0
    size = model.spec.patch_size[0]
    assert model(torch.zeros(1, 2, size, size, size)).shape == (1, 2)


def test_run_refuses_a_missing_refiner_file(small_ct, tmp_path):
    from calcdetect.cli import EXIT_BAD_ARGUMENTS

    res = runner.invoke(app, ["run", str(small_ct), "-o", str(tmp_path / "o"), "--device", "cpu",
                              "--refiner", str(tmp_path / "nope.safetensors")])
    assert res.exit_code == EXIT_BAD_ARGUMENTS and "--refiner" in res.output


def test_a_network_of_the_wrong_kind_is_refused_with_its_option():
    from calcdetect.device import Device
    from calcdetect.errors import InputError
    from calcdetect.pipeline import _network

    models = Path(__file__).resolve().parents[2] / "models"
    with pytest.raises(InputError, match="--model calcium_refiner_phantom_v0.safetensors holds a 'refiner' network"):
        _network(models / "calcium_refiner_phantom_v0.safetensors", Device("cpu"), "anatomy")
    with pytest.raises(InputError, match="--refiner anatomy_phantom_v0.safetensors holds a 'anatomy' network"):
        _network(models / "anatomy_phantom_v0.safetensors", Device("cpu"), "refiner")
