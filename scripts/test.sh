#!/usr/bin/env bash
# Install svimg with every test extra into a fresh virtual environment and run the default test suite.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless napari needs an X server with Mesa (offscreen Qt has no OpenGL).
if ! command -v xvfb-run >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth libgl1-mesa-dri libxkbcommon-x11-0 \
      libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 \
      libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1 >/dev/null
  else
    echo "xvfb-run not found and not root: napari tests will be skipped" >&2
  fi
fi

VENV=${SVIMG_VENV:-.venv}
python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q -U pip
python -m pip install -q torch==2.13.0          # the CPU build; see README
python -m pip install -q ".[test,napari]"       # a regular (non-editable) install, built by meson

# pytest (not `python -m pytest`) keeps the repo root off sys.path, so the tests import the installed package.
if command -v xvfb-run >/dev/null 2>&1; then
  exec xvfb-run -a -s "-screen 0 1280x1024x24" pytest "$@"
else
  exec pytest "$@"
fi
