"""Everything outside the network: the functional layer, the blur, the sampler's non-network share, CG in float64.

``test_api``     ``svimg.forward_op`` / ``adjoint_op`` against the operator's own
                 ``forward`` / ``adjoint`` (``TemporalPSF(7)``, 16 x 3 x 256 x 256
                 float32): the overhead of validation and conversion.
``test_blur``    ``GaussianBlur(13, 2)`` at 16 x 3 x 256 x 256: svimg as dispatched,
                 forced to the Cython kernel and to the two torch conv2d passes, and
                 the unseparated 13 x 13 ``conv2d`` svimg used before; float32 and float64.
``test_share``   one ``svimg.sample`` run with the bundled prior for each paper
                 operator at 16 x 3 x 64 x 64 (the sampler's default nfe) and
                 16 x 3 x 256 x 256 (nfe 2: the share is per NFE), every other
                 argument at ``sample``'s defaults *as they are when this runs*.  The
                 prior's ``eps`` is wrapped by a timer, so one run gives the time in the
                 network and the rest (data steps, re-noising, setup): the share is
                 ``1 - prior / total``.
``test_cg_f64``  ``svimg.cg_solve`` in float64, 10 iterations (``tol=0``), for each
                 paper operator at both sizes: seconds per CG iteration, to predict
                 a sampler whose data steps run in float64.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

import svimg
from svimg.ops import Downsample, GaussianBlur, RandomMask, TemporalPSF

SIZES = [64, 256]
FRAMES = 16
SHARE_NFE = {64: None, 256: 2}  # None: sample's default
CG_ITERS = 10
TASKS = {
    "uniform 7": lambda: TemporalPSF(7),
    "uniform 13": lambda: TemporalPSF(13),
    "Gaussian 1": lambda: TemporalPSF.gaussian(1.0),
    "uniform 7 + blur 13/2": lambda: GaussianBlur(13, 2.0) @ TemporalPSF(7),
    "uniform 7 + SR x4": lambda: Downsample(4) @ TemporalPSF(7),
    "uniform 7 + 50% mask": lambda: RandomMask(0.5, seed=0) @ TemporalPSF(7),
}


def _video(size: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(FRAMES, 3, size, size, generator=g, dtype=torch.float64).to(dtype)


def _info(benchmark, **info):
    benchmark.extra_info.update(threads=torch.get_num_threads(), **info)


# ----------------------------------------------------------------------------- functional layer

API_CALLS = {
    "op.forward": lambda op, x, y: op.forward(x),
    "svimg.forward_op": lambda op, x, y: svimg.forward_op(x, op),
    "op.adjoint": lambda op, x, y: op.adjoint(y),
    "svimg.adjoint_op": lambda op, x, y: svimg.adjoint_op(y, op),
}


@pytest.mark.parametrize("call", list(API_CALLS))
def test_api(benchmark, call):
    op, x = TemporalPSF(7), _video(256)
    y = op.forward(x)
    run = API_CALLS[call]
    torch.testing.assert_close(run(op, x, y), (op.forward if "forward" in call else op.adjoint)(x if "forward" in call else y))
    benchmark.group = "functional layer, TemporalPSF(7), 16x3x256x256 float32"
    _info(benchmark, api_call=call, shape=list(x.shape))
    benchmark(run, op, x, y)


def test_api_ratios(benchmark):
    """The four calls above interleaved in one loop (see conftest): the overhead as a ratio of medians."""
    from conftest import interleaved_medians

    op, x = TemporalPSF(7), _video(256)
    y = op.forward(x)
    runners = {call: (lambda run=run: run(op, x, y)) for call, run in API_CALLS.items()}
    result = {}
    benchmark.pedantic(lambda: result.update(interleaved_medians(runners, API_ROUNDS)), rounds=1, iterations=1)
    benchmark.group = "interleaved ratios"
    _info(benchmark, api_medians=result, rounds=API_ROUNDS, shape=list(x.shape))


API_ROUNDS = 40


# ----------------------------------------------------------------------------- blur

def _conv2d_13x13(op: GaussianBlur, x: torch.Tensor) -> torch.Tensor:
    """The unseparated per-frame 2-D convolution (what GaussianBlur ran before it was separated)."""
    w = torch.tensor(op.kernel, dtype=x.dtype)[None, None]
    return F.conv2d(x.reshape(-1, 1, *x.shape[-2:]), w, padding=op.size // 2).reshape(x.shape)


BLUR_IMPLS = ["svimg", "svimg-cython", "svimg-torch", "conv2d-13x13"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("impl", BLUR_IMPLS)
def test_blur(benchmark, backend, impl, dtype):
    op, x = GaussianBlur(13, 2.0), _video(256, dtype)
    if impl == "conv2d-13x13":
        run = lambda: _conv2d_13x13(op, x)  # noqa: E731
    else:
        if impl != "svimg":
            backend(impl.split("-", 1)[1])
        run = lambda: op.forward(x)  # noqa: E731
    torch.testing.assert_close(run(), _conv2d_13x13(op, x.double()).to(dtype), rtol=1e-5, atol=1e-6)
    benchmark.group = f"GaussianBlur(13, 2), 16x3x256x256 {str(dtype)[6:]}"
    _info(benchmark, blur_impl=impl, dtype=str(dtype)[6:], shape=list(x.shape))
    with torch.no_grad():
        benchmark(run)


# ----------------------------------------------------------------------------- sampler share

class TimedPrior:
    """A prior whose ``eps`` calls are timed (``seconds``); everything else is the wrapped prior's."""

    def __init__(self, prior):
        self._prior, self.seconds, self.calls = prior, 0.0, 0

    def __getattr__(self, name):
        return getattr(self._prior, name)

    def to(self, device):
        moved = self._prior.to(device)
        self._prior = self._prior if moved is None else moved
        return self

    def eps(self, x, t):
        start = time.perf_counter()
        out = self._prior.eps(x, t)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


@pytest.fixture(scope="module")
def bundled_prior():
    from svimg.sampling._common import resolve_prior

    try:
        return resolve_prior(None, torch.device("cpu"))
    except (FileNotFoundError, ImportError, AttributeError) as exc:
        pytest.skip(f"no bundled prior to benchmark: {exc}")


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("size", SIZES)
def test_share(benchmark, bundled_prior, size, task):
    op = TASKS[task]()
    y = svimg.forward_op(_video(size), op)
    nfe = SHARE_NFE[size]
    kwargs = {"seed": 0, "progress": False, **({} if nfe is None else {"nfe": nfe})}
    record = {}

    def run():
        timed = TimedPrior(bundled_prior)
        start = time.perf_counter()
        svimg.sample(y, op, timed, **kwargs)
        record.update(total=time.perf_counter() - start, prior=timed.seconds, calls=timed.calls)

    benchmark.group = f"sample non-network share, 16x3x{size}x{size}"
    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    _info(benchmark, share_task=task, size=size, nfe=record["calls"], total_s=record["total"],
          prior_s=record["prior"], share=1 - record["prior"] / record["total"], op=repr(op))


# ----------------------------------------------------------------------------- CG in float64

@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("size", SIZES)
def test_cg_f64(benchmark, size, task):
    op = TASKS[task]()
    y = svimg.forward_op(_video(size, torch.float64), op)

    def run():
        return svimg.cg_solve(op, y, n_iter=CG_ITERS, tol=0.0, return_history=True)[1]

    assert len(run()) == CG_ITERS + 1
    benchmark.group = f"cg_solve float64, {CG_ITERS} iterations, 16x3x{size}x{size}"
    _info(benchmark, cg_task=task, size=size, cg_iters=CG_ITERS)
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
