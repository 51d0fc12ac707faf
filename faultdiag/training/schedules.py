"""Optimisers and learning-rate schedules as pure functions of the config and the epoch.

The learning rate is a function of the epoch alone (no scheduler object with hidden state),
so a resumed run sets exactly the rate an uninterrupted run would.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from faultdiag.config import TrainConfig
from faultdiag.errors import ConfigError


def learning_rate(epoch: int, train: TrainConfig) -> float:
    """Learning rate for 0-based ``epoch`` of ``train.epochs``.

    - ``constant``: ``lr``.
    - ``step`` (the DRSN paper): ``lr · gamma^k`` where ``k`` counts the milestones passed; a
      milestone ``m`` starts at epoch ``round(m · epochs)``.  With lr 0.1, gamma 0.1, milestones
      (0.4, 0.8): 0.1 → 0.01 at 40 % → 0.001 at 80 % of training.
    - ``cosine``: ``lr · (1 + cos(π · epoch / epochs)) / 2``.
    """
    if epoch < 0:
        raise ConfigError(f"The 'epoch' parameter must be >= 0; got {epoch}.")
    if train.schedule == "constant":
        return train.lr
    if train.schedule == "step":
        passed = sum(epoch >= round(m * train.epochs) for m in train.milestones)
        return train.lr * train.gamma**passed
    if train.schedule == "cosine":
        return train.lr * 0.5 * (1.0 + math.cos(math.pi * min(epoch, train.epochs) / train.epochs))
    raise ConfigError(f"The 'train.schedule' parameter must be 'constant', 'step' or 'cosine'; got {train.schedule!r}.")


def make_optimizer(params: Iterable[torch.nn.Parameter], train: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD with momentum; ``weight_decay`` is PyTorch's L2 term (added to the gradient, not decoupled).

    Adam of parameters on a GPU is PyTorch's fused kernel (its step counters stay on the device);
    on the CPU it is the default implementation, whose figures the committed results hold.
    """
    params = list(params)
    if train.optimizer == "adam":
        fused = bool(params) and all(p.is_cuda for p in params)
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay, fused=fused or None)
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
    raise ConfigError(f"The 'train.optimizer' parameter must be 'adam' or 'sgd'; got {train.optimizer!r}.")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
