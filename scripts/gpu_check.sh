#!/usr/bin/env bash
# GPU smoke check (CUDA train with bf16 autocast, counterfactual, save/load, cells/s).
# Skips cleanly without a GPU. Usage: bash scripts/gpu_check.sh [--cells N] [--epochs N]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" scripts/gpu_check.py "$@"
