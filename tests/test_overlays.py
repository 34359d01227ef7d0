"""Overlays show findings in their region colour and carry no identifiers."""

from __future__ import annotations

import numpy as np
from PIL import Image

from calcdetect.export.overlays import REGION_COLOURS, write_overlays
from calcdetect.types import AcquisitionInfo, Finding, Kind, Lesion, Morphology, Volume


def _volume_with_plaque():
    hu = np.full((6, 64, 64), -50.0, np.float32)
    hu[2:4, 30:34, 40:44] = 500.0
    labels = np.zeros(hu.shape, np.int32)
    labels[2:4, 30:34, 40:44] = 1
    affine = np.eye(4)[[2, 1, 0, 3]] * 1.0  # (k, j, i) -> (x=i, y=j, z=k)
    affine[3] = [0, 0, 0, 1]
    info = AcquisitionInfo(modality="CT", series_description="PATIENT DOE^JOHN")
    volume = Volume(hu, (1.0, 1.0, 1.0), affine, info)
    lesion = Lesion(label=1, bbox=(2, 30, 40, 4, 34, 44), mask=np.ones((2, 4, 4), bool), voxel_count=32,
                    volume_mm3=32.0, agatston=50.0, mass_mg=5.0, peak_hu=500.0, mean_hu=500.0,
                    centroid_lps_mm=(41.5, 31.5, 2.5), centroid_kji=(2.5, 31.5, 41.5), max_diameter_mm=5.0)
    finding = Finding("F1", lesion, "aorta", None, "L3", Kind.ATHEROSCLEROTIC, Morphology.PLAQUE, 0.9)
    return volume, labels, finding


def test_overlays_written_with_region_colour(tmp_path):
    volume, labels, finding = _volume_with_plaque()
    paths = write_overlays(volume, labels, [finding], tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["axial_0002.png", "mip_coronal.png", "mip_sagittal.png"]
    axial = np.asarray(Image.open(tmp_path / "axial_0002.png").convert("RGB"))
    assert axial.shape[1] >= 512  # upscaled for reading
    red = np.asarray(REGION_COLOURS["aorta"])
    close = np.abs(axial.astype(int) - red).sum(axis=2) < 120
    assert close.sum() > 50  # the plaque is painted in the aorta colour


def test_overlay_files_hold_no_identifiers(tmp_path):
    volume, labels, finding = _volume_with_plaque()
    for path in write_overlays(volume, labels, [finding], tmp_path):
        data = path.read_bytes()
        assert b"DOE" not in data and b"JOHN" not in data
        assert Image.open(path).info.get("Comment") is None


def test_overview_leaves_out_unnamed_specks(tmp_path):
    from dataclasses import replace

    from calcdetect.export.overlays import mip_overlay

    volume, labels, finding = _volume_with_plaque()
    labels[5, 5:7, 5:7] = 2  # a noise speck, classified other/unknown
    speck = replace(finding, id="F2", lesion=replace(finding.lesion, label=2), region="other", kind=Kind.UNKNOWN)
    image = np.asarray(mip_overlay(volume, labels, [finding, speck], axis=1).convert("RGB"))
    blue = np.abs(image.astype(int) - np.asarray(REGION_COLOURS["other"])).sum(axis=2) < 60
    red = np.abs(image.astype(int) - np.asarray(REGION_COLOURS["aorta"])).sum(axis=2) < 120
    assert red[40:].any()  # the plaque is shown (below the legend strip)
    assert not blue[40:].any()  # the speck is not
