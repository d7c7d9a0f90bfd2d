"""Diffusion priors: anything with ``betas``, ``channels``, ``dtype`` and ``eps(x_t, t)``.

``x_t`` is a (B, C, H, W) batch in [-1, 1] (time is the batch axis for videos) and ``t`` (B,)
integer timesteps of the training schedule ``betas`` (float64, usually 1000 linear steps
1e-4..0.02); ``eps`` returns the predicted noise, so Tweedie's estimate is
``x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)`` with ``a_t = prod_{s<=t} (1 - beta_s)``.

* ``bundled(flips="cycle")``: the small ADM UNet trained by this project (default of ``svimg.sample``),
  one mirror image of the input per timestep (``NetworkPrior`` ``flips``; 4 averages four per step
  at four times the cost);
* ``adm(path, **config)``: guided-diffusion checkpoints (e.g. 256x256_diffusion_uncond.pt);
* ``from_diffusers(model_or_path)``: a diffusers UNet2DModel;
* ``GaussianPrior(mean, std)``: closed-form pixelwise Gaussian prior (tests, checks);
* ``load(spec, flips=None)``: "bundled" | "adm:PATH" | "diffusers:PATH" | PATH of a weights file;
* ``train_prior(sources, out)``: train a prior on your own images, videos or stacks (``svimg train-prior``).
"""

from .adm import ADM256_UNCOND, ADMUNet
from .analytic import GaussianPrior
from .base import NetworkPrior
from .hf import from_diffusers
from .loaders import adm, bundled, load
from .schedule import alphas_cumprod, linear_betas, timestep_for_sigma
from .user_training import train_prior

__all__ = [
    "ADM256_UNCOND", "ADMUNet", "GaussianPrior", "NetworkPrior", "adm", "alphas_cumprod", "bundled",
    "from_diffusers", "linear_betas", "load", "timestep_for_sigma", "train_prior",
]
