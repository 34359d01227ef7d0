"""The WG04 radiographs RG2 (hip) and RG3 (extremity, AP) are refused, never scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from calcdetect.errors import UnsupportedSeriesError

WG04 = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "dicom_corpus" / "wg04" / "JPLL"


@pytest.mark.parametrize("name, why", [("RG2_JPLL", "hip.*not the lumbar spine"), ("RG3_JPLL", "AP view")])
def test_wg04_radiographs_refused(name, why):
    path = WG04 / name
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    from calcdetect import io
    from calcdetect.radiograph.analyse import analyse_radiograph
    from calcdetect.radiograph.io_image import dicom_body_part

    found = io.discover(path)
    groups = [g for g in found.groups if g.kind == "radiograph"]
    assert groups, found
    rg = io.load_radiograph(groups[0])
    with pytest.raises(UnsupportedSeriesError, match=why):
        analyse_radiograph(rg, body_part=dicom_body_part(groups[0].files[0]))


def test_wg04_hip_refused_by_content_without_header():
    # without BodyPartExamined the content check must still refuse the hip (view unknown)
    path = WG04 / "RG2_JPLL"
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    from calcdetect import io
    from calcdetect.radiograph.analyse import analyse_radiograph

    group = next(g for g in io.discover(path).groups if g.kind == "radiograph")
    with pytest.raises(UnsupportedSeriesError, match="lateral lumbar spine"):
        analyse_radiograph(io.load_radiograph(group))
