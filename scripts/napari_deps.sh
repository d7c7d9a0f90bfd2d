#!/usr/bin/env bash
# Print the Debian packages the headless napari tests need that are not installed (space-separated; nothing when
# all are there): an X server (Xvfb), Mesa's OpenGL (Qt's offscreen platform has none) and the xcb libraries that
# Qt's xcb platform loads. Checked one by one: a machine with Xvfb but without Mesa cannot run the tests.
# Exit status 3 when dpkg-query is missing (not a Debian system: nothing can be said).
set -euo pipefail
PACKAGES="xvfb xauth libgl1 libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3
libfontconfig1"
command -v dpkg-query >/dev/null 2>&1 || exit 3
missing=()
for pkg in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
echo "${missing[*]}"
