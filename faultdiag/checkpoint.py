"""One checkpoint file holds everything needed to use a trained model again.

Weights, model name and keyword arguments, class names, the input spec (``fs_hz``, window
length and hop, channels, the normaliser), raw-signal statistics, the resolved config, metrics,
library versions and the code revision.  Written atomically (temporary file + rename); read with
``torch.load(..., weights_only=True)`` only, so the file holds nothing but tensors and plain
Python containers/scalars: loading never executes code.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from faultdiag.data.inputs import InputSpec
from faultdiag.errors import ConfigError, DataError
from faultdiag.provenance import atomic_write, code_revision, library_versions

log = logging.getLogger(__name__)

FORMAT = "faultdiag-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    ``inputs``: how raw windows become this model's input (:class:`~faultdiag.data.inputs.InputSpec`).
    ``ood``: the density of the training windows' penultimate features, calibrated on validation
    windows (:class:`faultdiag.ood.FeatureDensity` ``to_dict()``), or ``None`` (older files).
    ``signal_stats``: statistics of the RMS of raw training windows (``rms_min``, ``rms_p05``,
    ``rms_median``, ``rms_p95``, ``rms_max``), to flag inputs unlike the training data.
    """

    model_name: str
    model_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    class_names: tuple[str, ...]
    inputs: InputSpec
    signal_stats: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)
    revision: str = ""
    path: str = ""
    ood: dict[str, Any] | None = None

    def build_model(self) -> nn.Module:
        """The network with its trained weights, in eval mode (on CPU)."""
        from faultdiag.models.networks import build_model

        kwargs = {k: v for k, v in self.model_kwargs.items() if k != "name"}
        model = build_model(self.model_name, **kwargs)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise DataError(f"The weights in checkpoint '{self.path}' do not fit model '{self.model_name}': {exc}") from None
        return model.eval()


def _plain(obj: Any) -> Any:
    """Convert numpy values and tuples to what ``weights_only`` loading accepts (tensors stay)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None:
        return None
    for base in (bool, int, float, str):  # plain base types: a str subclass (TorchVersion) is not loadable
        if isinstance(obj, base):
            return base(obj)
    raise TypeError(f"A checkpoint can hold tensors and plain values only; got {type(obj).__name__}.")


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    return _plain(library_versions())


@functools.lru_cache(maxsize=1)
def _revision() -> str:
    return str(code_revision())


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    model_name: str,
    model_kwargs: dict[str, Any],
    class_names: Sequence[str],
    inputs: InputSpec,
    signal_stats: dict[str, Any],
    config: dict[str, Any],
    metrics: dict[str, Any],
    ood: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically to ``path`` and return the path."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": str(model_name),
        "model_kwargs": _plain(model_kwargs),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "class_names": [str(c) for c in class_names],
        "fs_hz": float(inputs.fs_hz),
        "window_len": int(inputs.window_len),
        "hop": int(inputs.hop),
        "channels": [str(c) for c in inputs.channels],
        "normalizer": _plain(inputs.normalizer_dict()),
        "front_end": _plain(inputs.front_end.to_dict()),
        "signal_stats": _plain(signal_stats),
        "config": _plain(config),
        "metrics": _plain(metrics),
        "ood": _plain(ood),
        "versions": _versions(),
        "revision": _revision(),
    }
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)
    log.debug("wrote checkpoint %s", path)
    return path


def load_torch_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with unreadable files reported as DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"The checkpoint file '{path}' does not exist.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises anything (IndexError, TypeError ...) on garbage
        raise DataError(f"The file '{path}' is not a readable checkpoint (corrupt, truncated or not a "
                        f"faultdiag file): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def _tupled(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        DataError: the file is missing, corrupt, truncated or not a faultdiag checkpoint.
    """
    raw = load_torch_file(path, map_location)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"The file '{path}' is not a faultdiag checkpoint (no 'format': '{FORMAT}' entry).")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(
            f"The checkpoint '{path}' has format version {raw['format_version']}; this faultdiag reads up to "
            f"{FORMAT_VERSION}. Upgrade faultdiag."
        )
    try:
        return Checkpoint(
            model_name=raw["model_name"],
            model_kwargs=_tupled(raw["model_kwargs"]),
            state_dict=raw["state_dict"],
            class_names=tuple(raw["class_names"]),
            inputs=InputSpec.from_stored(fs_hz=raw["fs_hz"], window_len=raw["window_len"], hop=raw["hop"],
                                         channels=raw["channels"], normalizer=raw["normalizer"],
                                         front_end=raw.get("front_end")),
            signal_stats=raw["signal_stats"],
            config=raw["config"],
            metrics=raw["metrics"],
            versions=raw.get("versions", {}),
            revision=raw.get("revision", ""),
            path=str(path),
            ood=raw.get("ood"),
        )
    except KeyError as exc:
        raise DataError(f"The checkpoint '{path}' lacks the entry {exc}; it is incomplete.") from None
    except ConfigError as exc:
        raise DataError(f"The checkpoint '{path}' holds an unusable input spec: {exc}") from None
