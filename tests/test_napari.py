"""The napari plugin: manifest, reader, writer, sample data and the Degrade / Restore / Compare widgets.

Headless: run under Xvfb (``xvfb-run -a pytest tests/test_napari.py``); napari
needs OpenGL, which Qt's offscreen platform lacks.  Skipped without napari or
without a display.  The plugin is registered from its manifest file through
npe2's test plugin manager, so the tests see exactly this plugin.
"""

import importlib.metadata
import importlib.resources
import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest

napari = pytest.importorskip("napari")
npe2 = pytest.importorskip("npe2")
pytest.importorskip("pytestqt")

import svimg  # noqa: E402
import svimg.io  # noqa: E402
from svimg.napari._layers import layer_to_video, video_to_layer  # noqa: E402
from svimg.napari._operator import OP_SPEC_ATTR, build_operator, settings_from_specs, settings_to_specs  # noqa: E402
from svimg.napari._widgets import sample_defaults  # noqa: E402

pytestmark = pytest.mark.napari

needs_display = pytest.mark.skipif(
    sys.platform.startswith("linux") and not os.environ.get("DISPLAY"),
    reason="napari needs an X display with OpenGL: run under xvfb-run",
)

T, H, W = 4, 16, 16


@pytest.fixture
def manifest_file():
    with importlib.resources.as_file(importlib.resources.files("svimg.napari") / "napari.yaml") as path:
        yield str(path)


@pytest.fixture
def plugin(npe2pm, manifest_file):
    """npe2's isolated plugin manager with only svimg registered, from its manifest file."""
    with npe2pm.tmp_plugin(manifest=manifest_file):
        yield npe2pm


def _video(rgb: bool):
    """A smooth (t, c, y, x) DataArray in [0, 1]: a drifting colour gradient (video codecs keep it well)."""
    import xarray as xr

    t, c, y, x = np.meshgrid(np.arange(T), np.arange(3 if rgb else 1), np.arange(H), np.arange(W), indexing="ij")
    values = 0.5 + 0.4 * np.sin(2 * np.pi * (x + 2 * y + 3 * t) / (4 * W) + c)
    return xr.DataArray(values.astype(np.float32), dims=("t", "c", "y", "x"))


# -- manifest -----------------------------------------------------------------------------------------


def test_manifest_validates_and_imports(manifest_file):
    from npe2 import PluginManifest

    mf = PluginManifest.from_file(manifest_file)  # schema validation
    mf.validate_imports()  # every python_name resolves to a callable
    assert mf.name == "svimg"
    contrib = mf.contributions
    assert {w.display_name for w in contrib.widgets} == {"Degrade", "Restore", "Compare"}
    assert {s.key for s in contrib.sample_data} == {"degraded_clip", "cells"}
    assert contrib.writers[0].filename_extensions == [".zarr"]
    ep = [e for e in importlib.metadata.entry_points(group="napari.manifest") if e.name == "svimg"]
    assert [e.value for e in ep] == ["svimg.napari:napari.yaml"]


def test_manifest_found_through_distribution():
    """What napari does at start-up; meson-python's editable loader hides package folders from npe2."""
    import importlib.util

    from npe2 import PluginManifest

    locations = importlib.util.find_spec("svimg.napari").submodule_search_locations or []
    if not any(os.path.isdir(p) for p in locations):
        pytest.skip("editable (meson-python) install: npe2 cannot locate package data; covered by a regular install")
    assert PluginManifest.from_distribution("svimg").name == "svimg"


# -- the layer <-> video helper ---------------------------------------------------------------------


@pytest.mark.parametrize("rgb", [False, True])
def test_layer_video_round_trip(rgb):
    video = _video(rgb)
    data, kwargs, kind = video_to_layer(video.assign_attrs(svimg_operation="test"), name="v")
    assert kind == "image" and kwargs["rgb"] is rgb and kwargs["axis_labels"] == ("t", "y", "x")
    assert data.shape == ((T, H, W, 3) if rgb else (T, H, W))
    assert kwargs["metadata"]["svimg_operation"] == "test"
    back = layer_to_video(data, rgb=rgb, metadata=kwargs["metadata"], name="v")
    np.testing.assert_array_equal(back.values, video.values)
    assert back.attrs["svimg_operation"] == "test"


def test_layer_to_video_scales_integers_and_rejects_bad_shapes():
    data = np.full((T, H, W, 3), 255, np.uint8)
    assert float(layer_to_video(data, rgb=True).max()) == 1.0
    with pytest.raises(ValueError, match=r"\(t, y, x, 3\)"):
        layer_to_video(np.zeros((T, H, W, 4), np.float32), rgb=True)
    with pytest.raises(ValueError, match=r"\(t, y, x\) stack"):
        layer_to_video(np.zeros((H, W), np.float32), rgb=False, name="flat")


def test_build_operator_composes_temporal_first():
    op = build_operator({"temporal": "gaussian", "sigma": 1.0, "boundary": "circular", "spatial": "downsample",
                         "factor": 2})
    assert op.output_shape((T, 1, H, W)) == (T, 1, H // 2, W // 2)
    x = np.random.default_rng(1).random((T, 1, H, W)).astype(np.float32)
    expected = svimg.forward_op(svimg.forward_op(x, svimg.ops.TemporalPSF.gaussian(1.0, boundary="circular")),
                                svimg.ops.Downsample(2))
    np.testing.assert_allclose(svimg.forward_op(x, op), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="no operator given"):
        build_operator({"temporal": "none", "spatial": "none"})
    with pytest.raises(ValueError, match="unknown key"):
        build_operator({"widht": 3})


def test_settings_and_cli_specs_round_trip():
    settings = {"temporal": "uniform", "width": 13, "boundary": "zero", "spatial": "mask", "ratio": 0.25,
                "mask_seed": 3}
    specs = settings_to_specs(settings)
    assert specs == ["temporal:uniform:13:zero", "spatial:mask:0.25:3"]
    assert settings_from_specs(", ".join(specs)) == {**settings_from_specs("temporal:uniform:7"), **settings}
    assert settings_from_specs("spatial:sr:4, temporal:gaussian:1.5")["sigma"] == 1.5  # any order, CLI defaults
    for unusable in (None, "", "spatial:sr:2, spatial:sr:2", "temporal:box:3"):
        assert settings_from_specs(unusable) is None


# -- reader and writer (npe2, no viewer) ---------------------------------------------------------------


def _write_file(kind: str, tmp_path, rgb: bool):
    """Write a test video of ``kind``; returns (path, the (t, c, y, x) array it should read back as, atol or None)."""
    video = _video(rgb)
    u8 = np.round(video.values * 255).astype(np.uint8)  # file formats store 8 bits
    hwc = u8.transpose(0, 2, 3, 1) if rgb else u8[:, 0]
    if kind == "zarr":
        path, blurred = tmp_path / "clip.zarr", svimg.forward_op(video, svimg.ops.TemporalPSF(3))
        svimg.io.save(blurred, path)  # float32 with provenance attrs
        return path, blurred.values, 1e-6
    if kind == "tif":
        import tifffile

        path = tmp_path / "clip.tif"
        tifffile.imwrite(path, hwc, photometric="rgb" if rgb else "minisblack")
        return path, u8 / 255.0, 1e-6
    import imageio.v3 as iio

    path = tmp_path / f"clip.{kind}"
    if kind == "gif":
        iio.imwrite(path, hwc, loop=0, duration=100)
        return path, u8 / 255.0, 1e-6
    _write_mp4(path, hwc)
    return path, u8 / 255.0, None  # lossy codec: compared on average


def _write_mp4(path, frames):
    import imageio.v2 as imageio

    with imageio.get_writer(str(path), format="ffmpeg", fps=8, quality=10, macro_block_size=16) as writer:
        for frame in frames:
            writer.append_data(frame)


@pytest.mark.parametrize(
    "kind, rgb", [("zarr", True), ("zarr", False), ("tif", False), ("tif", True), ("mp4", True), ("gif", True)]
)
def test_reader_opens_each_kind(plugin, tmp_path, kind, rgb):
    path, expected, atol = _write_file(kind, tmp_path, rgb)
    (data, kwargs, layer_type), = npe2.read([str(path)], plugin_name="svimg", stack=False)
    assert layer_type == "image"
    assert kwargs["axis_labels"] == ("t", "y", "x")
    assert kwargs["rgb"] is rgb
    got = layer_to_video(np.asarray(data), rgb=rgb).values
    assert got.shape == expected.shape
    if atol is None:
        assert np.abs(got - expected).mean() < 0.03
    else:
        np.testing.assert_allclose(got, expected, atol=atol)
    if kind == "zarr":
        assert kwargs["metadata"]["svimg_operation"] == "forward_op"
        assert "TemporalPSF(3" in kwargs["metadata"]["svimg_operator"]


def test_reader_declines_other_files(tmp_path):
    from svimg.napari._reader import get_reader

    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.png")]) is None
    assert get_reader(str(tmp_path / "a.TIF")) is not None


@pytest.mark.parametrize("rgb", [False, True])
def test_writer_round_trips(plugin, tmp_path, rgb):
    from svimg.napari._operator import degrade

    data, kwargs, _ = degrade(_video(rgb), {"temporal": "uniform", "width": 3}, "clip")
    path = tmp_path / "out.zarr"
    written = npe2.write(str(path), [(data, kwargs, "image")], plugin_name="svimg")
    assert written == [str(path)]
    (back, back_kwargs, _), = npe2.read([str(path)], plugin_name="svimg", stack=False)
    np.testing.assert_array_equal(np.asarray(back), data)
    assert back_kwargs["rgb"] is rgb
    for key in ("svimg_operation", "svimg_operator", "svimg_parameters", OP_SPEC_ATTR):
        assert back_kwargs["metadata"][key] == kwargs["metadata"][key]
    from svimg.ops.temporal import DEFAULT_BOUNDARY

    assert svimg.io.load(path).attrs[OP_SPEC_ATTR] == f"temporal:uniform:3:{DEFAULT_BOUNDARY}"  # `svimg restore` reads it
    with pytest.raises(Exception, match="exist"):
        npe2.write(str(path), [(data, kwargs, "image")], plugin_name="svimg")


# -- in a viewer ---------------------------------------------------------------------------------------


@pytest.fixture
def viewer(plugin, make_napari_viewer):
    return make_napari_viewer()


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("svimg", name)
    return widget


def _add(viewer, video, name):
    return viewer.add_layer(napari.layers.Layer.create(*video_to_layer(video, name=name)))


@needs_display
def test_open_file_and_sample_data(viewer, tmp_path):
    path = tmp_path / "s.zarr"
    svimg.io.save(_video(True), path)
    (layer,) = viewer.open(str(path), plugin="svimg")
    assert layer.rgb and layer.data.shape == (T, H, W, 3) and layer.axis_labels == ("t", "y", "x")
    (cells,) = viewer.open_sample("svimg", "cells")
    assert cells.data.ndim == 3 and not cells.rgb and cells.axis_labels == ("t", "y", "x")
    truth, degraded = viewer.open_sample("svimg", "degraded_clip")
    assert truth.rgb and truth.data.shape == degraded.data.shape == (16, 128, 128, 3)
    assert degraded.metadata[OP_SPEC_ATTR] == "temporal:uniform:7:circular"
    blurred = svimg.forward_op(truth.data.transpose(0, 3, 1, 2), svimg.ops.TemporalPSF(7, boundary="circular"))
    np.testing.assert_allclose(degraded.data, blurred.transpose(0, 2, 3, 1), atol=1e-6)


@needs_display
def test_degrade_widget_adds_the_degraded_layer(viewer):
    source = _add(viewer, _video(True), "clip")
    widget = _dock(viewer, "Degrade")
    widget.image.value = source
    settings = {"temporal": "gaussian", "sigma": 1.0, "boundary": "reflect", "spatial": "downsample", "factor": 2}
    widget.controls.apply(settings)
    layer = widget.run()
    assert layer in viewer.layers and layer.rgb
    expected = svimg.forward_op(_video(True), build_operator(settings)).values.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(layer.data, expected, rtol=1e-6)
    assert tuple(layer.scale[1:]) == (2, 2)
    # recorded as `svimg degrade` records it
    assert layer.metadata[OP_SPEC_ATTR] == "temporal:gaussian:1.0:reflect, spatial:sr:2"
    n_layers = len(viewer.layers)
    widget.degrade_button.native.click()  # the button does the same
    assert len(viewer.layers) == n_layers + 1 and viewer.layers[-1].name.startswith(layer.name)
    # The Restore widget presets its operator from that metadata.
    restore = _dock(viewer, "Restore")
    restore.image.value = layer
    assert restore.controls.settings()["boundary"] == "reflect"
    assert restore.controls.operator().output_shape((T, 3, H, W)) == (T, 3, H // 2, W // 2)


def _run_restore(qtbot, widget, layer, nfe, preview_every=1, seed=0):
    widget.image.value = layer
    widget.nfe.value, widget.preview_every.value, widget.seed.value = nfe, preview_every, seed
    widget.device.value = "cpu"
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)


@needs_display
def test_restore_widget_noise_std_choices(viewer):
    import inspect

    widget = _dock(viewer, "Restore")
    assert widget.sample_parameters()["noise_std"] == sample_defaults()["noise_std"]  # the API's default
    widget.measurement_noise.value = "none"
    assert widget.sample_parameters()["noise_std"] is None
    widget.measurement_noise.value = "auto"
    assert widget.sample_parameters()["noise_std"] == "auto"
    widget.measurement_noise.value = "given"
    widget.noise_std_given.value = 0.03
    assert widget.sample_parameters()["noise_std"] == pytest.approx(0.03)


@needs_display
def test_restore_widget_shows_the_forecast_of_the_python_api(viewer, qtbot):
    from svimg.sampling.memory import forecast

    blurred = _add(viewer, svimg.forward_op(_video(True), svimg.ops.TemporalPSF(3)), "blurred")
    widget = _dock(viewer, "Restore")
    widget.controls.apply({"temporal": "uniform", "width": 3})
    widget.image.value, widget.nfe.value, widget.device.value = blurred, 4, "cpu"
    line = widget.forecast()
    assert widget.forecast_line.value == line and line.startswith("forecast: ")
    expected = forecast(layer_to_video(blurred.data, rgb=True), svimg.ops.TemporalPSF(3), "bundled", nfe=4,
                        device="cpu", auto_window=False)
    assert line.split(", peak")[0] == expected.line().split(", peak")[0]  # memory and time are measured anew


@needs_display
@pytest.mark.parametrize("rgb", [False, True])
def test_restore_widget_adds_result_and_previews(viewer, qtbot, rgb):
    clean = _video(rgb)
    blurred = _add(viewer, svimg.forward_op(clean, svimg.ops.TemporalPSF(3)), "blurred")
    widget = _dock(viewer, "Restore")
    widget.controls.apply({"temporal": "uniform", "width": 3})
    seen = []
    viewer.layers.events.inserted.connect(lambda e: seen.append(e.value.name))
    nfe = 3
    _run_restore(qtbot, widget, blurred, nfe)
    assert widget.steps_done == nfe
    assert "blurred [restoring]" in seen  # the live x0 estimate was shown ...
    names = [layer.name for layer in viewer.layers]
    assert "blurred [restoring]" not in names  # ... and removed at the end
    (result,) = [layer for layer in viewer.layers if layer.name.startswith("blurred restored")]
    assert result.name == "blurred restored"  # short: the parameters are in the metadata
    assert json.loads(result.metadata["svimg_parameters"])["nfe"] == 3
    assert result.rgb is rgb and result.data.shape == np.asarray(blurred.data).shape
    assert result.metadata["svimg_operation"] == "sample"
    # Same parameters through the Python API give the same result.
    expected = svimg.sample(
        layer_to_video(blurred.data, rgb=rgb), svimg.ops.TemporalPSF(3), "bundled", nfe=nfe, seed=0, device="cpu",
        progress=False,
    )
    np.testing.assert_allclose(layer_to_video(result.data, rgb=rgb).values, expected.values, atol=1e-5)


@needs_display
def test_restore_cancel_stops_within_one_step(viewer, qtbot, monkeypatch):
    from svimg import priors

    evaluations, at_cancel = [], []
    real_load = priors.load

    class CountingPrior:
        """The loaded prior, recording the timestep of every eps evaluation."""

        def __init__(self, prior):
            self._prior = prior

        def __getattr__(self, name):
            return getattr(self._prior, name)

        def to(self, device):  # the sampler moves torch priors to its device
            getattr(self._prior, "to", lambda _: None)(device)
            return self

        def eps(self, x_t, t):
            evaluations.append(int(t.reshape(-1)[0]))
            return self._prior.eps(x_t, t)

    def counting_load(spec):
        return CountingPrior(real_load(spec))

    monkeypatch.setattr(priors, "load", counting_load)
    layer = _add(viewer, svimg.forward_op(_video(False), svimg.ops.TemporalPSF(3)), "blurred")
    widget = _dock(viewer, "Restore")
    widget.controls.apply({"temporal": "uniform", "width": 3})
    n_before = len(viewer.layers)
    nfe = 500

    def cancel_once(step, preview):
        if not at_cancel:
            at_cancel.append(len(evaluations))
            widget.cancel_button.native.click()

    widget.step_relay.step.connect(cancel_once)
    _run_restore(qtbot, widget, layer, nfe, preview_every=1)
    assert at_cancel, "no step was reported before the run ended"
    distinct_t = len(set(evaluations))  # one timestep per NFE, however the frames were batched
    assert distinct_t <= len(set(evaluations[: at_cancel[0]])) + 1 < nfe
    assert len(viewer.layers) == n_before  # no result and no preview layer left
    assert widget.status.value == "cancelled"


@needs_display
def test_deleting_the_restore_widget_stops_its_run(viewer, qtbot):
    layer = _add(viewer, svimg.forward_op(_video(False), svimg.ops.TemporalPSF(3)), "blurred")
    widget = _dock(viewer, "Restore")
    widget.controls.apply({"temporal": "uniform", "width": 3})
    n_before, nfe = len(viewer.layers), 500
    widget.image.value, widget.nfe.value, widget.device.value = layer, nfe, "cpu"
    worker = widget.run()
    qtbot.waitUntil(lambda: widget.steps_done >= 1, timeout=60_000)
    viewer.window.remove_dock_widget(widget.native)
    widget.native.deleteLater()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    assert widget.steps_done < nfe and not widget.running
    assert len(viewer.layers) == n_before  # no result, and the preview is gone


@needs_display
def test_restore_with_a_bad_checkpoint_reports_and_adds_nothing(viewer, qtbot, tmp_path):
    layer = _add(viewer, _video(False), "clip")
    widget = _dock(viewer, "Restore")
    widget.prior_kind.value = "adm"
    with pytest.raises(ValueError, match="choose the checkpoint file"):
        widget.prior_spec()
    missing = tmp_path / "missing.pt"
    widget.checkpoint.value = missing
    assert widget.prior_spec() == f"adm:{missing}"
    n_before = len(viewer.layers)
    _run_restore(qtbot, widget, layer, nfe=2)
    assert len(viewer.layers) == n_before
    assert widget.status.value.startswith("failed:") and "missing.pt" in widget.status.value


@needs_display
def test_compare_widget_plots_per_frame_metrics(viewer):
    import svimg.metrics

    clean = _video(True)
    ref = _add(viewer, clean, "truth")
    est = _add(viewer, svimg.forward_op(clean, svimg.ops.TemporalPSF(3, boundary="circular")), "blurred")  # T frames
    widget = _dock(viewer, "Compare")
    widget.layer.value, widget.reference.value = est, ref
    result = widget.run()
    expected = svimg.metrics.evaluate(layer_to_video(est.data, rgb=True), clean)
    assert result == expected and len(result["psnr_per_frame"]) == T
    axes = widget.figure.axes
    assert [len(ax.lines[0].get_xdata()) for ax in axes] == [T, T, T - 1]  # PSNR, SSIM, consistency between frames
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), expected["psnr_per_frame"])
    assert f"{expected['psnr']:.2f} dB" in widget.numbers.value


@needs_display
def test_restore_with_a_prior_from_train_prior(viewer, qtbot, tmp_path):
    """The weights file of `svimg train-prior` is picked as a checkpoint file and restores a grey stack."""
    clean = _video(False)
    svimg.io.save(clean, tmp_path / "stack.tif")
    weights = tmp_path / "mine.pt"  # trained in a subprocess: torch.optim imports triton, which crashes beside Qt
    subprocess.run([sys.executable, "-m", "svimg.cli", "-q", "train-prior", tmp_path / "stack.tif", weights, "--steps",
                    "2", "--width", "8", "--size", "16", "--batch-size", "2"], check=True)
    blurred = _add(viewer, svimg.forward_op(clean, svimg.ops.TemporalPSF(3)), "blurred")
    widget = _dock(viewer, "Restore")
    widget.controls.apply({"temporal": "uniform", "width": 3})
    widget.prior_kind.value = "adm"
    widget.checkpoint.value = weights
    _run_restore(qtbot, widget, blurred, nfe=2)
    (result,) = [layer for layer in viewer.layers if layer.name.startswith("blurred restored")]
    expected = svimg.sample(layer_to_video(blurred.data, rgb=False), svimg.ops.TemporalPSF(3), str(weights), nfe=2,
                            seed=0, device="cpu", progress=False)
    np.testing.assert_allclose(layer_to_video(result.data, rgb=False).values, expected.values, atol=1e-5)


# -- layout, defaults, theme ---------------------------------------------------------------------------

@needs_display
def test_three_docked_widgets_fit_a_1280x1024_window(viewer, qtbot, tmp_path):
    """Degrade, Restore and Compare docked together fit a 1280 x 1024 window: each dock is at least as tall as
    its widget needs, the docks do not overlap, and all of them lie inside the window (screenshot kept)."""
    viewer.window.resize(1280, 1024)
    viewer.open_sample("svimg", "degraded_clip")
    docks = [viewer.window.add_plugin_dock_widget("svimg", name) for name in ("Degrade", "Restore", "Compare")]
    qtbot.wait(200)
    shot = viewer.screenshot(str(tmp_path / "docked.png"), canvas_only=False)
    height = shot.shape[0]
    assert height <= 1024
    bottoms = []
    for dock, widget in docks:
        geometry = dock.geometry()
        assert widget.native.height() >= widget.native.minimumSizeHint().height(), dock.windowTitle()
        assert geometry.bottom() < height, dock.windowTitle()
        bottoms.append((geometry.top(), geometry.bottom()))
    bottoms.sort()
    assert all(above[1] < below[0] for above, below in zip(bottoms, bottoms[1:]))  # stacked, not overlapping


@needs_display
def test_restore_defaults_come_from_the_python_api(viewer, monkeypatch):
    widget = _dock(viewer, "Restore")
    api = sample_defaults()
    assert (widget.nfe.value, widget.eta.value, widget.cg_iters.value, widget.noise_mode.value) == (
        api["nfe"], pytest.approx(api["eta"]), api["cg_iters"], api["noise"])
    assert widget.sample_parameters()["noise_std"] == api["noise_std"]
    assert widget.controls.settings()["boundary"] == inspect.signature(svimg.ops.TemporalPSF).parameters[
        "boundary"].default

    def changed_api(y, op, prior=None, *, nfe=7, eta=0.5, cg_iters=3, noise="initial", noise_std="auto"):
        """A sample() whose defaults changed: the widget follows."""

    from svimg.napari._widgets import RestoreWidget

    monkeypatch.setattr(svimg.sampling, "sample", changed_api)
    widget = RestoreWidget(viewer)
    assert (widget.nfe.value, widget.cg_iters.value, widget.noise_mode.value) == (7, 3, "initial")
    assert widget.measurement_noise.value == "auto" and widget.sample_parameters()["noise_std"] == "auto"


@needs_display
def test_compare_starts_on_two_layers_and_follows_napari_theme(viewer):
    from napari.utils.theme import get_theme

    truth, degraded = viewer.open_sample("svimg", "degraded_clip")
    widget = _dock(viewer, "Compare")
    assert widget.layer.value is degraded and widget.reference.value is truth
    widget.run()
    for theme in ("dark", "light"):
        viewer.theme = theme
        background = get_theme(theme).background.as_hex()
        assert widget.figure.get_facecolor()[:3] == pytest.approx(tuple(int(background[i:i + 2], 16) / 255
                                                                         for i in (1, 3, 5)))
        ax = widget.figure.axes[0]
        assert ax.get_facecolor()[:3] == widget.figure.get_facecolor()[:3]


@needs_display
def test_restore_progress_is_shown_in_the_widget(viewer, qtbot):
    layer = _add(viewer, svimg.forward_op(_video(False), svimg.ops.TemporalPSF(3)), "blurred")
    widget = _dock(viewer, "Restore")
    widget.controls.apply({"temporal": "uniform", "width": 3})
    _run_restore(qtbot, widget, layer, nfe=3, preview_every=0)
    assert widget.progress_bar.max == 3 and widget.progress_bar.value == 3
    assert widget.progress_bar.native.isVisibleTo(widget.native)  # in the widget, not in a collapsed dock
