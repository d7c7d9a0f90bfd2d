"""ADMUNet's ``attention_window``: tiled self-attention equals global attention within each tile, cost linear."""

import math

import pytest
import torch
import torch.nn.functional as F

from svimg.priors.adm import ADMUNet, _Attention

HEADS, CH = 2, 16


def _block(window):
    """An attention block with random weights (proj_out is zero-initialised: randomise it too), float32."""
    torch.manual_seed(0)
    block = _Attention(CH, HEADS, groups=4, window=window)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
    return block


def _by_hand(block, x, win):
    """softmax(q k^T / sqrt(d)) v computed separately over every win x win tile (clipped at the borders).

    GroupNorm and the qkv projection act on the whole map; the legacy head layout reads qkv as
    (heads, 3, d) per pixel.
    """
    b, c, h, w = x.shape
    d = c // HEADS
    qkv = block.qkv(block.norm(x.reshape(b, c, h * w))).reshape(b, HEADS, 3 * d, h, w)
    out = torch.zeros(b, HEADS, d, h, w, dtype=x.dtype)
    for y0 in range(0, h, win):
        for x0 in range(0, w, win):
            tile = qkv[..., y0:y0 + win, x0:x0 + win]
            th, tw = tile.shape[-2:]
            q, k, v = tile.reshape(b, HEADS, 3 * d, th * tw).split(d, dim=2)
            weights = torch.softmax(torch.einsum("bhdl,bhdm->bhlm", q, k) / math.sqrt(d), dim=-1)
            a = torch.einsum("bhlm,bhdm->bhdl", weights, v)
            out[..., y0:y0 + win, x0:x0 + win] = a.reshape(b, HEADS, d, th, tw)
    a = out.reshape(b, c, h * w)
    return (x.reshape(b, c, h * w) + block.proj_out(a)).reshape(b, c, h, w)


def _map(h, w, seed=1):
    return torch.randn(2, CH, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("h, w", [(8, 8), (5, 7), (1, 8)])
def test_a_map_no_larger_than_the_window_is_global_attention_exactly(h, w):
    x = _map(h, w)
    windowed, plain = _block(8), _block(None)
    assert torch.equal(windowed(x), plain(x))
    torch.testing.assert_close(plain(x), _by_hand(plain, x, max(h, w)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("h, w", [(16, 24), (12, 20), (9, 8), (3, 17)])
def test_a_larger_map_is_attention_within_each_tile(h, w):
    """Multiples of the window and not (the padded keys of border tiles must carry no weight)."""
    x = _map(h, w)
    block = _block(8)
    torch.testing.assert_close(block(x), _by_hand(block, x, 8), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(block(x), _block(None)(x))  # and differs from global attention there


def _score_elements(monkeypatch, net, size):
    """Total attention-score entries (queries x keys, over batch and heads) of one forward pass at size x size."""
    seen = []
    sdpa = F.scaled_dot_product_attention

    def counting(q, k, v, *args, **kwargs):
        seen.append(math.prod(q.shape[:-1]) * k.shape[-2])
        return sdpa(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size), torch.tensor([10]))
    monkeypatch.setattr(F, "scaled_dot_product_attention", sdpa)
    return sum(seen)


def test_windowed_attention_cost_is_linear_in_the_pixels(monkeypatch):
    """Score tensor sizes at every attention block (downsampling factor 2), counted through SDPA, not timed."""
    cfg = dict(image_size=16, model_channels=8, num_res_blocks=1, attention_resolutions=(8,), channel_mult=(1, 2),
               num_head_channels=8, norm_groups=4, out_channels=3)
    windowed, plain = ADMUNet(**cfg, attention_window=4), ADMUNet(**cfg)
    blocks = sum(isinstance(m, _Attention) for m in windowed.modules())
    heads = 16 // 8
    for size in (16, 32, 64):
        pixels = (size // 2) ** 2  # positions of the attention map
        assert _score_elements(monkeypatch, windowed, size) == blocks * heads * pixels * 4 ** 2  # each attends 16 keys
        assert _score_elements(monkeypatch, plain, size) == blocks * heads * pixels ** 2
    # 4x the pixels: 4x the scores when windowed, 16x when global
    assert _score_elements(monkeypatch, windowed, 64) == 4 * _score_elements(monkeypatch, windowed, 32)
    assert _score_elements(monkeypatch, plain, 64) == 16 * _score_elements(monkeypatch, plain, 32)
