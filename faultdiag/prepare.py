"""Data side of training: config → raw windows per split → model input.

:func:`prepare` loads recordings, splits them by time region into raw train/val/test windows
(never overlapping windows of one stretch in two splits) and fits the standardiser on the
training windows only.  :func:`to_model_input` is the one function that turns raw (possibly
noisy) windows into model input; training, evaluation and diagnosis all use it.
:func:`add_window_noise` puts noise at an SNR on raw windows, per window or per recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from faultdiag.config import RunConfig
from faultdiag.data.noise import add_noise
from faultdiag.data.windows import WindowSet, split_windows
from faultdiag.errors import ConfigError, DataError

__all__ = ["Prepared", "prepare", "to_model_input", "add_window_noise", "derive_seed", "signal_stats", "rms_stats"]


@dataclass(frozen=True, eq=False)
class Prepared:
    """Raw (un-normalised) windows of each split and what is needed to turn them into model input.

    ``train``/``val``/``test``: :class:`~faultdiag.data.windows.WindowSet` with ``X (N, C, L)``.
    ``standardizer``: fitted on ``train.X`` only (``None`` for ``normalize`` = window / none).
    ``signal_stats``: RMS statistics of the raw training windows.
    """

    train: WindowSet
    val: WindowSet
    test: WindowSet
    standardizer: Any
    class_names: tuple[str, ...]
    fs_hz: float
    window_len: int
    hop: int
    channels: tuple[str, ...]
    fingerprint: dict[str, Any]
    signal_stats: dict[str, float]
    normalize: str = "global"

    def normalizer_dict(self) -> dict[str, Any]:
        """``{"normalize": ..., "standardizer": to_dict() or None}`` as stored in checkpoints."""
        std = self.standardizer.to_dict() if self.standardizer is not None else None
        return {"normalize": self.normalize, "standardizer": std}


def derive_seed(seed: int, tag: int) -> int:
    """An independent 63-bit seed for source ``tag`` of run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, tag]).generate_state(2, np.uint32).astype(np.uint64)
               .dot(np.array([1 << 31, 1], dtype=np.uint64)))


def signal_stats(X: np.ndarray) -> dict[str, float]:
    """RMS statistics of raw windows ``X (N, C, L)``: min, 5th percentile, median, 95th percentile, max."""
    return rms_stats(np.sqrt(np.mean(np.asarray(X, dtype=np.float64) ** 2, axis=(1, 2))))


def rms_stats(rms: np.ndarray) -> dict[str, float]:
    """:func:`signal_stats` from the RMS of each window ``(N,)``."""
    q = np.percentile(rms, [0, 5, 50, 95, 100]) if rms.size else [float("nan")] * 5
    return {"rms_min": float(q[0]), "rms_p05": float(q[1]), "rms_median": float(q[2]),
            "rms_p95": float(q[3]), "rms_max": float(q[4]), "n_windows": int(rms.size)}


def prepare(cfg: RunConfig) -> Prepared:
    """Load the data of ``cfg.data``, split it by time region, fit the standardiser on train windows.

    With ``data.cache`` set the windows stay in the HDF5 cache: ``X`` of each split is a lazy
    :class:`~faultdiag.data.cache.CachedWindows` and the standardiser is fitted in one streaming pass.
    """
    from faultdiag.data.datasets import load_dataset
    from faultdiag.data.normalize import Standardizer

    d = cfg.data
    if d.cache:
        return _prepare_cached(cfg)
    dataset = load_dataset(d)
    splits = split_windows(dataset.recordings, dataset.class_names, d.window_len, d.hop, d.split, d.eval_hop)
    if len(splits["train"]) == 0:
        raise DataError(f"No training windows: recordings are too short for window_len={d.window_len} "
                        f"with split {list(d.split)}.")
    standardizer = Standardizer(per_channel=True).fit(splits["train"].X) if d.normalize == "global" else None
    return Prepared(
        train=splits["train"], val=splits["val"], test=splits["test"], standardizer=standardizer,
        class_names=dataset.class_names, fs_hz=float(d.fs_hz), window_len=d.window_len, hop=d.hop,
        channels=tuple(dataset.recordings[0].channels), fingerprint=dataset.fingerprint,
        signal_stats=signal_stats(splits["train"].X), normalize=d.normalize,
    )


def _prepare_cached(cfg: RunConfig) -> Prepared:
    from faultdiag.data.cache import cached_splits, streaming_moments
    from faultdiag.data.normalize import Standardizer

    d = cfg.data
    splits, info, class_names = cached_splits(d)
    if len(splits["train"]) == 0:
        raise DataError(f"No training windows in the cache '{d.cache}' for window_len={d.window_len} "
                        f"with split {list(d.split)}.")
    mean, std, rms = streaming_moments(splits["train"].X)
    standardizer = None
    if d.normalize == "global":
        standardizer = Standardizer.from_dict({"per_channel": True, "eps": Standardizer().eps,
                                               "mean": mean.tolist(), "std": std.tolist()})
    fp = {**info.fingerprint, "classes": list(class_names), "cache": str(d.cache)}
    return Prepared(train=splits["train"], val=splits["val"], test=splits["test"], standardizer=standardizer,
                    class_names=class_names, fs_hz=float(d.fs_hz), window_len=d.window_len, hop=d.hop,
                    channels=info.channels, fingerprint=fp, signal_stats=rms_stats(rms), normalize=d.normalize)


def _is_lazy(ws: Any) -> bool:
    return not isinstance(ws.X, np.ndarray)


def _check_lazy_noise(cfg: RunConfig) -> None:
    """Windows read lazily from a cache get noise batch by batch: only per-window, fresh noise."""
    if cfg.noise.train == "fixed" or (cfg.noise.train == "fresh" and cfg.noise.per == "recording"):
        raise ConfigError(f"Training from a cache (data.cache = {cfg.data.cache!r}) draws noise batch by batch: "
                          f"use noise.train = 'fresh' or 'clean' with noise.per = 'window'; got noise.train = "
                          f"{cfg.noise.train!r}, noise.per = {cfg.noise.per!r}.")


def _standardizer(norm: Any) -> Any:
    """The fitted Standardizer of a Prepared, a Standardizer, a checkpoint normalizer dict or a Standardizer dict."""
    from faultdiag.data.normalize import Standardizer

    if isinstance(norm, Prepared):
        norm = norm.standardizer
    if isinstance(norm, dict):
        norm = norm.get("standardizer") if "normalize" in norm else norm
        norm = Standardizer.from_dict(norm) if norm is not None else None
    if norm is None or not hasattr(norm, "mean_"):
        raise ConfigError("normalize='global' needs a fitted standardizer; got none.")
    return norm


def to_model_input(X_raw: np.ndarray | torch.Tensor, prepared_or_normalizer: Any, normalize: str | None = None) -> torch.Tensor:
    """Raw windows ``(N, C, L)`` (after noise) → float32 model input ``(N, C, L)``.

    ``normalize``: ``global`` → ``(x − mean_c) / std_c`` with the training standardiser;
    ``window`` → z-score of each window and channel over time; ``none`` → unchanged.
    ``prepared_or_normalizer``: a :class:`Prepared`, a Standardizer, the checkpoint's
    ``normalizer`` dict, or ``None`` (window/none).  ``normalize=None`` takes it from a
    Prepared or a checkpoint normalizer dict.
    """
    if normalize is None:
        norm = prepared_or_normalizer
        normalize = norm.normalize if isinstance(norm, Prepared) else (norm or {}).get("normalize", "global")
    x = torch.as_tensor(X_raw)
    x = x.float() if x.dtype != torch.float32 else x
    if x.ndim != 3:
        raise DataError(f"Model input windows must be 3-D (N, C, L); got shape {tuple(x.shape)}.")
    if normalize == "global":
        return _standardizer(prepared_or_normalizer).transform(x)
    if normalize == "window":
        mu = x.mean(dim=-1, keepdim=True)
        sd = x.std(dim=-1, keepdim=True, unbiased=False)
        return (x - mu) / sd.clamp_min(1e-12)
    if normalize == "none":
        return x
    raise ConfigError(f"The 'normalize' parameter must be 'global', 'window' or 'none'; got {normalize!r}.")


def add_window_noise(X: torch.Tensor, snr_db: float, kind: str, per: str, groups: torch.Tensor | None,
                     generator: torch.Generator) -> torch.Tensor:
    """Noise at ``snr_db`` on raw windows ``(N, C, L)``.

    ``per="window"``: the SNR holds in every window.  ``per="recording"``: the noise power of
    every window is set by the mean power of all windows of its recording (``groups``), so quiet
    windows of a recording get relatively more noise, as with noise added to the whole recording.
    """
    if per == "window" or groups is None:
        return add_noise(X, snr_db, kind=kind, per="window", generator=generator)
    p_win = X.double().pow(2).mean(dim=(1, 2))
    p_rec = torch.zeros(int(groups.max()) + 1, dtype=torch.float64).index_add_(0, groups, p_win)
    p_rec /= torch.bincount(groups, minlength=p_rec.numel()).clamp_min(1)
    ratio = (p_win / p_rec[groups]).clamp_min(1e-12)
    return add_noise(X, (snr_db + 10.0 * torch.log10(ratio)).float(), kind=kind, per="window", generator=generator)
