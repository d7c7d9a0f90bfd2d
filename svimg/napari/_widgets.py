"""napari widgets: Degrade, Restore and Compare, thin front-ends over svimg's Python API.

* Degrade: ``svimg.forward_op`` with a temporal PSF and an optional spatial degradation.
* Restore: ``svimg.sample`` in a napari thread worker: one activity-dock
  progress tick per network evaluation, a live view of the running x0
  estimate, and a Cancel that stops within one step (the sampler's callback
  raises) and leaves no partial layer.
* Compare: ``svimg.metrics`` PSNR / SSIM per frame (plotted) and temporal consistency.

Layer data goes to and from svimg through :mod:`svimg.napari._layers` only.
"""

from __future__ import annotations

import inspect
import threading

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from napari.layers import Image, Layer
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QComboBox

from svimg.ops import BOUNDARIES
from svimg.sampling.dds import sample

from ._layers import AXIS_LABELS, layer_to_video, tcyx_to_layer_data, video_to_layer
from ._operator import DEFAULTS, OP_SPEC_ATTR, SPATIAL, TEMPORAL, build_operator, degrade, settings_from_specs

__all__ = ["OperatorControls", "DegradeWidget", "RestoreWidget", "CompareWidget"]

SEED_MAX = 2**31 - 1  # Qt spin boxes hold 32-bit ints


def _layer_choice(label: str):
    """A combo box of the viewer's image layers that stays narrow however long the layer names are."""
    combo = create_widget(annotation=Image, label=label)
    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(16)
    return combo


def _status_label() -> Label:
    label = Label(value="")
    label.native.setWordWrap(True)
    return label


def _layer_video(layer: Image | None, what: str):
    """The selected layer as an svimg (t, c, y, x) DataArray, or ValueError when none is selected."""
    if layer is None:
        raise ValueError(f"{what}: no image layer selected; open or add a (t, y, x) or RGB (t, y, x, 3) stack first")
    return layer_to_video(layer.data, rgb=layer.rgb, metadata=layer.metadata, name=layer.name)


def _add(viewer: napari.Viewer, layer_data: tuple) -> Layer:
    layer = Layer.create(*layer_data)
    viewer.add_layer(layer)
    return layer


def _report(func):
    """Button handler: run ``func``; a ValueError/TypeError (bad input) becomes a napari error notification."""

    def handler(*_):
        try:
            func()
        except (ValueError, TypeError) as err:
            show_error(str(err))

    return handler


class OperatorControls(Container):
    """Degradation settings: temporal PSF (uniform width or Gaussian sigma, boundary), then an optional spatial one.

    ``settings()`` returns the plain dict of :mod:`svimg.napari._operator`,
    ``operator()`` the svimg operator, ``apply(settings)`` sets the widgets.
    Only the parameters of the chosen kinds are shown.
    """

    def __init__(self):
        self._fields = {
            "temporal": ComboBox(choices=TEMPORAL, label="temporal PSF"),
            "width": SpinBox(min=1, max=255, label="width (frames)"),
            "sigma": FloatSpinBox(min=0.1, max=50.0, step=0.1, label="sigma (frames)"),
            "boundary": ComboBox(choices=BOUNDARIES, label="boundary"),
            "spatial": ComboBox(choices=SPATIAL, label="spatial"),
            "blur_size": SpinBox(min=1, max=99, step=2, label="blur size (px, odd)"),
            "blur_sigma": FloatSpinBox(min=0.1, max=50.0, step=0.1, label="blur sigma (px)"),
            "factor": SpinBox(min=1, max=32, label="pooling factor"),
            "ratio": FloatSpinBox(min=0.01, max=1.0, step=0.05, label="pixels kept"),
            "mask_seed": SpinBox(min=0, max=SEED_MAX, label="mask seed"),
        }
        super().__init__(widgets=list(self._fields.values()), labels=True)
        self.apply(DEFAULTS)
        self._fields["temporal"].changed.connect(self._show_relevant)
        self._fields["spatial"].changed.connect(self._show_relevant)

    def _show_relevant(self, *_):
        temporal, spatial = self._fields["temporal"].value, self._fields["spatial"].value
        shown = {
            "width": temporal == "uniform",
            "sigma": temporal == "gaussian",
            "boundary": temporal != "none",
            "blur_size": spatial == "blur",
            "blur_sigma": spatial == "blur",
            "factor": spatial == "downsample",
            "ratio": spatial == "mask",
            "mask_seed": spatial == "mask",
        }
        for key, visible in shown.items():
            self._fields[key].visible = visible

    def settings(self) -> dict:
        return {key: widget.value for key, widget in self._fields.items()}

    def apply(self, settings: dict) -> None:
        for key, value in {**DEFAULTS, **settings}.items():
            self._fields[key].value = value
        self._show_relevant()

    def operator(self):
        return build_operator(self.settings())


class DegradeWidget(Container):
    """Degrade the selected stack with ``svimg.forward_op`` and add the result as a new layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self._viewer = napari_viewer
        self._image = _layer_choice("input")
        self.controls = OperatorControls()
        self._button = PushButton(text="Degrade")
        super().__init__(widgets=[self._image, self.controls, self._button])
        self._button.clicked.connect(_report(self.run))

    def run(self) -> Layer:
        """Degrade the selected layer; returns the new layer."""
        layer = self._image.value
        video = _layer_video(layer, "input")
        return _add(self._viewer, degrade(video, self.controls.settings(), layer.name))


class _Cancelled(Exception):
    """Raised from the sampler callback once Cancel was pressed."""


class _StepRelay(QObject):
    """Carries (step, preview or None) from the worker thread to the GUI thread (a queued Qt connection)."""

    step = Signal(int, object)


def _restore(video, op, prior_spec: str, params: dict, callback):
    """Worker body: ``svimg.sample`` (which loads the prior from its spec); None when cancelled."""
    import svimg

    try:
        return svimg.sample(video, op, prior_spec, progress=False, callback=callback, **params)
    except _Cancelled:
        return None


def _devices() -> list[str]:
    """The devices ``svimg.sample`` can use here."""
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


PRIORS = [("bundled", "bundled"), ("checkpoint file (ADM or svimg)", "adm"), ("diffusers model folder", "diffusers")]
NOISE_MODES = ("batch", "initial", "independent")


class RestoreWidget(Container):
    """Restore the selected stack with ``svimg.sample`` in a background thread.

    The operator controls are preset from the input layer's metadata when the
    layer was made by Degrade or the sample data.  While running: one progress
    tick per NFE in the activity dock, the x0 estimate every ``preview every``
    steps in a temporary layer, and Cancel.  The result is added as a layer
    named after the parameters; a cancelled or failed run adds nothing.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self._viewer = napari_viewer
        self._image = _layer_choice("input")
        self.controls = OperatorControls()
        devices = _devices()
        self._prior = ComboBox(choices=PRIORS, label="prior")
        self._checkpoint = FileEdit(mode="r", nullable=True, label="checkpoint", visible=False)
        self._nfe = SpinBox(value=20, min=1, max=1000, label="NFE")
        self._eta = FloatSpinBox(value=0.15, min=0.0, max=1.0, step=0.05, label="eta")
        self._cg_iters = SpinBox(value=5, min=0, max=200, label="CG iterations")
        self._noise = ComboBox(choices=NOISE_MODES, value="batch", label="noise")
        default = inspect.signature(sample).parameters["noise_std"].default  # svimg.sample's, shown as a mode
        mode = {None: "none", "auto": "auto"}.get(default, "given")
        self._noise_std_mode = ComboBox(choices=("none", "auto", "given"), value=mode, label="measurement noise")
        self._noise_std = FloatSpinBox(value=default if mode == "given" else 0.02, min=0.0, max=1.0, step=0.005,
                                       label="noise std", visible=mode == "given")
        self._seed = SpinBox(value=0, min=0, max=SEED_MAX, label="seed")
        self._device = ComboBox(choices=devices, value=devices[-1], label="device")
        self._preview_every = SpinBox(value=5, min=0, max=1000, label="preview every (0: off)")
        self._forecast_button = PushButton(text="Forecast")
        self._forecast = _status_label()
        self._run_button = PushButton(text="Restore")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._status = _status_label()
        super().__init__(
            widgets=[
                self._image, self.controls, self._prior, self._checkpoint, self._nfe, self._eta, self._cg_iters,
                self._noise, self._noise_std_mode, self._noise_std, self._seed, self._device, self._preview_every,
                self._forecast_button, self._forecast, self._run_button, self._cancel_button, self._status,
            ]
        )
        self._image.changed.connect(self._preset_operator)
        self._prior.changed.connect(self._prior_kind_changed)
        self._noise_std_mode.changed.connect(self._noise_std_mode_changed)
        self._forecast_button.clicked.connect(_report(self.forecast))
        self._run_button.clicked.connect(_report(self.run))
        self._cancel_button.clicked.connect(self.cancel)
        self.worker = None
        self.steps_done = 0  # progress ticks of the current (or last) run
        self._cancel = threading.Event()
        self._pbar = None
        self._preview_layer = None
        self._relay = _StepRelay()
        self._relay.step.connect(self._on_step)
        self._closed = False
        self.native.destroyed.connect(self._on_destroyed)

    # -- settings -----------------------------------------------------------------
    def _preset_operator(self, layer):
        settings = settings_from_specs(layer.metadata.get(OP_SPEC_ATTR)) if layer is not None else None
        if settings is not None:
            self.controls.apply(settings)

    def _prior_kind_changed(self, kind):
        self._checkpoint.visible = kind != "bundled"
        self._checkpoint.mode = "d" if kind == "diffusers" else "r"

    def _noise_std_mode_changed(self, mode):
        self._noise_std.visible = mode == "given"

    def noise_std(self):
        """``noise_std`` of :func:`svimg.sample`: None (noise-free), "auto" or the given std."""
        mode = self._noise_std_mode.value
        return {"none": None, "auto": "auto"}.get(mode, self._noise_std.value)

    def prior_spec(self) -> str:
        """The :func:`svimg.priors.load` spec: "bundled", "adm:PATH" or "diffusers:PATH"."""
        kind = self._prior.value
        if kind == "bundled":
            return kind
        if self._checkpoint.value is None:
            raise ValueError(f"prior: choose the {dict((v, k) for k, v in PRIORS)[kind]} to load")
        return f"{kind}:{self._checkpoint.value}"

    def sample_parameters(self) -> dict:
        """Keyword arguments for ``svimg.sample`` from the widgets."""
        return {
            "nfe": self._nfe.value,
            "eta": self._eta.value,
            "cg_iters": self._cg_iters.value,
            "noise": self._noise.value,
            "noise_std": self.noise_std(),
            "seed": self._seed.value,
            "device": self._device.value,
        }

    def forecast(self) -> str:
        """Show and return the forecast line of :func:`svimg.sampling.memory.forecast` for the current settings
        (times one prior call on one frame)."""
        from ..sampling.memory import forecast

        p = self.sample_parameters()
        video = _layer_video(self._image.value, "input")
        plan = forecast(video, self.controls.operator(), self.prior_spec(), nfe=p["nfe"], device=p["device"],
                        noise_std=p["noise_std"], auto_window=False)
        self._forecast.value = plan.line()
        return self._forecast.value

    # -- running ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def run(self):
        """Start restoring the selected layer in a thread worker; returns the worker."""
        if self.running:
            raise ValueError("a restore is already running; cancel it or wait for it to finish")
        layer = self._image.value
        video = _layer_video(layer, "input")
        op = self.controls.operator()
        spec = self.prior_spec()
        p = params = self.sample_parameters()
        name = (f"{layer.name} restored (nfe={p['nfe']}, eta={p['eta']:g}, cg={p['cg_iters']}, {p['noise']}, "
                f"seed={p['seed']})")
        every, nfe, relay = self._preview_every.value, p["nfe"], self._relay
        self._cancel = cancel = threading.Event()

        def callback(step, t, x0_hat):  # runs in the worker thread
            if cancel.is_set():
                raise _Cancelled
            preview = None
            if every and (step + 1) % every == 0 and step + 1 < nfe:
                preview = x0_hat.detach().to("cpu", copy=True).float().clamp_(0, 1).numpy()
            relay.step.emit(step, preview)

        self._preview_name = f"{layer.name} [restoring]"
        self.steps_done = 0
        self._pbar = progress(total=nfe, desc="svimg restore")
        handlers = {  # an "errored" handler also stops napari from re-raising the worker's exception
            "returned": lambda result: self._on_returned(result, name, spec),
            "errored": self._on_errored,
            "finished": self._on_finished,
        }
        self.worker = create_worker(_restore, video, op, spec, params, callback, _connect=handlers, _start_thread=False)
        self._run_button.enabled, self._cancel_button.enabled = False, True
        self._status.value = f"restoring {layer.name}: loading the prior"
        self.worker.start()
        return self.worker

    def cancel(self, *_):
        """Stop the running restore after the current step; no layer is added."""
        if self.running:
            self._cancel.set()
            self.worker.quit()
            self._cancel_button.enabled = False
            self._status.value = "cancelling"

    def _on_step(self, step: int, preview):
        if self._pbar is None or self._cancel.is_set():
            return
        self.steps_done += 1
        self._status.value = f"step {self.steps_done} / {self._pbar.total}"
        if preview is not None:
            data, rgb = tcyx_to_layer_data(preview)
            if self._preview_layer is not None and self._preview_layer in self._viewer.layers:
                self._preview_layer.data = data
            else:
                self._preview_layer = self._viewer.add_image(
                    data, name=self._preview_name, rgb=rgb, contrast_limits=(0.0, 1.0), axis_labels=AXIS_LABELS
                )
        # Last: napari's progress bar processes pending events, which may already finish the run.
        self._pbar.update(1)

    def _on_destroyed(self, *_):
        """The widget was deleted (e.g. with the viewer): stop the run; touch none of its Qt widgets from now on."""
        self._closed = True
        self._cancel.set()

    def _on_returned(self, result, name: str, spec: str):
        # None: cancelled (the worker suppresses `returned` after quit(), unless it finished first)
        if result is None or self._closed:
            return
        _add(self._viewer, video_to_layer(result, name=name, metadata={"svimg_prior": spec}))
        self._status.value = f"done: {name}"

    def _on_errored(self, err: Exception):
        show_error(f"svimg restore failed: {err}")
        if not self._closed:
            self._status.value = f"failed: {err}"

    def _on_finished(self):
        if self._preview_layer is not None and self._preview_layer in self._viewer.layers:
            self._viewer.layers.remove(self._preview_layer)
        self._preview_layer = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        if self._closed:
            return
        if self._cancel.is_set():
            self._status.value = "cancelled"
        self._run_button.enabled, self._cancel_button.enabled = True, False


class CompareWidget(Container):
    """PSNR, SSIM (per frame, plotted) and temporal consistency of a layer against a reference layer."""

    def __init__(self):
        self._image = _layer_choice("layer")
        self._reference = _layer_choice("reference")
        self._button = PushButton(text="Compare")
        self._numbers = _status_label()
        super().__init__(widgets=[self._image, self._reference, self._button, self._numbers])
        self.figure = Figure(figsize=(4, 3.2), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(240)
        self.native.layout().addWidget(self.canvas)
        self._button.clicked.connect(_report(self.run))

    def run(self) -> dict:
        """Compute and show the metrics; returns :func:`svimg.metrics.evaluate`'s dict (means and ``*_per_frame``)."""
        from svimg import metrics

        result = metrics.evaluate(
            _layer_video(self._image.value, "layer"), _layer_video(self._reference.value, "reference")
        )
        self._show(result)
        return result

    def _show(self, result: dict):
        panels = [("psnr", "PSNR (dB)", 0.0), ("ssim", "SSIM", 0.0)]
        numbers = [f"PSNR {result['psnr']:.2f} dB", f"SSIM {result['ssim']:.4f}"]
        if "temporal_consistency" in result:  # needs two frames or more
            panels.append(("temporal_consistency", "temporal err", 0.5))  # between frames t and t + 1
            numbers.append(f"temporal consistency error {result['temporal_consistency']:.4g}")
        frames = len(result["psnr_per_frame"])
        self._numbers.value = "   ".join(numbers) + f"\n(means over {frames} frames; per frame below)"
        self.figure.clear()
        axes = self.figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (key, label, offset), color in zip(axes, panels, ("C0", "C1", "C2")):
            values = result[f"{key}_per_frame"]
            ax.plot(np.arange(len(values)) + offset, values, "o-", ms=3, color=color)
            ax.set_ylabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
        axes[-1].set_xlabel("frame t", fontsize=8)
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        self.canvas.draw_idle()
