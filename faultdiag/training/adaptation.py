"""Domain adaptation as a :class:`~faultdiag.training.loop.LossTerm`: the ``[adapt]`` loss on target batches.

Each training step draws a batch of unlabelled target windows (``Prepared.target``: the training
regions of the test-domain recordings; their labels are never read), runs it through the model
in training mode, and adds ``adapt.weight`` times CORAL, MK-MMD or DANN (:mod:`faultdiag.adapt`)
between the penultimate features of the source batch and of the target batch.  The target batch
also moves the BatchNorm running statistics towards the target domain, as in the usual
implementations.  DANN's discriminator is part of this module, so its parameters join the
optimiser and its state is saved with ``last.pt``.
"""

from __future__ import annotations

import torch
from torch import nn

from faultdiag import adapt
from faultdiag.config import AdaptConfig
from faultdiag.errors import ConfigError
from faultdiag.training.batches import Batch, BatchSource
from faultdiag.models.features import penultimate

__all__ = ["DomainAdaptation"]


class DomainAdaptation(nn.Module):
    """``weight * loss(source features, target features)`` with target batches drawn from ``target``.

    Args:
        cfg: the ``[adapt]`` section (``method`` not ``"none"``).
        target: unlabelled target windows as a clean :class:`BatchSource`.
        feature_dim: D of the model's penultimate features (``model.fc.in_features``).
        seed: seed of the target batches' draw (and of the DANN discriminator's weights).
    """

    def __init__(self, cfg: AdaptConfig, target: BatchSource, feature_dim: int, seed: int) -> None:
        super().__init__()
        if cfg.method not in adapt.ADAPTATION_LOSSES:
            raise ConfigError(f"The 'adapt.method' parameter must be one of {list(adapt.ADAPTATION_LOSSES)} for an "
                              f"adaptation loss; got {cfg.method!r}.")
        if len(target) < 2:
            raise ConfigError(f"Adaptation ({cfg.method}) needs target windows (data.domain and "
                              f"data.test_domains); got {len(target)}.")
        self.method, self.weight, self.target = cfg.method, float(cfg.weight), target
        self.generator = torch.Generator().manual_seed(seed)
        self.discriminator = adapt.DomainDiscriminator(feature_dim, seed=seed) if cfg.method == "dann" else None

    def forward(self, model: nn.Module, features: torch.Tensor, batch: Batch, progress: float) -> torch.Tensor:
        # features: (B, D) of the source batch; a target batch of the same size B
        idx = torch.randint(len(self.target), (len(batch.y),), generator=self.generator)
        x_target = self.target.batch(idx).x.to(features.device)
        with penultimate(model) as captured:
            model(x_target)
        target = captured[0]                                              # (B, D)
        if self.method == "coral":
            loss = adapt.coral_loss(features, target)
        elif self.method == "mmd":
            loss = adapt.mk_mmd_loss(features, target)
        else:
            loss = adapt.dann_loss(self.discriminator, features, target, adapt.dann_lambda(progress))
        return self.weight * loss
