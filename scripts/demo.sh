#!/usr/bin/env bash
# Set up, then run calcdetect on the bundled sample study; results in ${1:-out/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-out/demo}
.venv/bin/calcdetect run data_samples/ct_phantom/dicom -o "$OUT" --device auto
echo
echo "Draft report(s):"
cat "$OUT"/*/report.txt
echo
echo "Scored against the sample's ground truth:"
.venv/bin/calcdetect evaluate "$OUT" data_samples/ct_phantom
