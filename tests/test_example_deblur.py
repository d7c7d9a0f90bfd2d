"""examples/deblur_cg.py runs end to end at a tiny size and shows what it claims."""

import importlib.util
from pathlib import Path

import pytest


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "deblur_cg.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("deblur_cg", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deblur_example_tiny(example, capsys):
    """6 frames under a 13-frame PSF: circular is invertible (exact recovery), zero keeps rank 1 of 6."""
    results = example.main(["--clip", "synthetic", "--frames", "6", "--size", "8", "--iters", "50"])
    out = capsys.readouterr().out
    assert "synthetic: 6 frames of 8x8, TemporalPSF(13), 50 CG iterations" in out
    circular, zero = results["circular"], results["zero"]
    assert circular["rank"] == 6 and circular["cg_psnr_worst"] > 100 > circular["blurred_psnr"]
    assert zero["rank"] == 1 and zero["cg_psnr_worst"] < 60
    assert out.count("\n") == 4  # title, header, one line per boundary


def test_synthetic_clip_is_a_valid_video(example):
    x = example.moving_pattern(5, 16)
    assert x.shape == (5, 3, 16, 16) and x.min() >= 0 and x.max() <= 1
    assert (x[1:] != x[:-1]).any(axis=(1, 2, 3)).all()  # it moves
