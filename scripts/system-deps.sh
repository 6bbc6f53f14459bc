#!/usr/bin/env bash
# Debian packages the tests need: Xvfb and the X/GL libraries Qt (napari) loads, and Chromium.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail
PKGS=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
      libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-shape0 libxcb-randr0
      libgl1 libegl1 libdbus-1-3 libfontconfig1
      chromium)  # the JupyterLab browser test (tests/test_browser.py), driven by Playwright
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
