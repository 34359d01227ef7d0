"""Lateral lumbar spine radiographs: vertebrae T12-L5, aortic calcification, AAC-24 (issue #6).

Public surface::

    check_lateral_spine(radiograph)                 refuse AP/PA, non-spine, no spacing
    analyse_radiograph(radiograph, device) -> RadiographAnalysis
    radiograph_report_lines(analysis) -> (findings lines, impression lines)
    write_radiograph_overlay(radiograph, analysis, path) -> Path
    load_plain_image(path, pixel_spacing_mm) -> Radiograph     PNG / JPEG / TIFF
    radiograph_from_ct(volume) -> Radiograph                    lateral projection of a CT

Vertebrae and levels are found by rules (:mod:`calcdetect.radiograph.vertebrae`);
aortic calcium by a small 2-D net trained on projected phantoms
(:mod:`calcdetect.radiograph.aac_net`, ``models/radiograph_aac_v8``) with the rule
detector (:mod:`calcdetect.radiograph.aac`) as the fallback. It runs on the CPU in
about a second.
"""

from calcdetect.radiograph.aac import AAC_LEVELS, SEVERITY_GROUPING, kauppila_grade, severity_group
from calcdetect.radiograph.analyse import (
    RadiographAnalysis,
    VertebraResult,
    analyse_radiograph,
    check_lateral_spine,
    radiograph_report_lines,
)
from calcdetect.radiograph.io_image import (
    PLAIN_IMAGE_SUFFIXES,
    dicom_body_part,
    load_plain_image,
    radiograph_from_ct,
)
from calcdetect.radiograph.overlay import write_radiograph_overlay

__all__ = [
    "AAC_LEVELS",
    "SEVERITY_GROUPING",
    "PLAIN_IMAGE_SUFFIXES",
    "RadiographAnalysis",
    "VertebraResult",
    "analyse_radiograph",
    "check_lateral_spine",
    "dicom_body_part",
    "kauppila_grade",
    "load_plain_image",
    "radiograph_from_ct",
    "radiograph_report_lines",
    "severity_group",
    "write_radiograph_overlay",
]
