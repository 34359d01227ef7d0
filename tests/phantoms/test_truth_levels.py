"""The phantom truth's vertebral level convention (calcdetect.phantoms.truth.level_span).

Constructed column (LPS z, superior positive): L2 body 100..72, L2-L3 disc
72..62, L3 body 62..34, L3-L4 disc 34..24, L4 body 24..-4.
"""

from __future__ import annotations

import pytest

from calcdetect.phantoms.truth import MIN_LEVEL_OVERLAP_MM, VertebraTruth, level_span

VERTS = [VertebraTruth("L2", 100.0, 72.0), VertebraTruth("L3", 62.0, 34.0), VertebraTruth("L4", 24.0, -4.0)]


def test_minimum_overlap_is_one_millimetre() -> None:
    # A reporting convention (what a reader can resolve), documented in truth.py.
    assert MIN_LEVEL_OVERLAP_MM == 1.0


@pytest.mark.parametrize("into_disc_mm", [0.1, 0.5, 0.9])
def test_sub_millimetre_entry_into_a_disc_is_ignored(into_disc_mm: float) -> None:
    # A plaque along L2 whose lower end pokes into the disc below by < 1 mm is "L2".
    assert level_span(72.0 - into_disc_mm, 90.0, VERTS) == "L2"
    # ... and one in the disc that touches the L3 endplate by < 1 mm stays in the disc.
    assert level_span(62.0 - into_disc_mm, 70.0, VERTS) == "L2-L3"


@pytest.mark.parametrize("into_disc_mm", [1.0, 1.5, 4.0])
def test_overlap_of_one_millimetre_or_more_counts(into_disc_mm: float) -> None:
    assert level_span(72.0 - into_disc_mm, 90.0, VERTS) == "L2-L3"
    # Through the disc into L3 by >= 1 mm: the span runs L2 to L3.
    assert level_span(62.0 - into_disc_mm, 80.0, VERTS) == "L2-L3"
    # From L2 across the L2-L3 disc and all of L3 into the L3-L4 disc.
    assert level_span(34.0 - into_disc_mm, 80.0, VERTS) == "L2-L4"


def test_tiny_lesion_straddling_a_boundary_gets_its_centroid_level() -> None:
    # 1.6 mm tall, 0.8 mm on each side of the L2 / L2-L3 boundary: no level reaches 1 mm.
    assert level_span(71.2, 72.8, VERTS) == "L2"  # centroid defaults to the middle (72.0, on the endplate)
    assert level_span(71.2, 72.8, VERTS, centroid_z=71.5) == "L2-L3"
    assert level_span(71.2, 72.8, VERTS, centroid_z=72.5) == "L2"


def test_tiny_lesion_inside_one_level_keeps_it() -> None:
    # A 0.6 mm focus wholly inside L3 overlaps it by less than 1 mm but lies there.
    assert level_span(50.0, 50.6, VERTS) == "L3"
    # A point (zero extent) in a disc, as used for the aortic bifurcation.
    assert level_span(30.0, 30.0, VERTS) == "L3-L4"


def test_outside_the_column() -> None:
    assert level_span(104.0, 106.0, VERTS) == "L2"  # just above the top modelled body
    assert level_span(-100.0, -90.0, VERTS) is None  # the pelvis, far below
    assert level_span(50.0, 60.0, []) is None


def test_phantom_truth_levels_use_the_analytic_extent(small_phantom) -> None:
    """Each lesion's truth level is the convention applied to its shape's z extent,
    which encloses the voxels' sub-sampled extent (so the level does not depend on
    where the slices fall)."""
    verts = [VertebraTruth(v["level"], v["z_top_mm"], v["z_bottom_mm"]) for v in small_phantom.anatomy["vertebrae"]]
    sub_mm = 2.0 / 6 + 1e-3  # one sub-sample along z at 2 mm slices
    checked = 0
    for les in small_phantom.lesions:
        if les.kind == "contrast":
            continue
        z0, z1 = les.extra["z_extent_mm"]
        assert z0 - 1e-3 <= les.bbox_mm[2] <= z0 + sub_mm
        assert z1 - sub_mm <= les.bbox_mm[5] <= z1 + 1e-3
        assert les.level == level_span(z0, z1, verts, centroid_z=les.centroid_lps_mm[2])
        checked += 1
    assert checked >= 10
