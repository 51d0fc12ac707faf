"""The model side of :mod:`faultdiag.diagnose`: a checkpoint wrapped for fast batched inference, channel choice."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from faultdiag.checkpoint import Checkpoint, load_checkpoint
from faultdiag.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Predictor:
    """A loaded checkpoint and ``predict(X (N, C, L) float32 raw) -> (probabilities (N, K), scores (N,) | None)``.

    ``scores``: how unlike the training data each window is in the network's feature space (the
    checkpoint's :class:`~faultdiag.ood.FeatureDensity`; ``density.threshold_`` is exceeded by about
    5 % of in-distribution windows), or ``None`` for a checkpoint without one.
    """

    ckpt: Checkpoint
    predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
    density: Any = None


def _traced(net: torch.nn.Module, probe: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net`` traced, frozen and optimised with TorchScript, or ``net`` itself when that fails or differs."""
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated but still works here
            fast = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, probe)))
            if torch.allclose(fast(probe), net(probe), atol=1e-4, rtol=1e-4):
                return fast
            log.info("traced model differs from eager; using eager mode")
    except Exception as exc:  # noqa: BLE001 - any tracing failure only costs speed
        log.info("could not trace the model (%s); using eager mode", exc)
    return net


def _fast(net: torch.nn.Module, dtype: torch.dtype = torch.float32) -> Callable[[torch.Tensor], torch.Tensor]:
    """The inference-only folded copy of ``net`` (:func:`~faultdiag.models.inference.fold_for_inference`) in
    ``dtype``; a network that does not fold runs as it is, under bfloat16 autocast for ``torch.bfloat16``."""
    from faultdiag.models.inference import autocast_forward, fold_for_inference
    from faultdiag.models.networks import ShrinkageNet

    if isinstance(net, ShrinkageNet) and net.foldable:
        return fold_for_inference(net, inplace=True, dtype=dtype)
    return net if dtype == torch.float32 else autocast_forward(net, dtype)


def load_predictor(model_path: str | os.PathLike, *, jit: bool = False, precision: str = "float32") -> Predictor:
    """Load a checkpoint and wrap its network for batched inference (eval mode, ``inference_mode``).

    The network runs as its inference-only folded copy (BatchNorm folded into the convolution
    before it, in-place shrinkage, 1-D convolutions as ``channels_last`` 2-D ones; same logits
    to float rounding): about 1.45x the eval-mode model's speed on the ``paper`` preset.

    ``jit=True`` also traces and freezes it with TorchScript, used only if its outputs match
    within 1e-4 on a probe batch. After folding, tracing gained under 5 % on a busy 2-core CPU
    and costs about 2 s up front, so it is off by default.

    ``precision="bfloat16"`` runs the network's convolutions and element-wise work in bfloat16
    (:func:`~faultdiag.models.inference.check_precision`; the folded model's thresholds, pooling and final layer stay float32):
    faster on a CPU with AVX-512 BF16, logits within about 0.02 of float32's (``benchmarks/bf16_agreement.py``
    measures what it does to trained models' verdicts).
    """
    from faultdiag.models.features import penultimate
    from faultdiag.models.inference import check_precision
    from faultdiag.ood import FeatureDensity

    dtype = check_precision(precision)
    ckpt = load_checkpoint(model_path)
    net = ckpt.build_model().eval()
    forward: Callable[[torch.Tensor], torch.Tensor] = _fast(net, dtype)
    if isinstance(forward, torch.nn.Module):
        net = forward   # the folded copy: its fc is the one the features are read from
    density = FeatureDensity.from_dict(ckpt.ood) if ckpt.ood else None
    if jit and density is None and dtype == torch.float32:  # a traced model has no fc to read the features from
        probe = torch.randn(4, len(ckpt.inputs.channels), ckpt.inputs.window_len, generator=torch.Generator().manual_seed(0))
        forward = _traced(forward, probe)

    def predict(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.inference_mode(), penultimate(net) if density is not None else contextlib.nullcontext() as feats:
            logits = forward(ckpt.inputs.transform(torch.from_numpy(X)))
        probs = torch.softmax(logits.float(), dim=1).numpy()
        return probs, (density.score(feats[0].float().numpy()) if density is not None else None)

    return Predictor(ckpt, predict, density)


def select_rows(src: Any, ckpt: Checkpoint, channel: Sequence[str] | None) -> list[int]:
    """Rows of ``src``'s blocks that feed the model's input channels, in order."""
    available = list(src.channels)
    want = len(ckpt.inputs.channels)
    if channel:
        names = list(channel)
        if len(names) != want:
            raise ConfigError(f"The 'channel' parameter must name {want} channel(s), as the model was trained on "
                              f"{list(ckpt.inputs.channels)}; got {names}.")
        missing = [c for c in names if c not in available]
        if missing:
            raise ConfigError(f"{src.source} has no channel {missing} (the 'channel' parameter); its channels are "
                              f"{available}.")
    elif all(c in available for c in ckpt.inputs.channels):
        names = list(ckpt.inputs.channels)
    elif len(available) == want:
        names = available
        log.info("%s: channels %s used for the model's %s", src.source, available, list(ckpt.inputs.channels))
    else:
        raise ConfigError(f"{src.source} has channels {available}, not the model's {list(ckpt.inputs.channels)}; "
                          "pick one with the 'channel' parameter (--channel).")
    return [available.index(c) for c in names]
