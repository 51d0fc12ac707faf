"""Several trained models as one: the mean of their class probabilities.

``Ensemble(members)(x)`` returns ``log(mean_m softmax(member_m(x)))``, so its ``argmax`` is the
class with the highest mean probability (soft voting) and its ``softmax`` the mean probabilities.
Its BatchNorm layers are the members', so AdaBN (:func:`faultdiag.evaluate.adabn`) adapts every
member to the same unlabelled windows.  TICNN's ensemble (Zhang et al., MSSP 2018) and seed
ensembles are built this way.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from faultdiag.errors import ConfigError

__all__ = ["Ensemble"]


class Ensemble(nn.Module):
    """``(N, C, L) -> (N, K)`` log mean probability of ``members`` (each ``(N, C, L) -> (N, K)`` logits)."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if len(members) < 1:
            raise ConfigError("The 'members' parameter must hold at least one model; got none.")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m(x), dim=1) for m in self.members])   # (M, N, K)
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))
