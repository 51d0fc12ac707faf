"""Augmentations of raw training windows, for the :class:`~faultdiag.training.batches.BatchSource` hook.

An augmentation is a callable ``augment(raw (B, C, L), generator) -> raw (B, C, L)`` drawing its
randomness from ``generator`` only.  :func:`from_config` builds the one a ``[train]`` section asks for.
"""

from __future__ import annotations

import math

import torch

from faultdiag.config import TrainConfig
from faultdiag.training.batches import Augment

__all__ = ["random_gain", "from_config"]


def random_gain(max_gain: float) -> Augment:
    """Scale each window by a gain drawn log-uniformly from ``[1 / max_gain, max_gain]`` (``max_gain`` > 1)."""
    if not (isinstance(max_gain, (int, float)) and max_gain > 1):
        from faultdiag.errors import ConfigError

        raise ConfigError(f"The 'max_gain' parameter must be a number > 1; got {max_gain!r}.")
    log_max = math.log(max_gain)

    def augment(raw: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        log_gain = (torch.rand(raw.shape[0], 1, 1, generator=generator, device=raw.device) * 2 - 1) * log_max  # (B, 1, 1)
        return raw * log_gain.exp().to(raw.dtype)

    return augment


def from_config(train: TrainConfig) -> Augment | None:
    """The augmentation of ``train`` (``gain_jitter`` > 1: :func:`random_gain`), or ``None``."""
    return random_gain(train.gain_jitter) if train.gain_jitter > 1 else None
