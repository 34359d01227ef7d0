#!/usr/bin/env python
"""Evaluate a ``calcdetect run`` output against a folder of phantom studies.

Usage::

    python scripts/eval_phantoms.py PHANTOMS_DIR RUN_DIR [--json FILE]

``PHANTOMS_DIR`` is one phantom study (with ``truth/truth.json``) or a folder of
them; ``RUN_DIR`` a ``calcdetect run`` output folder. Prints the metrics table
(see :mod:`calcdetect.evaluate`) and exits 2 with a one-line message on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calcdetect.errors import InputError
from calcdetect.evaluate import evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phantoms", type=Path, help="phantom study folder or folder of them")
    parser.add_argument("run", type=Path, help="calcdetect run output folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON here")
    args = parser.parse_args(argv)
    try:
        report = evaluate(args.run, args.phantoms)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    if args.json is not None:
        report.write_json(args.json)
        print(f"metrics written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
