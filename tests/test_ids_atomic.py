"""Output names come from hashed UIDs; outputs appear whole or not at all."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from calcdetect.export.atomic import atomic_write_json, atomic_write_text
from calcdetect.ids import hash_uid, series_key

UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def test_series_key_is_stable_and_hides_the_uid():
    key = series_key(UID)
    assert key == series_key(UID)
    assert key != series_key(UID, "orientation-2")
    assert UID not in key and "12345" not in key
    assert len(key) == 17 and key.startswith("s")
    assert hash_uid(None) is None


def test_atomic_json_roundtrip_handles_numpy(tmp_path):
    path = atomic_write_json(tmp_path / "a" / "x.json", {"v": np.float32(1.5), "arr": np.arange(3)})
    assert json.loads(path.read_text()) == {"v": 1.5, "arr": [0, 1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temp files left


def test_failed_write_leaves_the_old_file_untouched(tmp_path):
    target = tmp_path / "report.txt"
    atomic_write_text(target, "old")
    with pytest.raises(ValueError):
        atomic_write_json(target, {"bad": float("nan")})  # NaN is not valid JSON
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["report.txt"]


def test_outputs_get_normal_permissions(tmp_path):
    path = atomic_write_text(tmp_path / "r.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
