"""Sweep real corpora through discover + load: load, or a typed calcdetect error.

The full sweep (scripts/sweep_corpus.py, about 30 s on 2 busy cores) decodes a
few 4 MB JPEG 2000 radiographs several times; this test sweeps a representative
subset: dicom2nifti, pydicom-data, pydicom's bundled test files, and every
pylibjpeg file under 400 kB (all transfer syntax folders are represented).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pydicom
import pytest

import calcdetect.errors as errors

PROJECT = Path(__file__).resolve().parents[2]
CORPUS = PROJECT / ".." / "shared" / "data" / "real" / "dicom_corpus"
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _sweep_module():
    spec = importlib.util.spec_from_file_location("sweep_corpus", PROJECT / "scripts" / "sweep_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared real data not present")
def test_corpus_subset_loads_or_refuses_with_typed_errors(tmp_path):
    small = tmp_path / "pylibjpeg_small"
    for path in sorted((CORPUS / "pylibjpeg").rglob("*")):
        if path.is_file() and path.stat().st_size < 400_000:
            link = small / path.parent.name / path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
    roots = [CORPUS / "dicom2nifti", CORPUS / "pydicom-data", PYDICOM_FILES, small]
    sweep = _sweep_module().sweep
    result = sweep(roots, budget=2 * 1024**3)
    assert result.raw == [], "\n".join(result.raw)
    typed = {name for name in errors.__all__}
    for (kind, outcome), _ in result.groups.items():
        assert outcome == "loaded" or outcome.startswith("skipped (") or outcome in typed, (kind, outcome)
    for outcome in result.files:
        assert outcome == "decoded" or outcome in typed, outcome
    # What the corpus is known to hold (see the README of the shared data):
    assert result.groups[("ct_volume", "loaded")] >= 1  # the tilted series, repaired
    assert result.groups[("ct_volume", "MissingSlicesError")] >= 2
    assert result.groups[("ct_volume", "DuplicateSlicesError")] >= 1
    assert result.groups[("radiograph", "loaded")] >= 3
    assert result.groups[("localizer", "skipped (localizer)")] >= 1
    assert result.skipped_files["not DICOM"] >= 10  # NIfTI ground truths, READMEs, ...
    assert result.files["decoded"] > 150
    assert result.slowest[0] < 30.0
