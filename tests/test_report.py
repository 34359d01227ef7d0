"""The draft report says what a radiologist would write, and only that."""

from __future__ import annotations

import numpy as np
import pytest

from calcdetect.anatomy.regions import Region
from calcdetect.report import DRAFT_HEADER, draft_report
from calcdetect.types import Finding, Kind, Lesion, Morphology

ALL_IN_FOV = {r: True for r in (Region.AORTA, Region.ILIAC, Region.RENAL, Region.LIGAMENTUM_FLAVUM)}


def lesion(label: int = 1, *, agatston: float = 10.0, volume: float = 8.0, diameter: float = 3.0) -> Lesion:
    return Lesion(
        label=label, bbox=(0, 0, 0, 1, 1, 1), mask=np.ones((1, 1, 1), bool), voxel_count=1,
        volume_mm3=volume, agatston=agatston, mass_mg=1.0, peak_hu=400.0, mean_hu=300.0,
        centroid_lps_mm=(0.0, 0.0, 0.0), centroid_kji=(0.0, 0.0, 0.0), max_diameter_mm=diameter,
    )


def finding(region: Region, *, kind: Kind = Kind.ATHEROSCLEROTIC, side=None, level=None, segment=None,
            morphology: Morphology = Morphology.PLAQUE, **lesion_kw) -> Finding:
    return Finding(id="F1", lesion=lesion(**lesion_kw), region=region.value, side=side, level=level,
                   kind=kind, morphology=morphology, confidence=0.9, segment=segment)


def test_every_report_is_marked_as_a_draft():
    report = draft_report([], ALL_IN_FOV)
    assert report.header == DRAFT_HEADER
    assert "DRAFT" in report.text() and "NOT A DIAGNOSIS" in report.text()


def test_aortic_calcification_sentence_spans_levels_and_sums_scores():
    findings = [
        finding(Region.AORTA, level="L2", segment="infrarenal", agatston=100.4, volume=80.0),
        finding(Region.AORTA, level="L3-L4", segment="infrarenal", agatston=211.7, volume=160.0),
    ]
    report = draft_report(findings, ALL_IN_FOV)
    assert ("Atherosclerotic calcification of the infrarenal abdominal aorta from L2 to L4 "
            "(Agatston 312; volume 240 mm3).") in report.findings
    assert "No calcification of the iliac arteries." in report.findings
    assert report.impression.startswith("1. Atherosclerotic calcification of the abdominal aorta")


def test_clear_aortoiliac_region_gets_one_negative_sentence():
    report = draft_report([], ALL_IN_FOV)
    assert "No aortoiliac calcification." in report.findings
    assert "iliac arteries" not in report.findings.replace("aortoiliac", "")


def test_region_outside_field_of_view_is_said_so():
    fov = dict(ALL_IN_FOV, **{Region.ILIAC: False})
    report = draft_report([], fov)
    assert "The iliac arteries are not included in the field of view." in report.findings
    assert "No calcification of the abdominal aorta." in report.findings


def test_region_in_view_but_not_found_is_not_called_clear():
    report = draft_report([], ALL_IN_FOV, not_found={Region.RENAL, Region.ILIAC})
    assert "The kidneys were not identified; renal calcification was not assessed." in report.findings
    assert "No renal calculi" not in report.findings
    # Half of "aortoiliac" was never looked at: no combined negative sentence.
    assert "No aortoiliac calcification." not in report.findings
    assert "No calcification of the abdominal aorta." in report.findings
    assert "The iliac arteries were not identified" in report.findings


def test_findings_in_a_region_not_found_are_still_reported():
    findings = [finding(Region.ILIAC, side="right", segment="common")]
    report = draft_report(findings, ALL_IN_FOV, not_found={Region.ILIAC})
    assert "not identified" not in report.findings
    assert "iliac" in report.findings


def test_iliac_plaque_wording():
    report = draft_report([finding(Region.ILIAC, side="right", segment="common")], ALL_IN_FOV)
    assert "Calcified plaque in the right common iliac artery" in report.findings



def test_iliac_segments_read_as_an_english_list_per_side():
    findings = [finding(Region.ILIAC, side="right", segment=g) for g in ("common", "external")]
    findings += [finding(Region.ILIAC, side="left", segment=g) for g in ("internal", "common", "external")]
    report = draft_report(findings, ALL_IN_FOV)
    assert ("Calcified plaque in the right common and external iliac arteries and in the "
            "left common, external and internal iliac arteries") in report.findings


def test_same_iliac_segments_on_both_sides_are_bilateral():
    findings = [finding(Region.ILIAC, side=s, segment="common") for s in ("right", "left")]
    report = draft_report(findings, ALL_IN_FOV)
    assert "Calcified plaque in the common iliac arteries, bilateral" in report.findings

def test_renal_stones_counted_with_largest_and_pole():
    stones = [
        finding(Region.RENAL, kind=Kind.STONE, side="left", segment="lower pole", diameter=6.2),
        finding(Region.RENAL, kind=Kind.STONE, side="left", segment="upper pole", diameter=2.0),
    ]
    report = draft_report(stones, ALL_IN_FOV)
    assert "Two calculi in the left kidney, the largest 6 mm in the lower pole." in report.findings
    assert "nonobstructing" not in report.findings  # hydronephrosis is not assessed
    assert "Left nephrolithiasis (2 calculi, largest 6 mm)." in report.impression


def test_bilateral_medullary_nephrocalcinosis():
    nc = [
        finding(Region.RENAL, kind=Kind.NEPHROCALCINOSIS, side=s, segment="medulla",
                morphology=Morphology.PUNCTATE, diameter=1.5)
        for s in ("left", "right")
    ]
    report = draft_report(nc, ALL_IN_FOV)
    assert "Punctate medullary nephrocalcinosis, bilateral." in report.findings


def test_ligamentum_flavum_sentence():
    report = draft_report(
        [finding(Region.LIGAMENTUM_FLAVUM, kind=Kind.LIGAMENT, side="left", level="T11-T12", diameter=4.0)],
        ALL_IN_FOV,
    )
    assert "Calcification of the ligamentum flavum at T11-T12, left, 4 mm." in report.findings


def test_lookalikes_are_not_reported_as_calcification():
    report = draft_report([finding(Region.OTHER, kind=Kind.PHLEBOLITH)], ALL_IN_FOV)
    assert "phlebolith" not in report.findings.lower()
    assert "No aortoiliac calcification." in report.findings
    assert "No vascular, renal or ligamentous calcification" in report.impression


@pytest.mark.parametrize("note", ["Transitional lumbosacral anatomy suspected."])
def test_anatomy_notes_reach_the_reader_outside_the_report_wording(note):
    report = draft_report([], ALL_IN_FOV, notes=[note, note])
    assert note not in report.findings and note not in report.impression
    assert report.notes == f"- {note}"  # once, even if two stages raised it
    text = report.text()
    assert text.index("IMPRESSION:") < text.index("NOTES (calcdetect") < text.index(note)
    assert "NOTES" not in draft_report([], ALL_IN_FOV).text()


def test_multilevel_ligamentum_flavum_is_summarised_in_one_sentence():
    levels = ["L1", "L2", "L3-L4", "L5-S1", "L2"]
    lf = [
        finding(Region.LIGAMENTUM_FLAVUM, kind=Kind.LIGAMENT, side=side, level=lv, diameter=d)
        for lv, side, d in zip(levels, ["left", "right", "left", "right", "left"], [5, 7, 16, 28, 3])
    ]
    report = draft_report(lf, ALL_IN_FOV)
    lines = [l for l in report.findings.splitlines() if "ligamentum flavum" in l]
    assert lines == [
        "Multilevel calcification of the ligamentum flavum from L1 to S1, bilateral, the largest 28 mm at L5-S1."
    ]


def test_two_flecks_at_one_level_share_a_sentence():
    lf = [
        finding(Region.LIGAMENTUM_FLAVUM, kind=Kind.LIGAMENT, side=s, level="T11-T12", diameter=d)
        for s, d in (("left", 4.0), ("right", 2.0))
    ]
    report = draft_report(lf, ALL_IN_FOV)
    assert "Calcification of the ligamentum flavum at T11-T12, bilateral, the largest 4 mm." in report.findings


def test_thoracic_aortic_calcium_is_named_thoracic_in_the_impression():
    findings = [finding(Region.AORTA, segment="thoracic", agatston=100.0),
                finding(Region.AORTA, segment=None, agatston=50.0)]
    report = draft_report(findings, ALL_IN_FOV)
    assert "descending thoracic aorta" in report.findings
    assert "thoracic and abdominal aorta (total Agatston 150)" in report.impression


@pytest.mark.parametrize("size, article", [(8.0, "An"), (11.0, "An"), (18.0, "An"), (7.0, "A"), (8.4, "An"),
                                           (5.0, "A"), (80.0, "An"), (12.0, "A")])
def test_calculus_sentence_uses_the_right_article(size, article):
    stone = finding(Region.RENAL, kind=Kind.STONE, side="left", diameter=size)
    lines = draft_report([stone], ALL_IN_FOV).findings.splitlines()
    assert any(line.startswith(f"{article} {size:.0f} mm calculus in the left kidney") for line in lines)
