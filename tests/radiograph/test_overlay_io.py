"""Overlay PNG (atomic, no identifiers) and PNG / JPEG / TIFF input with a spacing."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from calcdetect.errors import InputError, UnsupportedSeriesError
from calcdetect.radiograph import overlay as overlay_mod
from calcdetect.radiograph.analyse import analyse_radiograph
from calcdetect.radiograph.io_image import load_plain_image, radiograph_from_ct
from calcdetect.types import AcquisitionInfo, Radiograph, Volume


_ALLOWED = re.compile(
    r"^(calcdetect DRAFT - not a diagnosis|AAC-24: \d+ \((low|moderate|high)\)|AAC-24: not scored|\d+% range: \d+-\d+|level  ant  post|"
    r"L[1-4] +\d[? ] +\d\??|AAC-8: \d|groups: low 0-1, mod 2-5, high >=6|\? grade to check first|(T12|L[1-5]|\?)( check)?)$"
)


def test_overlay_written_without_identifiers(lateral_left, tmp_path, monkeypatch):
    info = AcquisitionInfo("DX", series_description="DOE^JANE 1970-01-01", manufacturer="ACME Hospital")
    rg = Radiograph(lateral_left.image, (0.5, 0.5), info, view="lateral")
    a = analyse_radiograph(rg)
    drawn: list[str] = []
    real_text, real_multi = ImageDraw.ImageDraw.text, ImageDraw.ImageDraw.multiline_text

    def spy_text(self, xy, text, *args, **kw):
        drawn.append(text)
        return real_text(self, xy, text, *args, **kw)

    def spy_multi(self, xy, text, *args, **kw):
        drawn.extend(text.split("\n"))
        return real_multi(self, xy, text, *args, **kw)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy_text)
    monkeypatch.setattr(ImageDraw.ImageDraw, "multiline_text", spy_multi)
    path = overlay_mod.write_radiograph_overlay(rg, a, tmp_path / "sub" / "overlay.png")
    assert path.exists() and not list(path.parent.glob(".overlay.png*"))  # atomic: no temp left
    lines = [ln for t in drawn for ln in t.split("\n")]
    assert lines, "nothing drawn"
    bad = [ln for ln in lines if not _ALLOWED.match(ln.strip())]
    assert not bad, bad
    with Image.open(path) as im:
        assert im.mode == "RGB" and max(im.size) <= overlay_mod.MAX_SIDE
        assert not {k: v for k, v in im.info.items() if isinstance(v, str)}  # no text chunks
        px = np.asarray(im)
    # calcium drawn in red somewhere in the picture
    assert ((px[..., 0] == 255) & (px[..., 1] == 0) & (px[..., 2] == 0)).any()


def test_a_crossed_outline_is_drawn_for_checking(lateral_left, tmp_path, monkeypatch):
    """The warning says "check the vertebrae on the overlay": the outline that is no body is drawn
    in its own colour and labelled to be checked, and findings.json says why."""
    from dataclasses import replace

    from calcdetect.radiograph.analyse import detect_spine
    from calcdetect.radiograph.vertebra_net import load_default_vertebra_model

    rg = Radiograph(lateral_left.image, (0.5, 0.5), AcquisitionInfo("DX"), view="lateral")
    vmodel = load_default_vertebra_model()
    spine = detect_spine(np.asarray(rg.array, np.float32), (0.5, 0.5), vmodel)
    crossed = replace(spine, vertebrae=tuple(
        replace(v, corners_rc=v.corners_rc[[0, 2, 1, 3]]) if v.level == "L3" else v for v in spine.vertebrae))
    a = analyse_radiograph(rg, vertebra_model=vmodel, spine=crossed)
    flagged = {v["level"]: v["outline_defect"] for v in a.summary()["vertebrae"]}
    assert "crosses" in flagged["L3"] and all(why is None for lv, why in flagged.items() if lv != "L3")
    drawn: list[str] = []
    real_text = ImageDraw.ImageDraw.text

    def spy_text(self, xy, text, *args, **kw):
        drawn.append(text)
        return real_text(self, xy, text, *args, **kw)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy_text)
    path = overlay_mod.write_radiograph_overlay(rg, a, tmp_path / "overlay.png")
    assert "L3 check" in drawn and "L2" in drawn and "L2 check" not in drawn
    with Image.open(path) as im:
        px = np.asarray(im)
    assert (px == overlay_mod._OUTLINE_DEFECT).all(axis=-1).any()
    # an image with no crossed outline has none of that colour
    clean = overlay_mod.write_radiograph_overlay(rg, analyse_radiograph(rg, vertebra_model=vmodel, spine=spine),
                                                 tmp_path / "clean.png")
    with Image.open(clean) as im:
        assert not (np.asarray(im) == overlay_mod._OUTLINE_DEFECT).all(axis=-1).any()


def test_png_input_with_spacing(lateral_left, tmp_path):
    img = lateral_left.image
    u16 = ((img - img.min()) / (img.max() - img.min()) * 65535).astype(np.uint16)
    p = tmp_path / "lat.png"
    Image.fromarray(u16).save(p)
    rg = load_plain_image(p, 0.5)
    assert rg.pixel_spacing == (0.5, 0.5) and rg.spacing_source == "user" and rg.array.shape == img.shape
    a = analyse_radiograph(rg)
    assert a.aac24 is not None and abs(a.aac24["total"] - lateral_left.aac24_total) <= 2


def test_png_input_without_spacing_is_refused(lateral_left, tmp_path):
    p = tmp_path / "lat8.png"
    img = lateral_left.image
    Image.fromarray(((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)).convert("RGB").save(p)
    rg = load_plain_image(p, None)
    assert rg.pixel_spacing is None and rg.array.ndim == 2
    with pytest.raises(UnsupportedSeriesError, match="pixel spacing"):
        analyse_radiograph(rg)


def test_plain_image_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_plain_image(tmp_path / "missing.png", 0.2)
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(InputError, match="not a readable"):
        load_plain_image(bad, 0.2)
    ok = tmp_path / "ok.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(ok)
    with pytest.raises(InputError, match="positive"):
        load_plain_image(ok, -1.0)


def test_radiograph_from_ct_orientation():
    hu = np.full((10, 8, 6), -1000.0, np.float32)
    hu[9, 2, :] = 1000.0  # dense line at the most superior slice, anterior row j=2
    v = Volume(hu, (2.0, 1.0, 0.5), np.eye(4), AcquisitionInfo("CT"))
    rg = radiograph_from_ct(v)
    assert rg.view == "lateral" and rg.pixel_spacing == (2.0, 1.0)
    r, c = np.unravel_index(np.argmax(rg.array), rg.array.shape)
    assert (r, c) == (0, 2)  # superior on top, anterior column kept
