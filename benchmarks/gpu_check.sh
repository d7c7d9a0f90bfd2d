#!/usr/bin/env bash
# One prepared check of svimg's Triton kernels on a CUDA GPU (issue 6), at most ~8 minutes.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine (torch + triton installed, no network)
#   bash benchmarks/gpu_check.sh --cpu-tiny   # dry run of every stage on a CPU (Triton interpreter)
#
# Stages, each under its own time limit, each run even if an earlier one failed:
#   1. make svimg importable without the network: this checkout's editable install if that is
#      what `import svimg` finds; else `pip install --no-build-isolation --no-deps --no-index
#      --target` into a scratch folder; else a source overlay (pure-Python package + Triton
#      kernels, no Cython CPU kernel, which the GPU path does not need).
#   2. the CUDA/Triton tests: pytest tests/test_cuda.py (marker cuda),
#      tests/test_triton.py (marker triton, compiled on the GPU), tests/test_dispatch.py.
#   3. benchmarks/gpu_bench_kernels.py: GB/s and fraction of peak bandwidth per kernel,
#      against conv1d / conv3d / FFT; tile sweep; one fused CG iteration.
#   4. benchmarks/gpu_e2e.py: the sampler on 16 and 32 frames of 256x256, 20 and 100 NFE, with an
#      ADM-256 network of RANDOM weights; seconds per video, peak VRAM, non-network share.
# Everything goes to benchmarks/results/gpu_<device>_<UTC date-time>/ (SUMMARY.md first);
# in --cpu-tiny mode to a scratch folder unless GPU_CHECK_OUT is set.
# Environment: PYTHON (default python3), GPU_CHECK_BUDGET_S (default 470), GPU_CHECK_OUT.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
BUDGET="${GPU_CHECK_BUDGET_S:-470}"
MODE=gpu
case "${1:-}" in
  --cpu-tiny) MODE=cpu ;;
  "") ;;
  *) echo "usage: $0 [--cpu-tiny]" >&2; exit 2 ;;
esac

# Build tools (meson, ninja, cython) installed next to this Python are found even in an unactivated venv.
PYBIN="$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null)" && PATH="$PYBIN:$PATH"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/svimg-gpu-check.XXXXXX")"
cd "$WORK" || exit 2  # never run from the source tree: `import svimg` must not find ./svimg by accident

if [[ $MODE == gpu ]]; then
  DEV=cuda; EXTRA=(); CAP=150  # seconds at most for install, tests and kernel benchmarks each
else
  DEV=cpu; EXTRA=(--tiny); CAP="$BUDGET"; export TRITON_INTERPRET=1  # the interpreter is slow: no caps
fi

if ! NAME="$("$PY" -c "
import sys, torch
if '$DEV' == 'cuda' and not torch.cuda.is_available():
    sys.exit('torch ' + torch.__version__ + ' sees no CUDA device')
print(torch.cuda.get_device_name(0) if '$DEV' == 'cuda' else 'cpu-dry-run')
")"; then
  echo "gpu_check: no usable torch/CUDA; nothing was run" >&2
  exit 2
fi
SLUG="$(echo "$NAME" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')"
STAMP="$(date -u +%Y%m%d-%H%M)"
if [[ $MODE == gpu ]]; then
  OUT="${GPU_CHECK_OUT:-$REPO/benchmarks/results/gpu_${SLUG}_${STAMP}}"
else
  OUT="${GPU_CHECK_OUT:-$WORK/results/gpu_${SLUG}_${STAMP}}"
fi
mkdir -p "$OUT" || exit 2
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

log() { echo "[gpu_check t=${SECONDS}s] $*"; }
left() { echo $((BUDGET - SECONDS)); }
declare -A STATUS
stage() {  # stage NAME LIMIT_S CMD...: run under `timeout`, record the outcome
  local name="$1" limit="$2"; shift 2
  if ((limit < 10)); then
    log "$name: skipped, out of time"; STATUS[$name]="skipped (time budget)"; return
  fi
  log "$name: start (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  case $rc in
    0) STATUS[$name]="ok" ;;
    124|137) STATUS[$name]="TIMED OUT after ${limit}s" ;;
    *) STATUS[$name]="FAILED (exit $rc)" ;;
  esac
  log "$name: ${STATUS[$name]}"
}

log "device: $NAME; repo: $REPO; results: $OUT"
{
  echo "device: $NAME"
  echo "date (UTC): $(date -u '+%Y-%m-%d %H:%M')"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  "$PY" -c "import triton; print('triton', triton.__version__)" || echo "triton: NOT importable"
  for m in numpy scipy pytest tqdm; do "$PY" -c "import $m" 2>/dev/null || echo "python module missing: $m"; done
  command -v nvidia-smi >/dev/null && nvidia-smi
  git -C "$REPO" log -1 --format='svimg commit %H %s' 2>/dev/null
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

# ----------------------------------------------------------------------------- 1. install
VERIFY="import svimg, svimg._kernels.triton_temporal as t; from svimg import _dispatch
print('svimg from', svimg.__file__, '| backends', _dispatch.available_backends(), '| interpreter', t.INTERPRETED)"
install_svimg() {
  if "$PY" -c "import os, sys, svimg, svimg._kernels.triton_temporal
sys.exit(0 if os.path.realpath(svimg.__file__).startswith(os.path.realpath('$REPO') + os.sep) else 1)" 2>/dev/null; then
    log "install: this checkout is already installed (editable)"
  elif timeout "$install_limit" "$PY" -m pip install --no-build-isolation --no-deps --no-index \
      --target "$WORK/site" "$REPO" > "$OUT/pip_install.log" 2>&1; then
    export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
    log "install: pip --no-build-isolation into $WORK/site"
  else
    log "install: pip build failed (see pip_install.log); using a source overlay without the Cython kernel"
    mkdir -p "$WORK/overlay/svimg/_kernels"
    cp -r "$REPO/svimg/." "$WORK/overlay/svimg/"
    cp "$REPO"/kernels/*.py "$WORK/overlay/svimg/_kernels/"
    export PYTHONPATH="$WORK/overlay${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PY" -c "$VERIFY"
}
install_limit=$(($(left) - 320)); ((install_limit > CAP)) && install_limit=$CAP; ((install_limit < 10)) && install_limit=10
log "install: start"
if install_svimg; then STATUS[install]="ok"; else STATUS[install]="FAILED"; fi
log "install: ${STATUS[install]}"

# ----------------------------------------------------------------------------- 2. tests
tests_limit=$(($(left) - 300)); ((tests_limit > CAP)) && tests_limit=$CAP
stage tests "$tests_limit" "$PY" -m pytest -q -p no:cacheprovider --rootdir "$REPO" -rs \
  "$REPO/tests/test_cuda.py" "$REPO/tests/test_triton.py" "$REPO/tests/test_dispatch.py" \
  --junitxml "$OUT/tests.xml"

# ----------------------------------------------------------------------------- 3. kernel bandwidth
kernels_limit=$(($(left) - 200)); ((kernels_limit > CAP)) && kernels_limit=$CAP
stage kernels "$kernels_limit" "$PY" "$REPO/benchmarks/gpu_bench_kernels.py" --device "$DEV" "${EXTRA[@]}" --out "$OUT"

# ----------------------------------------------------------------------------- 4. sampler end to end
e2e_limit=$(($(left) - 15))
E2E_ARGS=(--device "$DEV" "${EXTRA[@]}" --budget-s $((e2e_limit - 40)) --out "$OUT")
[[ $MODE == cpu ]] && E2E_ARGS+=(--backend triton)  # exercise the fused CG through the interpreter
stage e2e "$e2e_limit" "$PY" "$REPO/benchmarks/gpu_e2e.py" "${E2E_ARGS[@]}"

# ----------------------------------------------------------------------------- summary
{
  echo "# svimg GPU check: $NAME ($(date -u '+%Y-%m-%d %H:%M') UTC, ${SECONDS}s)"
  [[ $MODE == cpu ]] && echo && echo "**CPU dry run (Triton interpreter, tiny sizes): no number here is a GPU measurement.**"
  echo
  for s in install tests kernels e2e; do echo "- $s: ${STATUS[$s]:-not run}"; done
  echo
  grep -E "^[0-9]+ (passed|failed|skipped|errors?)\b" "$OUT/gpu_check.log" | tail -n 1
  for f in "$OUT"/kernels_*.md "$OUT"/e2e_*.md; do [[ -f $f ]] && { echo; cat "$f"; }; done
} > "$OUT/SUMMARY.md"
log "summary: $OUT/SUMMARY.md"
for s in install tests kernels e2e; do [[ ${STATUS[$s]:-} == ok ]] || exit 1; done
exit 0
