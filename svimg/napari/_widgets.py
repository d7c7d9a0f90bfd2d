"""napari widgets: Degrade, Restore and Compare, thin front-ends over svimg's Python API.

* Degrade: ``svimg.forward_op`` with a temporal PSF and an optional spatial degradation.
* Restore: ``svimg.sample`` in a napari thread worker: a progress bar in the
  widget ticking once per network evaluation, a live view of the running x0
  estimate, and a Cancel that stops within one step (the sampler's callback
  raises) and leaves no partial layer.  Its defaults are ``svimg.sample``'s.
* Compare: ``svimg.metrics`` PSNR / SSIM per frame (plotted in napari's theme) and temporal consistency.

Compact: the three fit docked together in a 1280 x 1024 window; the operator and
the less used sampler settings sit in collapsible sections.  What tests and
scripts drive is public: the widgets' value fields (``image``, ``nfe``, ...) and
buttons (``run_button`` ...).  Layer data goes to and from svimg through
:mod:`svimg.napari._layers` only.
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
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from napari.layers import Image, Layer
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from napari.utils.theme import get_theme
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QComboBox
from superqt import QCollapsible

from svimg.ops import BOUNDARIES
from svimg.sampling.dds import sample

from ._layers import AXIS_LABELS, layer_to_video, tcyx_to_layer_data, video_to_layer
from ._operator import (
    DEFAULTS,
    OP_SPEC_ATTR,
    SPATIAL,
    TEMPORAL,
    build_operator,
    degrade,
    settings_from_specs,
    settings_to_specs,
)

__all__ = ["OperatorControls", "DegradeWidget", "RestoreWidget", "CompareWidget"]

SEED_MAX = 2**31 - 1  # Qt spin boxes hold 32-bit ints


def _layer_choice(label: str):
    """A combo box of the viewer's image layers that stays narrow however long the layer names are."""
    combo = create_widget(annotation=Image, label=label)
    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(16)
    return combo


def _section(title: str, *widgets) -> QCollapsible:
    """A collapsed section holding ``widgets`` (labelled rows) under a clickable ``title``."""
    section = QCollapsible(title)
    section.addWidget(Container(widgets=list(widgets), labels=True).native)
    section.layout().setContentsMargins(0, 0, 0, 0)
    return section


def _append(container: Container, *natives) -> None:
    """Add Qt widgets (sections, plots) below a magicgui container's own rows."""
    for native in natives:
        container.native.layout().addWidget(native)


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
        self.image = _layer_choice("input")
        self.controls = OperatorControls()
        self.degrade_button = PushButton(text="Degrade")
        super().__init__(widgets=[self.image, self.controls, self.degrade_button])
        self.degrade_button.clicked.connect(_report(self.run))

    def run(self) -> Layer:
        """Degrade the selected layer; returns the new layer."""
        layer = self.image.value
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
MEASUREMENT_NOISE = ("none", "auto", "given")  # noise_std None | "auto" | a number


def sample_defaults() -> dict:
    """The defaults of :func:`svimg.sample`'s keyword parameters (its signature: one source of truth)."""
    from svimg.sampling import sample

    return {name: p.default for name, p in inspect.signature(sample).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _noise_std_choice(noise_std) -> tuple[str, float]:
    """(measurement noise choice, given std) showing a ``noise_std`` value."""
    if noise_std is None or isinstance(noise_std, str):
        return ("none" if noise_std is None else noise_std), 0.02
    return "given", float(noise_std)


class RestoreWidget(Container):
    """Restore the selected stack with ``svimg.sample`` in a background thread.

    The operator controls (a collapsed section) are preset from the input
    layer's metadata when the layer was made by Degrade or the sample data.
    Every sampler setting starts at ``svimg.sample``'s default
    (:func:`sample_defaults`); the seed starts at 0 (reproducible runs).  While
    running: the progress bar ticks once per NFE, the x0 estimate shows every
    ``preview every`` steps in a temporary layer, and Cancel stops the run.
    The result is added as a layer named ``"{input} restored"`` (its parameters
    are in the layer's metadata); a cancelled or failed run adds nothing.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self._viewer = napari_viewer
        api = sample_defaults()
        mode, given = _noise_std_choice(api["noise_std"])
        devices = _devices()
        self.image = _layer_choice("input")
        self.controls = OperatorControls()
        self.prior_kind = ComboBox(choices=PRIORS, label="prior")
        self.checkpoint = FileEdit(mode="r", nullable=True, label="checkpoint", visible=False)
        self.nfe = SpinBox(value=api["nfe"], min=1, max=1000, label="NFE")
        self.seed = SpinBox(value=0, min=0, max=SEED_MAX, label="seed")
        self.measurement_noise = ComboBox(choices=MEASUREMENT_NOISE, value=mode, label="measurement noise")
        self.noise_std_given = FloatSpinBox(value=given, min=0.0, max=1.0, step=0.005, label="noise std",
                                            visible=mode == "given")
        self.eta = FloatSpinBox(value=api["eta"], min=0.0, max=1.0, step=0.05, label="eta")
        self.cg_iters = SpinBox(value=api["cg_iters"], min=0, max=200, label="CG iterations")
        self.noise_mode = ComboBox(choices=NOISE_MODES, value=api["noise"], label="noise draws")
        self.device = ComboBox(choices=devices, value=devices[-1], label="device")
        self.preview_every = SpinBox(value=5, min=0, max=1000, label="preview every (0: off)")
        self.forecast_button = PushButton(text="Forecast")
        self.forecast_line = _status_label()
        self.run_button = PushButton(text="Restore")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(value=0, min=0, max=api["nfe"], label="progress")
        self.status = _status_label()
        super().__init__(widgets=[self.image, self.prior_kind, self.checkpoint, self.nfe, self.seed,
                                  self.measurement_noise, self.noise_std_given])
        self.operator_section = _section("operator", self.controls)
        self.settings_section = _section("sampler settings", self.eta, self.cg_iters, self.noise_mode, self.device,
                                         self.preview_every, self.forecast_button, self.forecast_line)
        actions = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        actions.margins = (0, 0, 0, 0)
        progress_row = Container(widgets=[self.progress_bar, self.status], labels=False)
        progress_row.margins = (0, 0, 0, 0)
        _append(self, self.operator_section, self.settings_section, actions.native, progress_row.native)
        self._show_operator()
        self.image.changed.connect(self._preset_operator)
        self.controls.changed.connect(self._show_operator)
        self.prior_kind.changed.connect(self._prior_kind_changed)
        self.measurement_noise.changed.connect(self._measurement_noise_changed)
        self.forecast_button.clicked.connect(_report(self.forecast))
        self.run_button.clicked.connect(_report(self.run))
        self.cancel_button.clicked.connect(self.cancel)
        self.worker = None
        self.steps_done = 0  # progress ticks of the current (or last) run
        self._cancel = threading.Event()
        self._preview_layer = None
        self.step_relay = _StepRelay()
        self.step_relay.step.connect(self._on_step)
        self._closed = False
        self.native.destroyed.connect(self._on_destroyed)

    # -- settings -----------------------------------------------------------------
    def _preset_operator(self, layer):
        settings = settings_from_specs(layer.metadata.get(OP_SPEC_ATTR)) if layer is not None else None
        if settings is not None:
            self.controls.apply(settings)
            self._show_operator()

    def _show_operator(self, *_):
        """The operator section's title says the operator, so that it can stay collapsed."""
        try:
            text = ", ".join(settings_to_specs(self.controls.settings()))
        except ValueError as err:
            text = f"invalid ({err})"
        self.operator_section.setText(f"operator: {text}")

    def _prior_kind_changed(self, kind):
        self.checkpoint.visible = kind != "bundled"
        self.checkpoint.mode = "d" if kind == "diffusers" else "r"

    def _measurement_noise_changed(self, mode):
        self.noise_std_given.visible = mode == "given"

    def noise_std(self):
        """``noise_std`` of :func:`svimg.sample`: None (noise-free), "auto" or the given std."""
        mode = self.measurement_noise.value
        return {"none": None, "auto": "auto"}.get(mode, self.noise_std_given.value)

    def prior_spec(self) -> str:
        """The :func:`svimg.priors.load` spec: "bundled", "adm:PATH" or "diffusers:PATH"."""
        kind = self.prior_kind.value
        if kind == "bundled":
            return kind
        if self.checkpoint.value is None:
            raise ValueError(f"prior: choose the {dict((v, k) for k, v in PRIORS)[kind]} to load")
        return f"{kind}:{self.checkpoint.value}"

    def sample_parameters(self) -> dict:
        """Keyword arguments for ``svimg.sample`` from the widgets."""
        return {
            "nfe": self.nfe.value,
            "eta": self.eta.value,
            "cg_iters": self.cg_iters.value,
            "noise": self.noise_mode.value,
            "noise_std": self.noise_std(),
            "seed": self.seed.value,
            "device": self.device.value,
        }

    def forecast(self) -> str:
        """Show and return the forecast line of :func:`svimg.sampling.memory.forecast` for the current settings
        (times one prior call on one frame)."""
        from ..sampling.memory import forecast

        p = self.sample_parameters()
        video = _layer_video(self.image.value, "input")
        plan = forecast(video, self.controls.operator(), self.prior_spec(), nfe=p["nfe"], device=p["device"],
                        noise_std=p["noise_std"], auto_window=False)
        self.forecast_line.value = plan.line()
        return self.forecast_line.value

    # -- running ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def run(self):
        """Start restoring the selected layer in a thread worker; returns the worker."""
        if self.running:
            raise ValueError("a restore is already running; cancel it or wait for it to finish")
        layer = self.image.value
        video = _layer_video(layer, "input")
        op = self.controls.operator()
        spec = self.prior_spec()
        params = self.sample_parameters()
        name = f"{layer.name} restored"  # short enough for the layer list; the parameters go in the metadata
        every, nfe, relay = self.preview_every.value, params["nfe"], self.step_relay
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
        self.progress_bar.max, self.progress_bar.value = nfe, 0
        handlers = {  # an "errored" handler also stops napari from re-raising the worker's exception
            "returned": lambda result: self._on_returned(result, name, spec),
            "errored": self._on_errored,
            "finished": self._on_finished,
        }
        self.worker = create_worker(_restore, video, op, spec, params, callback, _connect=handlers, _start_thread=False)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = f"restoring {layer.name}: loading the prior"
        self.worker.start()
        return self.worker

    def cancel(self, *_):
        """Stop the running restore after the current step; no layer is added."""
        if self.running:
            self._cancel.set()
            self.worker.quit()
            self.cancel_button.enabled = False
            self.status.value = "cancelling"

    def _on_step(self, step: int, preview):
        if not self.running or self._cancel.is_set():
            return
        self.steps_done += 1
        self.progress_bar.value = self.steps_done
        self.status.value = f"step {self.steps_done} / {self.progress_bar.max}"
        if preview is not None:
            data, rgb = tcyx_to_layer_data(preview)
            if self._preview_layer is not None and self._preview_layer in self._viewer.layers:
                self._preview_layer.data = data
            else:
                self._preview_layer = self._viewer.add_image(
                    data, name=self._preview_name, rgb=rgb, contrast_limits=(0.0, 1.0), axis_labels=AXIS_LABELS
                )

    def _on_destroyed(self, *_):
        """The widget was deleted (e.g. with the viewer): stop the run; touch none of its Qt widgets from now on."""
        self._closed = True
        self._cancel.set()

    def _on_returned(self, result, name: str, spec: str):
        # None: cancelled (the worker suppresses `returned` after quit(), unless it finished first)
        if result is None or self._closed:
            return
        _add(self._viewer, video_to_layer(result, name=name, metadata={"svimg_prior": spec}))
        self.status.value = f"done: {name}"

    def _on_errored(self, err: Exception):
        show_error(f"svimg restore failed: {err}")
        if not self._closed:
            self.status.value = f"failed: {err}"

    def _on_finished(self):
        if self._preview_layer is not None and self._preview_layer in self._viewer.layers:
            self._viewer.layers.remove(self._preview_layer)
        self._preview_layer = None
        self.worker = None
        if self._closed:
            return
        if self._cancel.is_set():
            self.status.value = "cancelled"
        self.run_button.enabled, self.cancel_button.enabled = True, False


class CompareWidget(Container):
    """PSNR, SSIM (per frame, plotted in napari's theme) and temporal consistency of a layer against a reference.

    ``layer`` starts on the newest image layer and ``reference`` on the oldest (e.g. a result and the ground
    truth), so that the two never start on the same layer when there are two or more.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        self._viewer = napari_viewer
        self.layer = _layer_choice("layer")
        self.reference = _layer_choice("reference")
        self.compare_button = PushButton(text="Compare")
        self.numbers = _status_label()
        super().__init__(widgets=[self.layer, self.reference, self.compare_button, self.numbers])
        self.figure = Figure(figsize=(4, 2.6), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        _append(self, self.canvas)
        self._result = None
        self._apply_theme()
        napari_viewer.events.theme.connect(self._apply_theme)
        self.compare_button.clicked.connect(_report(self.run))

    def reset_choices(self, *_):
        """Refresh the layer lists (napari calls this when layers change); keep the two choices apart."""
        super().reset_choices()
        choices = [c for c in self.layer.choices if c is not None]
        if len(choices) >= 2 and self.layer.value is self.reference.value:
            self.layer.value, self.reference.value = choices[-1], choices[0]

    def run(self) -> dict:
        """Compute and show the metrics; returns :func:`svimg.metrics.evaluate`'s dict (means and ``*_per_frame``)."""
        from svimg import metrics

        result = metrics.evaluate(_layer_video(self.layer.value, "layer"),
                                  _layer_video(self.reference.value, "reference"), names=("layer", "reference"))
        self._show(result)
        return result

    def _apply_theme(self, *_):
        """Colours of the figure from napari's current theme (background, text, canvas), then redraw."""
        theme = get_theme(self._viewer.theme)
        self._colors = {"face": theme.background.as_hex(), "text": theme.text.as_hex(),
                        "grid": theme.foreground.as_hex()}
        self.figure.set_facecolor(self._colors["face"])
        if self._result is not None:
            self._show(self._result)
        else:
            self.canvas.draw_idle()

    def _show(self, result: dict):
        self._result = result
        colors = self._colors
        panels = [("psnr", "PSNR (dB)", 0.0), ("ssim", "SSIM", 0.0)]
        numbers = [f"PSNR {result['psnr']:.2f} dB", f"SSIM {result['ssim']:.4f}"]
        if "temporal_consistency" in result:  # needs two frames or more
            panels.append(("temporal_consistency", "temporal err", 0.5))  # between frames t and t + 1
            numbers.append(f"temporal error {result['temporal_consistency']:.4g}")
        frames = len(result["psnr_per_frame"])
        self.numbers.value = "   ".join(numbers) + f"\n(means over {frames} frames; per frame below)"
        self.figure.clear()
        self.figure.set_facecolor(colors["face"])
        axes = self.figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (key, label, offset), color in zip(axes, panels, ("C0", "C1", "C2")):
            values = result[f"{key}_per_frame"]
            ax.set_facecolor(colors["face"])
            ax.plot(np.arange(len(values)) + offset, values, "o-", ms=3, color=color)
            ax.set_ylabel(label, fontsize=8, color=colors["text"])
            ax.tick_params(labelsize=7, colors=colors["text"])
            ax.grid(True, color=colors["grid"], linewidth=0.6)
            for spine in ax.spines.values():
                spine.set_color(colors["grid"])
        axes[-1].set_xlabel("frame t", fontsize=8, color=colors["text"])
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        self.canvas.draw_idle()
