"""The prior's network engines: ONNX Runtime equals torch up to float rounding, caches its graph, falls back."""

import json

import pytest
import torch

from svimg import _timing, priors
from svimg.priors import engine
from test_priors import TINY, _tiny_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture
def prior(tmp_path, monkeypatch):
    monkeypatch.setenv("SVIMG_CACHE_DIR", str(tmp_path / "cache"))
    _, path = _tiny_checkpoint(tmp_path)
    return priors.adm(path, **TINY)


def _inputs(batch, h=16, w=24):
    g = torch.Generator().manual_seed(batch)
    return torch.rand(batch, 3, h, w, generator=g) * 2 - 1, torch.tensor([10, 700, 300][:batch])


def test_onnxruntime_equals_torch_and_caches_its_graph(prior, monkeypatch):
    monkeypatch.setenv("SVIMG_PRIOR_ENGINE", "onnxruntime")
    x1, t1 = _inputs(1)
    with torch.no_grad():
        out = prior.engine(x1, t1)
        torch.testing.assert_close(out, prior.net(x1, t1), rtol=1e-4, atol=1e-5)
        x3, t3 = _inputs(3)  # the batch axis is dynamic: the same graph
        torch.testing.assert_close(prior.engine(x3, t3), prior.net(x3, t3), rtol=1e-4, atol=1e-5)
    graphs = list((engine.cache_dir() / "onnx" / prior.sha256).glob("*.onnx"))
    assert [g.name for g in graphs] == ["16x24.onnx"]


def test_the_fastest_engine_is_chosen_by_measurement_with_its_reason(prior, monkeypatch):
    monkeypatch.delenv("SVIMG_PRIOR_ENGINE", raising=False)
    x, t = _inputs(2, 24, 16)
    with torch.no_grad():
        torch.testing.assert_close(prior.eps(x, t), prior.net(x, t)[:, :3], rtol=1e-4, atol=1e-5)
    reasons = [why for (task, *_), (_, why) in _timing.choices().items() if task == "prior"]
    assert reasons and "was fastest" in reasons[-1] and "onnxruntime" in reasons[-1] and "torch" in reasons[-1]


@pytest.mark.parametrize("threads", [1, 2])
def test_the_engine_is_timed_once_per_frame_size_on_one_frame_per_thread(prior, monkeypatch, threads):
    monkeypatch.delenv("SVIMG_PRIOR_ENGINE", raising=False)
    monkeypatch.setattr(_timing, "_CHOICES", {})
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            for batch in (3, 2):  # two batches of 20 x 16 frames: one choice, measured on one frame per thread
                x, t = _inputs(batch, 20, 16)
                torch.testing.assert_close(prior.eps(x, t), prior.net(x, t)[:, :3], rtol=1e-4, atol=1e-5)
    finally:
        torch.set_num_threads(previous)
    ((key, (_, reason)),) = [(k, c) for k, c in _timing.choices().items() if k[0] == "prior"]
    assert key[3] == threads  # the key's leading axis: the frames timed
    assert ("onnxruntime-frames" in reason) == (threads > 1)  # side by side needs two frames


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_frames_side_by_side_equal_the_network(prior, monkeypatch, batch):
    monkeypatch.setenv("SVIMG_PRIOR_ENGINE", "onnxruntime-frames")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, t = _inputs(batch, 16, 24)  # three frames in two parts of 2 and 1
        with torch.no_grad():
            torch.testing.assert_close(prior.engine(x, t), prior.net(x, t), rtol=1e-4, atol=1e-5)
    finally:
        torch.set_num_threads(previous)


def test_the_choice_is_kept_for_later_processes_on_this_machine(prior, monkeypatch):
    monkeypatch.delenv("SVIMG_PRIOR_ENGINE", raising=False)
    monkeypatch.setattr(_timing, "_CHOICES", {})
    x, t = _inputs(1, 12, 20)
    with torch.no_grad():
        prior.engine(x, t)
    ((name, reason),) = json.loads(prior.engine.choices_path().read_text()).values()
    assert name in engine.ENGINES and "was fastest" in reason
    # a later process: nothing chosen in memory, the kept choice runs without being timed again
    monkeypatch.setattr(_timing, "_CHOICES", {})
    monkeypatch.setattr(_timing, "_median_seconds", lambda *args: pytest.fail("timed again"))
    with torch.no_grad():
        torch.testing.assert_close(prior.engine(x, t), prior.net(x, t), rtol=1e-4, atol=1e-5)
    ((chosen, why),) = [choice for (task, *_), choice in _timing.choices().items() if task == "prior"]
    assert chosen == name and why.startswith(reason) and "kept in" in why


def test_an_unreadable_choices_file_means_timing_again(prior, monkeypatch):
    monkeypatch.delenv("SVIMG_PRIOR_ENGINE", raising=False)
    monkeypatch.setattr(_timing, "_CHOICES", {})
    path = prior.engine.choices_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    x, t = _inputs(1, 12, 20)
    with torch.no_grad():
        prior.engine(x, t)
    ((_, reason),) = json.loads(path.read_text()).values()  # measured now, and the file is whole again
    assert "was fastest" in reason and "kept in" not in reason


def test_autograd_and_forced_torch_run_the_network_itself(prior, monkeypatch):
    monkeypatch.setenv("SVIMG_PRIOR_ENGINE", "onnxruntime")
    x, t = _inputs(1)
    x.requires_grad_(True)
    prior.eps(x, t).sum().backward()  # ONNX Runtime has no autograd: torch ran
    assert x.grad is not None and not (engine.cache_dir() / "onnx").exists()
    monkeypatch.setenv("SVIMG_PRIOR_ENGINE", "torch")
    with torch.no_grad():
        prior.eps(x, t)
    assert not (engine.cache_dir() / "onnx").exists()


def test_a_failing_engine_falls_back_to_torch_with_one_warning(prior, monkeypatch):
    from svimg import _fallback

    monkeypatch.delenv("SVIMG_PRIOR_ENGINE", raising=False)
    _fallback.reset()

    def broken(*args):
        raise RuntimeError("no session")

    monkeypatch.setattr(prior.engine, "_run_onnx", broken)
    x, t = _inputs(1, 8, 8)
    # one warning, from the shared timing fallback (svimg._timing.fastest) that drops a raising candidate
    with torch.no_grad(), pytest.warns(RuntimeWarning, match=r"prior backend 'onnxruntime' failed and is dropped.*no session"):
        out = prior.engine(x, t)
    torch.testing.assert_close(out, prior.net(x, t))
    drops = {name: reason for (kind, key, name), reason in _fallback.dropped().items()}
    assert drops == {"onnxruntime": "RuntimeError: no session"}


def test_bad_engine_names_the_variable(prior, monkeypatch):
    monkeypatch.setenv("SVIMG_PRIOR_ENGINE", "openvino")
    with pytest.raises(ValueError, match=r"SVIMG_PRIOR_ENGINE must be one of \('torch', 'onnxruntime', 'onnxruntime-frames'\)"):
        prior.eps(*_inputs(1))


def test_inside_a_dispatch_mode_the_torch_network_runs(prior, monkeypatch):
    """A mode that watches torch's operations (the forecast's memory count) must see the network itself."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.ops += 1
            return func(*args, **(kwargs or {}))

    monkeypatch.setenv("SVIMG_PRIOR_ENGINE", "onnxruntime")
    x, t = _inputs(1)
    with torch.no_grad(), Count():
        prior.engine(x, t)
    assert Count.ops > 10 and not (engine.cache_dir() / "onnx").exists()
