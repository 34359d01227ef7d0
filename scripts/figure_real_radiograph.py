#!/usr/bin/env python
"""Project a real CT series into a lateral radiograph and run the radiograph path on it end to end.

Issue #6 asks that "a reconstructed radiograph from a real CT goes through end to end,
with the overlay picture". The CT (HU, canonical LPS grid from ``calcdetect.io``) is
projected by the phantom projector (``calcdetect.phantoms.radiograph``: Beer-Lambert at
60 keV, scatter, quantum noise, a left-lateral view), then analysed as a DX image would
be (``analyse_radiograph``, the shipped nets) and drawn by the overlay writer. Prints
the analysis summary (levels, AAC-24 or why it is not scored, warnings) as JSON. The
figure is titled by the series' hashed key, never by the folder name.

Usage::

    .venv/bin/python scripts/figure_real_radiograph.py ../shared/data/real/ct_abdomen_petct_siemens \\
        --out docs/figures/radiograph_real_petct_siemens.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calcdetect import io  # noqa: E402
from calcdetect.phantoms.radiograph import (  # noqa: E402
    FILM_DIVERGENT_GROUPS,
    RadiographSettings,
    generate_lateral_radiograph,
)
from calcdetect.radiograph import analyse_radiograph, write_radiograph_overlay  # noqa: E402
from calcdetect.types import AcquisitionInfo, Radiograph  # noqa: E402


def project(folder: Path, seed: int = 0, divergent_groups: int = FILM_DIVERGENT_GROUPS) -> tuple[Radiograph, str]:
    """The lateral DRR of the folder's first CT series, and that series' hashed key.

    ``FILM_DIVERGENT_GROUPS`` slabs by default: with the projector's 8, endplates far from the central ray
    are drawn as one contour per slab, which a film does not show (README, "Two projection
    artefacts")."""
    group = next(g for g in io.discover(folder).loadable() if g.kind != "radiograph")
    vol = io.load_ct(group)
    ct = SimpleNamespace(hu=vol.array.astype(np.float32), affine=vol.affine, spacing=vol.spacing,
                         anatomy_labels=None, lesion_labels=None, lesions=[], acquisition={"kvp": vol.info.kvp})
    settings = RadiographSettings(seed=seed, detector_pixel_mm=0.3, photons_per_pixel=3e4,
                                  divergent_groups=divergent_groups)
    ph = generate_lateral_radiograph(ct, settings)
    spacing = tuple(float(s) / ph.magnification for s in ph.pixel_spacing_mm)
    return Radiograph(np.asarray(ph.image, np.float32), spacing, AcquisitionInfo("DX"), view="lateral"), group.key


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a real CT DICOM folder")
    ap.add_argument("--out", type=Path, required=True, help="overlay PNG to write")
    ap.add_argument("--divergent-groups", type=int, default=FILM_DIVERGENT_GROUPS,
                    help="slabs of the divergent beam (8: the standard phantoms' projection, with doubled endplates)")
    args = ap.parse_args(argv)
    rg, key = project(args.folder, divergent_groups=args.divergent_groups)
    analysis = analyse_radiograph(rg)
    write_radiograph_overlay(rg, analysis, args.out)
    summary = analysis.summary()
    print(json.dumps({"series": key, "levels": [v.level for v in analysis.vertebrae], "aac24": summary.get("aac24"),
                      "level_method": analysis.level_method, "warnings": list(analysis.warnings)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
