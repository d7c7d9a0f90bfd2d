"""The DDS timestep schedule (svimg.sampling.schedule)."""

import math
import warnings

import pytest
import torch

from svimg.sampling import DDSSchedule


def test_nfe20_timesteps_are_950_to_0_and_pairs_end_at_minus_one():
    s = DDSSchedule(20)
    assert s.skip == 50
    assert s.timesteps == (950, 900, 850, 800, 750, 700, 650, 600, 550, 500,
                           450, 400, 350, 300, 250, 200, 150, 100, 50, 0)
    pairs = s.pairs()
    assert len(pairs) == 20
    assert pairs[0] == (950, 900) and pairs[-2] == (50, 0) and pairs[-1] == (0, -1)


@pytest.mark.parametrize("nfe", [1, 2, 10, 100, 1000])
def test_divisible_nfe_starts_at_1000_minus_skip(nfe):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = DDSSchedule(nfe)
    assert len(s.timesteps) == nfe == len(s)
    assert s.timesteps[0] == 1000 - 1000 // nfe and s.timesteps[-1] == 0


def test_alpha_bar_is_cumulative_product_and_one_at_minus_one():
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    s = DDSSchedule(20, betas)
    assert s.alpha_bar(-1) == 1.0
    assert s.alpha_bar(0) == pytest.approx(1 - 1e-4, rel=1e-15)
    assert s.alpha_bar(950) == pytest.approx(float(torch.prod(1 - betas[:951])), rel=1e-12)
    with pytest.raises(ValueError, match="t must be in"):
        s.alpha_bar(1000)


def test_renoise_coefficients_follow_the_equations():
    s = DDSSchedule(20)
    a = s.alpha_bar(900)
    sa, c1, c2 = s.renoise_coefficients(900, 0.15)
    assert sa == pytest.approx(math.sqrt(a))
    assert c1 == pytest.approx(math.sqrt(1 - a) * 0.15)
    assert c2 == pytest.approx(math.sqrt(1 - a) * math.sqrt(1 - 0.15**2))
    assert s.renoise_coefficients(-1, 0.8) == (1.0, 0.0, 0.0)


def test_non_divisible_nfe_warns_with_the_timesteps_used():
    with pytest.warns(UserWarning, match=r"timesteps 666, 333, 0"):
        s = DDSSchedule(3)
    assert s.timesteps == (666, 333, 0)
    with pytest.warns(UserWarning, match="not a multiple of nfe=7"):
        assert len(DDSSchedule(7).timesteps) == 7


@pytest.mark.parametrize("nfe, exc, msg", [
    (0, ValueError, "nfe"),
    (1001, ValueError, r"nfe must be in 1\.\.1000 .*got 1001"),
    (2.5, TypeError, "nfe"),
    (True, TypeError, "nfe"),
])
def test_bad_nfe_raises_naming_it(nfe, exc, msg):
    with pytest.raises(exc, match=msg):
        DDSSchedule(nfe)


def test_bad_betas_raise():
    with pytest.raises(ValueError, match="betas"):
        DDSSchedule(10, torch.zeros(1000))
