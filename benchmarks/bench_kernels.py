"""Temporal PSF kernels: svimg's Cython/torch/Triton dispatch against the usual alternatives.

Each case applies the paper's uniform width-7 or width-13 PSF with the circular
boundary (``TemporalPSF(7)``, ``TemporalPSF(13)``) along t of a float32 volume, as forward ``M x``, adjoint
``M^T x`` and normal ``M^T M x`` (one pass each: the alternatives use the
flipped kernel for the adjoint and the kernel's autocorrelation, or |K|^2 in
Fourier space, for the normal operator).  Every implementation is checked
against svimg's dense torch reference before it is timed.

Implementations (CPU): svimg as dispatched (``svimg``: the backend it measured
fastest, recorded as ``extra_info["dispatch"]``), svimg with ``SVIMG_BACKEND=cython``
and ``=torch`` (dense T x T matmul), plain numpy (one shifted multiply-add per tap),
``scipy.ndimage.convolve1d(mode="wrap")``, torch ``conv1d`` (pixels as batch,
time as length: needs a transpose), torch ``conv3d`` (a (k, 1, 1) kernel over
depth = t, no transpose) and an FFT along t (``torch.fft.rfft``).  On CUDA,
when present: svimg's Triton kernel and the torch variants.

Bandwidth: every case reads the volume once and writes it once at the least,
so ``extra_info["bytes_moved"] = 2 * nbytes``; a plain copy of the same volume
(``numpy.copyto`` / ``Tensor.copy_``) moves the same bytes and is timed in the
same run, so ``render_tables.py`` reports GB/s and the fraction of the
measured copy bandwidth.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from svimg import _dispatch
from svimg.ops import TemporalPSF

SHAPES = [(16, 3, 256, 256), (64, 1, 512, 512)]
OPS = ["forward", "adjoint", "normal"]
WIDTHS = [7, 13]  # the paper's uniform PSFs, circular boundary
CPU_IMPLS = ["svimg", "svimg-cython", "svimg-torch", "numpy", "scipy-convolve1d", "torch-conv1d", "torch-conv3d", "torch-fft"]
CUDA_IMPLS = ["svimg", "svimg-triton", "torch-conv1d", "torch-conv3d", "torch-fft"]


def effective_kernel(k: np.ndarray, op: str) -> np.ndarray:
    """The 1-D kernel (odd length, centred) whose circular convolution is ``op`` of the PSF k."""
    if k.size % 2 != 1:
        raise ValueError(f"the comparison kernels assume an odd-length PSF, got {k.size} taps")
    if op == "forward":
        return k
    if op == "adjoint":
        return k[::-1].copy()
    return np.convolve(k, k[::-1])  # k^T * k: the normal operator's kernel, 2 * len(k) - 1 taps


def numpy_circular(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """out[t] = sum_j k[j] x[(t - j + c) mod T], one shifted multiply-add per tap (plain numpy)."""
    T, c = x.shape[0], k.size // 2
    out = np.zeros_like(x)
    for j, w in enumerate(k.astype(x.dtype)):
        s = (j - c) % T  # out[t] += w * x[t - s]
        if s == 0:
            out += w * x
        else:
            out[s:] += w * x[: T - s]
            out[:s] += w * x[T - s :]
    return out


def scipy_circular(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """scipy.ndimage.convolve1d along t with the wrap (circular) boundary."""
    return ndi.convolve1d(x, k.astype(x.dtype), axis=0, mode="wrap")


def _conv_weight(k: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    # torch convolutions are correlations: flip to get sum_j k[j] x[t - j + c].
    return torch.as_tensor(k[::-1].copy(), dtype=like.dtype, device=like.device)


def torch_conv1d(x: torch.Tensor, k: np.ndarray) -> torch.Tensor:
    """Pixels as batch, t as length: (T, P) -> (P, 1, T), circular pad, conv1d, back to (T, ...)."""
    T, c = x.shape[0], k.size // 2
    seq = x.reshape(T, -1).t().unsqueeze(1)
    seq = F.pad(seq, (c, k.size - 1 - c), mode="circular")
    out = F.conv1d(seq, _conv_weight(k, x).view(1, 1, -1))
    return out.squeeze(1).t().reshape(x.shape).contiguous()


def torch_conv3d(x: torch.Tensor, k: np.ndarray) -> torch.Tensor:
    """(T, C, H, W) viewed as (C, 1, T, H, W); a (k, 1, 1) kernel over depth = t."""
    c = k.size // 2
    vol = x.permute(1, 0, 2, 3).unsqueeze(1)
    vol = F.pad(vol, (0, 0, 0, 0, c, k.size - 1 - c), mode="circular")
    out = F.conv3d(vol, _conv_weight(k, x).view(1, 1, -1, 1, 1))
    return out.squeeze(1).permute(1, 0, 2, 3).contiguous()


def torch_fft(x: torch.Tensor, k: np.ndarray) -> torch.Tensor:
    """Circular convolution as a product of rFFTs along t: h[(j - c) mod T] = k[j]."""
    T, c = x.shape[0], k.size // 2
    h = np.zeros(T)
    for j, w in enumerate(k):
        h[(j - c) % T] += w
    H = torch.fft.rfft(torch.as_tensor(h, dtype=x.dtype, device=x.device))
    X = torch.fft.rfft(x, dim=0)
    return torch.fft.irfft(X * H.view(-1, *([1] * (x.dim() - 1))), n=T, dim=0)


def _volume(shape, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(shape, generator=g, dtype=torch.float32).to(device)


_REFERENCE: dict = {}


def _reference(shape, op, psf) -> torch.Tensor:
    """svimg's dense torch result in float64 (computed once per shape, operator and PSF)."""
    key = (shape, op, psf.support)
    if key not in _REFERENCE:
        x = _volume(shape, "cpu").double()
        A = np.array(psf.matrix(shape[0]))
        M = {"forward": A, "adjoint": A.T, "normal": A.T @ A}[op]
        _REFERENCE.clear()  # keep one 64x512x512 float64 volume alive at most
        _REFERENCE[key] = (torch.as_tensor(M) @ x.reshape(shape[0], -1)).reshape(shape).float()
    return _REFERENCE[key]


def _runner(impl: str, op: str, x: torch.Tensor, backend, psf):
    """A zero-argument callable computing ``op`` with ``impl`` on ``x`` (and syncing CUDA)."""
    k = effective_kernel(psf.kernel, op)
    if impl.startswith("svimg"):
        if impl != "svimg":
            backend(impl.split("-", 1)[1])
        fn = getattr(psf, op)
        run = lambda: fn(x)  # noqa: E731
    elif impl == "numpy":
        xn = x.numpy()
        run = lambda: torch.from_numpy(numpy_circular(xn, k))  # noqa: E731
    elif impl == "scipy-convolve1d":
        xn = x.numpy()
        run = lambda: torch.from_numpy(scipy_circular(xn, k))  # noqa: E731
    else:
        fn = {"torch-conv1d": torch_conv1d, "torch-conv3d": torch_conv3d, "torch-fft": torch_fft}[impl]
        run = lambda: fn(x, k)  # noqa: E731
    if x.device.type != "cuda":
        return run

    def synced():
        out = run()
        torch.cuda.synchronize()
        return out

    return synced


def _dispatched(psf, op: str, x: torch.Tensor) -> str:
    """The backend svimg's dispatch chose (after the first call measured it) for ``op`` of ``psf`` on ``x``."""
    T = x.shape[0]
    M = psf.matrix(T)
    matrix, factors = {"forward": (M, ()), "adjoint": (M.T, ()), "normal": (M.T @ M, (M, M.T))}[op]
    return _dispatch.backend_for(x, matrix, factors)


def _bench_case(benchmark, backend, device, impl, shape, op, width):
    psf = TemporalPSF(width)
    x = _volume(shape, device)
    run = _runner(impl, op, x, backend, psf)
    got = run().cpu()
    torch.testing.assert_close(got, _reference(shape, op, psf), rtol=1e-4, atol=2e-5)
    benchmark.group = f"{device} {'x'.join(map(str, shape))} float32 width {width}"
    benchmark.extra_info.update(
        impl=impl, op=op, shape=list(shape), device=device, bytes_moved=2 * x.numel() * x.element_size(),
        width=width, threads=torch.get_num_threads(),
        dispatch=_dispatched(psf, op, x) if impl.startswith("svimg") else None,
    )
    with torch.no_grad():
        benchmark(run)


def _bench_copy(benchmark, device, shape):
    x = _volume(shape, device)
    if device == "cuda":
        dst = torch.empty_like(x)

        def run():
            dst.copy_(x)
            torch.cuda.synchronize()

        impl = "torch-copy"
    else:
        src, dst = x.numpy(), np.empty(shape, dtype=np.float32)
        run = lambda: np.copyto(dst, src)  # noqa: E731
        impl = "numpy-copy"
    benchmark.group = f"{device} {'x'.join(map(str, shape))} float32"
    benchmark.extra_info.update(
        impl=impl, op="copy", shape=list(shape), device=device, bytes_moved=2 * x.numel() * x.element_size(),
        threads=torch.get_num_threads(),
    )
    benchmark(run)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_copy_cpu(benchmark, shape):
    _bench_copy(benchmark, "cpu", shape)


@pytest.mark.parametrize("impl", CPU_IMPLS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("width", WIDTHS, ids=lambda w: f"w{w}")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_temporal_cpu(benchmark, backend, shape, width, op, impl):
    _bench_case(benchmark, backend, "cpu", impl, shape, op, width)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@needs_cuda
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_copy_cuda(benchmark, shape):
    _bench_copy(benchmark, "cuda", shape)


@needs_cuda
@pytest.mark.parametrize("impl", CUDA_IMPLS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("width", WIDTHS, ids=lambda w: f"w{w}")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_temporal_cuda(benchmark, backend, shape, width, op, impl):
    _bench_case(benchmark, backend, "cuda", impl, shape, op, width)


RATIO_ROUNDS = 15


def test_ratios_cpu(benchmark):
    """Copy, svimg as dispatched and scipy, interleaved in one loop at 16x3x256x256 float32 (see conftest)."""
    from conftest import interleaved_medians

    shape = SHAPES[0]
    x = _volume(shape, "cpu")
    src, dst = x.numpy(), np.empty(shape, dtype=np.float32)
    runners, chosen = {"copy": lambda: np.copyto(dst, src)}, {}
    for width in WIDTHS:
        psf = TemporalPSF(width)
        for op in OPS:
            runners[f"svimg w{width} {op}"] = _runner("svimg", op, x, None, psf)
            runners[f"scipy w{width} {op}"] = _runner("scipy-convolve1d", op, x, None, psf)
            torch.testing.assert_close(runners[f"svimg w{width} {op}"](), _reference(shape, op, psf), rtol=1e-4, atol=2e-5)
            chosen[f"w{width} {op}"] = _dispatched(psf, op, x)
    result = {}
    with torch.no_grad():
        benchmark.pedantic(lambda: result.update(interleaved_medians(runners, RATIO_ROUNDS)), rounds=1, iterations=1)
    benchmark.group = "interleaved ratios"
    benchmark.extra_info.update(ratio_medians=result, dispatch=chosen, rounds=RATIO_ROUNDS, shape=list(shape),
                                threads=torch.get_num_threads())
