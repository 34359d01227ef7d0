"""find_femoral_heads at thick slices: the head merged with its acetabulum.

The external iliac zone is placed in front of and medial of the femoral head,
so a head found 10 mm medial moved the zone off the artery and its plaque was
reported as "other" (issue 4, side and region accuracy at 3 mm slices).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from calcdetect.anatomy.vessels import find_femoral_heads

SPACING = (3.0, 2.0, 2.0)  # a 3 mm series on the 2 mm work grid
HEAD_R = 22.0
HEAD = {"left": (60.0, 110.0, 288.0), "right": (60.0, 110.0, 112.0)}  # (z, y, x) mm; midline x = 200 mm


def _merged_hip_bone() -> np.ndarray:
    """Femoral heads and acetabula with no joint space (lost to the slice
    profile), acetabular roofs 13 mm thick over the medial and upper head,
    femoral necks running laterally and down, and the column."""
    nk, nj, ni = 40, 110, 200
    z, y, x = np.meshgrid(*[np.arange(n) * d for n, d in zip((nk, nj, ni), SPACING)], indexing="ij")
    bone = np.zeros((nk, nj, ni), dtype=bool)
    for side, sx in (("left", 1.0), ("right", -1.0)):
        cz, cy, cx = HEAD[side]
        d = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)
        bone |= d <= HEAD_R
        medial = sx * (x - cx) < 0.45 * HEAD_R
        bone |= (d <= HEAD_R + 13.0) & medial & (z > cz - 0.6 * HEAD_R)
        # neck: from the centre 38 mm out and 32 mm down, 13 mm radius
        a = np.array([cz, cy, cx])
        b = np.array([cz - 32.0, cy + 5.0, cx + sx * 38.0])
        p = np.stack([z, y, x], axis=-1)
        t = np.clip(((p - a) @ (b - a)) / ((b - a) @ (b - a)), 0.0, 1.0)
        bone |= np.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1) <= 13.0
    bone |= (y - 180.0) ** 2 + (x - 200.0) ** 2 <= 20.0**2  # column
    return bone


def test_a_head_merged_with_its_acetabulum_is_found_at_its_centre():
    bone = _merged_hip_bone()
    column = np.zeros_like(bone)
    z, y, x = np.meshgrid(*[np.arange(n) * d for n, d in zip(bone.shape, SPACING)], indexing="ij")
    column[(y - 180.0) ** 2 + (x - 200.0) ** 2 <= 20.0**2] = True
    # The largest inscribed ball -- the old answer -- lies in the merged bone, off the head.
    dist = ndi.distance_transform_edt(bone & ~column, sampling=SPACING)
    left = np.where(x > 240.0, dist, 0.0)
    ball = np.array(np.unravel_index(int(np.argmax(left)), left.shape)) * SPACING
    assert np.linalg.norm(ball - HEAD["left"]) > 5.0
    body_centre = np.tile([90.0, 100.0], (bone.shape[0], 1))
    heads = find_femoral_heads(bone, SPACING, body_centre, column, below_k=bone.shape[0] - 1)
    assert set(heads) == {"left", "right"}
    for side, (cz, cy, cx) in HEAD.items():
        h = heads[side]
        found = np.array([h.k, h.j, h.i]) * SPACING
        assert np.linalg.norm(found - (cz, cy, cx)) <= 3.5, (side, found)
        assert abs(h.radius_mm - HEAD_R) <= 2.5
