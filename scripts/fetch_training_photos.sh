#!/usr/bin/env bash
# Fetch the photographs that Debian's desktop-wallpaper packages ship, for training the bundled prior.
# Usage: bash scripts/fetch_training_photos.sh [DATA_DIR]   (default: data/photos)
# Needs apt-get (Debian's package registry) but not root: `apt-get download` fetches the .deb into the
# current folder and `dpkg -x` unpacks it without installing anything.  Every image file of
# usr/share/{wallpapers,backgrounds} is copied to DATA_DIR/PACKAGE/ and listed in DATA_DIR/MANIFEST.tsv
# (package, version, file, sha256).  Re-running skips packages already unpacked.
set -euo pipefail
DATA_DIR=${1:-data/photos}
PACKAGES=(plasma-workspace-wallpapers mate-backgrounds gnome-backgrounds ukui-wallpapers lomiri-wallpapers)
mkdir -p "$DATA_DIR"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pkg in "${PACKAGES[@]}"; do
  if [ -f "$DATA_DIR/$pkg/.done" ]; then continue; fi
  (cd "$work" && apt-get download -q "$pkg" >/dev/null)
  deb=$(ls "$work"/"${pkg}"_*.deb)
  version=$(dpkg-deb -f "$deb" Version)
  dpkg -x "$deb" "$work/$pkg"
  mkdir -p "$DATA_DIR/$pkg"
  find "$work/$pkg/usr/share" \( -path '*/wallpapers/*' -o -path '*/backgrounds/*' \) -type f \
       \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) -size +100k |
    sort | while read -r f; do
      rel=${f#"$work/$pkg/"}
      name=$(echo "$rel" | tr '/' '_')
      cp "$f" "$DATA_DIR/$pkg/$name"
      printf '%s\t%s\t%s\n' "$version" "$rel" "$name" >> "$DATA_DIR/$pkg/.files"
    done
  touch "$DATA_DIR/$pkg/.done"
  rm -rf "$work/$pkg" "$deb"
done
{
  printf 'package\tversion\tsource_path\tfile\tsha256\n'
  for pkg in "${PACKAGES[@]}"; do
    while IFS=$'\t' read -r version rel name; do
      printf '%s\t%s\t%s\t%s\t%s\n' "$pkg" "$version" "$rel" "$pkg/$name" "$(sha256sum "$DATA_DIR/$pkg/$name" | cut -d' ' -f1)"
    done < "$DATA_DIR/$pkg/.files"
  done
} > "$DATA_DIR/MANIFEST.tsv"
echo "$(($(wc -l < "$DATA_DIR/MANIFEST.tsv") - 1)) photographs in $DATA_DIR (MANIFEST.tsv)"
