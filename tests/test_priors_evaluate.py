"""Evaluation helpers of the bundled prior's card, checked against the closed-form Gaussian prior."""

import pytest
import torch

from svimg.priors import GaussianPrior, alphas_cumprod, timestep_for_sigma
from svimg.priors.evaluate import ddim_samples, gaussian_filter_best, tweedie_denoise



def test_tweedie_denoise_is_the_posterior_mean_for_a_gaussian_prior():
    prior = GaussianPrior(mean=0.1, std=0.3, channels=3)
    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 3, 8, 8, generator=g)
    sigma = 0.1
    t = timestep_for_sigma(prior.betas, 2 * sigma)
    a = float(alphas_cumprod(prior.betas)[t])
    x_t = a**0.5 * (2 * y - 1)
    x0 = 0.1 + a**0.5 * 0.09 * (x_t - a**0.5 * 0.1) / (a * 0.09 + 1 - a)
    torch.testing.assert_close(tweedie_denoise(prior, y, sigma, batch=2), ((x0.clamp(-1, 1) + 1) / 2))


def test_gaussian_filter_best_picks_the_best_sigma_of_the_grid():
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 64, generator=g), 9, stride=1, padding=4)
    y = x + 0.1 * torch.randn(x.shape, generator=g)
    p, s, out = gaussian_filter_best(y, x, sigmas=[0.0, 1.0, 2.0])
    assert s in (1.0, 2.0) and out.shape == x.shape
    p0, _, _ = gaussian_filter_best(y, x, sigmas=[0.0])
    assert p > p0 + 3


def test_ddim_samples_are_seeded_and_follow_the_prior():
    prior = GaussianPrior(mean=0.0, std=0.2, channels=3)
    a = ddim_samples(prior, n=4, size=16, steps=20, seed=5)
    assert torch.equal(a, ddim_samples(prior, n=4, size=16, steps=20, seed=5))
    assert a.shape == (4, 3, 16, 16)
    # with fine steps DDIM integrates the probability-flow ODE: samples of N(0, 0.2^2) in [-1, 1]
    # units, i.e. std 0.1 around 0.5 in [0, 1] units (3072 draws)
    fine = ddim_samples(prior, n=4, size=16, steps=500, seed=5)
    assert float(fine.std()) == pytest.approx(0.1, rel=0.06) and float(fine.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(a.std()) < float(fine.std())  # coarse steps shrink the spread
