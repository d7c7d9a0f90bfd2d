"""ADM (guided-diffusion) UNet, written for svimg, with state_dict keys identical to the public checkpoints.

Architecture (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs"):

* sinusoidal timestep embedding -> ``time_embed`` (Linear, SiLU, Linear) of width 4 * model_channels;
* ``input_blocks``: a 3x3 conv, then per resolution level ``num_res_blocks`` residual blocks
  (optionally followed by multi-head self-attention when the downsampling factor ``ds`` is in
  ``attention_resolutions``), and between levels a down-sampling residual block
  (``resblock_updown``) or a strided conv;
* ``middle_block``: ResBlock, attention, ResBlock;
* ``output_blocks``: mirror image with ``num_res_blocks + 1`` blocks per level fed with the
  skip connections, up-sampling at the end of each level but the last;
* ``out``: GroupNorm, SiLU, 3x3 conv to ``out_channels`` (2C with learned sigma; eps is the first C).

Residual blocks with scale-shift norm compute ``h = GN(h) * (1 + scale) + shift`` with
``(scale, shift)`` from the time embedding.  Attention uses guided-diffusion's "legacy" head
layout: the qkv projection is read as (heads, 3, head_channels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ADMUNet", "ADM256_UNCOND", "timestep_embedding", "parse_resolutions"]

#: The configuration of guided-diffusion's ``256x256_diffusion_uncond.pt``.
ADM256_UNCOND = dict(
    image_size=256,
    in_channels=3,
    model_channels=256,
    out_channels=6,
    num_res_blocks=2,
    attention_resolutions=(32, 16, 8),
    channel_mult=(1, 1, 2, 2, 4, 4),
    num_head_channels=64,
    num_heads=4,
    resblock_updown=True,
    use_scale_shift_norm=True,
    conv_resample=True,
)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t w_k), sin(t w_k)]``, ``w_k = max_period^(-k / (dim/2))``, k < dim/2."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class _GroupNorm(nn.GroupNorm):
    """GroupNorm evaluated in float32 whatever the input dtype (as ADM does under fp16)."""

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return _GroupNorm(groups, channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class _Resample(nn.Module):
    """2x nearest up-sampling or 2x down-sampling, with a 3x3 conv (``conv`` key) when ``use_conv``."""

    def __init__(self, channels: int, up: bool, use_conv: bool):
        super().__init__()
        self.up = up
        if use_conv:
            self.op = None if up else nn.Conv2d(channels, channels, 3, stride=2, padding=1)
            self.conv = nn.Conv2d(channels, channels, 3, padding=1) if up else None
        else:
            self.op = self.conv = None

    def forward(self, x):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            return self.conv(x) if self.conv is not None else x
        return self.op(x) if self.op is not None else F.avg_pool2d(x, 2)


class _ResBlock(nn.Module):
    """Residual block conditioned on the time embedding; ``up``/``down`` resample inside the block."""

    def __init__(self, channels, emb_channels, out_channels, scale_shift, groups, up=False, down=False, dropout=0.0):
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(_norm(channels, groups), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.resample = up or down
        if self.resample:
            self.h_upd = _Resample(channels, up=up, use_conv=False)
            self.x_upd = _Resample(channels, up=up, use_conv=False)
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if scale_shift else out_channels))
        self.out_layers = nn.Sequential(
            _norm(out_channels, groups), nn.SiLU(), nn.Dropout(dropout),
            _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        if self.resample:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class _Attention(nn.Module):
    """Multi-head self-attention softmax(q k^T / sqrt(d)) v plus the input.

    ``window=None`` attends over all pixels (ADM).  ``window=w`` attends within non-overlapping
    w x w tiles (the map is zero-padded to whole tiles and padded keys are masked out), so the cost
    is linear in the pixel count; a map of at most w x w is one tile, identical to global attention.
    """

    def __init__(self, channels: int, num_heads: int, groups: int, window: int | None = None):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention: {channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.window = window
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x):
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        qkv = self.qkv(self.norm(flat)).reshape(b, 3 * c, h, w)
        win = self.window
        if win is None or (h <= win and w <= win):
            a = self._attend(qkv, None)
        else:
            ph, pw = -h % win, -w % win
            tiles = _to_tiles(F.pad(qkv, (0, pw, 0, ph)), win)
            valid = _to_tiles(F.pad(qkv.new_ones(1, 1, h, w, dtype=torch.bool), (0, pw, 0, ph)), win)
            a = _from_tiles(self._attend(tiles, valid.repeat(b, 1, 1, 1)), b, h + ph, w + pw)[..., :h, :w]
        return (flat + self.proj_out(a.reshape(b, c, h * w))).reshape(b, c, h, w)

    def _attend(self, qkv, valid):
        """(N, 3C, h, w) -> (N, C, h, w); legacy head layout (N, heads, 3 * d, L); ``valid`` (N, 1, h, w) masks keys."""
        n, c3, h, w = qkv.shape
        d = c3 // (3 * self.num_heads)
        q, k, v = qkv.reshape(n * self.num_heads, 3 * d, h * w).transpose(1, 2).split(d, dim=2)
        mask = None
        if valid is not None:
            mask = valid.reshape(n, 1, h * w).repeat_interleave(self.num_heads, 0)[:, None]
        a = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], attn_mask=mask)[:, 0]
        return a.transpose(1, 2).reshape(n, c3 // 3, h, w)


def _to_tiles(x, win):
    """(B, C, H, W) with H, W multiples of ``win`` -> (B * nH * nW, C, win, win), tiles in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // win, win, w // win, win).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, c, win, win)


def _from_tiles(x, b, h, w):
    """Inverse of :func:`_to_tiles`."""
    win, c = x.shape[-1], x.shape[1]
    x = x.reshape(b, h // win, w // win, c, win, win).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


class _Seq(nn.Sequential):
    """Sequential that passes the time embedding to residual blocks only."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, _ResBlock) else layer(x)
        return x


def parse_resolutions(attention_resolutions, image_size: int) -> set[int]:
    """Image resolutions (e.g. "32,16,8" or (32, 16, 8)) -> downsampling factors ``image_size // r``."""
    if isinstance(attention_resolutions, str):
        attention_resolutions = [int(r) for r in attention_resolutions.split(",") if r.strip()]
    out = set()
    for r in attention_resolutions:
        if r <= 0 or image_size % r:
            raise ValueError(f"attention_resolutions: {r} does not divide image_size={image_size}")
        out.add(image_size // r)
    return out


class ADMUNet(nn.Module):
    """guided-diffusion ``UNetModel`` (2-D, unconditional).  ``forward(x, t)`` -> (B, out_channels, H, W).

    ``attention_resolutions`` are image resolutions at ``image_size`` (as guided-diffusion's flags);
    ``num_head_channels`` (if > 0) fixes the channels per head, else ``num_heads`` heads are used.
    ``norm_groups`` is the GroupNorm group count (32 in ADM; it changes no parameter shape).
    ``attention_window`` (None in ADM) restricts attention to tiles of that many positions a side
    (no parameter changes; cost linear in the frame area).
    H and W must be multiples of ``self.multiple`` = 2 ** (len(channel_mult) - 1).
    """

    def __init__(
        self,
        image_size: int = 256,
        in_channels: int = 3,
        model_channels: int = 256,
        out_channels: int = 6,
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] | str = (32, 16, 8),
        channel_mult: Sequence[int] = (1, 1, 2, 2, 4, 4),
        num_head_channels: int = 64,
        num_heads: int = 4,
        resblock_updown: bool = True,
        use_scale_shift_norm: bool = True,
        conv_resample: bool = True,
        dropout: float = 0.0,
        norm_groups: int = 32,
        attention_window: int | None = None,
    ):
        super().__init__()
        if attention_window is not None and attention_window < 1:
            raise ValueError(f"attention_window must be None or a positive int, got {attention_window}")
        if model_channels <= 0 or model_channels % norm_groups:
            raise ValueError(f"model_channels must be a positive multiple of norm_groups={norm_groups}, got {model_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.multiple = 2 ** (len(channel_mult) - 1)
        attn_ds = parse_resolutions(attention_resolutions, image_size)
        emb_ch = 4 * model_channels

        def res(ch_in, ch_out, **kw):
            return _ResBlock(ch_in, emb_ch, ch_out, use_scale_shift_norm, norm_groups, dropout=dropout, **kw)

        def attn(ch):
            heads = ch // num_head_channels if num_head_channels > 0 else num_heads
            return _Attention(ch, heads, norm_groups, window=attention_window)

        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        ch = channel_mult[0] * model_channels
        self.input_blocks = nn.ModuleList([_Seq(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skips, ds = [ch], 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attn_ds:
                    layers.append(attn(ch))
                self.input_blocks.append(_Seq(*layers))
                skips.append(ch)
            if level != len(channel_mult) - 1:
                down = res(ch, ch, down=True) if resblock_updown else _Resample(ch, up=False, use_conv=conv_resample)
                self.input_blocks.append(_Seq(down))
                skips.append(ch)
                ds *= 2
        self.middle_block = _Seq(res(ch, ch), attn(ch), res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skips.pop(), mult * model_channels)]
                ch = mult * model_channels
                if ds in attn_ds:
                    layers.append(attn(ch))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True) if resblock_updown else _Resample(ch, up=True, use_conv=conv_resample))
                    ds //= 2
                self.output_blocks.append(_Seq(*layers))
        self.out = nn.Sequential(_norm(ch, norm_groups), nn.SiLU(), _zero(nn.Conv2d(ch, out_channels, 3, padding=1)))
        self.model_channels = model_channels

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.model_channels).to(self.time_embed[0].weight.dtype))
        h, hs = x, []
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)
