"""The vertebra net that names L1-L5 on lateral radiographs (issue #6: "a 2D MONAI network ... with
rules as fallback"): corners from a body mask, the naming of the rules' chain, the file format."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import polygon

from calcdetect.radiograph.analyse import analyse_radiograph
from calcdetect.radiograph.vertebra_net import (
    FOUND_BY_NET,
    NAMED_BY_NET,
    NET_LEVELS,
    NetBody,
    bodies_facing,
    body_corners,
    detection_from_net,
    load_default_vertebra_model,
    load_vertebra_model,
    name_levels,
    net_input,
    save_vertebra_model,
    strip_shortens_bodies,
)
from calcdetect.radiograph.vertebrae import SpineDetection, SpineStrip, Vertebra
from calcdetect.types import AcquisitionInfo, Radiograph

SPACING = (0.5, 0.5)
NOT_NAMED = ("the lumbosacral junction is not in the image, so vertebral levels could not be counted from the "
             "sacrum; levels are not named and AAC-24 is not scored")


def _vert(level: str | None, centre_row: float) -> Vertebra:
    """A 30 x 36 mm upright body centred at ``centre_row`` (image pixels, 0.5 mm), col 300."""
    r0, r1, c0, c1 = centre_row - 30, centre_row + 30, 264, 336
    corners = np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]], float)
    return Vertebra(level, corners, 0.9, r0, r1, 100.0, 172.0)


def _det(levels: list[str | None], anchored: bool = True, warnings: tuple[str, ...] = ()) -> SpineDetection:
    verts = tuple(_vert(lv, 100 + 80 * k) for k, lv in enumerate(levels))
    return SpineDetection(None, verts, 36.0, anchored, "left", warnings)


def _body(level: str, centre_row: float) -> NetBody:
    c = np.array([centre_row, 300.0])
    return NetBody(level, c + np.array([[-30, -36], [-30, 36], [30, 36], [30, -36]]), c, 0.9)


def test_the_net_renames_a_chain_the_rules_counted_one_level_off():
    # the rules took the sacrum's top for L5: every name one level too high
    det = _det(["T11", "T12", "L1", "L2", "L3", "L4", "L5"])
    bodies = [_body(lv, 100 + 80 * (k + 1)) for k, lv in enumerate(["L1", "L2", "L3", "L4", "L5"])]
    out = name_levels(det, bodies[:4], SPACING)  # the net need not find every body
    assert [v.level for v in out.vertebrae] == ["T12", "L1", "L2", "L3", "L4", "L5"]  # the sacral "body" dropped
    assert np.array_equal(out.vertebrae[0].corners_rc, det.vertebrae[0].corners_rc)  # the rules' corners kept
    assert NAMED_BY_NET in out.warnings


def test_the_net_names_a_chain_the_rules_could_not_anchor():
    det = _det([None] * 5, anchored=False, warnings=(NOT_NAMED,))
    bodies = [_body(lv, 100 + 80 * k) for k, lv in enumerate(["L1", "L2", "L3"])]
    out = name_levels(det, bodies, SPACING)
    assert out.anchored
    assert [v.level for v in out.vertebrae] == ["L1", "L2", "L3", "L4", "L5"]
    assert NOT_NAMED not in out.warnings and NAMED_BY_NET in out.warnings


def test_the_rules_stand_when_the_net_contradicts_itself_or_matches_one_body():
    det = _det(["T12", "L1", "L2", "L3", "L4", "L5"])
    # two matches that imply different shifts (an L2 and an L4 on neighbouring bodies)
    torn = [_body("L2", 100 + 80 * 1), _body("L4", 100 + 80 * 2)]
    assert name_levels(det, torn, SPACING) is det
    assert name_levels(det, [_body("L3", 100)], SPACING) is det
    # bodies far from every rule body match nothing
    assert name_levels(det, [_body("L1", 1000), _body("L2", 1080)], SPACING) is det
    # agreement changes nothing and adds no warning
    agree = [_body(lv, 100 + 80 * (k + 1)) for k, lv in enumerate(["L1", "L2", "L3"])]
    assert name_levels(det, agree, SPACING) is det


@pytest.mark.parametrize("angle_deg", [0.0, 12.0, -15.0])
def test_corners_of_a_tilted_body_mask(angle_deg):
    # a 20 x 26 pixel body (rows x cols), tilted; corners named anterior (left) / posterior
    a = np.deg2rad(angle_deg)
    down = np.array([np.cos(a), -np.sin(a)])  # caudal
    back = np.array([np.sin(a), np.cos(a)])  # posterior, to the right
    centre = np.array([60.0, 60.0])
    truth = np.array([centre - 10 * down - 13 * back, centre - 10 * down + 13 * back,
                      centre + 10 * down + 13 * back, centre + 10 * down - 13 * back])
    mask = np.zeros((120, 120), bool)
    rr, cc = polygon(truth[:, 0], truth[:, 1], mask.shape)
    mask[rr, cc] = True
    got = body_corners(mask, down)
    assert np.linalg.norm(got - truth, axis=1).max() < 1.6


def test_net_input_is_on_the_grid_and_the_same_for_a_brighter_image():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (301, 203)).astype(np.float32)
    x = net_input(img, (0.3, 0.3), 2.0)
    assert x.shape[0] == 2 and x.shape[1] % 16 == 0 and x.shape[2] % 16 == 0
    assert x.shape[1] >= round(301 * 0.3 / 2) and x.shape[2] >= round(203 * 0.3 / 2)
    np.testing.assert_allclose(net_input(3 * img + 5, (0.3, 0.3), 2.0), x, atol=1e-4)


def test_a_calcium_net_file_is_refused_as_a_vertebra_net(tmp_path):
    from calcdetect.radiograph.aac_net import DEFAULT_MODEL_PATH

    with pytest.raises(ValueError, match="not a radiograph vertebra net"):
        load_vertebra_model(DEFAULT_MODEL_PATH)


def test_save_and_load_round_trip(tmp_path):
    import torch

    from calcdetect.radiograph.vertebra_net import build_vertebra_net

    config = {"arch": "basic_unet", "in_channels": 2, "out_channels": 6, "spatial_dims": 2,
              "channels": [4, 4, 8, 8, 8], "dropout": 0.0, "norm": "batch"}
    net = build_vertebra_net(config).eval()
    path = save_vertebra_model(net, config, tmp_path / "v.safetensors", grid_mm=2.0)
    model = load_vertebra_model(path)
    x = torch.zeros(1, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.net(x), net(x))
    assert model.grid_mm == 2.0


# ---------------------------------------------------------------- the shipped net on a projected CT phantom

_CORNER_KEYS = ("anterior_superior", "posterior_superior", "posterior_inferior", "anterior_inferior")


@pytest.fixture(scope="module")
def projected_phantom():
    """A lateral DRR of a CT phantom (development seed 410, as scripts/eval_radiograph.py makes it)."""
    from calcdetect.phantoms.ct import CTPhantomSettings, generate_ct_phantom
    from calcdetect.phantoms.radiograph import RadiographSettings, generate_lateral_radiograph

    ct = generate_ct_phantom(CTPhantomSettings(seed=410, matrix=400, pixel_mm=1.0, slice_thickness_mm=1.5,
                                               fov=("T11", "FH"), noise_sigma_hu=0.0, plaque_burden=0.5))
    ph = generate_lateral_radiograph(ct, RadiographSettings(seed=410, detector_pixel_mm=0.3, photons_per_pixel=3e4,
                                                             midplane_to_detector_mm=180.0, obesity_fat_mm=40.0))
    spacing = tuple(float(s) / ph.magnification for s in ph.pixel_spacing_mm)
    truth = {lv: np.array([v["corners_px"][k] for k in _CORNER_KEYS]) for lv, v in ph.vertebrae.items()
             if lv in NET_LEVELS}
    return np.asarray(ph.image, np.float32), spacing, truth


def _near(bodies, truth, spacing, tol_mm=10.0) -> dict[str, bool]:
    got = {b.level: b.centre_rc for b in bodies}
    return {lv: lv in got and float(np.linalg.norm((got[lv] - t.mean(axis=0)) * spacing)) < tol_mm
            for lv, t in truth.items()}


def test_the_shipped_net_names_l1_to_l5_where_they_are(projected_phantom):
    image, spacing, truth = projected_phantom
    model = load_default_vertebra_model()
    assert model is not None, "models/radiograph_vertebrae_v0.safetensors is missing"
    bodies = bodies_facing(model, image, spacing, "left")
    assert [b.level for b in bodies] == list(NET_LEVELS)
    assert all(_near(bodies, truth, spacing).values())
    corner_mm = [np.linalg.norm((b.corners_rc - truth[b.level]) * spacing, axis=1).mean() for b in bodies]
    assert np.median(corner_mm) < 4.0
    # the patient facing right: the same bodies, mirrored back to the image
    w = image.shape[1] - 1
    flipped = bodies_facing(model, np.ascontiguousarray(image[:, ::-1]), spacing, "right")
    mirrored = {lv: t * [1, -1] + [0, w] for lv, t in truth.items()}
    assert all(_near(flipped, mirrored, spacing).values())
    # facing the wrong way it names fewer and less certain bodies (how an unknown side is decided)
    wrong = bodies_facing(model, image, spacing, "right")
    assert sum(b.probability for b in wrong) < sum(b.probability for b in bodies) - 1.0


def test_the_analysis_uses_the_net_and_falls_back_to_the_rules(projected_phantom):
    image, spacing, truth = projected_phantom
    rg = Radiograph(image, spacing, AcquisitionInfo("DX"), view="lateral")
    with_net = analyse_radiograph(rg, calcium_model=None)
    rules = analyse_radiograph(rg, calcium_model=None, vertebra_model=None)
    assert "network" in with_net.level_method and "network" not in rules.level_method
    named = {v.level: np.mean(v.corners_rc, axis=0) for v in with_net.vertebrae if v.level}
    for lv, t in truth.items():
        assert np.linalg.norm((named[lv] - t.mean(axis=0)) * spacing) < 6.0, lv
    assert with_net.aac24 is not None and rules.aac24 is not None


def test_a_detection_built_from_the_net_alone_is_scored(projected_phantom):
    # what the analysis falls back to when the rules' chain ran on the posterior elements
    image, spacing, truth = projected_phantom
    bodies = bodies_facing(load_default_vertebra_model(), image, spacing, "left")
    det = detection_from_net(image, spacing, bodies, "left")
    assert det is not None and det.anchored and det.bodies_by == "net" and FOUND_BY_NET in det.warnings
    by = det.by_level()
    for lv in NET_LEVELS:
        assert np.linalg.norm((np.mean(by[lv].corners_rc, axis=0) - truth[lv].mean(axis=0)) * spacing) < 6.0
        assert by[lv].s_sup < by[lv].s_inf and by[lv].t_ant < by[lv].t_post  # strip rows and columns in order
    assert detection_from_net(image, spacing, bodies[1:], "left") is None  # no L1: nothing to score from


def test_the_training_script_writes_a_net_the_analysis_loads(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from train_radiograph_vertebrae import augmented_sample, main

    from eval_radiograph import synthetic_case

    case = synthetic_case(1003)
    x, y = augmented_sample(case, np.random.default_rng(0))
    assert x.shape[0] == 2 and x.shape[1:] == y.shape
    assert set(np.unique(y)) == {0, 1, 2, 3, 4, 5}  # every level in the target, after the cuts
    out = tmp_path / "v.safetensors"
    assert main(["--synthetic", "1003", "--steps", "2", "--batch", "1", "--threads", "1", "--out", str(out)]) == 0
    model = load_vertebra_model(out)
    assert model.grid_mm == 2.0
    with pytest.raises(SystemExit):  # held-out seeds never train
        main(["--train", "920", "--steps", "1", "--out", str(tmp_path / "w.safetensors")])


def test_the_net_overrules_a_side_the_rules_got_wrong(projected_phantom):
    # phantom 699: the rules took the posterior elements for the front and saw the patient face right
    from calcdetect.radiograph.analyse import apply_vertebra_net

    image, spacing, truth = projected_phantom
    wrong = SpineDetection(None, tuple(_vert(lv, 200 + 120 * k) for k, lv in enumerate(["L2", "L3", "L4", "L5"])),
                           36.0, True, "right", (), True)
    det = apply_vertebra_net(wrong, load_default_vertebra_model(), image, spacing)
    assert det.anterior == "left" and det.bodies_by == "net"
    by = det.by_level()
    assert all(np.linalg.norm((np.mean(by[lv].corners_rc, axis=0) - t.mean(axis=0)) * spacing) < 6.0
               for lv, t in truth.items())


def test_a_real_chest_ct_projected_laterally_gets_no_lumbar_names():
    # the net has seen only lumbar phantoms; on a real thorax (T-spine only) it must name nothing
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "ct_thorax_philips"
    if not folder.is_dir():
        pytest.skip("../shared/data/real/ct_thorax_philips is not next to the checkout")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from figure_real_radiograph import project

    rg, key = project(folder)
    model = load_default_vertebra_model()
    image = np.asarray(rg.array, np.float32)
    assert bodies_facing(model, image, rg.pixel_spacing, "left") == []
    analysis = analyse_radiograph(rg)
    assert analysis.aac24 is None and all(v.level is None for v in analysis.vertebrae)
    assert key.startswith("s") and "philips" not in key.lower()
    # the rules' outlines are bodies, not crossed quadrilaterals: each endplate pair stays apart at the
    # front and at the back (the L5 fallback once drew one whose endplates crossed, session 28)
    for v in analysis.vertebrae:
        (sup_ant, sup_post, inf_post, inf_ant) = v.corners_rc
        assert inf_ant[0] > sup_ant[0] and inf_post[0] > sup_post[0]


def test_an_image_without_a_spine_gets_no_bodies():
    model = load_default_vertebra_model()
    rng = np.random.default_rng(1)
    flat = rng.normal(1.0, 0.01, (900, 700)).astype(np.float32)  # soft tissue only, 0.3 mm pixels
    assert bodies_facing(model, flat, (0.3, 0.3), "left") == []
    assert bodies_facing(model, flat, (0.3, 0.3), "right") == []


def test_the_net_tells_the_side_the_rules_could_not(projected_phantom):
    # phantom 455: no clear posterior elements or body outline; the rules assumed "left" and said so
    from dataclasses import replace

    from calcdetect.radiograph.analyse import SIDE_BY_NET, apply_vertebra_net
    from calcdetect.radiograph.vertebrae import SIDE_ASSUMED, find_vertebrae

    image, spacing, _ = projected_phantom
    unsure = replace(find_vertebrae(image, spacing), side_known=False, warnings=(SIDE_ASSUMED,))
    det = apply_vertebra_net(unsure, load_default_vertebra_model(), image, spacing)
    assert det.side_known and det.anterior == "left"
    assert SIDE_BY_NET in det.warnings and SIDE_ASSUMED not in det.warnings


def _straight_strip(n_rows: int = 600) -> SpineStrip:
    """A strip down image column 300 at the image's own 0.5 mm: strip row s is image row s."""
    path = np.stack([np.arange(n_rows, dtype=float), np.full(n_rows, 300.0)], axis=1)
    normal = np.tile([0.0, 1.0], (n_rows, 1))
    return SpineStrip(np.zeros((n_rows, 200), np.float32), path, normal, 100, 0.5, False, 600)


def test_a_strip_that_shows_a_body_at_its_image_height_follows_the_bodies():
    det = SpineDetection(_straight_strip(), tuple(_vert(lv, 100 + 80 * k) for k, lv in enumerate(NET_LEVELS)),
                         36.0, True, "left")
    assert not strip_shortens_bodies(det, SPACING)


def test_a_strip_that_cuts_a_body_to_half_its_height_has_left_the_column():
    verts = [_vert(lv, 100 + 80 * k) for k, lv in enumerate(NET_LEVELS)]
    l4 = verts[3]  # 30 mm high in the image, but 15 mm of strip: the path ran off sideways there
    verts[3] = Vertebra(l4.level, l4.corners_rc, l4.confidence, l4.s_sup, l4.s_sup + 30, l4.t_ant, l4.t_post)
    det = SpineDetection(_straight_strip(), tuple(verts), 36.0, True, "left")
    assert strip_shortens_bodies(det, SPACING)
    assert strip_shortens_bodies(det, SPACING, min_ratio=0.45) is False


def test_phantom_1357_whose_rules_strip_left_the_spine_is_scored_not_refused():
    # 100 mm of fat at 1e4 quanta: the rules' path ran ~70 mm off the column below L3, the net's
    # bodies were right, and the analysis refused the case as "bodies 18 mm high" (session 21)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from eval_radiograph import phantom_recipe

    from calcdetect.phantoms.radiograph import generate_lateral_radiograph

    ct, settings = phantom_recipe(1357)
    ph = generate_lateral_radiograph(ct, settings)
    spacing = tuple(float(s) / ph.magnification for s in ph.pixel_spacing_mm)
    a = analyse_radiograph(Radiograph(np.asarray(ph.image, np.float32), spacing, AcquisitionInfo("DX"),
                                      view="lateral"))
    assert a.aac24 is not None, a.warnings
    assert not any("no lumbar spine" in w for w in a.warnings)
    truth = {lv: np.array([v["corners_px"][k] for k in _CORNER_KEYS]).mean(axis=0) for lv, v in ph.vertebrae.items()
             if lv in NET_LEVELS}
    got = {v.level: np.mean(v.corners_rc, axis=0) for v in a.vertebrae if v.level in truth}
    for lv, centre in truth.items():
        assert float(np.linalg.norm((got[lv] - centre) * spacing)) < 5.0, lv
    assert abs(a.aac24["total"] - ph.aac24["total"]) <= 4
