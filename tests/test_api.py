"""The functional API: input types in = output types out, xarray metadata, bad input, no mutation."""

import numpy as np
import pytest
import torch
import xarray as xr

import svimg
from svimg import adjoint_op, cg_solve, forward_op
from svimg.ops import Downsample, GaussianBlur, Identity, Mask, RandomMask, TemporalPSF

OPS = [
    TemporalPSF(7),
    TemporalPSF.gaussian(1.0, boundary="zero"),
    GaussianBlur(5, 1.0),
    Downsample(2) @ TemporalPSF(13, boundary="reflect"),
    RandomMask(0.5, seed=1),
    Identity(),
]


def _video(shape=(12, 2, 4, 8), dtype=np.float32, seed=0):  # 12 frames: 6 complete exposures of TemporalPSF(7)
    return np.random.default_rng(seed).random(shape).astype(dtype)


def _reference(op, x, adjoint=False):
    """The operator on the (T, C, H, W) float64 tensor: what every front end must reproduce."""
    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    t = t if t.ndim == 4 else t[:, None]
    out = (op.adjoint if adjoint else op.forward)(t)
    return out.numpy() if np.ndim(x) == 4 else out[:, 0].numpy()


def _dataarray(values, order=None):
    """A DataArray of canonical (t, c, y, x) or (t, y, x) ``values`` with dimension, auxiliary and scalar
    coordinates, transposed to ``order``."""
    dims = ("t", "c", "y", "x") if values.ndim == 4 else ("t", "y", "x")
    sizes = dict(zip(dims, values.shape))
    coords = {
        "t": np.arange(sizes["t"]) * 0.04,
        "time": ("t", [f"frame{i}" for i in range(sizes["t"])]),  # an auxiliary coordinate along t
        "y": np.arange(sizes["y"]) + 0.5,
        "x": np.arange(sizes["x"]) + 0.5,
        "microscope": "widefield",  # a scalar coordinate
    }
    if "c" in sizes:
        coords["c"] = ["r", "g", "b"][: sizes["c"]]
    da = xr.DataArray(values, dims=dims, coords=coords, name="clip", attrs={"units": "a.u."})
    return da.transpose(*(order or dims))


# --------------------------------------------------------------------------- types in, types out


@pytest.mark.parametrize("op", OPS, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [True, False], ids=["tcyx", "tyx"])
def test_numpy_and_torch_round_trip(op, dtype, channels):
    x = _video(dtype=dtype) if channels else _video(dtype=dtype)[:, 0]
    expected = _reference(op, x)
    y = forward_op(x, op)
    assert isinstance(y, np.ndarray) and y.dtype == dtype and y.shape == expected.shape
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol)
    yt = forward_op(torch.from_numpy(x), op)
    assert isinstance(yt, torch.Tensor) and yt.dtype == torch.from_numpy(x).dtype and yt.device.type == "cpu"
    np.testing.assert_allclose(yt.numpy(), expected, rtol=rtol, atol=rtol)
    back = adjoint_op(y, op)
    assert isinstance(back, np.ndarray) and back.shape == x.shape and back.dtype == dtype
    np.testing.assert_allclose(back, _reference(op, y, adjoint=True), rtol=rtol, atol=rtol)
    assert isinstance(adjoint_op(yt, op), torch.Tensor)


def test_float16_and_read_only_inputs():
    x = _video(dtype=np.float16)
    y = forward_op(x, TemporalPSF(7))
    assert y.dtype == np.float16
    np.testing.assert_allclose(y, _reference(TemporalPSF(7), x), rtol=0, atol=2e-3)
    ro = _video()
    ro.flags.writeable = False
    np.testing.assert_allclose(forward_op(ro, TemporalPSF(7)), _reference(TemporalPSF(7), ro), rtol=1e-5)


@pytest.mark.parametrize("order", [("t", "c", "y", "x"), ("t", "y", "x", "c"), ("t", "y", "x"), ("x", "t", "y")])
def test_xarray_round_trip_keeps_metadata(order):
    canonical = _video() if "c" in order else _video()[:, 0]
    da = _dataarray(canonical, order)
    op = TemporalPSF(7, boundary="zero")
    y = forward_op(da, op)
    assert isinstance(y, xr.DataArray) and y.dims == order and y.dtype == np.float32 and y.name == "clip"
    for name in da.coords:
        xr.testing.assert_identical(y.coords[name], da.coords[name])
    assert y.attrs["units"] == "a.u." and y.attrs["svimg_operation"] == "forward_op"
    assert y.attrs["svimg_operator"] == repr(op) and "forward_op" in y.attrs["history"]
    canonical_dims = ("t", "c", "y", "x") if "c" in order else ("t", "y", "x")
    np.testing.assert_allclose(y.transpose(*canonical_dims).values, _reference(op, canonical), rtol=1e-5, atol=1e-6)
    x_back = adjoint_op(y, op)
    assert isinstance(x_back, xr.DataArray) and x_back.dims == order
    assert x_back.attrs["svimg_operation"] == "adjoint_op" and set(x_back.coords) == set(da.coords)


def test_xarray_rescales_pixel_coordinates_and_drops_only_those_that_no_longer_fit():
    da = _dataarray(_video(shape=(6, 2, 4, 8)))
    da = da.assign_coords(x=("x", da.x.values * 5.0, {"units": "micrometer"}), row=("y", ["a", "b", "c", "d"]))
    op = Downsample(2) @ TemporalPSF(7, boundary="circular")  # as many frames out as in
    y = forward_op(da, op)
    assert y.sizes == {"t": 6, "c": 2, "y": 2, "x": 4}
    assert set(y.coords) == {"t", "time", "c", "microscope", "y", "x"}  # "row" described the old pixel grid
    # 2x2 pooling: pixels twice as large over the same field of view, centred on the pooled pixels
    np.testing.assert_allclose(y.x.values, [5.0, 15.0, 25.0, 35.0])
    np.testing.assert_allclose(y.y.values, [1.0, 3.0])
    assert y.x.attrs == {"units": "micrometer"}
    x = cg_solve(op, y, n_iter=2)
    assert x.sizes == {"t": 6, "c": 2, "y": 4, "x": 8}
    np.testing.assert_allclose(x.x.values, da.x.values)  # back on the original grid
    np.testing.assert_allclose(x.y.values, da.y.values)
    recorded = forward_op(_dataarray(_video()), Downsample(2) @ TemporalPSF(7))  # "valid": 12 - 6 exposures
    assert recorded.sizes == {"t": 6, "c": 2, "y": 2, "x": 4}


def test_time_coordinate_keeps_its_frame_interval_when_frames_are_dropped():
    from svimg._convert import fit_coords

    da = _dataarray(_video(shape=(6, 2, 4, 8)))
    coords = fit_coords(da, {"t": 4, "c": 2, "y": 4, "x": 8})
    np.testing.assert_allclose(coords["t"].values, np.arange(4) * 0.04)
    assert "time" not in coords


def test_dask_backed_dataarray():
    pytest.importorskip("dask")
    da = _dataarray(_video()).chunk({"t": 2})
    y = forward_op(da, TemporalPSF(7))
    np.testing.assert_allclose(y.values, _reference(TemporalPSF(7), da.values), rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_tensors(dtype):
    x = torch.from_numpy(_video(dtype=np.float64)).to(dtype)
    op = Downsample(2) @ TemporalPSF(7, boundary="reflect")
    y = forward_op(x.cuda(), op)
    assert y.device.type == "cuda" and y.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y.cpu(), forward_op(x, op), rtol=tol, atol=tol)
    torch.testing.assert_close(adjoint_op(y, op).cpu(), adjoint_op(y.cpu(), op), rtol=tol, atol=tol)
    x_hat = cg_solve(op, y, n_iter=3)
    assert x_hat.device.type == "cuda"
    torch.testing.assert_close(x_hat.cpu(), cg_solve(op, y.cpu(), n_iter=3), rtol=tol * 10, atol=tol * 10)


def test_cg_solve_returns_the_type_of_y():
    op = TemporalPSF.gaussian(1.0, boundary="circular")  # invertible: CG recovers x
    x = _video(dtype=np.float64)
    y = forward_op(x, op)
    assert isinstance(cg_solve(op, y), np.ndarray)
    x_hat = cg_solve(op, torch.from_numpy(y), x0=x, n_iter=3)  # x0 may be another type
    assert isinstance(x_hat, torch.Tensor) and x_hat.dtype == torch.float64
    da = cg_solve(op, _dataarray(y), n_iter=2)
    assert isinstance(da, xr.DataArray) and da.attrs["svimg_operation"] == "cg_solve"
    seen = []
    cg_solve(op, y, n_iter=2, callback=lambda k, xk, rk: seen.append(type(xk)))
    assert seen == [np.ndarray, np.ndarray]
    np.testing.assert_allclose(cg_solve(op, y, n_iter=100, tol=1e-12), x, rtol=0, atol=1e-9)


def test_top_level_namespace():
    assert svimg.forward_op is forward_op and svimg.ops.TemporalPSF is TemporalPSF
    assert {"forward_op", "adjoint_op", "cg_solve", "ops", "sample"} <= set(svimg.__all__)


# --------------------------------------------------------------------------- bad input


def _nan_video():
    x = _video()
    x[2, 1, 0, 3] = np.nan
    return x


BAD_CALLS = [
    (lambda: forward_op(np.zeros((4, 4), np.float32), TemporalPSF(3)), ValueError,
     r"x must be \(T, C, H, W\) or \(T, H, W\), got 2 dimension\(s\)"),
    (lambda: forward_op(torch.zeros(1, 2, 3, 4, 5), TemporalPSF(3)), ValueError, r"x must be .* got 5 dimension\(s\)"),
    (lambda: adjoint_op(np.zeros((3,), np.float32), TemporalPSF(3)), ValueError, r"y must be .* got 1 dimension\(s\)"),
    (lambda: forward_op(xr.DataArray(np.zeros((2, 3, 4)), dims=("time", "y", "x")), TemporalPSF(3)), ValueError,
     r"x must have dims \('t', 'c', 'y', 'x'\) or \('t', 'y', 'x'\) \(any order\), got \('time', 'y', 'x'\)"),
    (lambda: forward_op(np.zeros((0, 4, 4), np.float32), TemporalPSF(3)), ValueError, r"x is empty \(shape \(0, 1, 4, 4\)\)"),
    (lambda: forward_op(_nan_video(), TemporalPSF(3)), ValueError, r"x contains 1 non-finite value\(s\) \(NaN or Inf\)"),
    (lambda: adjoint_op(torch.full((3, 4, 4), float("inf")), TemporalPSF(3)), ValueError, r"y contains 48 non-finite"),
    (lambda: cg_solve(TemporalPSF(3), _video(), x0=_nan_video()), ValueError, "x0 contains 1 non-finite"),
    (lambda: forward_op(np.zeros((3, 4, 4), np.int64), TemporalPSF(3)), TypeError,
     r"x must hold real floating-point values in \[0, 1\] \(float16/32/64\), got dtype int64"),
    (lambda: forward_op(torch.zeros(3, 4, 4, dtype=torch.uint8), TemporalPSF(3)), TypeError, "got dtype torch.uint8"),
    (lambda: adjoint_op(np.zeros((3, 4, 4), bool), TemporalPSF(3)), TypeError, "y must hold real floating-point .* got dtype bool"),
    (lambda: forward_op(np.zeros((3, 4, 4), np.complex64), TemporalPSF(3)), TypeError, "got dtype complex64"),
    (lambda: forward_op([[[0.0]]], TemporalPSF(3)), TypeError,
     "x must be a numpy array, torch tensor, xarray.DataArray or zarr store, got list"),
    (lambda: forward_op(_video(), "TemporalPSF(7)"), TypeError, r"op must be an svimg.ops.LinearOperator \(e.g. TemporalPSF\(7\)\), got str"),
    (lambda: forward_op(_video(shape=(3, 1, 6, 6)), Downsample(4)), ValueError,
     r"x of shape \(3, 1, 6, 6\) does not fit Downsample\(4\): .*divisible by 4, got 6x6"),
    (lambda: forward_op(_video(shape=(3, 1, 6, 6)), Mask(np.ones((4, 4)))), ValueError,
     r"x of shape \(3, 1, 6, 6\) does not fit Mask\(4x4, kept=1.000\): mask of shape \(4, 4\) does not fit frames of size \(6, 6\)"),
    (lambda: adjoint_op(_video(shape=(3, 1, 6, 6)), Mask(np.ones((4, 4)))), ValueError, r"y of shape \(3, 1, 6, 6\) does not fit Mask"),
    (lambda: cg_solve(Mask(np.ones((4, 4))), _video(shape=(3, 1, 6, 6))), ValueError, r"y of shape \(3, 1, 6, 6\) does not fit Mask"),
    (lambda: cg_solve(Downsample(2), _video(shape=(3, 1, 2, 2)), x0=_video(shape=(3, 1, 2, 2))), ValueError,
     r"x0 has shape \(3, 1, 2, 2\) but Downsample\(2\) needs inputs of shape \(3, 1, 4, 4\) for y of shape \(3, 1, 2, 2\)"),
    (lambda: cg_solve(TemporalPSF(3), _video(), n_iter=-1), ValueError, "n_iter must be an integer >= 0, got -1"),
    (lambda: cg_solve(TemporalPSF(3), _video(), n_iter=2.5), TypeError, "n_iter must be an integer >= 0, got 2.5"),
    (lambda: cg_solve(TemporalPSF(3), _video(), gamma=0), ValueError, "gamma must be > 0, got 0"),
    (lambda: cg_solve(TemporalPSF(3), _video(), gamma="1"), TypeError, "gamma must be a finite number, got '1'"),
    (lambda: cg_solve(TemporalPSF(3), _video(), tol=-1e-5), ValueError, r"tol must be >= 0, got -1e-05"),
    (lambda: cg_solve(TemporalPSF(3), _video(), callback=42), TypeError, "callback must be callable or None, got int"),
]


@pytest.mark.parametrize("call, error, match", BAD_CALLS)
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------- no mutation, no aliasing


@pytest.mark.parametrize("op", OPS + [TemporalPSF(7, boundary="replicate") @ Identity()], ids=repr)
def test_caller_arrays_are_never_modified(op):
    x_np = _video()
    x_t = torch.from_numpy(_video(seed=1))
    x_da = _dataarray(_video(seed=2))
    y_np = forward_op(x_np, op)
    originals = [a.copy() for a in (x_np, y_np)] + [x_t.clone(), x_da.copy(deep=True)]
    outputs = [
        forward_op(x_t, op),
        forward_op(x_da, op),
        adjoint_op(y_np, op),
        cg_solve(op, y_np, x0=x_np, n_iter=2),
        cg_solve(op, y_np, x0=x_np, n_iter=2, gamma=1.0),
        cg_solve(op, forward_op(x_t, op), x0=x_t, n_iter=2),
        cg_solve(op, forward_op(x_da, op), x0=x_da, n_iter=2),
    ]
    np.testing.assert_array_equal(x_np, originals[0])
    np.testing.assert_array_equal(y_np, originals[1])
    assert torch.equal(x_t, originals[2])
    xr.testing.assert_identical(x_da, originals[3])
    # Results never alias the inputs: writing into them leaves the caller's data alone.
    forward_op(x_np, op)[...] = -1
    forward_op(x_t, op).fill_(-1)
    forward_op(x_da, op)[...] = -1
    np.testing.assert_array_equal(x_np, originals[0])
    assert torch.equal(x_t, originals[2])
    xr.testing.assert_identical(x_da, originals[3])
    assert all(np.isfinite(np.asarray(o)).all() for o in outputs)
