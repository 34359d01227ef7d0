"""The phantom's external iliac artery passes clear of the pelvic bone.

In patients the external iliac crosses in front of the acetabulum with the
iliopsoas between, >= ~5 mm from the bone. Earlier phantoms ran its lumen
against the acetabulum's anterior surface for 3-4 cm, so its plaque fused with
the hip bone (issue #4: iliac plaque missed or called "other").
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from calcdetect.anatomy.regions import structure
from calcdetect.phantoms.ct import generate_ct_phantom, random_settings

MIN_CLEARANCE_MM = 5.0


@pytest.mark.parametrize("seed", [20, 44])  # both had lumen on the ilium before the fix
def test_external_iliac_lumen_clear_of_hip_bone(seed: int) -> None:
    ph = generate_ct_phantom(random_settings(seed, matrix=192, pixel_mm=2.0, slice_thickness_mm=2.5,
                                             fov=("L5", "FH"), noise_sigma_hu=0.0, metal=False,
                                             contrast=False))
    labels = ph.anatomy_labels
    hip = labels == structure("hip_bones").label
    assert hip.any(), "the field of view should hold the pelvis"
    to_hip_mm = ndi.distance_transform_edt(~hip, sampling=ph.spacing)
    for side in ("left", "right"):
        lumen = labels == structure(f"external_iliac_artery_{side}").label
        assert lumen.sum() * np.prod(ph.spacing) > 2000.0, f"{side} external iliac barely present"
        clearance = float(to_hip_mm[lumen].min())
        assert clearance >= MIN_CLEARANCE_MM, (
            f"{side} external iliac lumen lies {clearance:.1f} mm from the hip bone "
            f"(anatomy: >= {MIN_CLEARANCE_MM} mm, iliopsoas between)")
