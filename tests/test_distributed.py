"""Many clips on a Dask cluster (svimg.distributed): same results as sequential, skips, retries, failures."""

import numpy as np
import pytest
import xarray as xr

import svimg
import svimg.io
from svimg import distributed
from svimg.ops import TemporalPSF
from svimg.priors import GaussianPrior

pytest.importorskip("distributed")

KW = dict(nfe=3, seed=0)


def _clips(folder, n=4, T=8, size=8):
    """``n`` tiny degraded clips saved as zarr stores, each recording its name in attrs["clip"]."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    ys = {}
    for i in range(n):
        x = rng.random((T, 3, size, size)).astype(np.float32)
        y = xr.DataArray(svimg.forward_op(x, TemporalPSF(3)), dims=("t", "c", "y", "x"), attrs={"clip": f"c{i}"})
        ys[f"c{i}"] = svimg.io.load(svimg.io.save(y, folder / f"c{i}.zarr"))
    return ys


class CountingLoader:
    """Stands in for svimg.priors.load: counts loads per spec."""

    def __init__(self):
        self.calls = []

    def __call__(self, spec):
        self.calls.append(spec)
        return GaussianPrior()


class FlakyOp:
    """op(y) for restore_clip: fails the first time it sees clip ``name`` (a marker file records it),
    then TemporalPSF(3)."""

    def __init__(self, name, marker):
        self.name, self.marker = name, marker

    def __call__(self, y):
        if y.attrs["clip"] == self.name and not self.marker.exists():
            self.marker.touch()
            raise RuntimeError(f"flaky failure on {self.name}")
        return TemporalPSF(3)


@pytest.fixture
def loader(monkeypatch):
    counting = CountingLoader()
    monkeypatch.setattr(svimg.priors, "load", counting)
    monkeypatch.setattr(distributed, "_PRIORS", {})
    return counting


def _saved(tmp_path, folder, name):
    return svimg.io.load(tmp_path / folder / f"{name}.zarr").values


def test_cluster_equals_sequential_and_loads_the_prior_once(tmp_path, loader):
    ys = {}
    folder = tmp_path / "in"
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(4):
        ys[f"c{i}"] = svimg.forward_op(rng.random((8, 3, 8, 8)).astype(np.float32), TemporalPSF(3))
        svimg.io.save(ys[f"c{i}"], folder / f"c{i}.npy")
    seq = distributed.restore_many(folder, tmp_path / "seq", TemporalPSF(3), "spec", scheduler="sync", progress=False,
                                   **KW)
    par = distributed.restore_many(folder, tmp_path / "par", TemporalPSF(3), "spec", n_workers=2,
                                   threads_per_worker=1, processes=False, progress=False, **KW)
    assert [r["status"] for r in seq] == [r["status"] for r in par] == ["done"] * 4
    assert [r["input"] for r in par] == [str(folder / f"c{i}.npy") for i in range(4)]
    assert loader.calls == ["spec"]  # one process: loaded once, shared by both runs and both workers
    for name, y in ys.items():
        direct = svimg.sample(y, TemporalPSF(3), GaussianPrior(), progress=False, **KW)
        np.testing.assert_array_equal(_saved(tmp_path, "seq", name), direct)
        np.testing.assert_array_equal(_saved(tmp_path, "par", name), direct)


def test_failures_are_retried_and_reported_per_clip(tmp_path, loader):
    _clips(tmp_path / "in", n=3)
    (tmp_path / "in" / "broken.npy").write_text("not an array")
    flaky = FlakyOp("c1", tmp_path / "c1.failed-once")
    report = distributed.restore_many(tmp_path / "in", tmp_path / "out", flaky, "spec", n_workers=2, retries=1,
                                      progress=False, **KW)
    status = {r["input"].rsplit("/", 1)[-1]: r for r in report}
    assert status["broken.npy"]["status"] == "failed" and status["broken.npy"]["error"].startswith("ValueError")
    assert [status[f"c{i}.zarr"]["status"] for i in range(3)] == ["done"] * 3  # c1 failed once, then succeeded
    assert (tmp_path / "c1.failed-once").exists()
    assert not (tmp_path / "out" / "broken.zarr").exists()

    again = FlakyOp("c2", tmp_path / "c2.failed-once")  # finished clips are not recomputed: c2 never runs again
    second = distributed.restore_many(tmp_path / "in", tmp_path / "out", again, "spec", scheduler="sync", retries=0,
                                      progress=False, **KW)
    assert [r["status"] for r in second] == ["failed", "skipped", "skipped", "skipped"]
    assert not (tmp_path / "c2.failed-once").exists()


def test_no_retries_reports_the_error(tmp_path, loader):
    _clips(tmp_path / "in", n=2)
    flaky = FlakyOp("c0", tmp_path / "c0.failed-once")
    report = distributed.restore_many(tmp_path / "in", tmp_path / "out", flaky, "spec", scheduler="sync", retries=0,
                                      progress=False, **KW)
    assert report[0]["status"] == "failed" and "RuntimeError: flaky failure on c0" == report[0]["error"]
    assert report[1]["status"] == "done"


def test_unfinished_windowed_store_is_resumed(tmp_path, loader):
    """With ``window`` each clip goes through sample_windowed into its store; an unfinished store is resumed."""
    from svimg.sampling.windows import sample_windowed, store_is_complete

    ys = _clips(tmp_path / "in", n=1, T=20)
    out = tmp_path / "out"
    out.mkdir()
    windowed = dict(window=12, overlap=6, **KW)

    def stop(k, a, b):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample_windowed(ys["c0"], TemporalPSF(3), GaussianPrior(), out=out / "c0.zarr", window_callback=stop,
                        progress=False, **windowed)
    assert not store_is_complete(out / "c0.zarr")
    report = distributed.restore_many(tmp_path / "in", out, TemporalPSF(3), "spec", scheduler="sync", progress=False,
                                      **windowed)
    assert report[0]["status"] == "done" and store_is_complete(out / "c0.zarr")
    expected = sample_windowed(ys["c0"], TemporalPSF(3), GaussianPrior(), out=tmp_path / "fresh.zarr",
                               progress=False, **windowed)  # uninterrupted, through a store as well
    np.testing.assert_array_equal(_saved(tmp_path, "out", "c0"), np.asarray(expected))


def test_command_line_folder_and_window(tmp_path, loader, capsys):
    """`svimg restore DIR OUT` hands the folder to restore_many; `--window` runs one input windowed."""
    from svimg.cli import main

    ys = _clips(tmp_path / "in", n=2, T=8)
    for name, y in ys.items():  # what `svimg degrade` records
        svimg.io.save(y.assign_attrs(svimg_op_spec="temporal:uniform:3"), tmp_path / "in" / f"{name}.zarr",
                      overwrite=True)
    argv = ["restore", str(tmp_path / "in"), str(tmp_path / "out"), "--nfe", "3", "--seed", "0", "--scheduler", "sync",
            "--prior", "spec"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["done", "done"]
    for name, y in ys.items():
        direct = svimg.sample(y.values, TemporalPSF(3), GaussianPrior(), progress=False, **KW)
        np.testing.assert_array_equal(_saved(tmp_path, "out", name), direct)
    assert main(argv) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["skipped", "skipped"]

    assert main(["-q", "restore", str(tmp_path / "in" / "c0.zarr"), str(tmp_path / "w.zarr"), "--window", "6",
                 "--nfe", "2", "--prior", "spec"]) == 0
    assert svimg.io.load(tmp_path / "w.zarr").shape == ys["c0"].shape
    assert main(["restore", str(tmp_path / "in"), str(tmp_path / "o2"), "--method", "cg"]) == 2
    assert "--method dds" in capsys.readouterr().err


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        distributed.restore_many([tmp_path / "missing.npy"], tmp_path / "out", TemporalPSF(3))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no video"):
        distributed.restore_many(tmp_path / "empty", tmp_path / "out", TemporalPSF(3))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a" / "v.npy", np.zeros((4, 4, 4), np.float32))
    np.save(tmp_path / "b" / "v.npy", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="same output"):
        distributed.restore_many([tmp_path / "a" / "v.npy", tmp_path / "b" / "v.npy"], tmp_path / "out", TemporalPSF(3))
    with pytest.raises(TypeError, match="scheduler"):
        distributed.restore_many([tmp_path / "a" / "v.npy"], tmp_path / "out", TemporalPSF(3), scheduler=3,
                                 progress=False)
    with pytest.raises(ValueError, match="retries"):
        distributed.restore_many([tmp_path / "a" / "v.npy"], tmp_path / "out", TemporalPSF(3), retries=-1)
