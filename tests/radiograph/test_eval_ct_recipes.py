"""The evaluator's CT recipes (scripts/eval_radiograph.py CT_RECIPES): the realism check
projects the same seeds from a CT with less blur, and its cases never mix with the
standard ones that every README number comes from."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import eval_radiograph as er  # noqa: E402

from calcdetect.phantoms.physics import kernel_fwhm_mm  # noqa: E402


def test_the_sharp_recipe_blurs_less_in_every_direction():
    std, sharp = er.CT_RECIPES["standard"].ct, er.CT_RECIPES["sharp"].ct
    assert sharp["pixel_mm"] < std["pixel_mm"] and sharp["slice_thickness_mm"] < std["slice_thickness_mm"]
    assert kernel_fwhm_mm(str(sharp["kernel"])) < kernel_fwhm_mm(str(std["kernel"]))
    # the same field of view, so the same anatomy is projected
    assert sharp["matrix"] * sharp["pixel_mm"] == pytest.approx(std["matrix"] * std["pixel_mm"], rel=0.01)


def test_an_unknown_recipe_is_refused_by_name():
    with pytest.raises(ValueError, match="standard, sharp"):
        er.phantom_recipe(1, "soft")


def test_recipes_are_cached_apart(tmp_path, monkeypatch):
    made = []

    class _Projection:
        def __init__(self, ct):
            self.image = np.full((4, 4), float(len(made)), np.float32)
            self.pixel_spacing_mm, self.magnification = (0.3, 0.3), 1.0
            self.lesion_labels = np.zeros((4, 4), np.uint16)
            self.aortic_profile_mask = np.zeros((4, 4), bool)
            self.aac24 = self.aac24_all_walls = None
            self.vertebrae, self.lesions = {}, []

    def fake_recipe(seed, ct="standard"):
        made.append(ct)
        return ct, type("S", (), {"obesity_fat_mm": 0.0, "photons_per_pixel": 1e4})()

    import calcdetect.phantoms.radiograph as rad

    monkeypatch.setattr(er, "phantom_recipe", fake_recipe)
    monkeypatch.setattr(rad, "generate_lateral_radiograph", lambda ct, settings: _Projection(ct))
    a = er.phantom_case(7, tmp_path, "standard")
    b = er.phantom_case(7, tmp_path, "sharp")
    assert made == ["standard", "sharp"] and a["image"][0, 0] != b["image"][0, 0]
    assert er.phantom_case(7, tmp_path, "sharp")["conditions"]["ct"] == "sharp" and len(made) == 2  # cached
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "phantom_7.json", "phantom_7.npz", "phantom_sharp_7.json", "phantom_sharp_7.npz"]


def test_the_film_recipe_paints_finer_and_projects_with_many_slabs(monkeypatch):
    import calcdetect.phantoms.ct as ctm

    seen = {}
    monkeypatch.setattr(ctm, "generate_ct_phantom", lambda s: seen.setdefault("ct", s))
    _, film = er.phantom_recipe(3, "film")
    _, sharp = er.phantom_recipe(3, "sharp")
    ct = seen["ct"]
    # the sharp CT grid, with the anatomy painted at 0.25 mm in z ...
    assert (ct.matrix, ct.pixel_mm, ct.slice_thickness_mm, ct.kernel) == (572, 0.7, 1.0, "B70f")
    assert ct.anatomy_dz_mm == 0.25
    # ... projected with 128 divergent slabs; dose and geometry are the seed's, as in every recipe
    assert film.divergent_groups == 128 and sharp.divergent_groups < film.divergent_groups
    assert (film.photons_per_pixel, film.midplane_to_detector_mm) == (sharp.photons_per_pixel,
                                                                     sharp.midplane_to_detector_mm)


def test_cached_recipes_keep_the_slab_count_they_were_drawn_with(monkeypatch):
    # The caches are keyed by recipe name only: when the projector's default moved to the film's
    # slabs (session 29), a 'standard' or 'sharp' phantom drawn afresh must still match the
    # thousands already cached and the shipped nets' training data, all drawn with 8 slabs.
    import calcdetect.phantoms.ct as ctm
    from calcdetect.phantoms.radiograph import FILM_DIVERGENT_GROUPS, RadiographSettings

    monkeypatch.setattr(ctm, "generate_ct_phantom", lambda s: s)
    assert RadiographSettings().divergent_groups == FILM_DIVERGENT_GROUPS
    for recipe in ("standard", "sharp"):
        _, settings = er.phantom_recipe(5, recipe)
        assert settings.divergent_groups == 8, recipe
