"""A diffusion prior backed by a noise-prediction network: shape handling, precision and devices."""

from __future__ import annotations

import hashlib
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from .._device import resolve_device
from .engine import NetworkEngine

__all__ = ["NetworkPrior", "file_sha256", "MIRRORS", "CYCLE", "flips_value"]

#: ``flips`` that takes one mirror image per timestep, cycling through the four (one network call).
CYCLE = "cycle"
#: The mirror images ``NetworkPrior.eps`` uses, by ``flips``: the flipped axes of each (averaged over
#: for 1, 2, 4; taken one per timestep for CYCLE).
MIRRORS = {1: ((),), 2: ((), (-1,)), 4: ((), (-1,), (-2,), (-2, -1)), CYCLE: ((), (-1,), (-2,), (-2, -1))}


def flips_value(text: str):
    """A command-line ``flips`` ("1", "2", "4" or "cycle") as NetworkPrior takes it (an int, or CYCLE)."""
    return int(text) if text.strip().lstrip("-").isdigit() else text


def file_sha256(path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class NetworkPrior:
    """Prior protocol around ``net(x, t) -> (B, C_out, H, W)`` whose first ``channels`` outputs are eps.

    ``eps(x_t, t)``: x_t (B, C, H, W) in [-1, 1] (any H, W), t (B,) integer timesteps -> eps (B, C, H, W)
    in x_t's dtype and device.  Inputs are reflect-padded to a multiple of ``multiple`` and the
    output is cropped back.  On CUDA the network runs under fp16/bf16 autocast in channels_last;
    on the CPU in float32.  The network follows the input's device on first use.

    ``flips`` (1, 2 or 4) averages the prediction over mirror images of x_t:
    eps(x_t, t) = (1 / |G|) sum_{g in G} g eps_theta(g x_t, t), with G = {identity} (1),
    + left-right flip (2), + up-down and both (4); each g is its own inverse.  A network trained
    on flipped crops predicts nearly the same from each mirror image, and the mean has less
    error; each flip costs one more network call (run one after another: the same peak memory).
    ``flips="cycle"`` (:data:`CYCLE`) makes one call with one mirror image g_k per timestep,
    eps(x_t, t) = g_k eps_theta(g_k x_t, t), k = 0, 1, 2, 3, 0, ... over the four mirrors: the sampler
    averages over the mirrors along its steps at the cost of flips 1.  k counts the timesteps of
    the current descent: it advances when t falls, stays when t repeats (the frames of one step in
    several batches) and restarts at 0 (the identity) when t rises or :meth:`start_descent` is called
    (every sampler run calls it first), so a seeded run gives the same result whatever ran before it
    (another run, a forecast's timing call at a larger t) or how its frames are batched.

    The network runs through :class:`~svimg.priors.engine.NetworkEngine` (ONNX Runtime where it measured
    faster on this machine's CPU, else torch; the same result up to float rounding).

    Attributes: ``betas`` (float64 (N,)), ``channels``, ``dtype`` (compute dtype on the current
    device), ``name``, ``sha256`` (of the weights file, or None), ``config``, ``flips``, ``engine``.
    """

    def __init__(self, net: nn.Module, betas: torch.Tensor, *, channels: int, multiple: int = 1,
                 name: str = "prior", sha256: str | None = None, config: dict | None = None, flips: int = 1):
        if flips != CYCLE and (isinstance(flips, bool) or not isinstance(flips, numbers.Integral) or flips not in MIRRORS):
            raise ValueError(f"flips must be 1, 2 or 4 (mirror images averaged) or {CYCLE!r} (one per timestep), "
                             f"got {flips!r}")
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        if betas.ndim != 1 or len(betas) < 2 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(f"betas must be a 1-D schedule with values in (0, 1), got shape {tuple(betas.shape)}")
        self.net = net.eval().requires_grad_(False)
        self.betas = betas
        self.channels = int(channels)
        self.multiple = int(multiple)
        self.name = name
        self.sha256 = sha256
        self.config = dict(config or {})
        self._flips = flips if flips == CYCLE else int(flips)
        self._descent = (None, 0)  # flips "cycle": (last timestep seen, mirror index)
        self.engine = NetworkEngine(self.net, sha256)

    def __repr__(self):
        return (f"{type(self).__name__}(name={self.name!r}, channels={self.channels}, steps={len(self.betas)}, "
                f"flips={self.flips})")

    @property
    def flips(self) -> int | str:
        """Mirror images ``eps`` averages over (1, 2 or 4), or CYCLE (fixed at construction)."""
        return self._flips

    @property
    def calls_per_eps(self) -> int:
        """Network calls one ``eps`` makes (1 for CYCLE)."""
        return 1 if self._flips == CYCLE else self._flips

    def start_descent(self) -> None:
        """Begin a new run: flips "cycle" takes the identity mirror next, whatever eps calls came before."""
        self._descent = (None, 0)

    def _mirrors(self, t: torch.Tensor) -> tuple:
        """The mirror images of this call: all of ``flips``, or CYCLE's one for timestep ``max(t)``."""
        if self._flips != CYCLE:
            return MIRRORS[self._flips]
        step = int(t.max()) if len(t) else 0
        last, k = self._descent
        k = 0 if last is None or step > last else k + (step < last)
        self._descent = (step, k)
        group = MIRRORS[CYCLE]
        return (group[k % len(group)],)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype: float16 (bfloat16 where supported) on CUDA, float32 on the CPU."""
        if self.device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def to(self, device) -> NetworkPrior:
        """Move the network to ``device`` (channels_last on CUDA); returns self.  ValueError for CUDA without one."""
        device = resolve_device(device)
        fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.net.to(device, memory_format=fmt)
        return self

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise eps(x_t, t) for a batch (the mean over ``flips`` mirror images); see the class docstring.

        Differentiable in x_t (DPS back-propagates through it); the weights never need grad, so
        a call on an x_t that does not require grad records no graph.
        """
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 4 or x_t.shape[1] != self.channels:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must be a (B, {self.channels}, H, W) tensor, got {shape}")
        if not x_t.is_floating_point():
            raise TypeError(f"x_t must be floating point, got {x_t.dtype}")
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        if t.shape != (x_t.shape[0],) or t.is_floating_point() or t.is_complex():
            raise ValueError(f"t must be {x_t.shape[0]} integer timesteps, got {tuple(t.shape)} {t.dtype}")
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= len(self.betas)):
            raise ValueError(f"t must lie in [0, {len(self.betas) - 1}], got {int(t.min())}..{int(t.max())}")
        if x_t.device != self.device:
            self.to(x_t.device)
        mirrors = self._mirrors(t)
        mean = None
        for axes in mirrors:
            e = self._network_eps(x_t.flip(axes) if axes else x_t, t)
            e = e.flip(axes) if axes else e
            mean = e if mean is None else mean + e
        return mean if len(mirrors) == 1 else mean / len(mirrors)

    def _network_eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t) of one network call: padded to ``multiple``, autocast on CUDA, cropped back."""
        h, w = x_t.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        x = x_t.float()
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        cuda = x.device.type == "cuda"
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=self.dtype, enabled=cuda):
            out = self.engine(x, t.long())
        return out[:, : self.channels, :h, :w].to(x_t.dtype).contiguous()

