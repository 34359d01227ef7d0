"""The AAC-24 range a calcium net carries (metadata ``aac24_error_bound``): written by the
restamp, read by the loader, refused with a fix when malformed, and the shares it rests on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from compare_calcium_nets import within_points  # noqa: E402
from mask_net import TINY_CONFIG  # noqa: E402
from train_radiograph_aac import parse_error_bound, restamp  # noqa: E402

from calcdetect.radiograph.aac import Aac24ErrorBound, severity_span  # noqa: E402
from calcdetect.radiograph.aac_net import build_calcium_net, load_calcium_model, save_calcium_model  # noqa: E402


def test_restamp_writes_a_bound_the_loader_reads(tmp_path):
    src = save_calcium_model(build_calcium_net(TINY_CONFIG), TINY_CONFIG, 0.5, tmp_path / "a.safetensors")
    assert load_calcium_model(src).aac24_error_bound is None  # not measured: no range
    out = restamp(src, tmp_path / "b.safetensors", None, None,
                  extra={"aac24_error_bound": parse_error_bound("0.9:3:film 1100-1299")})
    assert load_calcium_model(out).aac24_error_bound == Aac24ErrorBound(0.9, 3, "film 1100-1299")


@pytest.mark.parametrize("text", ["80:2:film", "0.8:-1:film", "0.8:two:film", "0.8:2:", "0.8"])
def test_a_malformed_bound_is_refused_on_the_command_line(text):
    with pytest.raises(SystemExit, match="COVERAGE:POINTS:MEASURED_ON|say where"):
        parse_error_bound(text)


@pytest.mark.parametrize("meta", ['{"coverage": 0.8}', "[0.8, 2]", '{"coverage": 1.5, "points": 2, "measured_on": "x"}'])
def test_a_malformed_bound_in_a_file_is_refused_with_the_fix(tmp_path, meta):
    path = save_calcium_model(build_calcium_net(TINY_CONFIG), TINY_CONFIG, 0.5, tmp_path / "m.safetensors",
                              {"aac24_error_bound": meta})
    with pytest.raises(ValueError, match="aac24_error_bound.*--error-bound"):
        load_calcium_model(path)


def test_the_range_stays_inside_the_scale_and_names_every_group_it_touches():
    bound = Aac24ErrorBound(0.8, 2, "phantoms")
    assert bound.as_json(0)["low"] == 0 and bound.as_json(0)["high"] == 2
    assert bound.as_json(24)["high"] == 24
    assert bound.as_json(1)["severity"] == "low to moderate"
    assert bound.as_json(5)["severity"] == "moderate to high"
    assert bound.as_json(9)["severity"] == "high"
    assert severity_span(2, 5) == "moderate"
    json.dumps(bound.as_json(7))  # goes into findings.json as is


def test_within_points_is_the_share_the_bound_is_chosen_from():
    pairs = [(10, 10), (4, 6), (8, 5), (0, 1), (12, 16)]
    shares = within_points(pairs)
    assert shares == {"0": 0.2, "1": 0.4, "2": 0.6, "3": 0.8, "4": 1.0}
    assert within_points([]) == {}
