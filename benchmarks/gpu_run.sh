#!/usr/bin/env bash
# The prepared GPU run (issue 26): one command, at most GPU_RUN_BUDGET_S (540) seconds, keeping
# everything under $OUT (the folder the device tool brings back).  From the repository root:
#
#   bash benchmarks/gpu_run.sh              # on the GPU machine (torch, triton, no network, no meson-python)
#   bash benchmarks/gpu_run.sh --cpu-tiny   # dry run on a CPU: Triton interpreter, tiny sizes, a few steps
#
# Stages, in order, each under its own time limit, each run even if an earlier one failed:
#   1. overlay  svimg's source tree with the Triton kernels copied to svimg/_kernels/, in a scratch
#               folder put first on PYTHONPATH (no meson-python and no network needed); the Cython
#               CPU kernel is compiled with the machine's cython and cc when that works in time,
#               else left out (the GPU path does not use it)
#   2. tests    tests/test_cuda.py, test_triton.py, test_dispatch.py, test_fallback.py (JUnit XML)
#   3. kernels  benchmarks/gpu_bench_kernels.py: GB/s and share of peak per kernel, tile sweep, CG
#   4. e2e      benchmarks/gpu_e2e.py: the sampler on 16 frames of 256x256, 20 NFE, ADM-256-shaped
#               network with RANDOM weights; seconds, peak memory, non-network share
#   5. train    benchmarks/gpu_train.py for the time left: a 7.3 M-parameter prior on the training
#               pack ($SVIMG_TRAIN_PACK, default .gpu_pack/), weights exported after every chunk
# $OUT at the end (at most 8 files of at most 16 MiB, no subfolder): SUMMARY.md, gpu_run_logs.tar.gz
# (every log, table, JSON and the training loss) and prior_gpu.pt (fp16 EMA weights, if training ran).
# Environment: OUT (default: a scratch folder, printed), PYTHON (python3), GPU_RUN_BUDGET_S (540 on
# the GPU, 600 for --cpu-tiny), SVIMG_TRAIN_PACK.  Exit status 0 only when every stage succeeded.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
MODE=gpu
case "${1:-}" in
  --cpu-tiny) MODE=cpu ;;
  "") ;;
  *) echo "usage: $0 [--cpu-tiny]" >&2; exit 2 ;;
esac
if [[ $MODE == gpu ]]; then
  BUDGET="${GPU_RUN_BUDGET_S:-540}"; DEV=cuda; TINY=()
  CAP_OVERLAY=60; CAP_TESTS=110; CAP_KERNELS=75; CAP_E2E=100
else
  BUDGET="${GPU_RUN_BUDGET_S:-600}"; DEV=cpu; TINY=(--tiny); export TRITON_INTERPRET=1
  CAP_OVERLAY=60; CAP_TESTS=240; CAP_KERNELS=90; CAP_E2E=90
fi
RESERVE=15  # seconds kept for the summary and the tarball
PACK="${SVIMG_TRAIN_PACK:-$REPO/.gpu_pack}"
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/svimg-gpu-out.XXXXXX")}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/svimg-gpu-run.XXXXXX")"
LOGS="$WORK/gpu_run_logs"
mkdir -p "$OUT" "$LOGS" || exit 2
PYBIN="$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null)" && PATH="$PYBIN:$PATH"
cd "$WORK" || exit 2  # never from the source tree: `import svimg` must find the overlay, not ./svimg
exec > >(tee -a "$LOGS/gpu_run.log") 2>&1

log() { echo "[gpu_run t=${SECONDS}s] $*"; }
left() { echo $((BUDGET - RESERVE - SECONDS)); }
limit() { local cap=$1 l; l=$(left); echo $((l < cap ? l : cap)); }  # the stage's cap, or the time left
declare -A STATUS
stage() {  # stage NAME LIMIT_S CMD...: run CMD under `timeout`, record the outcome
  local name="$1" lim="$2"; shift 2
  if ((lim < 10)); then log "$name: skipped, out of time"; STATUS[$name]="skipped (time budget)"; return; fi
  log "$name: start (limit ${lim}s)"
  local t0=$SECONDS
  timeout --kill-after=10 "$lim" "$@"
  local rc=$?
  case $rc in
    0) STATUS[$name]="ok" ;;
    124|137) STATUS[$name]="TIMED OUT after ${lim}s" ;;
    *) STATUS[$name]="FAILED (exit $rc)" ;;
  esac
  log "$name: ${STATUS[$name]} ($((SECONDS - t0))s)"
}

if [[ $MODE == cpu ]]; then
  # Play the GPU machine: no meson-python editable loader, no zarr, dask, PyWavelets, scikit-video, bm3d,
  # napari, diffusers.
  mkdir -p "$WORK/sim"
  cat > "$WORK/sim/sitecustomize.py" <<'PYEOF'
"""Dry run of benchmarks/gpu_run.sh: hide what the GPU machine lacks."""
import sys

ABSENT = {"zarr", "dask", "pywt", "skvideo", "bm3d", "mesonpy", "napari", "diffusers"}


class _Hiding:
    """A meta path finder that finds nothing of ABSENT and defers everything else to ``finder``."""

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.finder, attr)


sys.meta_path[:] = [_Hiding(f) for f in sys.meta_path if type(f).__name__ != "MesonpyMetaFinder"]
sys.path_hooks[:] = [h for h in sys.path_hooks if "Mesonpy" not in getattr(h, "__qualname__", "")]
PYEOF
  export PYTHONPATH="$WORK/sim${PYTHONPATH:+:$PYTHONPATH}"
fi

log "mode $MODE, budget ${BUDGET}s; repo $REPO; out $OUT; scratch $WORK"
{
  echo "date (UTC): $(date -u '+%Y-%m-%d %H:%M')"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"
  "$PY" -c "import triton; print('triton', triton.__version__)" || echo "triton: NOT importable"
  for m in numpy scipy skimage xarray tifffile imageio tqdm pytest Cython; do
    "$PY" -c "import $m; print('$m', getattr($m, '__version__', '?'))" 2>/dev/null || echo "python module missing: $m"
  done
  command -v nvidia-smi >/dev/null && nvidia-smi
  git -C "$REPO" log -1 --format='svimg commit %H %s' 2>/dev/null
} > "$LOGS/environment.txt" 2>&1
cat "$LOGS/environment.txt"
NAME="$("$PY" -c "import torch
print('cpu-dry-run' if '$DEV' == 'cpu' else torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA DEVICE')" 2>/dev/null || echo unknown)"

# ----------------------------------------------------------------------------- 1. overlay
overlay_build() {  # the source overlay in $WORK/overlay (run under `timeout`, so in a child bash)
  local site="$WORK/overlay" so
  mkdir -p "$site/svimg/_kernels" || return 1
  cp -r "$REPO/svimg/." "$site/svimg/" && cp "$REPO"/kernels/*.py "$site/svimg/_kernels/" || return 1
  so="$site/svimg/_kernels/_banded_cpu$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
  if "$PY" -m cython -3 -I "$REPO/kernels" -o "$WORK/_banded_cpu.c" "$REPO/kernels/_banded_cpu.pyx" &&
     ${CC:-cc} -O2 -fPIC -shared -fopenmp -I "$REPO/kernels" \
       -I "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" "$WORK/_banded_cpu.c" -o "$so"; then
    echo "overlay: Cython CPU kernel compiled"
  else
    rm -f "$so"; echo "overlay: Cython CPU kernel NOT built (the GPU path does not need it)"
  fi
}
export -f overlay_build; export REPO WORK PY
stage overlay "$(limit $CAP_OVERLAY)" bash -c overlay_build
export PYTHONPATH="$WORK/overlay${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import svimg, svimg._kernels.triton_temporal as t; from svimg import _dispatch
print('svimg from', svimg.__file__, '| backends', _dispatch.available_backends(), '| interpreter', t.INTERPRETED)" ||
  STATUS[overlay]="FAILED (svimg does not import from the overlay)"

# ----------------------------------------------------------------------------- 2. tests
# no plugin autoloading (the GPU machine's plugins may need packages it lacks); -v: every test in the log
stage tests "$(limit $CAP_TESTS)" env PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "$PY" -m pytest -v -p no:cacheprovider --rootdir "$REPO" -rs \
  "$REPO/tests/test_cuda.py" "$REPO/tests/test_triton.py" "$REPO/tests/test_dispatch.py" "$REPO/tests/test_fallback.py" \
  --junitxml "$LOGS/tests.xml"

# ----------------------------------------------------------------------------- 3. kernel bandwidth
stage kernels "$(limit $CAP_KERNELS)" "$PY" "$REPO/benchmarks/gpu_bench_kernels.py" --device "$DEV" ${TINY[@]+"${TINY[@]}"} --out "$LOGS"

# ----------------------------------------------------------------------------- 4. sampler end to end
lim=$(limit $CAP_E2E)
E2E=(--device "$DEV" ${TINY[@]+"${TINY[@]}"} --budget-s $((lim - 20)) --out "$LOGS")
[[ $MODE == gpu ]] && E2E+=(--frames 16 --nfe 20 --size 256)
[[ $MODE == cpu ]] && E2E+=(--backend triton)  # the fused CG through the interpreter
stage e2e "$lim" "$PY" "$REPO/benchmarks/gpu_e2e.py" "${E2E[@]}"

# ----------------------------------------------------------------------------- 5. prior training
lim=$(left)
TRAIN=(--pack "$PACK" --weights "$OUT/prior_gpu.pt" --log-dir "$LOGS" --device "$DEV" --budget-s $((lim - 15)))
[[ $MODE == cpu ]] && TRAIN+=(--tiny --max-steps 8 --first-chunk-s 60 --chunk-s 30)
stage train "$lim" "$PY" "$REPO/benchmarks/gpu_train.py" "${TRAIN[@]}"

# ----------------------------------------------------------------------------- summary and files
STAGES=(overlay tests kernels e2e train)
{
  echo "# svimg GPU run: $NAME ($(date -u '+%Y-%m-%d %H:%M') UTC, ${SECONDS}s of ${BUDGET}s)"
  [[ $MODE == cpu ]] && echo && echo "**CPU dry run (Triton interpreter, tiny sizes): no number here is a GPU measurement.**"
  echo
  for s in "${STAGES[@]}"; do echo "- $s: ${STATUS[$s]:-not run}"; done
  echo
  echo '```'; grep -E "^(python|torch|triton|svimg commit)" "$LOGS/environment.txt"; echo '```'
  echo "tests: $(grep -E "^=*\s*[0-9]+ (passed|failed|skipped|errors?)\b" "$LOGS/gpu_run.log" | tail -n 1)"
  for f in "$LOGS"/kernels_*.md "$LOGS"/e2e_*.md; do [[ -f $f ]] && { echo; cat "$f"; }; done
  if [[ -f $LOGS/train_summary.json ]]; then
    echo; echo "## Prior training"; echo
    "$PY" -c "import json, sys; s = json.load(open(sys.argv[1]))
keys = ('device', 'pools', 'plans', 'final_step', 'wall_s', 'weights_bytes')
print('\n'.join(f'- {k}: {s.get(k)}' for k in keys))
print(f\"- last weights sha256: {s['chunks'][-1]['weights_sha256'] if s['chunks'] else None}\")" "$LOGS/train_summary.json"
  fi
} > "$OUT/SUMMARY.md"
cp "$OUT/SUMMARY.md" "$LOGS/"
log "packing logs"
tar -czf "$OUT/gpu_run_logs.tar.gz" -C "$WORK" gpu_run_logs
(cd "$OUT" && find . -type f -printf '%s %p\n' | sort -k2 | awk '{printf "  %s  %.1f MiB\n", $2, $1 / 1048576}')
n=$(find "$OUT" -type f | wc -l); big=$(find "$OUT" -type f -size +16M | wc -l); deep=$(find "$OUT" -mindepth 2 -type f | wc -l)
log "out: $n files, $big over 16 MiB, $deep in subfolders (limits: 8, 0, 0)"
for s in "${STAGES[@]}"; do [[ ${STATUS[$s]:-} == ok ]] || exit 1; done
exit 0
