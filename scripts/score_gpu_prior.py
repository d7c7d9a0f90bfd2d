"""Score weights a GPU run returned against the bundled prior; ship them only if they are better.

    python scripts/score_gpu_prior.py WEIGHTS [--summary train_summary.json]          # score, decide
    python scripts/score_gpu_prior.py WEIGHTS --ship [--summary train_summary.json]   # and ship if better

Protocol: the model card's held-out denoising table (:mod:`svimg.priors.evaluate`: frames of
carphone and bikes, y = x + s n for s in {0.05, 0.1, 0.2}, one Tweedie step, PSNR) for the
network alone (flips 1) at each ``--sizes`` (default 256 and 64), the candidate and the bundled
prior on the same frames and noise.  **Better** means a higher PSNR at every size and noise level;
anything else is a refusal (exit status 1) that prints the numbers.  The CPU seconds of each
prior's Tweedie pass are printed too (a wider network costs more on the CPU).

Shipping (``--ship``, better only): the file must hold an fp16 state_dict and take at most 25 MB;
it is copied to ``svimg/priors/weights/bundled.pt``; the card (docs/bundled_prior.md) gets its
weights-file rows (parameters, size, sha256) rewritten and a "GPU run" section with this
comparison (replacing an earlier one); the numbers go to docs/bundled_prior_gpu_score.json.
The card's other tables (mirror averaging, BM3D, quality) are then out of date: the commands that
regenerate them are printed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "docs" / "bundled_prior.md"
SCORE_JSON = REPO / "docs" / "bundled_prior_gpu_score.json"
MAX_SHIP_BYTES = 25_000_000
SECTION = ("<!-- gpu-run:start -->", "<!-- gpu-run:end -->")


def score(prior, sizes, frames: int) -> dict:
    """{size: evaluate rows} for ``prior`` (flips as loaded), no BM3D, files in a scratch folder."""
    from svimg.priors.evaluate import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        return {size: evaluate(prior, tmp, per_clip=frames, with_bm3d=False, size=size)["rows"] for size in sizes}


def compare(candidate: dict, bundled: dict) -> tuple[bool, list[dict]]:
    """(better at every size and noise level, one row per (size, sigma) with both PSNRs and seconds)."""
    rows = []
    for size in candidate:
        for c, b in zip(candidate[size], bundled[size]):
            rows.append(dict(size=size, sigma=c["sigma"], candidate=c["prior_tweedie"], bundled=b["prior_tweedie"],
                             gain_db=c["prior_tweedie"] - b["prior_tweedie"], candidate_s=c["prior_seconds"],
                             bundled_s=b["prior_seconds"]))
    return all(r["gain_db"] > 0 for r in rows), rows


def table(rows: list[dict]) -> str:
    lines = ["| frames | noise s | candidate PSNR | bundled PSNR | gain dB | candidate CPU s | bundled CPU s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['size']}x{r['size']} | {r['sigma']} | {r['candidate']:.2f} | {r['bundled']:.2f} | "
              f"{r['gain_db']:+.2f} | {r['candidate_s']} | {r['bundled_s']} |" for r in rows]
    return "\n".join(lines)


def check_shippable(path: Path, state: dict) -> None:
    size = path.stat().st_size
    if size > MAX_SHIP_BYTES:
        raise SystemExit(f"not shipped: {path} takes {size:,} bytes > {MAX_SHIP_BYTES:,}")
    dtypes = {v.dtype for v in state["state_dict"].values()}
    if dtypes != {torch.float16}:
        raise SystemExit(f"not shipped: {path} holds {sorted(map(str, dtypes))} tensors, not float16 alone")


def update_card(path: Path, state: dict, sha: str, rows: list[dict], summary: dict | None) -> None:
    """Rewrite the card's parameters / weights-file / sha256 rows and its GPU-run section."""
    card = CARD.read_text()
    n_params = sum(v.numel() for v in state["state_dict"].values())
    size = path.stat().st_size
    card = re.sub(r"^\| parameters \|.*$", f"| parameters | {n_params:,} |", card, count=1, flags=re.M)
    card = re.sub(r"^\| config \|.*$", f"| config | `{json.dumps(state['config'])}` (GPU run, below) |", card,
                  count=1, flags=re.M)
    card = re.sub(r"^\| weights file \|.*$", f"| weights file | `svimg/priors/weights/bundled.pt`: EMA weights as an "
                  f"fp16 state_dict + config + schedule, {size:,} bytes ({size / 1e6:.1f} MB) |", card, count=1,
                  flags=re.M)
    card = re.sub(r"^\| sha256 \|.*$", f"| sha256 | `{sha}` |", card, count=1, flags=re.M)
    training = state.get("training", {})
    lines = [SECTION[0], "## GPU run (this card's weights)", "",
             f"Trained by `benchmarks/gpu_run.sh` (docs/gpu.md): {training.get('step')} steps, "
             f"{training.get('seconds')} s of training."]
    if summary:
        lines += [f"Device {summary.get('device')}, pools {summary.get('pools')}, settings "
                  f"`{json.dumps(summary.get('settings'))}`."]
    lines += ["", "Held-out denoising, network alone (flips 1), against the previous bundled prior "
              "(`python scripts/score_gpu_prior.py`):", "", table(rows), "",
              "**The sections above this one (mirror averaging, BM3D, quality, samples) describe the previous "
              "weights until they are regenerated** (commands in docs/gpu.md).", SECTION[1]]
    block = "\n".join(lines)
    if SECTION[0] in card:
        card = re.sub(re.escape(SECTION[0]) + ".*?" + re.escape(SECTION[1]), lambda _: block, card, flags=re.S)
    else:
        card = card.rstrip("\n") + "\n\n" + block + "\n"
    CARD.write_text(card)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path)
    p.add_argument("--ship", action="store_true", help="install the weights and update the card if better")
    p.add_argument("--summary", type=Path, default=None, help="train_summary.json of the GPU run (for the card)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 64])
    p.add_argument("--frames", type=int, default=4, help="frames per held-out clip (the card: 4)")
    args = p.parse_args(argv)
    from svimg.priors import bundled, load
    from svimg.priors.base import file_sha256
    from svimg.priors.loaders import BUNDLED_RESOURCE, read_checkpoint

    candidate = load(str(args.weights), flips=1)
    reference = bundled(flips=1)
    print(f"candidate {args.weights} (sha256 {candidate.sha256[:12]}) against bundled (sha256 {reference.sha256[:12]})")
    better, rows = compare(score(candidate, args.sizes, args.frames), score(reference, args.sizes, args.frames))
    print(table(rows))
    if not better:
        worse = [f"{r['size']}px s={r['sigma']}: {r['gain_db']:+.2f} dB" for r in rows if r["gain_db"] <= 0]
        print(f"REFUSED: not better than the bundled prior at every size and noise level ({'; '.join(worse)})")
        return 1
    print("BETTER than the bundled prior at every size and noise level")
    if not args.ship:
        print("(not shipped: pass --ship)")
        return 0
    state = read_checkpoint(args.weights)
    check_shippable(args.weights, state)
    target = REPO.joinpath(*BUNDLED_RESOURCE[0].split("."), BUNDLED_RESOURCE[1])  # the source tree's file
    shutil.copy(args.weights, target)
    sha = file_sha256(target)
    summary = json.loads(args.summary.read_text()) if args.summary else None
    SCORE_JSON.write_text(json.dumps(dict(weights_sha256=sha, previous_sha256=reference.sha256, rows=rows,
                                          training=state.get("training"), summary=summary), indent=1) + "\n")
    update_card(target, state, sha, rows, summary)
    print(f"SHIPPED: {target} (sha256 {sha}); card {CARD} and {SCORE_JSON} updated.  Regenerate the card's other "
          "tables: python -m svimg.priors.evaluate --out docs; python -m svimg.priors.evaluate --out docs --size 64; "
          "python -m svimg.priors.evaluate --out docs --size native; python benchmarks/quality.py --update")
    return 0


if __name__ == "__main__":
    sys.exit(main())
