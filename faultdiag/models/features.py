"""The penultimate features of a model: the input of its final ``nn.Linear``, named ``fc`` in every faultdiag model."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from faultdiag.errors import ConfigError

__all__ = ["penultimate"]


@contextlib.contextmanager
def penultimate(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, every forward pass of ``model`` appends the input of ``model.fc`` (``(B, D)``,
    with its autograd graph) to the yielded list; the hook is removed on leaving, also on error."""
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ConfigError(f"The 'model' parameter must have its final nn.Linear named 'fc'; "
                          f"got {type(model).__name__} with fc={type(fc).__name__}.")
    captured: list[torch.Tensor] = []
    handle = fc.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
    try:
        yield captured
    finally:
        handle.remove()
