#!/usr/bin/env bash
# Create .venv and install calcdetect with its pinned dependencies.
# torch is installed FIRST so that resolving the rest never pulls CUDA wheels on a
# machine without a GPU:
#   - no NVIDIA GPU: torch==2.13.0 from $CALCDETECT_TORCH_INDEX if set (e.g.
#     https://download.pytorch.org/whl/cpu), else from pip's configured sources
#     (on our build machines a local CPU wheel);
#   - NVIDIA GPU present: the normal (CUDA) torch==2.13.0 wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"

have_torch=$(.venv/bin/python -c "import torch,sys; print(torch.__version__.split('+')[0])" 2>/dev/null || true)
if [ "$have_torch" != "$TORCH_VERSION" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found: installing torch==$TORCH_VERSION (CUDA build)"
    $PIP install -q "torch==$TORCH_VERSION"
  elif [ -n "${CALCDETECT_TORCH_INDEX:-}" ]; then
    echo "setup: no GPU: installing CPU torch==$TORCH_VERSION from $CALCDETECT_TORCH_INDEX"
    $PIP install -q "torch==$TORCH_VERSION" --index-url "$CALCDETECT_TORCH_INDEX"
  else
    echo "setup: no GPU: installing torch==$TORCH_VERSION (set CALCDETECT_TORCH_INDEX to a CPU wheel index if this pulls CUDA packages)"
    $PIP install -q "torch==$TORCH_VERSION"
  fi
fi
$PIP install -q -e ".[dev]"
.venv/bin/python -c "import calcdetect, torch; print(f'setup: calcdetect {calcdetect.__version__}, torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"
