#!/usr/bin/env bash
# Install svimg with every test extra into a fresh virtual environment and run the default test suite.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless napari needs Xvfb, Mesa's OpenGL and the xcb libraries (scripts/napari_deps.sh lists what is missing).
# Root installs what is missing; anyone else gets the list and a run without the napari tests.
NAPARI_READY=1
if MISSING=$(bash scripts/napari_deps.sh); then
  if [ -n "$MISSING" ] && [ "$(id -u)" = 0 ]; then
    echo "installing what the napari tests need: $MISSING" >&2
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $MISSING >/dev/null
    MISSING=$(bash scripts/napari_deps.sh)
  fi
  if [ -n "$MISSING" ]; then
    echo "missing for the napari tests (install them as root): $MISSING; running without them" >&2
    NAPARI_READY=0
  fi
elif ! command -v xvfb-run >/dev/null 2>&1; then
  echo "not a Debian system and no xvfb-run: running without the napari tests" >&2
  NAPARI_READY=0
fi

VENV=${SVIMG_VENV:-.venv}
python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q -U pip
python -m pip install -q torch==2.13.0          # the CPU build; see README
python -m pip install -q ".[test,napari]"       # a regular (non-editable) install, built by meson

# pytest (not `python -m pytest`) keeps the repo root off sys.path, so the tests import the installed package.
if [ "$NAPARI_READY" = 1 ]; then
  exec xvfb-run -a -s "-screen 0 1280x1024x24" pytest "$@"
else
  exec pytest --ignore-glob="*test_napari*" "$@"
fi
