"""Long videos: the sampler run over overlapping temporal windows, blended, resumable.

A video of T frames is cut into windows of ``window`` frames starting at
``0, stride, 2 stride, ...`` (``stride = window - overlap``; the last window
is moved back to end at frame T, so every window has the same length).  Each
window is restored by :func:`svimg.sample` on its own and the windows are
blended with weights that cross-fade over each overlap::

    x[t] = sum_k w_k(t) x_k(t) / sum_k w_k(t)

Over the m frames window k shares with window k - 1, w_k is 0 on the first
m // 4, rises as sin^2 over the middle half and is 1 on the last m // 4; the
earlier window's weight is one minus that, so where exactly two windows
overlap the weights sum to one.  The quarter of an overlap next to a window's
end, where that window knows least, gets no weight from it.

With a "valid" temporal PSF (the default boundary: a clip cut from a longer
recording) the measured frames [a, b) of a window are themselves a "valid"
problem over the unknown frames [a, b + support - 1) with the SAME operator, so
each window is restored with ``op`` itself and all its ``window + support - 1``
frames are blended, in unknown-frame coordinates (the windows start at the same
frames there; the overlaps are ``support - 1`` frames longer).  The whole
restored input has ``op.margins`` more frames than y at either end; the result
is the frames aligned with y's unless ``keep_margins``.

With any other boundary the data term of a window is exact: its measurement frames [a, b) keep their
global rows, and its unknowns are every frame those rows reach after the
operator's boundary rule (``support - 1`` more than the window: the frames just
outside it, and the circular wrap for the first and last windows)::

    y[r] = sum_j k[j] x[bd(r - j + c)],   a <= r < b,   unknowns {bd(r - j + c)}

Only the frames [a, b) of a window's result are kept.  The rows do not
determine the extra unknowns: for a box PSF ``support - 1`` periodic patterns
per pixel are left to the prior in every window (they do not decay towards the
window's middle), so the blended video then gets a data step on the WHOLE video
from the blend x0 (:mod:`svimg.sampling.global_step`, a block of frames at a
time), which fixes them from the data of all windows: noise-free, the exact
last step of :func:`svimg.sample` (``A^T A x = A^T y`` to a relative residual of
``FINAL_RTOL``: in memory and for a separable A one eigenbasis solve, else at most
``final_cg_iters`` CG iterations); with ``gamma``,
``final_iters`` iterations of ``(I + gamma A^T A) x = x0 + gamma A^T y``; with
``noise_std`` none (its weight at t = 0 is negligible).
Measured alternatives (docs/long_videos.md): modelling the rows that reach
outside with the window's mirror image (the model before), and pinning the
frames the previous window finished.

Every window uses the same seed: with ``noise="batch"`` the initial noise and
every re-noising draw are one (1, C, H, W) image shared by all frames, so all
windows (and a single pass over the whole video) follow the same noise.

With ``out`` a ``.zarr`` path, frames are read window by window (a zarr input
stays lazy) and written as soon as they are final, so memory holds about one
window whatever T is.  The store records its progress in the attrs of its
image array (``svimg_windowed``: layout, seed, ``windows_done``, ``complete``),
updated only after a window's frames are written; an interrupted run is resumed
by calling again with the same arguments, and finished windows are not redone.
The blend of frames shared with the next window is carried between windows in
a side array (two slots, used alternately, so a run killed while writing one
slot resumes from the other).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import secrets
from pathlib import Path

import numpy as np
import torch

from .._api import check_measurement
from .._convert import Volume, to_volume
from .._provenance import provenance
from .._validate import check_positive_int
from ..ops.base import Composed, Identity, LinearOperator, Scaled
from ..ops.spatial import Downsample, GaussianBlur, Mask
from ..ops.temporal import TemporalPSF, _boundary_index
from .. import _dispatch
from .data_step import DEFAULT_FINAL_CG_ITERS, FINAL_RTOL
from .global_step import global_data_step
from .noise_level import AUTO, check_noise_std, noise_floor, resolve_noise_std
from ..solvers.eigenbasis import eigenbasis_solve
from ..io._meta import WINDOWED_RUN_ATTR as PROGRESS_KEY  # attrs of the image array of an output store

__all__ = [
    "sample_windowed",
    "window_starts",
    "default_overlap",
    "blend_weights",
    "window_system",
    "WindowRows",
    "split_temporal",
    "store_is_complete",
    "DEFAULT_WINDOW",
    "PROGRESS_KEY",
]

DEFAULT_WINDOW = 16
DEFAULT_FINAL_ITERS = 20
CARRY = "svimg_carry"  # side array of an output store: the running blend of frames shared with the next window
MARGINS = "svimg_margins"  # side array of an output store: the restored frames past y's ends while the run lasts
SPATIAL_OPS = (Identity, GaussianBlur, Downsample, Mask)


# ---------------------------------------------------------------- operators

def split_temporal(op: LinearOperator, name: str = "op") -> tuple[TemporalPSF | None, LinearOperator]:
    """Split ``op`` into its temporal PSF and the per-frame (spatial) rest: ``op = spatial @ psf``.

    Every spatial operator acts on each frame alike and every temporal one on
    each pixel's time series alike, so they commute and any chain
    ``S1 @ P @ S2`` equals ``(S1 @ S2) @ P``.  Returns ``(psf or None, spatial)``;
    more than one TemporalPSF, or an operator of unknown kind, raises.
    """
    if not isinstance(op, LinearOperator):
        raise TypeError(f"{name} must be an svimg.ops.LinearOperator, got {type(op).__name__}")
    if isinstance(op, TemporalPSF):
        return op, Identity()
    if isinstance(op, SPATIAL_OPS):
        return None, op
    if isinstance(op, Scaled):
        psf, spatial = split_temporal(op.op, name)
        return psf, Scaled(spatial, op.scale)
    if isinstance(op, Composed):
        psfs, spatial = [], []
        for factor in op.factors():
            psf, rest = split_temporal(factor, name)
            psfs += [psf] if psf is not None else []
            spatial += [] if isinstance(rest, Identity) else [rest]
        if len(psfs) > 1:
            raise ValueError(
                f"{name} holds {len(psfs)} TemporalPSF factors; combine them into one "
                "TemporalPSF(kernel=np.convolve(k1, k2))"
            )
        chain = Identity()
        for s in reversed(spatial):
            chain = s if isinstance(chain, Identity) else s @ chain
        return (psfs[0] if psfs else None), chain
    known = ", ".join(t.__name__ for t in (TemporalPSF, *SPATIAL_OPS, Scaled, Composed))
    raise TypeError(f"{name}: cannot split {type(op).__name__} into temporal and per-frame parts; supported: {known}")


class WindowRows(LinearOperator):
    """y = M x along t for an explicit (n, m) matrix M: a window's temporal operator (:func:`window_system`)."""

    def __init__(self, matrix: np.ndarray):
        M = np.array(matrix, dtype=np.float64)
        if M.ndim != 2:
            raise ValueError(f"matrix must be 2-D, got shape {M.shape}")
        M.setflags(write=False)
        N = M.T @ M
        N.setflags(write=False)
        self.matrix, self._normal = M, N

    def _check(self, x, axis: int):
        if x.shape[0] != self.matrix.shape[axis]:
            raise ValueError(f"WindowRows of {self.matrix.shape[axis]} frames got {x.shape[0]} frames")

    def _apply(self, x, M: np.ndarray):
        if M.shape[0] == M.shape[1]:
            return _dispatch.time_apply(x, M)
        out = torch.tensor(M, dtype=x.dtype, device=x.device) @ x.reshape(x.shape[0], -1)
        return out.reshape(M.shape[0], *x.shape[1:])

    def forward(self, x):
        self._check(x, 1)
        return self._apply(x, self.matrix)

    def adjoint(self, y):
        self._check(y, 0)
        return self._apply(y, self.matrix.T)

    def normal(self, x):
        self._check(x, 1)
        return _dispatch.time_apply(x, self._normal)

    def output_shape(self, input_shape):
        self._check(torch.empty(input_shape[0], 0), 1)
        return (self.matrix.shape[0], *input_shape[1:])

    def input_shape(self, output_shape):
        self._check(torch.empty(output_shape[0], 0), 0)
        return (self.matrix.shape[1], *output_shape[1:])

    def __repr__(self):
        return f"WindowRows({self.matrix.shape[1]} -> {self.matrix.shape[0]} frames)"


def window_system(psf: TemporalPSF, T: int, start: int, stop: int) -> tuple[list[int], np.ndarray]:
    """The unknown frames and the exact rows of the measurement frames [start, stop) (module docstring).

    Returns ``(frames, M)``: ``frames`` every global frame the rows reach after
    the boundary rule, in time order from ``start - (support - 1 - c)`` to
    ``stop + c`` (c = the kernel's centre; circular wraps included, each frame
    once), and M the (stop - start, len(frames)) block of ``psf.matrix(T)``:
    ``y[start:stop] = M x[frames]``.
    """
    k, c = psf.kernel, psf.kernel.size // 2
    frames = []
    for i in range(start - (k.size - 1 - c), stop + c):
        s = _boundary_index(i, T, psf.boundary)
        if s is not None and s not in frames:
            frames.append(s)
    col = {s: n for n, s in enumerate(frames)}
    M = np.zeros((stop - start, len(frames)))
    for r in range(start, stop):
        for j, w in enumerate(k):
            s = _boundary_index(r - j + c, T, psf.boundary)
            if s is not None:
                M[r - start, col[s]] += w
    return frames, M


# ---------------------------------------------------------------- layout

def window_starts(T: int, window: int, overlap: int) -> list[int]:
    """First frames of the windows: 0, stride, 2 stride, ... and a last one at T - window
    (stride = window - overlap)."""
    if T <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, T - window, stride))
    return starts + [T - window]


def default_overlap(op: LinearOperator, window: int) -> int:
    """The overlap used when none is given: ``max(support of op's PSF, window // 2)``."""
    psf, _ = split_temporal(op)
    return max(psf.support if psf is not None else 1, window // 2)


def _ramp(m: int) -> np.ndarray:
    """Weights rising from 0 to 1 over ``m`` shared frames: 0 on the first m // 4, sin^2 over the middle,
    1 on the last m // 4."""
    margin = m // 4
    phase = np.clip((np.arange(m) + 0.5 - margin) / (m - 2 * margin), 0.0, 1.0)
    return np.sin(0.5 * np.pi * phase) ** 2


def blend_weights(starts: list[int], window: int) -> list[np.ndarray]:
    """Per-window weights (length ``window``): :func:`_ramp` up over the frames shared with the previous window,
    its mirror image (1 - ramp) down over those shared with the next one, 1 elsewhere (module docstring)."""
    weights = []
    for k, a in enumerate(starts):
        w = np.ones(window)
        if k > 0:
            m = starts[k - 1] + window - a
            w[:m] *= _ramp(m)
        if k + 1 < len(starts):
            m = a + window - starts[k + 1]
            w[window - m:] *= 1.0 - _ramp(m)
        weights.append(w)
    return weights


# ---------------------------------------------------------------- input and output

def _frame_source(y):
    """(read(a, b) -> (b - a, C, H, W) tensor, a Volume to wrap results like ``y``, T)."""
    from .._convert import _is_dataarray, _is_lazy_store

    if _is_lazy_store(y):
        from .. import io

        y = io.as_dataarray(y)
    if _is_dataarray(y):
        template = dataclasses.replace(to_volume(y.isel(t=slice(0, 1)), "y"), template=y)
        return (lambda a, b: to_volume(y.isel(t=slice(a, b)), "y").tensor), template, y.sizes["t"]
    vol = to_volume(y, "y")
    return (lambda a, b: vol.tensor[a:b]), vol, vol.tensor.shape[0]


def _layout_record(T, window, overlap, starts, seed, op, x_shape, dropped) -> dict:
    """The run's layout; ``dropped``: the (lead, trail) restored frames the image leaves out (kept in MARGINS
    until the run completes)."""
    return {"frames": T, "window": window, "overlap": overlap, "starts": starts, "seed": seed,
            "operator": repr(op), "shape": list(x_shape), "dropped": list(dropped), "windows_done": 0,
            "complete": False}


def _same_run(old: dict, new: dict) -> list[str]:
    keys = ("frames", "window", "overlap", "starts", "seed", "operator", "shape", "dropped")
    return [k for k in keys if old.get(k) != new.get(k)]


class _Store:
    """The output zarr store: image array "0" written frame by frame, the carry slots, the progress attrs.

    Frames are addressed as the run's unknown frames; the record's ``dropped`` (lead, trail) ones live in
    the MARGINS side array (dropped when the run completes), frame ``f`` of the rest is image frame ``f - lead``.
    """

    def __init__(self, path: Path, record: dict, vol: Volume, x_shape, dtype, overwrite: bool, span: int):
        import zarr

        self.path = path
        if path.exists() and not overwrite:
            root = zarr.open_group(str(path), mode="r+")
            old = dict(root["0"].attrs).get(PROGRESS_KEY)
            if old is None:
                raise FileExistsError(f"{str(path)!r} exists and was not written by a windowed run; "
                                      "pass overwrite=True")
            differ = _same_run(old, record)
            if differ:
                raise ValueError(
                    f"{str(path)!r} holds a windowed run with different {', '.join(differ)}; "
                    "pass the same arguments to resume it, or overwrite=True to start again"
                )
            self.record = old
        else:
            self._create(path, record, vol, x_shape, dtype, overwrite, span)
            root = zarr.open_group(str(path), mode="r+")
            self.record = record
        self.root, self.image = root, root["0"]
        self.lead, trail = self.record.get("dropped", (0, 0))
        self.stop = self.record["shape"][0] - trail  # first frame past the image

    @staticmethod
    def _create(path, record, vol: Volume, x_shape, dtype, overwrite, span: int):
        """Lay the store out with :func:`svimg.io.save` (zero frames are not written) and add the carry slots
        (``span``: the unknown frames of one window)."""
        import dask.array
        import xarray as xr
        import zarr

        from .. import io

        (lead, trail), (Tx, C, H, W) = record["dropped"], x_shape
        T = Tx - lead - trail
        shape, dims = ((T, C, H, W), ("t", "c", "y", "x")) if vol.had_channel_axis else ((T, H, W), ("t", "y", "x"))
        coords = {}
        if vol.kind == "xarray" and "t" in vol.template.coords and vol.template.sizes["t"] == T:
            coords["t"] = vol.template.coords["t"]
        attrs = {**(vol.attrs if vol.kind == "xarray" else {}), PROGRESS_KEY: record}
        lazy = dask.array.zeros(shape, chunks=(1, *shape[1:]), dtype=dtype)
        io.save(xr.DataArray(lazy, dims=dims, coords=coords, attrs=attrs), path, overwrite=overwrite)
        root = zarr.open_group(str(path), mode="r+")
        root.create_array(CARRY, shape=(2, span, C, H, W), chunks=(1, 1, C, H, W), dtype=dtype,
                          fill_value=0)
        if lead + trail:
            root.create_array(MARGINS, shape=(lead + trail, C, H, W), chunks=(1, C, H, W), dtype=dtype,
                              fill_value=0)

    def _margin_slot(self, f: int) -> int:
        """Row of MARGINS holding unknown frame ``f`` (one of the dropped ones)."""
        return f if f < self.lead else self.lead + f - self.stop

    def write(self, a: int, frames: np.ndarray):
        """Frames (n, C, H, W) from unknown frame ``a`` on: into the image, the dropped ones into MARGINS."""
        for f, frame in zip(range(a, a + len(frames)), frames):
            if self.lead <= f < self.stop:
                self.image[f - self.lead] = frame[0] if self.image.ndim == 3 else frame
            else:
                self.root[MARGINS][self._margin_slot(f)] = frame

    def _drop_side_arrays(self):
        for name in (CARRY, MARGINS):
            if name in self.root:
                del self.root[name]

    def finish(self, attrs: dict):
        """Record the provenance, mark the run complete and drop the carry and the margins."""
        self.record = {**self.record, "complete": True}
        self.image.attrs.update({PROGRESS_KEY: self.record, **attrs})
        self._drop_side_arrays()

    def frame(self, f: int) -> np.ndarray:
        """Finished unknown frame ``f`` as (C, H, W)."""
        if not self.lead <= f < self.stop:
            return np.asarray(self.root[MARGINS][self._margin_slot(f)])
        x = np.asarray(self.image[f - self.lead])
        return x[None] if self.image.ndim == 3 else x

    def carry(self, slot: int, n: int) -> np.ndarray:
        return np.asarray(self.root[CARRY][slot, :n])

    def commit(self, k: int, a: int, final: np.ndarray, slot: int, carry: np.ndarray, attrs: dict | None):
        """Write final frames from ``a`` and the carry slot, then record window ``k`` as done (last: complete)."""
        self.write(a, final)
        if len(carry):
            self.root[CARRY][slot, :len(carry)] = carry
        self.record = {**self.record, "windows_done": k + 1}
        update = {PROGRESS_KEY: self.record}
        if attrs is not None:  # the last window: provenance, then mark complete and drop the carry
            self.record["complete"] = True
            update.update(attrs)
        self.image.attrs.update(update)
        if attrs is not None:
            self._drop_side_arrays()


def store_is_complete(path) -> bool:
    """False when ``path`` is a zarr store left by an unfinished windowed run (or does not exist), True otherwise."""
    import zarr

    p = Path(path)
    if not p.exists():
        return False
    if not (p / "zarr.json").exists():
        return True  # not a zarr v3 store: written atomically by svimg.io.save or not ours
    node = zarr.open(str(p), mode="r")
    image = node["0"] if isinstance(node, zarr.Group) and "0" in node else node
    record = dict(image.attrs).get(PROGRESS_KEY)
    return record is None or bool(record.get("complete"))


# ---------------------------------------------------------------- the windowed sampler

def sample_windowed(y, op: LinearOperator, prior=None, *, window: int = DEFAULT_WINDOW, overlap: int | None = None,
                    out=None, overwrite: bool = False, seed: int | None = None, progress: bool = True,
                    window_callback=None, final_iters: int = DEFAULT_FINAL_ITERS, keep_margins: bool = False,
                    **sample_kwargs):
    """Restore a long video with :func:`svimg.sample` window by window (module docstring).

    Parameters
    ----------
    y : array, tensor, DataArray, zarr store or path
        The measurement (T, C, H, W) or (T, H, W); stores are read one window at a time.
    op : LinearOperator
        The degradation of the WHOLE video: at most one :class:`~svimg.ops.TemporalPSF`
        composed with per-frame operators (see :func:`split_temporal`).
    prior : as in :func:`svimg.sample` (loaded once for all windows).
    window : int
        Frames per window (default 16).
    overlap : int or None
        Frames shared by neighbouring windows, at least the PSF support and less
        than ``window``; None uses ``max(support, window // 2)``.
    out : None or path ending in ``.zarr``
        None returns the result in memory as ``y``'s type.  A path writes the
        result there frame by frame and returns it as a lazy DataArray; calling
        again with the same arguments resumes an interrupted run (a complete
        store is returned as it is).
    overwrite : bool
        Replace an existing ``out`` instead of resuming it.
    seed : int or None
        One seed for every window (drawn and recorded when None; a resumed run
        reuses the recorded one).  ``generator`` is not accepted: windows must
        be reproducible one by one.
    progress : bool
        A progress bar over windows.
    window_callback : callable(k, start, stop) or None
        Called after window k (frames [start, stop)) is restored and, with
        ``out``, committed to the store; raise from it to stop the run.
    final_iters : int
        CG iterations of the final whole-video data step with ``gamma`` (more
        than one window; 0 skips it, also the noise-free exact step).
    keep_margins : bool
        Return every restored frame, ``op.margins`` past either end of y included (as :func:`svimg.sample`).
    **sample_kwargs
        Passed to :func:`svimg.sample` (nfe, eta, cg_iters, cg_rtol, gamma, noise_std, smooth_t, noise, solver,
        x_T of shape (1, C, H, W), batch_size, device, callback).  ``noise_std`` defaults to
        :func:`svimg.sample`'s; "auto" is estimated once, from the first window's measured frames,
        and that level is used by every window.

    Returns
    -------
    The restoration aligned with y (``op.input_shape(y.shape)`` with ``keep_margins``); an ``out`` store
    holds the same frames (the margins in a side array while the run lasts, for the final step).
    """
    from . import sample
    from .._device import resolve_device
    from ._common import check_flag, resolve_prior

    if "generator" in sample_kwargs:
        raise TypeError("sample_windowed takes seed=, not generator=: every window must be reproducible on its own")
    keep_margins = check_flag(keep_margins, "keep_margins")
    window = check_positive_int(window, "window", minimum=2)
    final_iters = check_positive_int(final_iters, "final_iters", minimum=0)
    psf, spatial = split_temporal(op)
    support = psf.support if psf is not None else 1
    overlap = default_overlap(op, window) if overlap is None else check_positive_int(overlap, "overlap", minimum=0)
    if overlap < support:
        raise ValueError(f"overlap must be at least the PSF support ({support} frames), got {overlap}")
    if overlap >= window:
        raise ValueError(f"overlap must be less than window ({window}), got {overlap}; use a larger window")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise ValueError(f"seed must be an integer in [0, 2**63) or None, got {seed!r}")

    read, vol, T = _frame_source(y)
    first = read(0, 1)
    x_shape = tuple(check_measurement(op, torch.empty((T, *first.shape[1:]), device="meta")))
    Tx, (C, H, W), (lead, trail) = x_shape[0], x_shape[1:], op.margins
    window = min(window, T)
    span = window + Tx - T  # unknown frames of a window ("valid": support - 1 more than measured)
    starts = window_starts(T, window, overlap)
    weights = blend_weights(starts, span)
    total = np.zeros(Tx)
    for a, w in zip(starts, weights):
        total[a:a + span] += w
    dtype = np.float64 if first.dtype == torch.float64 else np.float32
    sample_kwargs["noise_std"] = _window_noise_std(sample_kwargs, lambda: read(0, window), any(op.margins),
                                                   noise_floor(vol.attrs))

    store = None
    if out is not None:
        path = Path(os.fspath(out)).expanduser()
        if path.suffix.lower() != ".zarr":
            raise ValueError(f"out must be a path ending in .zarr (resumable store), got {str(path)!r}")
        record = _layout_record(T, window, overlap, starts, seed, op, x_shape,
                                (0, 0) if keep_margins else (lead, trail))
        if seed is None and path.exists() and not overwrite:
            record["seed"] = _recorded_seed(path)
        if record["seed"] is None:
            record["seed"] = secrets.randbits(63)
        store = _Store(path, record, vol, x_shape, dtype, overwrite, span)
        seed, done = store.record["seed"], store.record["windows_done"]
        if store.record["complete"]:
            from .. import io

            return io.load(path)
    else:
        seed = secrets.randbits(63) if seed is None else seed
        done, result = 0, np.zeros((Tx, C, H, W), dtype=dtype)

    prior = resolve_prior(prior, resolve_device(sample_kwargs.get("device")))
    params = {k: v for k, v in sample_kwargs.items() if k in ("nfe", "eta", "cg_iters", "cg_rtol", "gamma", "noise_std",
                                                                  "noise", "solver", "smooth_t")}
    attrs = provenance("sample_windowed", op, window=window, overlap=overlap, seed=seed, windows=len(starts), **params)

    from tqdm.auto import tqdm

    with tqdm(total=len(starts), initial=done, desc="svimg windows", unit="window", disable=not progress,
              leave=False) as bar:
        carry = store.carry((done - 1) % 2, max(0, starts[done - 1] + span - starts[done])) \
            if (store and 0 < done < len(starts)) else np.zeros((0, C, H, W), dtype=dtype)
        noise_free = sample_kwargs.get("gamma") is None and sample_kwargs["noise_std"] is None
        polish = (psf is not None and len(starts) > 1 and final_iters > 0
                  and (noise_free or sample_kwargs.get("gamma") is not None))
        for k in range(done, len(starts)):
            a, b = starts[k], starts[k] + window
            y_k, op_k, own = _window_problem(read, op, psf, spatial, T, a, b)
            x_k = sample(y_k, op_k, prior, seed=seed, progress=False, keep_margins=True, **sample_kwargs)[own]
            acc = weights[k][:, None, None, None] * x_k.detach().cpu().numpy().astype(np.float64)
            acc[:len(carry)] += carry
            final_stop = starts[k + 1] if k + 1 < len(starts) else a + span  # frames no later window touches
            final = (acc[:final_stop - a] / total[a:final_stop, None, None, None]).astype(dtype)
            carry = acc[final_stop - a:].astype(dtype)
            if store is not None:
                store.commit(k, a, final, k % 2, carry, attrs if k + 1 == len(starts) and not polish else None)
            else:
                result[a:final_stop] = final
            bar.update(1)
            if window_callback is not None:
                window_callback(k, a, b)
    if polish:
        def read_y(frames):  # the whole-video step runs in float64 (float32 CG drifts on box PSFs)
            return torch.cat([read(int(f), int(f) + 1) for f in frames]).to(torch.float64)

        run = dict(n_iter=final_iters, gamma=sample_kwargs.get("gamma"), block=window)
        if noise_free:
            run.update(n_iter=sample_kwargs.get("final_cg_iters", DEFAULT_FINAL_CG_ITERS), tol=0.0, rtol=FINAL_RTOL)
        if store is None:
            x64 = result.astype(np.float64)
            if not (noise_free and _exact_in_memory(op, lambda: read(0, T).to(torch.float64), x64)):
                global_data_step(psf, spatial, read_y, x64, [np.empty_like(x64) for _ in range(3)], **run)
            np.clip(x64, 0, 1, out=result, casting="same_kind")
        else:
            _polish_store(store, psf, spatial, read_y, (Tx, C, H, W), run)
            store.finish(attrs)
    if store is not None:
        from .. import io

        return io.load(store.path)
    if not keep_margins:
        result = result[lead:Tx - trail]
    return vol.wrap(torch.from_numpy(result), attrs)


def _window_noise_std(sample_kwargs: dict, read_first_window, blind_along_t: bool = False, floor: float = 0.0):
    """The noise level every window uses: ``noise_std`` as given, else :func:`svimg.sample`'s default; "auto" is
    estimated once from ``read_first_window()`` and raised to ``floor`` (None: noise-free)."""
    from . import sample

    default = inspect.signature(sample).parameters["noise_std"].default
    noise_std = check_noise_std(sample_kwargs.get("noise_std", default), sample_kwargs.get("gamma"))  # "auto" yields to gamma
    return resolve_noise_std(noise_std, read_first_window(), blind_along_t, floor)[0] if noise_std == AUTO \
        else noise_std


def _exact_in_memory(op, read_all_y, x64: np.ndarray) -> bool:
    """The exact whole-video step as one eigenbasis solve (:mod:`svimg.solvers.eigenbasis`), in place on ``x64``,
    when ``op`` is separable; True when it reached ``FINAL_RTOL`` (else CG continues from the improved x64).
    ``read_all_y()`` returns the whole measurement in float64; it is read only for a separable ``op``."""
    if op.kronecker(x64.shape) is None:
        return False
    direct = eigenbasis_solve(op, read_all_y(), torch.from_numpy(x64), FINAL_RTOL)
    x64[...] = direct[0].numpy()
    return direct[1] < FINAL_RTOL


def _polish_store(store, psf, spatial, read_y, shape, run: dict):
    """:func:`global_data_step` on the store's frames, with x, r, p and H p in temporary float64 .npy memmaps beside it."""
    import tempfile

    T, block = shape[0], run["block"]
    with tempfile.TemporaryDirectory(dir=store.path.parent, prefix=".svimg-final-") as tmp:
        x, *scratch = [np.lib.format.open_memmap(f"{tmp}/{n}.npy", mode="w+", dtype=np.float64, shape=shape)
                       for n in ("x", "r", "p", "hp")]
        for f in range(T):
            x[f] = store.frame(f)
        global_data_step(psf, spatial, read_y, x, scratch, **run)
        for s in range(0, T, block):
            store.write(s, np.clip(x[s:s + block], 0, 1))


def _window_problem(read, op, psf, spatial, T: int, a: int, b: int):
    """(y, operator, positions among its unknowns of the frames the window blends) of the measured frames [a, b):
    ``op`` itself and all its unknowns for a single window or a "valid" PSF (module docstring), else the exact
    rows of [a, b) over every frame they reach (:func:`window_system`) and the frames a..b-1."""
    if psf is None or b - a == T or sum(psf.margins):
        x_frames = op.input_shape((b - a, 1, 1, 1))[0] if psf is not None else b - a
        return read(a, b), (op if psf is not None else spatial), list(range(x_frames))
    frames, M = window_system(psf, T, a, b)
    return read(a, b), _with_spatial(spatial, WindowRows(M)), [frames.index(f) for f in range(a, b)]


def _with_spatial(spatial, rows: WindowRows) -> LinearOperator:
    return rows if isinstance(spatial, Identity) else spatial @ rows


def _recorded_seed(path: Path):
    import zarr

    try:
        record = dict(zarr.open_group(str(path), mode="r")["0"].attrs).get(PROGRESS_KEY) or {}
    except (KeyError, FileNotFoundError, ValueError):
        return None
    return record.get("seed")
