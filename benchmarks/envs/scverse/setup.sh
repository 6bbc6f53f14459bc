#!/usr/bin/env bash
# Creates the "scverse" peer venv (recipe of shared/reference/PEERS.md).
# usage: setup.sh VENV_DIR   (PYTHON=python3.11 by default)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${1:-$HERE/venv}"
PY="${PYTHON:-python3.11}"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install torch==2.13.0
"$VENV/bin/pip" install -r "$HERE/requirements.txt"
