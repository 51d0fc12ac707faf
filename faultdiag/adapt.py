"""Domain-adaptation losses between features of a labelled source batch and an unlabelled target batch.

Each loss takes penultimate features ``source (B, D)`` and ``target (B', D)`` (e.g. the input of
``model.fc``) and is differentiable in both, so adding ``weight * loss`` to the classification
loss pulls the two feature distributions together while training:

* ``"coral"`` -- :func:`coral_loss`, matching second-order statistics (Sun & Saenko, ECCV-W 2016).
* ``"mmd"`` -- :func:`mk_mmd_loss`, multi-kernel Gaussian MMD (Long et al., ICML 2015, DAN).
* ``"dann"`` -- :func:`dann_loss`, adversarial domain confusion through a gradient-reversal layer
  (Ganin et al., JMLR 2016).  It also needs a :class:`DomainDiscriminator` (trained by the same
  optimiser) and ``lambda_``; its signature is ``(discriminator, source, target, lambda_)``.

Usual weights (total loss = cross-entropy + weight x adaptation loss): CORAL -- chosen so that
both terms are of similar size at the end of training (Sun & Saenko); values 1-10 are common for
small features.  MK-MMD -- about 1 (DAN used 1; bearing-fault papers report 0.1-1).  DANN -- weight
1 with the reversal coefficient ramped by :func:`dann_lambda`, ``2 / (1 + exp(-10 p)) - 1`` for
training progress ``p`` in [0, 1], which keeps the noisy early discriminator from disturbing
the features.  AdaBN (:func:`faultdiag.evaluate.adabn`) needs no loss and combines with any of them.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F

from faultdiag.errors import ConfigError, DataError


def _check_pair(source: torch.Tensor, target: torch.Tensor, min_rows: int) -> None:
    for name, t in (("source", source), ("target", target)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[0] < min_rows:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise DataError(f"The '{name}' parameter must be a (B, D) tensor with B >= {min_rows}; got {shape}.")
    if source.shape[1] != target.shape[1]:
        raise DataError(f"The 'source' and 'target' parameters must have the same feature size D; "
                        f"got {source.shape[1]} and {target.shape[1]}.")


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CORAL: ``||C_s - C_t||_F^2 / (4 D^2)``, ``C`` the unbiased (B - 1) feature covariances.

    Args:
        source: ``(B, D)``, target: ``(B', D)``; B, B' >= 2.
    Returns:
        scalar tensor; 0 for batches with equal covariance.
    """
    _check_pair(source, target, 2)
    d = source.shape[1]
    c_s, c_t = torch.cov(source.T), torch.cov(target.T)      # (D, D) each
    return ((c_s - c_t) ** 2).sum() / (4 * d * d)


def mk_mmd_loss(source: torch.Tensor, target: torch.Tensor, kernel_mul: float = 2.0, kernel_num: int = 5,
                unbiased: bool = False) -> torch.Tensor:
    """Squared MMD with a sum of ``kernel_num`` Gaussian kernels (multi-kernel MMD, DAN).

    ``k(x, x') = sum_i exp(-||x - x'||^2 / s_i)``, ``s_i = s0 * kernel_mul^(i - kernel_num // 2)``,
    ``s0`` the mean squared distance between distinct rows of the pooled batch ``[source; target]``
    (held constant: no gradient flows through the bandwidth).  Equal kernel weights, as DAN's
    common implementation; DAN itself optimises the weights.

    Estimators: ``unbiased=False`` (default), the biased V-statistic
    ``mean K_ss + mean K_tt - 2 mean K_st`` >= 0, exactly 0 for identical batches; ``unbiased=True``
    leaves the diagonals out of ``K_ss`` and ``K_tt`` -- zero in expectation for equal
    distributions, but it can be negative.

    Args:
        source: ``(B, D)``, target: ``(B', D)``; B, B' >= 2.
    Returns:
        scalar tensor.
    """
    _check_pair(source, target, 2)
    if not (isinstance(kernel_mul, (int, float)) and not isinstance(kernel_mul, bool) and kernel_mul > 1):
        raise ConfigError(f"The 'kernel_mul' parameter must be a number > 1; got {kernel_mul!r}.")
    if not isinstance(kernel_num, int) or isinstance(kernel_num, bool) or kernel_num < 1:
        raise ConfigError(f"The 'kernel_num' parameter must be a positive int; got {kernel_num!r}.")
    b = source.shape[0]
    z = torch.cat([source, target])                            # (n, D), n = B + B'
    n = z.shape[0]
    d2 = torch.cdist(z, z).pow(2)                              # (n, n) squared distances
    s0 = (d2.detach().sum() / (n * n - n)).clamp_min(torch.finfo(z.dtype).tiny)
    k = sum(torch.exp(-d2 / (s0 * kernel_mul ** (i - kernel_num // 2))) for i in range(kernel_num))
    k_ss, k_tt, k_st = k[:b, :b], k[b:, b:], k[:b, b:]
    if unbiased:
        m = n - b
        within = ((k_ss.sum() - k_ss.diagonal().sum()) / (b * (b - 1))
                  + (k_tt.sum() - k_tt.diagonal().sum()) / (m * (m - 1)))
        return within - 2 * k_st.mean()
    return k_ss.mean() + k_tt.mean() - 2 * k_st.mean()


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``-lambda_``.  ``GradientReversal.apply(x, lambda_)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = float(lambda_)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lambda_ * grad_output, None


def grad_reverse(x: torch.Tensor, lambda_: float = 1.0) -> torch.Tensor:
    """:class:`GradientReversal` as a function: ``x`` forward, ``-lambda_ * grad`` backward."""
    if isinstance(lambda_, bool) or not (isinstance(lambda_, (int, float)) and math.isfinite(lambda_) and lambda_ >= 0):
        raise ConfigError(f"The 'lambda_' parameter must be a non-negative number; got {lambda_!r}.")
    return GradientReversal.apply(x, lambda_)


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN's schedule of the reversal coefficient: ``2 / (1 + exp(-gamma p)) - 1``, p in [0, 1] -> [0, ~1)."""
    if not (isinstance(progress, (int, float)) and 0 <= progress <= 1):
        raise ConfigError(f"The 'progress' parameter must be a number in [0, 1]; got {progress!r}.")
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class DomainDiscriminator(nn.Module):
    """Features ``(N, in_features)`` -> domain logit ``(N,)`` (positive: target), an MLP with two hidden layers.

    Args:
        in_features: D of the features.
        hidden: width of both hidden layers (Ganin et al. used 1024 for ImageNet-size features; a
            few times D suffices for the 16-64 features of faultdiag's models).
        seed: initial weights (Glorot-uniform, zero biases); ``None``: torch's global RNG.
    """

    def __init__(self, in_features: int, hidden: int = 64, seed: Optional[int] = None) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden", hidden)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"The '{name}' parameter must be a positive int; got {value!r}.")
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            for m in self.net:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight, generator=generator)
                    nn.init.zeros_(m.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(1)                    # (N,)


def dann_loss(discriminator: nn.Module, source: torch.Tensor, target: torch.Tensor,
              lambda_: float = 1.0) -> torch.Tensor:
    """Domain-classification loss through gradient reversal (DANN).

    ``0.5 * (BCE(D(R(source)), 0) + BCE(D(R(target)), 1))``, ``R`` = :func:`grad_reverse` with
    ``lambda_``: the discriminator learns to tell the domains apart while the features receive
    ``-lambda_`` times that gradient, i.e. learn to confuse it.  The two domains weigh equally
    whatever their batch sizes.

    Args:
        discriminator: ``(N, D) -> (N,)`` logits, e.g. :class:`DomainDiscriminator`.
        source: ``(B, D)``, target: ``(B', D)``.
    Returns:
        scalar tensor (ln 2 ~ 0.693 for a discriminator at chance).
    """
    _check_pair(source, target, 1)
    logit_s = discriminator(grad_reverse(source, lambda_))
    logit_t = discriminator(grad_reverse(target, lambda_))
    return 0.5 * (F.binary_cross_entropy_with_logits(logit_s, torch.zeros_like(logit_s))
                  + F.binary_cross_entropy_with_logits(logit_t, torch.ones_like(logit_t)))


ADAPTATION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "coral": coral_loss,
    "mmd": mk_mmd_loss,
    "dann": dann_loss,
}
