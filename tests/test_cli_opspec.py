"""svimg.cli.opspec: the --op grammar."""

import numpy as np
import pytest
import torch

from svimg.cli.opspec import GRAMMAR, parse_op, parse_ops
from svimg.ops import Downsample, GaussianBlur, RandomMask, TemporalPSF


def test_each_form():
    assert parse_op("temporal:uniform:13") == TemporalPSF.uniform(13)
    assert parse_op("temporal:uniform:7:zero") == TemporalPSF.uniform(7, boundary="zero")
    assert parse_op("temporal:gaussian:1.5") == TemporalPSF.gaussian(1.5)
    assert parse_op("temporal:gaussian:1:reflect") == TemporalPSF.gaussian(1.0, boundary="reflect")
    blur = parse_op("spatial:blur")
    assert isinstance(blur, GaussianBlur) and (blur.size, blur.sigma) == (13, 2.0)
    blur = parse_op("spatial:blur:5:0.8")
    assert (blur.size, blur.sigma) == (5, 0.8)
    sr = parse_op("spatial:sr:4")
    assert isinstance(sr, Downsample) and sr.factor == 4
    mask = parse_op("spatial:mask:0.25:7")
    assert isinstance(mask, RandomMask) and (mask.ratio, mask.seed) == (0.25, 7)
    assert parse_op("spatial:mask:0.5").seed == 0
    assert parse_op(" Temporal:Uniform:3 ") == TemporalPSF(3)  # case and spaces do not matter
    from svimg.ops import BOUNDARIES
    from svimg.ops.temporal import DEFAULT_BOUNDARY

    assert parse_op("temporal:uniform:7").boundary == DEFAULT_BOUNDARY == TemporalPSF(7).boundary  # the API's
    assert parse_op("temporal:uniform:7:circular") == TemporalPSF(7, boundary="circular")
    assert parse_op("temporal:uniform:7:valid") == TemporalPSF(7, boundary="valid")
    assert "|".join(BOUNDARIES) in GRAMMAR and f"default {DEFAULT_BOUNDARY}" in GRAMMAR


def test_specs_apply_in_the_order_given():
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    op = parse_ops(["temporal:uniform:3", "spatial:blur:3:1", "spatial:sr:2"])
    expected = Downsample(2).forward(GaussianBlur(3, 1.0).forward(TemporalPSF(3).forward(x)))
    torch.testing.assert_close(op.forward(x), expected)
    assert [type(f).__name__ for f in op.factors()] == ["Downsample", "GaussianBlur", "TemporalPSF"]
    same = parse_ops("temporal:uniform:3, spatial:blur:3:1,spatial:sr:2")
    torch.testing.assert_close(same.forward(x), expected)
    assert parse_ops(["spatial:sr:2"]).factor == 2


@pytest.mark.parametrize("spec, match", [
    ("temporal:box:3", "unknown operator"),
    ("temporal:uniform", "1 required"),
    ("temporal:uniform:3:circular:x", "1 required"),
    ("temporal:uniform:three", "W .* integer"),
    ("temporal:uniform:0", "width"),
    ("temporal:uniform:3:mirror", "boundary must be one of"),
    ("temporal:gaussian:-1", "sigma"),
    ("spatial:blur:5", "optional"),
    ("spatial:blur:4:1", "odd"),
    ("spatial:sr:1.5", "integer"),
    ("spatial:mask:1.5", "ratio"),
    ("", "unknown operator"),
])
def test_bad_specs_name_the_spec_and_the_grammar(spec, match):
    with pytest.raises(ValueError, match=match) as info:
        parse_op(spec)
    message = str(info.value)
    assert repr(spec) in message and "temporal:uniform:W[:BOUNDARY]" in message


def test_bad_containers():
    with pytest.raises(ValueError, match="no operator"):
        parse_ops([])
    with pytest.raises(ValueError, match="no operator"):
        parse_ops(" , ")
    with pytest.raises(TypeError, match="string"):
        parse_op(7)


def test_mask_spec_is_deterministic():
    a = parse_op("spatial:mask:0.5:3").mask_for(6, 6)
    b = parse_op("spatial:mask:0.5:3").mask_for(6, 6)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
