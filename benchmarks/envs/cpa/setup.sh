#!/usr/bin/env bash
# Creates the "cpa" peer venv (recipe of shared/reference/PEERS.md; the order matters).
# usage: setup.sh VENV_DIR   (PYTHON=python3.11 by default)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${1:-$HERE/venv}"
PY="${PYTHON:-python3.11}"
"$PY" -m venv "$VENV"
# 1. the local CPU torch wheel first
"$VENV/bin/pip" install torch==2.13.0
# 2. everything but cpa, binary wheels only (else pip backtracks for minutes); docrep is sdist-only
"$VENV/bin/pip" install --only-binary=:all: --no-binary=docrep -r "$HERE/requirements.txt"
# 3. pins that would pull a CUDA torch if resolved together with step 2
"$VENV/bin/pip" install --no-deps -r "$HERE/requirements-nodeps.txt"
# 4. cpa-tools itself, ignoring its Python<3.11 / torch<=2.0.1 metadata
"$VENV/bin/pip" install --no-deps --ignore-requires-python -r "$HERE/requirements-cpa.txt"
