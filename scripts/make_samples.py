"""Regenerate data_samples/ (the README demo input) from fixed seeds.

    .venv/bin/python scripts/make_samples.py [--out data_samples]

tests/test_data_samples.py checks that the committed files are exactly what this
produces, so the samples never drift from the code that claims to make them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calcdetect.phantoms.ct import make_sample_study
from calcdetect.phantoms.radiograph import cli_phantom_radiograph

RADIOGRAPH_SAMPLE = {"seed": 7, "detector_pixel_mm": 0.3}


def make_samples(out: Path, *, overwrite: bool = True) -> None:
    make_sample_study(out / "ct_phantom", overwrite=overwrite)
    cli_phantom_radiograph(out / "radiograph_phantom", overwrite=overwrite, **RADIOGRAPH_SAMPLE)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data_samples")
    make_samples(parser.parse_args().out)
