"""Parameter and multiply-accumulate counts of a model, by forward hooks (no extra dependency)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from faultdiag.errors import ConfigError

_COUNTED = (nn.Conv1d, nn.Conv2d, nn.Linear)


def _macs_of(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of one call of a conv/linear layer for the batch it saw."""
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    kernel_taps = 1
    for k in module.kernel_size:
        kernel_taps *= k
    return output.numel() * (module.in_channels // module.groups) * kernel_taps


def model_summary(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Count the parameters and the multiply-accumulates of one forward pass of one input.

    Args:
        model: any module whose work is in ``Conv1d``/``Conv2d``/``Linear`` layers.
        input_shape: the shape of ONE input without the batch axis, e.g. ``(1, 2048)`` or
            ``(1, 28, 28)``.

    Returns:
        ``{"params": trainable parameters, "macs": MACs of Conv/Linear layers per input}``.
        Element-wise work (BatchNorm, ReLU, soft thresholding, pooling) is not counted.

    The model is run once in eval mode on zeros (its train/eval mode is restored afterwards; a
    DRSN's ``last_tau`` is overwritten).
    """
    if len(input_shape) == 0 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_shape):
        raise ConfigError(f"The 'input_shape' parameter must be a non-empty sequence of positive ints; "
                          f"got {tuple(input_shape)!r}.")
    total = [0]

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        total[0] += _macs_of(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _COUNTED)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params": int(params), "macs": int(total[0])}
