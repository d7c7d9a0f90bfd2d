"""Bad inputs, one clear exception each (parameter, value, what is expected), and nothing lost.

The catalogue of issue 10: empty/wrong-ndim/NaN/integer/complex measurements, values far
outside [0, 1], T = 1 and T shorter than the PSF, sizes the SR factor does not divide, bad
mask ratios, nfe and eta out of range, PSFs that sum to zero, measurements that do not fit
the operator, priors with other channels, bad checkpoints, corrupt stores and videos,
unwritable outputs and CUDA without a GPU.  Each is tested through the Python API and,
where the command line reaches it, through ``svimg.cli.main`` (exit 2, one line on stderr,
no traceback, the folder unchanged).  ``docs/errors.md`` is generated from the same cases by
``docs/_make_errors_table.py``.

The choice for data far outside [0, 1]: the solvers that assume [0, 1] videos (``svimg.sample``,
the baselines, everything built on ``prepare_problem``) raise ``ValueError`` when y lies below
``-g`` or above ``2 g`` with ``g = max(1, max |A 1|)`` (a units mistake such as 0..255 floats);
the linear algebra (``forward_op``, ``adjoint_op``, ``cg_solve``) works in any units.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import svimg
import svimg.baselines
import svimg.blind
import svimg.io
import svimg.metrics
import svimg.priors
from _threads import one_torch_thread  # noqa: F401 (autouse fixture)
from svimg.cli import main
from svimg.ops import BOUNDARIES, Downsample, GaussianBlur, Mask, RandomMask, TemporalPSF
from svimg.priors import ADMUNet, GaussianPrior
from svimg.sampling import DDSSchedule
from svimg.sampling.windows import sample_windowed

PRIOR1 = GaussianPrior(channels=1)  # closed-form: sampling a 4 x 8 x 8 video costs milliseconds
PRIOR3 = GaussianPrior(channels=3)
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


# ---------------------------------------------------------------- shared helpers (also used by test_interrupt)

TINY_ADM = dict(image_size=16, model_channels=8, num_res_blocks=1, attention_resolutions=(), channel_mult=(1,),
                num_head_channels=8, norm_groups=4)


def tiny_prior_checkpoint(path: Path, channels: int = 1, seed: int = 0) -> Path:
    """A few-kilobyte ADM checkpoint in svimg's format (config + state_dict): a fast prior for CLI runs."""
    torch.manual_seed(seed)
    config = {**TINY_ADM, "in_channels": channels, "out_channels": channels}
    torch.save({"config": config, "state_dict": ADMUNet(**config).state_dict()}, path)
    return path


def video(shape=(4, 8, 8), seed=0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(dtype)


def snapshot(folder: Path) -> dict:
    """{relative path: sha256} of every file under ``folder`` (and the empty folders)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in files:
            p = Path(root) / name
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
        for name in dirs:
            out.setdefault(str((Path(root) / name).relative_to(folder)) + "/", "dir")
    return out


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder where no new file can be created: a read-only folder, or (as root) a kernel file system."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    for candidate in ("/sys", "/proc"):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            return Path(candidate)
    pytest.skip("running as root with no unwritable folder at hand")


def write_bad_files(folder: Path) -> None:
    """The broken inputs the catalogue reads: one per reader, bad checkpoints, an existing output."""
    (folder / "garbage.mp4").write_bytes(bytes(range(256)) * 8)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.tif").write_bytes(b"II*\x00" + b"\xff" * 60)
    npy = svimg.io.save(video(), folder / "truncated.npy")
    npy.write_bytes(npy.read_bytes()[:100])
    np.savez(folder / "pickled.npz", a=np.array([object()], dtype=object))
    meta = svimg.io.save(video(), folder / "bad-meta.zarr")
    (meta / "zarr.json").write_text("{not json")
    chunk = svimg.io.save(video(), folder / "bad-chunk.zarr")
    (chunk / "0" / "c" / "1" / "0" / "0").write_bytes(b"not zstd")
    bundled = svimg.priors.loaders._bundled_resource().read_bytes()
    (folder / "truncated.pt").write_bytes(bundled[: len(bundled) // 3])
    (folder / "empty.pt").write_bytes(b"")
    (folder / "text.pt").write_bytes(b"not a checkpoint")
    torch.save({"fc.weight": torch.zeros(2, 2)}, folder / "foreign.pt")
    torch.save(torch.zeros(3), folder / "tensor.pt")
    svimg.io.save(video(), folder / "exists.zarr")


# ---------------------------------------------------------------- the catalogue through the Python API

def _y(shape=(4, 8, 8), **kw):
    return video(shape, **kw)


def _nan():
    y = _y()
    y[1, 2, 3] = np.nan
    return y


def _sample(y, op=None, prior=PRIOR1, **kw):
    return svimg.sample(y, TemporalPSF(3) if op is None else op, prior, **{"nfe": 2, "seed": 0, "progress": False, **kw})


def api_cases(folder: Path) -> list[tuple[str, object, type, list[str]]]:
    """(case, call, exception, substrings its message must hold): parameter, value and what is expected.

    The files the cases read are in ``folder`` (:func:`write_bad_files`).  Shared with docs/_make_errors_table.py.
    """
    f = {name: folder / name for name in ("truncated.pt", "empty.pt", "text.pt", "foreign.pt", "tensor.pt", "none.pt",
                                          "bad-meta.zarr", "bad-chunk.zarr", "garbage.mp4", "empty.mp4", "garbage.tif",
                                          "truncated.npy", "pickled.npz", "none.zarr", "exists.zarr")}
    return [
        ("empty measurement", lambda: _sample(np.zeros((0, 8, 8), np.float32)), ValueError,
         ["y is empty", "(0, 1, 8, 8)", "at least one element"]),
        ("wrong ndim (2-D)", lambda: _sample(np.zeros((8, 8), np.float32)), ValueError,
         ["y must be (T, C, H, W) or (T, H, W)", "got 2 dimension"]),
        ("wrong ndim (5-D)", lambda: _sample(torch.zeros(2, 1, 1, 8, 8)), ValueError, ["y must be", "got 5 dimension"]),
        ("NaN in the measurement", lambda: _sample(_nan()), ValueError, ["y contains 1 non-finite", "NaN or Inf"]),
        ("Inf in the measurement", lambda: svimg.baselines.cg_only(torch.full((3, 8, 8), float("inf")), TemporalPSF(3)),
         ValueError, ["y contains 192 non-finite"]),
        ("integer dtype", lambda: _sample((_y() * 255).astype(np.uint8)), TypeError,
         ["y must hold real floating-point", "got dtype uint8", "/ 255"]),
        ("complex dtype", lambda: _sample(torch.zeros(4, 8, 8, dtype=torch.complex64)), TypeError,
         ["y must hold real floating-point", "complex64"]),
        ("values far outside [0, 1] (0..255 floats)", lambda: _sample(_y() * 255), ValueError,
         ["y holds values from", "far outside the expected [0, 1]", "accepted: [-1, 2]", "divide 8-bit data by 255"]),
        ("values far outside [0, 1] (negative)", lambda: svimg.baselines.admm_tv(np.full((4, 8, 8), -3.0), TemporalPSF(3)),
         ValueError, ["y holds values from -3 to -3", "[0, 1]"]),
        ("spatial size not divisible by the SR factor", lambda: svimg.forward_op(_y((2, 9, 10)), Downsample(2)),
         ValueError, ["x of shape (2, 1, 9, 10)", "divisible by 2", "got 9x10", "crop or pad to 8x10"]),
        ("mask ratio 0", lambda: RandomMask(0.0), ValueError, ["ratio must lie in (0, 1]", "got 0"]),
        ("mask ratio > 1", lambda: RandomMask(1.5), ValueError, ["ratio must lie in (0, 1]", "got 1.5"]),
        ("nfe 0", lambda: _sample(_y(), nfe=0), ValueError, ["nfe must be an integer >= 1, got 0"]),
        ("nfe > 1000", lambda: _sample(_y(), nfe=1001), ValueError,
         ["nfe must be in 1..1000", "training steps", "got 1001"]),
        ("nfe not an integer", lambda: _sample(_y(), nfe=2.5), TypeError, ["nfe must be an integer >= 1, got 2.5"]),
        ("eta < 0", lambda: _sample(_y(), eta=-0.1), ValueError, ["eta must lie in [0, 1], got -0.1"]),
        ("eta > 1", lambda: _sample(_y(), eta=1.5), ValueError, ["eta must lie in [0, 1], got 1.5"]),
        ("eta NaN", lambda: _sample(_y(), eta=float("nan")), TypeError, ["eta must be a finite number, got nan"]),
        ("PSF summing to zero", lambda: TemporalPSF(kernel=[1.0, 0.0, -1.0]), ValueError,
         ["kernel must have a positive sum to be normalised", "got sum 0"]),
        ("all-zero PSF", lambda: TemporalPSF(kernel=[0.0, 0.0]), ValueError, ["kernel must have a positive sum"]),
        ("measurement shape not fitting the operator", lambda: _sample(_y((4, 9, 9)), Mask(np.ones((8, 8)))),
         ValueError, ["y of shape (4, 1, 9, 9) does not fit Mask(8x8", "mask of shape (8, 8)", "frames of size (9, 9)"]),
        ("initial noise not fitting", lambda: _sample(_y(), x_T=np.zeros((1, 1, 4, 4), np.float32)), ValueError,
         ["x_T must have shape (1, 1, 8, 8) or (4, 1, 8, 8), got (1, 1, 4, 4)"]),
        ("prior channels != data channels (3 vs 2)", lambda: _sample(_y((4, 2, 8, 8)), prior=PRIOR3), ValueError,
         ["the prior takes 3 channel(s) but the data has 2"]),
        ("prior channels != data channels (1 vs 3)", lambda: _sample(_y((4, 3, 8, 8))), ValueError,
         ["the prior takes 1 channel(s) but the data has 3"]),
        ("not a prior", lambda: _sample(_y(), prior=object()), TypeError,
         ["prior must provide betas, channels and eps(x_t, t)", "object lacks betas, channels, eps"]),
        ("truncated checkpoint", lambda: svimg.priors.adm(f["truncated.pt"]), ValueError,
         [f"cannot read checkpoint {str(f['truncated.pt'])!r}", "truncated, corrupt or not a torch state_dict"]),
        ("empty checkpoint", lambda: svimg.priors.load(f"adm:{f['empty.pt']}"), ValueError,
         [f"cannot read checkpoint {str(f['empty.pt'])!r}"]),
        ("text file as checkpoint", lambda: svimg.priors.adm(f["text.pt"]), ValueError,
         [f"cannot read checkpoint {str(f['text.pt'])!r}"]),
        ("foreign checkpoint (other network)", lambda: svimg.priors.adm(f["foreign.pt"]), ValueError,
         [f"checkpoint {str(f['foreign.pt'])!r} does not match the network configuration", "first mismatched key"]),
        ("checkpoint holding a bare tensor", lambda: svimg.priors.adm(f["tensor.pt"]), ValueError,
         [f"checkpoint {str(f['tensor.pt'])!r} holds a Tensor, expected a state_dict"]),
        ("missing checkpoint", lambda: svimg.priors.adm(f["none.pt"]), FileNotFoundError,
         [f"checkpoint {str(f['none.pt'])!r} does not exist"]),
        ("unknown prior spec", lambda: svimg.priors.load("stable:x"), ValueError,
         ["unknown prior 'stable:x'", "expected 'bundled', 'adm:PATH' or 'diffusers:PATH'"]),
        ("corrupt zarr metadata", lambda: svimg.io.load(f["bad-meta.zarr"]), ValueError,
         [f"cannot read {str(f['bad-meta.zarr'])!r} as zarr", "JSONDecodeError", "corrupt"]),
        ("corrupt zarr chunk (read lazily)", lambda: svimg.io.load(f["bad-chunk.zarr"]).values, ValueError,
         [f"cannot read {str(f['bad-chunk.zarr'])!r} as zarr", "corrupt"]),
        ("corrupt zarr chunk via the API", lambda: svimg.forward_op(f["bad-chunk.zarr"], TemporalPSF(3)), ValueError,
         [f"cannot read {str(f['bad-chunk.zarr'])!r} as zarr"]),
        ("unreadable video", lambda: svimg.io.load(f["garbage.mp4"]), ValueError,
         [f"cannot read {str(f['garbage.mp4'])!r} as video", "Invalid data"]),
        ("empty video file", lambda: svimg.io.load(f["empty.mp4"]), ValueError,
         [f"cannot read {str(f['empty.mp4'])!r} as video"]),
        ("corrupt TIFF", lambda: svimg.io.load(f["garbage.tif"]), ValueError,
         [f"cannot read {str(f['garbage.tif'])!r} as tiff"]),
        ("truncated .npy", lambda: svimg.io.load(f["truncated.npy"]), ValueError,
         [f"cannot read {str(f['truncated.npy'])!r} as npy"]),
        (".npz with pickled objects", lambda: svimg.io.load(f["pickled.npz"]), ValueError,
         [f"cannot read {str(f['pickled.npz'])!r} as npz", "pickled"]),
        ("missing input file", lambda: svimg.io.load(f["none.zarr"]), FileNotFoundError,
         [f"no such file or folder: {str(f['none.zarr'])!r}"]),
        ("unknown file format", lambda: svimg.io.load(f["text.pt"]), ValueError,
         [f"cannot tell the format of {str(f['text.pt'])!r}", ".zarr, .npy"]),
        ("output path exists", lambda: svimg.io.save(_y(), f["exists.zarr"]), FileExistsError,
         [f"{str(f['exists.zarr'])!r} already exists", "overwrite=True"]),
        ("output folder missing", lambda: svimg.io.save(_y(), folder / "no" / "x.zarr"), FileNotFoundError,
         [f"cannot write {str(folder / 'no' / 'x.zarr')!r}", "does not exist"]),
        ("CUDA requested without one", lambda: _sample(_y(), device="cuda"), ValueError,
         ["device='cuda' was requested but CUDA is not available", "use device='cpu' or 'auto'"]),
        ("CUDA device index without CUDA", lambda: svimg.baselines.cg_only(_y(), TemporalPSF(3), device="cuda:1"),
         ValueError, ["device='cuda:1' was requested but CUDA is not available"]),
        ("unknown device", lambda: _sample(_y(), device="tpu"), ValueError,
         ["device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"]),
    ]


CASE_IDS = [case[0] for case in api_cases(Path("unused"))]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-inputs")
    write_bad_files(folder)
    return folder, {case[0]: case[1:] for case in api_cases(folder)}


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_input_raises_one_clear_error(case, cases):
    folder, table = cases
    if "CUDA" in case and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    call, error, parts = table[case]
    before = snapshot(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning in front of the error would be a second message
        with pytest.raises(error) as info:
            call()
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert "\n" not in message
    assert snapshot(folder) == before  # nothing written, nothing changed


def test_unwritable_output_is_refused_before_anything_is_written(tmp_path):
    folder = unwritable_folder(tmp_path)
    before = sorted(os.listdir(folder))
    for name in ("x.zarr", "x.npy", "x.tif", "x.mp4"):
        with pytest.raises(PermissionError, match=rf"cannot write '{folder / name}': folder '{folder}' is not writable"):
            svimg.io.save(_y(), folder / name)
    assert sorted(os.listdir(folder)) == before


# ---------------------------------------------------------------- inputs that must work

@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("T", [1, 2, 3])
def test_videos_shorter_than_the_psf_work(boundary, T):
    """T = 1 and T < support: every boundary gives a T x T operator; solving and sampling run."""
    psf = TemporalPSF(7, boundary=boundary)  # support 7 > T
    M = psf.matrix(T)
    assert M.shape == (T, T) and np.isfinite(M).all()
    x = _y((T, 8, 8), seed=T, dtype=np.float64)
    y = svimg.forward_op(x, psf)
    np.testing.assert_allclose(y, np.einsum("ts,shw->thw", M, x), rtol=1e-12)
    x_cg = svimg.cg_solve(psf, y, n_iter=3 * T, tol=0)  # CG is exact in at most T steps here
    if np.linalg.matrix_rank(M) == T:  # invertible: CG recovers x
        np.testing.assert_allclose(x_cg, x, atol=1e-8)
    np.testing.assert_allclose(svimg.forward_op(x_cg, psf), y, atol=1e-8)  # always: a least-squares solution
    out = _sample(np.clip(y, 0, 1), psf)
    assert out.shape == (T, 8, 8) and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_single_frame_through_every_solver():
    y = _y((1, 3, 8, 8))
    op = GaussianBlur(3, 1.0) @ TemporalPSF(5, boundary="reflect")
    for out in (svimg.sample(y, op, PRIOR3, nfe=2, seed=0, progress=False),
                svimg.baselines.cg_only(y, op, n_iter=3), svimg.baselines.admm_tv(y, op, n_iter=2, cg_iters=2),
                sample_windowed(y, op, PRIOR3, window=8, seed=0, nfe=2, progress=False)):
        assert out.shape == (1, 3, 8, 8) and np.isfinite(out).all()


def test_measurement_of_an_sr_operator_has_any_size():
    """Downsample's input is f times y's size: an odd-sized measurement is fine, the restoration is 2x it."""
    y = _y((3, 5, 7))
    out = _sample(y, Downsample(2))
    assert out.shape == (3, 10, 14)


def test_range_policy():
    """Far outside [0, 1] raises in the samplers; noise, gain operators and the linear algebra pass."""
    x = _y((4, 8, 8))
    noisy = svimg.forward_op(x, TemporalPSF(3)) + 0.3 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    assert noisy.min() < 0 and noisy.max() > 1
    assert np.isfinite(_sample(noisy, gamma=1.0)).all()  # mild over/undershoot from noise: accepted
    gain = 3.0 * TemporalPSF(3)
    y3 = svimg.forward_op(x, gain)  # values up to 3: what this operator makes of a [0, 1] video
    assert y3.max() > 2 and np.isfinite(_sample(y3, gain)).all()
    with pytest.raises(ValueError, match=r"accepted: \[-3, 6\]"):
        _sample(y3 * 255, gain)
    # the functional API is plain linear algebra: any units
    big = x * 255
    np.testing.assert_allclose(svimg.forward_op(big, TemporalPSF(3)), 255 * svimg.forward_op(x, TemporalPSF(3)), rtol=1e-5)
    np.testing.assert_allclose(svimg.cg_solve(TemporalPSF(3), big, n_iter=30, tol=0),
                               255 * svimg.cg_solve(TemporalPSF(3), x, n_iter=30, tol=0), rtol=1e-3, atol=1e-3)


class _CountingPrior(GaussianPrior):
    def __init__(self):
        super().__init__(channels=1)
        self.calls = []

    def eps(self, x_t, t):
        self.calls.append(int(t[0]))
        return super().eps(x_t, t)


@pytest.mark.parametrize("nfe, expected", [(3, [666, 333, 0]), (7, [852, 710, 568, 426, 284, 142, 0]),
                                           (1000, None), (1, [0])])
def test_nfe_not_dividing_1000_warns_and_says_what_is_used(nfe, expected):
    skip = 1000 // nfe
    if 1000 % nfe:
        shown = ", ".join(map(str, expected)) if len(expected) <= 8 else None
        with pytest.warns(UserWarning, match=rf"not a multiple of nfe={nfe}: skip = 1000 // {nfe} = {skip}") as rec:
            schedule = DDSSchedule(nfe)
        if shown:
            assert f"uses the {nfe} timesteps {shown}" in str(rec[0].message)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            schedule = DDSSchedule(nfe)
    assert len(schedule.timesteps) == nfe and schedule.timesteps[-1] == 0
    assert schedule.timesteps == tuple(range((nfe - 1) * skip, -1, -skip))
    if expected is not None:
        assert list(schedule.timesteps) == expected
        prior = _CountingPrior()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _sample(_y(), prior=prior, nfe=nfe)
        assert prior.calls == expected  # exactly nfe evaluations, at the announced timesteps


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_eta_ends_of_the_interval_are_accepted(eta):
    assert np.isfinite(_sample(_y(), eta=eta)).all()


def test_zero_sum_kernel_is_an_operator_when_not_normalised():
    """A PSF must sum to a positive value to be normalised; a difference filter (sum 0) is still a valid operator."""
    diff = TemporalPSF(kernel=[1.0, -1.0], normalize=False, boundary="zero")
    y = svimg.forward_op(_y(), diff)
    x = svimg.cg_solve(diff, y, n_iter=10)
    assert np.isfinite(x).all()
    zero = TemporalPSF(kernel=[0.0, 0.0], normalize=False)
    np.testing.assert_array_equal(svimg.cg_solve(zero, _y(), n_iter=5), 0)  # CG stops at once: nothing to solve


def test_mask_keeping_no_pixel_gives_an_unconditional_sample():
    """round(ratio * H * W) = 0 kept pixels is a valid (zero) operator: the data step does nothing."""
    op = RandomMask(0.005)
    assert float(op.mask_for(8, 8).sum()) == 0
    y = svimg.forward_op(_y(), op)
    np.testing.assert_array_equal(y, 0)
    np.testing.assert_array_equal(_sample(y, op, cg_iters=3), _sample(y, op, cg_iters=0))


def test_single_channel_data_runs_through_an_rgb_prior():
    out = _sample(_y(), prior=PRIOR3)
    assert out.shape == (4, 8, 8)


# ---------------------------------------------------------------- nothing lost: caller data never modified

def _torch_state(t):
    return t.clone(), t._version


def test_inputs_are_never_modified():
    op = RandomMask(0.5, seed=1) @ TemporalPSF(3, boundary="reflect")
    y_np = np.array(svimg.forward_op(_y(seed=3), op))
    y_t = torch.from_numpy(_y(seed=4))
    y_da = xr.DataArray(_y(seed=5), dims=("t", "y", "x"), coords={"t": np.arange(4.0)}, attrs={"units": "a.u."})
    x_T = np.random.default_rng(6).standard_normal((1, 1, 8, 8)).astype(np.float32)
    kernel = np.array([0.4, 0.6])
    mask = np.ones((8, 8))
    keep_np, keep_da, keep_xT, keep_k, keep_m = y_np.copy(), y_da.copy(deep=True), x_T.copy(), kernel.copy(), mask.copy()
    keep_t, version = _torch_state(y_t)
    calls = [
        lambda y: _sample(y, op),
        lambda y: _sample(y, op, x_T=x_T),
        lambda y: svimg.baselines.cg_only(y, op, n_iter=3),
        lambda y: svimg.baselines.admm_tv(y, op, n_iter=2, cg_iters=2),
        lambda y: sample_windowed(y, TemporalPSF(kernel=kernel), PRIOR1, window=3, seed=0, nfe=2, progress=False),
        lambda y: svimg.forward_op(y, Mask(mask)),
        lambda y: svimg.metrics.evaluate(y, y),
        lambda y: svimg.blind.estimate_psf(y),
    ]
    for call in calls:
        for y in (y_np, y_t, y_da):
            out = call(y)
            if isinstance(out, (np.ndarray, torch.Tensor, xr.DataArray)):
                assert out is not y
    np.testing.assert_array_equal(y_np, keep_np)
    xr.testing.assert_identical(y_da, keep_da)
    assert torch.equal(y_t, keep_t) and y_t._version == version
    np.testing.assert_array_equal(x_T, keep_xT)
    np.testing.assert_array_equal(kernel, keep_k)
    np.testing.assert_array_equal(mask, keep_m)


def test_save_does_not_modify_the_data_and_files_read_are_not_touched(tmp_path):
    da = xr.DataArray(_y(), dims=("t", "y", "x"), attrs={"note": "kept"})
    keep = da.copy(deep=True)
    stores = [svimg.io.save(da, tmp_path / f"x.{ext}") for ext in ("zarr", "tif", "npy", "npz")]
    xr.testing.assert_identical(da, keep)
    before = snapshot(tmp_path)
    for path in stores:
        loaded = svimg.io.load(path)
        y = svimg.forward_op(path, TemporalPSF(3))  # stores go straight into the API
        svimg.cg_solve(TemporalPSF(3), loaded, n_iter=2)
        assert y.shape == (4, 8, 8)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- the command line: exit 2, one line, nothing left

def run_cli(argv: list, capsys) -> tuple[int, str]:
    try:
        rc = main(["-q", *map(str, argv)])
    except SystemExit as exit_:
        rc = exit_.code
    _, err = capsys.readouterr()
    return rc, err


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    svimg.io.save(_y((4, 16, 16)), folder / "x.zarr")
    svimg.io.save(_y((4, 15, 15)), folder / "odd.zarr")
    svimg.io.save(_y((4, 3, 16, 16)), folder / "rgb.zarr")
    np.save(folder / "units.npy", _y((4, 16, 16)) * 255)
    tiny_prior_checkpoint(folder / "tiny.pt")
    write_bad_files(folder)
    return folder


CLI_CASES = {
    "unreadable video input": (["degrade", "{d}/garbage.mp4", "{o}/y.zarr", "--op", "temporal:uniform:3"],
                               "cannot read '{d}/garbage.mp4' as video"),
    "corrupt zarr input": (["restore", "{d}/bad-meta.zarr", "{o}/y.zarr", "--op", "temporal:uniform:3"],
                           "cannot read '{d}/bad-meta.zarr' as zarr"),
    "corrupt zarr chunk": (["degrade", "{d}/bad-chunk.zarr", "{o}/y.zarr", "--op", "temporal:uniform:3"],
                           "cannot read '{d}/bad-chunk.zarr' as zarr"),
    "size not divisible by SR factor": (["degrade", "{d}/odd.zarr", "{o}/y.zarr", "--op", "spatial:sr:2"],
                                        "divisible by 2, got 15x15"),
    "mask ratio 0": (["degrade", "{d}/x.zarr", "{o}/y.zarr", "--op", "spatial:mask:0"], "ratio must lie in (0, 1], got 0"),
    "PSF of width 0": (["degrade", "{d}/x.zarr", "{o}/y.zarr", "--op", "temporal:uniform:0"],
                       "width must be an integer >= 1, got 0"),
    "output exists": (["degrade", "{d}/x.zarr", "{d}/odd.zarr", "--op", "temporal:uniform:3"],
                      "'{d}/odd.zarr' already exists"),
    "output folder missing": (["degrade", "{d}/x.zarr", "{o}/no/y.zarr", "--op", "temporal:uniform:3"],
                              "folder '{o}/no' does not exist"),
    "output not writable": (["degrade", "{d}/x.zarr", "{u}/y.zarr", "--op", "temporal:uniform:3"],
                            "folder '{u}' is not writable"),
    "nfe > 1000": (["restore", "{d}/x.zarr", "{o}/x.zarr", "--op", "temporal:uniform:3", "--nfe", "1001",
                    "--prior", "adm:{d}/tiny.pt"], "nfe must be in 1..1000"),
    "nfe 0": (["restore", "{d}/x.zarr", "{o}/x.zarr", "--op", "temporal:uniform:3", "--nfe", "0"],
              "expected a positive integer, got 0"),
    "eta > 1": (["restore", "{d}/x.zarr", "{o}/x.zarr", "--op", "temporal:uniform:3", "--eta", "1.5",
                 "--prior", "adm:{d}/tiny.pt"], "eta must lie in [0, 1], got 1.5"),
    "values far outside [0, 1]": (["restore", "{d}/units.npy", "{o}/x.zarr", "--op", "temporal:uniform:3",
                                   "--prior", "adm:{d}/tiny.pt"], "far outside the expected [0, 1]"),
    "prior channels": (["restore", "{d}/rgb.zarr", "{o}/x.zarr", "--op", "temporal:uniform:3",
                        "--prior", "adm:{d}/tiny.pt"], "the prior takes 1 channel(s) but the data has 3"),
    "truncated checkpoint": (["restore", "{d}/x.zarr", "{o}/x.zarr", "--op", "temporal:uniform:3",
                              "--prior", "adm:{d}/truncated.pt"], "cannot read checkpoint '{d}/truncated.pt'"),
    "foreign checkpoint": (["restore", "{d}/x.zarr", "{o}/x.zarr", "--op", "temporal:uniform:3",
                            "--prior", "adm:{d}/foreign.pt"], "does not match the network configuration"),
    "CUDA without one": (["restore", "{d}/x.zarr", "{o}/x.zarr", "--op", "temporal:uniform:3", "--method", "cg",
                          "--device", "cuda"], "CUDA is not available"),
    "no operator recorded": (["restore", "{d}/x.zarr", "{o}/x.zarr"], "records no degradation operator"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input_exits_2_with_one_line_and_leaves_nothing(case, cli_inputs, tmp_path, capsys):
    if "CUDA" in case and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv, expected = CLI_CASES[case]
    unwritable = unwritable_folder(tmp_path) if "{u}" in " ".join(argv) else ""
    fill = {"d": cli_inputs, "o": tmp_path, "u": unwritable}
    before_in, before_out = snapshot(cli_inputs), snapshot(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc, err = run_cli([a.format(**fill) for a in argv], capsys)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("svimg") and "error:" in lines[0] and "Traceback" not in err, err
    assert expected.format(**fill) in lines[0]
    assert snapshot(cli_inputs) == before_in  # inputs untouched (by hash)
    assert snapshot(tmp_path) == before_out  # no output, no temporary
    if unwritable:
        assert not (unwritable / "y.zarr").exists()


def test_cli_success_leaves_inputs_untouched(cli_inputs, tmp_path, capsys):
    before = snapshot(cli_inputs)
    assert run_cli(["degrade", cli_inputs / "x.zarr", tmp_path / "y.tif", "--op", "temporal:uniform:3"], capsys)[0] == 0
    assert run_cli(["restore", tmp_path / "y.tif", tmp_path / "r.npy", "--method", "cg", "--nfe", "2"], capsys)[0] == 0
    y_hash = snapshot(tmp_path)
    assert run_cli(["evaluate", tmp_path / "r.npy", cli_inputs / "x.zarr"], capsys)[0] == 0
    assert snapshot(cli_inputs) == before and snapshot(tmp_path) == y_hash
    assert sorted(os.listdir(tmp_path)) == ["r.npy", "y.tif"]
