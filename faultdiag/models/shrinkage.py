"""Soft thresholding with thresholds learned per sample: the core of a DRSN.

Zhao et al., "Deep Residual Shrinkage Networks for Fault Diagnosis", IEEE TII 2019
(DOI 10.1109/TII.2019.2943898), Fig. 4 and Eq. (1)-(5):

* soft threshold ``y = sign(x) * max(|x| - tau, 0)`` sets the dead zone ``[-tau, tau]`` to zero
  and moves everything else towards zero by ``tau``;
* the threshold sub-network (shaped like a squeeze-and-excitation module) pools ``|x|`` -- not
  the signed signal -- to one value per channel, ``a_c = mean_t |x_c(t)|``, maps it through
  ``Linear(C, C) -> BatchNorm1d -> ReLU -> Linear(C, C or 1) -> sigmoid`` to ``alpha`` in (0, 1)
  and sets

  - DRSN-CW (channel-wise thresholds): ``tau_c = alpha_c * a_c``,
  - DRSN-CS (channel-shared threshold): ``tau = alpha * mean_c a_c``,

  so a threshold is positive and never larger than the mean absolute feature it applies to.

One implementation serves 1-D ``(N, C, L)`` and 2-D ``(N, C, H, W)`` features: the pooling runs
over every axis after the channel axis.
"""

from typing import List, Optional

import torch
from torch import nn

from faultdiag.errors import ConfigError

SHRINKAGE_MODES = ("cw", "cs")


def soft_threshold(x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Soft thresholding ``sign(x) * max(|x| - tau, 0)``.

    Args:
        x: features, any shape.
        tau: non-negative thresholds broadcastable to ``x`` (e.g. ``(N, C, 1)`` for ``(N, C, L)``).

    Returns:
        A tensor shaped like ``x``: zero where ``|x| <= tau``, ``x - sign(x) * tau`` elsewhere.

    This sign/relu form was the fastest of the equivalent forms we timed for forward+backward on
    CPU (``x - clamp(x, -tau, tau)`` with tensor bounds has a slow backward).
    """
    return torch.sign(x) * torch.relu(x.abs() - tau)


def _check_mode(mode: str) -> None:
    if mode not in SHRINKAGE_MODES:
        raise ConfigError(f"The 'shrinkage' parameter must be one of {SHRINKAGE_MODES}; got {mode!r}.")


def _check_channels(channels: int) -> None:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ConfigError(f"The 'channels' parameter must be a positive int; got {channels!r}.")


class ThresholdEstimator(nn.Module):
    """The DRSN threshold sub-network: per-sample thresholds from the features themselves.

    Args:
        channels: C, the number of feature channels.
        mode: ``"cw"`` (one threshold per channel) or ``"cs"`` (one threshold shared by all).
        bn_momentum, bn_eps: of the BatchNorm1d between the two linear layers (PyTorch
            convention: Keras momentum 0.99 is PyTorch momentum 0.01).

    Initialisation follows the article's Keras code: the first layer He-normal (set by
    :class:`~faultdiag.models.networks.ShrinkageNet`, which owns the network-wide init), the
    second (sigmoid) layer Glorot-uniform, biases zero.
    """

    def __init__(self, channels: int, mode: str = "cw", *, bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__()
        _check_channels(channels)
        _check_mode(mode)
        self.channels = channels
        self.mode = mode
        self.fc1 = nn.Linear(channels, channels)
        self.bn = nn.BatchNorm1d(channels, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(channels, channels if mode == "cw" else 1)
        nn.init.xavier_uniform_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward_from_abs_mean(self, abs_mean: torch.Tensor) -> torch.Tensor:
        """Thresholds from the pooled absolute features.

        Args:
            abs_mean: ``(N, C)``, ``a_c = mean |x_c|`` over the spatial/time axes.

        Returns:
            tau: ``(N, C)`` for CW, ``(N, 1)`` for CS.
        """
        alpha = torch.sigmoid(self.fc2(self.relu(self.bn(self.fc1(abs_mean)))))
        if self.mode == "cw":
            return alpha * abs_mean
        return alpha * abs_mean.mean(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(N, C, *spatial)``.  Returns tau ``(N, C)`` (CW) or ``(N, 1)`` (CS)."""
        dims: List[int] = list(range(2, x.dim()))
        return self.forward_from_abs_mean(x.abs().mean(dim=dims))


class Shrinkage(nn.Module):
    """Soft thresholding with thresholds from a :class:`ThresholdEstimator`.

    ``forward(x)`` maps ``(N, C, *spatial)`` to the same shape.  The thresholds of the last
    forward pass stay in ``last_tau`` (detached; ``(N, C)`` for CW, ``(N, 1)`` for CS) so they can
    be read back without a second pass.
    """

    last_tau: Optional[torch.Tensor]

    def __init__(self, channels: int, mode: str = "cw", *, bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__()
        self.estimator = ThresholdEstimator(channels, mode, bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.last_tau = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims: List[int] = list(range(2, x.dim()))
        x_abs = x.abs()                                              # (N, C, *spatial)
        tau = self.estimator.forward_from_abs_mean(x_abs.mean(dim=dims))  # (N, C) or (N, 1)
        self.last_tau = tau.detach()
        tau = tau.reshape([tau.shape[0], tau.shape[1]] + [1] * len(dims))  # (N, C|1, 1, ...)
        # soft_threshold, with |x| computed once and shared with the pooling
        if torch.is_grad_enabled():
            return torch.sign(x) * torch.relu(x_abs - tau)
        # inference: the same values in place on the tensor we own (several times faster on CPU here)
        return x_abs.sub_(tau).relu_().copysign_(x)

    def extra_repr(self) -> str:
        return f"mode={self.estimator.mode!r}"

