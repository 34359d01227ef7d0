"""Input / output: find series in DICOM folders, decode them to HU, NIfTI in and out.

Call :func:`discover` once on a folder, then :func:`load_ct` or
:func:`load_radiograph` for each group you want::

    found = discover(Path("study/"))
    for group in found.loadable():
        volume = load_ct(group) if group.kind != "radiograph" else load_radiograph(group)
"""

from __future__ import annotations

from calcdetect.io.decode import DEFAULT_MEMORY_BUDGET
from calcdetect.io.dicom import load_ct
from calcdetect.io.discovery import Discovery, SeriesGroup, discover
from calcdetect.io.nifti import is_nifti, load_nifti, write_nifti, write_nifti_labels
from calcdetect.io.radiograph import load_radiograph

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "Discovery",
    "SeriesGroup",
    "discover",
    "load_ct",
    "load_radiograph",
    "load_nifti",
    "write_nifti",
    "write_nifti_labels",
    "is_nifti",
]
