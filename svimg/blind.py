"""Blind temporal deblurring: the paper's Algorithm 2 (Appendix B) with a classical first estimate.

``sample(y, spatial_op)`` restores ``y = S P x`` when the temporal PSF P is
unknown (S, optional, is a known per-frame operator):

1. **Initial PSF** (:func:`estimate_psf`): every candidate (uniform widths,
   Gaussian sigmas) is scored by the marginal likelihood of ``y`` under a
   smoothness prior on each pixel's time series, and the best one is kept.
2. **Stage 1**: :func:`svimg.sample` with ``S @ P0``.
3. **Refined PSF** (:func:`refine_psf`): non-negative least squares for the
   kernel k in ``y = S conv(x1, k)`` with ``sum(k) = 1``, from the stage-1 video x1.
4. **Stage 2**: :func:`svimg.sample` with ``S @ P1``, same seed, when P1 explains
   y better than P0 by the score of step 1.  Otherwise P1 is noise that x1's
   errors put into the kernel (with an exact P0, NNLS can only add noise), the
   second run is skipped and the stage-1 video and P0 are returned.

Why a marginal likelihood and not a residual.  With a circular boundary and no
noise, every invertible candidate reproduces y exactly, so a plain residual
cannot discriminate.  Adding a prior and keeping the best (x, k) pair (a
regularised reconstruction's objective) does not help either: the narrower the
kernel, the less the reconstruction has to amplify, so it always prefers the
narrowest kernel (Levin et al., "Understanding and evaluating blind
deconvolution algorithms", CVPR 2009).  Integrating x out instead adds the
log-volume term that balances that bias.  Since spatial operators act on every
frame alike and the PSF on every pixel's time series alike, they commute:
``y = P (S x)``, so the PSF can be scored on y's time series without S.  The
model, per time series (T frames, N series)::

    z = mu 1 + u,   u ~ N(0, c (D^T D)^+),   y = M z + n,   n ~ N(0, s I)

with D the first difference (a random walk: the clip is not assumed
periodic), a flat prior on the mean mu, c and s fitted per candidate by
maximum likelihood (s at least the 8-bit quantisation variance, or fixed at
``noise_std**2``).  Removing the direction M 1 leaves the T - 1 dimensional
Gaussian ``Q^T y ~ N(0, c Q^T M (D^T D)^+ M^T Q + s I)``; the score is its
negative log likelihood per series plus ``log |M 1|`` (the flat prior's
Jacobian; constant unless the boundary is "zero").  Only the T x T Gram matrix
``Y Y^T`` of the time series enters, so scoring costs O(T^3) per candidate
whatever the frame size.

With the "valid" boundary (the default: a clip cut from a longer recording) a
candidate of k taps maps ``T + k - 1`` unknown frames z to the T measured ones
(M is (T, T + k - 1), D the difference over z's frames); the score is still a
density of the same T - 1 dimensional ``Q^T y``, so candidates of every width
compare, and the restorations use the same model (:func:`svimg.sample`).
"""

from __future__ import annotations

import inspect
import numbers
import secrets

import numpy as np
import torch
from scipy.optimize import minimize, nnls

from ._convert import to_volume
from ._provenance import provenance
from ._validate import check_positive_int
from .ops.base import Identity, LinearOperator
from .ops.temporal import BOUNDARIES, DEFAULT_BOUNDARY, TemporalPSF
from .sampling import sample as _dds_sample
from .sampling.noise_level import QUANTIZATION_STD

__all__ = [
    "sample",
    "estimate_psf",
    "score_psfs",
    "refine_psf",
    "candidate_psfs",
    "equivalent_width",
    "DEFAULT_SIGMAS",
    "QUANTISATION_VAR",
    "SUM_WEIGHT",
]

DEFAULT_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0)
QUANTISATION_VAR = QUANTIZATION_STD**2  # variance of 8-bit rounding, the least noise a video can have
SUM_WEIGHT = 1e6  # weight of the sum-to-one row in refine_psf, relative to the mean diagonal of the normal matrix
_NOISE_STD = inspect.signature(_dds_sample).parameters["noise_std"].default  # svimg.sample's default, followed here


def _check_boundary(boundary: str) -> str:
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    return boundary


def _check_spatial(spatial_op) -> LinearOperator:
    """None -> Identity; otherwise a per-frame operator (no TemporalPSF inside)."""
    from .sampling.windows import split_temporal

    if spatial_op is None:
        return Identity()
    psf, spatial = split_temporal(spatial_op, "spatial_op")
    if psf is not None:
        raise ValueError(f"spatial_op must not contain a TemporalPSF (the PSF is what is estimated), "
                         f"got {spatial_op!r}")
    return spatial


def candidate_psfs(T: int, widths=None, sigmas=DEFAULT_SIGMAS, boundary: str = DEFAULT_BOUNDARY) -> list[TemporalPSF]:
    """The default candidates: uniform widths (1 .. min(T - 1, 21) when None) and Gaussians of the given sigmas."""
    T = check_positive_int(T, "T", minimum=2)
    widths = range(1, min(T - 1, 21) + 1) if widths is None else widths
    out = [TemporalPSF(int(w), boundary=boundary) for w in widths]
    return out + [TemporalPSF.gaussian(float(s), boundary=boundary) for s in sigmas]


def equivalent_width(psf: TemporalPSF) -> float:
    """The width of the uniform PSF with the same variance: ``sqrt(12 var + 1)``, var = sum_j k_j (j - mean)^2.

    Exact for uniform kernels (a box of w frames has variance (w^2 - 1) / 12).
    """
    if not isinstance(psf, TemporalPSF):
        raise TypeError(f"psf must be a TemporalPSF, got {type(psf).__name__}")
    k = psf.kernel
    j = np.arange(k.size)
    mean = float(k @ j)
    return float(np.sqrt(12.0 * float(k @ (j - mean) ** 2) + 1.0))


def _gram(v: torch.Tensor, w: torch.Tensor | None = None) -> np.ndarray:
    """The T x T matrix ``V W^T`` of the time series of two (T, ...) volumes (``V V^T`` when w is None), float64."""
    V = v.reshape(v.shape[0], -1).to(torch.float64)
    W = V if w is None else w.reshape(w.shape[0], -1).to(torch.float64)
    return (V @ W.T).cpu().numpy()


def _series(y: torch.Tensor) -> tuple[np.ndarray, int]:
    """(Gram matrix of y's time series, number of series), leaving out series that are zero in every frame
    (pixels a mask removed carry no information about the PSF)."""
    Y = y.reshape(y.shape[0], -1)
    keep = Y.abs().amax(dim=0) > 0
    if not bool(keep.any()):
        raise ValueError("y is zero everywhere; there is nothing to estimate a PSF from")
    return _gram(Y[:, keep]), int(keep.sum())


def _nll(gram: np.ndarray, n: int, M: np.ndarray, noise_var: float | None) -> float:
    """Negative log marginal likelihood per time series of the model in the module docstring (constants dropped);
    M is (T measured, T_z unknown) frames."""
    T = M.shape[0]
    m = M.sum(axis=1)
    Q = np.linalg.svd(np.eye(T) - np.outer(m, m) / (m @ m))[0][:, : T - 1]  # orthonormal basis of m's complement
    D = np.diff(np.eye(M.shape[1]), axis=0)
    B = Q.T @ M @ np.linalg.pinv(D.T @ D) @ M.T @ Q
    b, V = np.linalg.eigh((B + B.T) / 2)
    b = np.maximum(b, 0.0)
    q = np.einsum("ti,tu,ui->i", V, Q.T @ gram @ Q, V) / n  # mean squared projection per series
    floor = QUANTISATION_VAR if noise_var is None else noise_var

    def f(p):
        v = np.exp(p[0]) * b + floor + (np.exp(p[1]) if noise_var is None else 0.0)
        g = 0.5 * (1.0 / v - q / v**2)
        grad = [np.sum(g * np.exp(p[0]) * b), np.sum(g) * np.exp(p[1]) if noise_var is None else 0.0]
        return 0.5 * np.sum(q / v + np.log(v)), np.array(grad)

    lc = np.log(max(float(q.sum() / max(b.sum(), 1e-300)), 1e-30))  # moment estimate of log c
    lq = np.log(float(q.mean()) + floor)
    bounds = [(lc - 30.0, lc + 10.0), (np.log(floor) - 30.0, lq + 1.0)]
    starts = [(lc, np.log(floor)), (lc - 4.0, lq)]
    best = min((minimize(f, s, jac=True, method="TNC", bounds=bounds) for s in starts), key=lambda r: r.fun)
    return float(best.fun + np.log(np.linalg.norm(m)))


def _check_support(support) -> int:
    support = check_positive_int(support, "support")
    if support % 2 == 0:
        raise ValueError(f"support must be odd so the kernel stays centred, got {support}")
    return support


def _check_noise_std(noise_std) -> float | None:
    if noise_std is None:
        return None
    if isinstance(noise_std, bool) or not isinstance(noise_std, numbers.Real) or not noise_std > 0:
        raise ValueError(f"noise_std must be a positive number (standard deviation in [0, 1] units) or None, "
                         f"got {noise_std!r}")
    return float(noise_std) ** 2


def score_psfs(y, candidates=None, *, boundary: str = DEFAULT_BOUNDARY, noise_std: float | None = None):
    """Score temporal PSFs for the measurement ``y`` (module docstring); returns [(psf, score), ...], best first.

    ``candidates``: TemporalPSFs, or None for :func:`candidate_psfs` with ``boundary``.
    ``noise_std``: the measurement noise's standard deviation when known; None fits it
    (at least the 8-bit quantisation level).  The score is a negative log likelihood
    in nats per pixel time series: differences between candidates are log odds.
    """
    vol = to_volume(y, "y")
    T = vol.tensor.shape[0]
    if T < 3:
        raise ValueError(f"y needs at least 3 frames to estimate a temporal PSF, got {T}")
    noise_var = _check_noise_std(noise_std)
    if candidates is None:
        candidates = candidate_psfs(T, boundary=_check_boundary(boundary))
    candidates = list(candidates)
    if not candidates or not all(isinstance(c, TemporalPSF) for c in candidates):
        raise TypeError("candidates must be a non-empty sequence of svimg.ops.TemporalPSF "
                        "(or None for the default set)")
    gram, n = _series(vol.tensor)
    scored = [(psf, _nll(gram, n, psf.matrix(psf.input_shape((T,))[0]), noise_var)) for psf in candidates]
    return sorted(scored, key=lambda item: item[1])


def estimate_psf(y, candidates=None, *, boundary: str = DEFAULT_BOUNDARY, noise_std: float | None = None) -> TemporalPSF:
    """The candidate PSF that best explains ``y`` (:func:`score_psfs`, the first of its list)."""
    return score_psfs(y, candidates, boundary=boundary, noise_std=noise_std)[0][0]


def refine_psf(y, x, spatial_op=None, *, support: int | None = None, boundary: str = DEFAULT_BOUNDARY) -> TemporalPSF:
    """Re-estimate the PSF from a restored video ``x`` by non-negative least squares::

        k = argmin_k  sum_pixels || y - conv(S x, k) ||^2   subject to  k >= 0,  sum(k) = 1

    ``conv`` is the TemporalPSF convolution with ``boundary`` and a kernel of
    ``support`` taps (odd; None: T or T - 1, whichever is odd, at most 21).  With "valid",
    x holds the restored unknown frames, ``e >= 0`` more than y, y's frame t centred on x's
    ``t + lead`` (``lead, _ = TemporalPSF(e + 1).margins``, as :func:`svimg.sample` with
    ``keep_margins`` returns them); the sum runs over the frames of y whose exposure of
    ``support`` taps lies inside x.
    The problem is solved on its normal equations (only T x T Gram matrices of
    the time series are formed): with ``G = R^T R`` (Cholesky) and ``d = R^-T b``,
    ``||R k - d||^2`` equals the objective up to a constant.  The sum-to-one
    constraint is one extra row ``sqrt(rho) 1^T k = sqrt(rho)`` with
    ``rho = SUM_WEIGHT * trace(G) / support`` (a heavily weighted row: it holds
    to about 1e-6), solved by ``scipy.optimize.nnls``; the kernel is then
    divided by its sum, and zero taps at both ends are trimmed in pairs (the
    kernel stays centred).
    """
    spatial = _check_spatial(spatial_op)
    boundary = _check_boundary(boundary)
    yv, xv = to_volume(y, "y").tensor, to_volume(x, "x").tensor
    T = yv.shape[0]
    if T < 3:
        raise ValueError(f"y needs at least 3 frames to estimate a temporal PSF, got {T}")
    with torch.no_grad():
        z = spatial.forward(xv.to(yv.dtype))
    extra = z.shape[0] - T if boundary == "valid" else 0
    if tuple(z.shape[1:]) != tuple(yv.shape[1:]) or extra < 0 or (extra and boundary != "valid"):
        raise ValueError(f"spatial_op maps x of shape {tuple(xv.shape)} to {tuple(z.shape)}, but y has shape "
                         f"{tuple(yv.shape)} (x needs y's frames, or more with the 'valid' boundary)")
    support = min(T if T % 2 else T - 1, 21) if support is None else _check_support(support)
    taps = np.eye(support)
    rows = slice(0, T)
    if boundary == "valid":  # y's frame t is row t + lead of the shifts (the exposures inside x)
        lead = TemporalPSF(extra + 1).margins[0] - TemporalPSF(support).margins[0]
        rows = slice(max(0, -lead), min(T, z.shape[0] - support + 1 - lead))
        if rows.start >= rows.stop:
            raise ValueError(f"refine_psf: x of {z.shape[0]} frames holds no exposure of {support} taps "
                             f"around y's {T} frames; give a smaller support")
    shifts = [TemporalPSF(kernel=tap, boundary=boundary, normalize=False).matrix(z.shape[0]) for tap in taps]
    if boundary == "valid":
        shifts = [E[rows.start + lead:rows.stop + lead] for E in shifts]
    czz, cyz = _gram(z), _gram(yv, z)[rows]
    G = np.array([[np.sum(Ei * (Ej @ czz)) for Ej in shifts] for Ei in shifts])
    b = np.array([np.sum(Ej * cyz) for Ej in shifts])
    scale = np.trace(G) / support
    R = np.linalg.cholesky(G + 1e-12 * scale * np.eye(support)).T
    d = np.linalg.solve(R.T, b)
    rho = np.sqrt(SUM_WEIGHT * scale)
    k, _ = nnls(np.vstack([R, rho * np.ones(support)]), np.append(d, rho))
    if not k.sum() > 0:
        raise ValueError("refine_psf: x explains none of y (the least-squares kernel is zero)")
    while k.size > 1 and k[0] == 0 and k[-1] == 0:
        k = k[1:-1]
    return TemporalPSF(kernel=k, boundary=boundary)


def sample(y, spatial_op=None, prior=None, *, candidates=None, boundary: str = DEFAULT_BOUNDARY,
           noise_std=_NOISE_STD, support: int | None = None, seed: int | None = None,
           return_info: bool = False, channel_axis: int | None = None, **sample_kwargs):
    """Blind temporal deblurring (module docstring): estimate the PSF, restore, refine the PSF, restore again.

    Parameters
    ----------
    y : array, tensor or DataArray
        The measurement ``S P x``, (T, C, H, W) or (T, H, W) in [0, 1].
    spatial_op : LinearOperator or None
        The known per-frame part S (None: no spatial degradation).
    prior : as in :func:`svimg.sample` (loaded once for both stages).
    candidates, boundary : see :func:`score_psfs` (the initial estimate).
    noise_std : None, float >= 0 or "auto"
        The measurement noise's standard deviation ("auto": estimated once from y,
        :func:`svimg.sampling.noise_level.estimate_noise_std`), used both to score
        the PSFs and by both stages' data steps; the default is :func:`svimg.sample`'s.
    support : int or None
        Taps of the refined kernel (:func:`refine_psf`).
    seed : int or None
        One seed for both stages (drawn when None), so they differ only by the PSF.
    return_info : bool
        Also return a dict with ``stage1`` (the stage-1 video, y's type),
        ``initial_psf``, ``refined_psf``, ``accepted``, ``scores`` ([(psf, score)]
        of the candidates, best first) and ``seed``.
    channel_axis : int or None
        Where a 4-D array ``y`` keeps its channels (-1 for (T, H, W, C)), as in :func:`svimg.sample`;
        the videos returned have them there too.
    **sample_kwargs
        Passed to :func:`svimg.sample` (nfe, eta, cg_iters, gamma, smooth_t, noise, keep_margins, ...).
        With the "valid" boundary the PSF is refined from stage 1's every restored frame.

    Returns
    -------
    (video, psf) or (video, psf, info): the restoration in y's type (xarray gains
    provenance naming both PSFs) and the PSF it used: the refined one when its
    score beats the initial one's (stage 2 ran), else the initial one (stage 1's
    video).  ``info`` also holds ``refined_psf`` (the NNLS proposal) and ``accepted``.
    """
    from ._device import resolve_device
    from .sampling._common import resolve_prior
    from .sampling.noise_level import check_noise_std, noise_floor, resolve_noise_std

    if "generator" in sample_kwargs:
        raise TypeError("blind.sample takes seed=, not generator=: both stages use the same seed")
    spatial = _check_spatial(spatial_op)
    if support is not None:
        _check_support(support)
    vol = to_volume(y, "y", channel_axis=channel_axis)
    sigma_y, estimated = resolve_noise_std(check_noise_std(noise_std, sample_kwargs.get("gamma")), vol.tensor,
                                           blind_along_t=boundary == "valid", floor=noise_floor(vol.attrs))
    scores = score_psfs(vol.tensor, candidates, boundary=boundary, noise_std=sigma_y)
    psf0 = scores[0][0]
    seed = secrets.randbits(63) if seed is None else seed
    prior = resolve_prior(prior, resolve_device(sample_kwargs.get("device")))

    keep_margins = sample_kwargs.pop("keep_margins", False)

    def stage(psf):
        op = psf if isinstance(spatial, Identity) else spatial @ psf
        return op, _dds_sample(vol.tensor, op, prior, seed=seed, noise_std=sigma_y, keep_margins=True, **sample_kwargs)

    def returned(op, x):  # the frames aligned with y unless keep_margins (as svimg.sample)
        lead, trail = (0, 0) if keep_margins else op.margins
        return x[lead:x.shape[0] - trail]

    op1, x1 = stage(psf0)
    proposal = refine_psf(vol.tensor, x1, spatial, support=support, boundary=psf0.boundary)
    (best, _), _ = score_psfs(vol.tensor, [proposal, psf0], noise_std=sigma_y)
    accepted = best is proposal
    op2, x2 = stage(proposal) if accepted else (op1, x1)
    psf = proposal if accepted else psf0
    attrs = provenance("blind.sample", op2, initial_psf=repr(psf0), refined_psf=repr(proposal), accepted=accepted,
                       noise_std=sigma_y, noise_std_estimated=estimated,
                       seed=seed, **{k: v for k, v in sample_kwargs.items() if isinstance(v, (int, float, str, bool))})
    video = vol.wrap(returned(op2, x2), attrs)
    if not return_info:
        return video, psf
    info = {"stage1": vol.wrap(returned(op1, x1), provenance("blind.sample stage 1", op1, seed=seed)),
            "initial_psf": psf0,
            "refined_psf": proposal, "accepted": accepted, "scores": scores, "seed": seed}
    return video, psf, info
