"""The WG04 radiographs RG2 (hip) and RG3 (extremity, AP) are refused, never scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from calcdetect.errors import UnsupportedSeriesError

WG04 = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "dicom_corpus" / "wg04" / "JPLL"


@pytest.mark.parametrize("name, why", [("RG2_JPLL", "spine"), ("RG3_JPLL", "AP view")])
def test_wg04_radiographs_refused(name, why):
    path = WG04 / name
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    from calcdetect import io
    from calcdetect.radiograph.analyse import analyse_radiograph

    found = io.discover(path)
    groups = [g for g in found.groups if g.kind == "radiograph"]
    assert groups, found
    rg = io.load_radiograph(groups[0])
    with pytest.raises(UnsupportedSeriesError, match=why):
        analyse_radiograph(rg)
