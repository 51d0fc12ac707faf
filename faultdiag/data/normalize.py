"""Standardisation of windows with statistics learned on the training split only.

``z = (x - mean_) / max(std_, eps)`` per channel (over windows and time) or over everything.
scikit-learn style: ``__init__`` stores parameters, :meth:`Standardizer.fit` sets ``mean_`` and
``std_``; the fitted state round-trips through plain lists (``to_dict`` / ``from_dict``), so it
can be stored in JSON or a ``weights_only`` checkpoint.
"""

from __future__ import annotations

import math
from typing import Any, Union

import numpy as np
import torch

from faultdiag.errors import ConfigError, DataError

Array = Union[np.ndarray, torch.Tensor]

_CHUNK_ELEMENTS = 1 << 22  # float64 temporaries in fit stay below ~32 MB


def _as_numpy(X: Array) -> np.ndarray:
    if isinstance(X, torch.Tensor):
        return X.detach().cpu().numpy()
    if isinstance(X, np.ndarray):
        return X
    raise DataError(f"The 'X' parameter must be a numpy array or torch.Tensor; got {type(X).__name__}.")


def _moments(X3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std per channel of ``X3 (M, C, L)``, two passes in float64 chunks."""
    M, C, L = X3.shape
    count = M * L
    mean = X3.sum(axis=(0, 2), dtype=np.float64) / count
    step = max(1, _CHUNK_ELEMENTS // max(1, C * L))
    sq = np.zeros(C, dtype=np.float64)
    for i in range(0, M, step):
        d = X3[i : i + step].astype(np.float64) - mean[:, None]
        sq += np.einsum("mcl,mcl->c", d, d)
    return mean, np.sqrt(sq / count)


class Standardizer:
    """Zero-mean, unit-variance scaling of windows ``(..., C, L)``.

    Args:
        per_channel: one mean/std per channel (axis ``-2``), computed over all windows and
            time; ``False`` for one mean/std over everything.
        eps: floor of the std in ``transform`` (flat channels are not blown up).

    Attributes (after :meth:`fit`):
        mean_: float64 ``(C,)`` (or ``(1,)`` when ``per_channel=False``).
        std_: float64, same shape, population std (ddof 0).
    """

    def __init__(self, per_channel: bool = True, eps: float = 1e-8) -> None:
        self.per_channel = per_channel
        self.eps = eps

    def _check_params(self) -> None:
        if not isinstance(self.per_channel, (bool, np.bool_)):
            raise ConfigError(f"The 'per_channel' parameter must be a bool; got {self.per_channel!r}.")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps > 0):
            raise ConfigError(f"The 'eps' parameter must be a positive number; got {self.eps!r}.")

    def fit(self, X: Array) -> "Standardizer":
        """Learn ``mean_`` and ``std_`` from training windows ``X (N, C, L)`` (or ``(..., C, L)``)."""
        self._check_params()
        arr = _as_numpy(X)
        if arr.ndim < 2 or arr.size == 0:
            raise DataError(f"Standardizer.fit needs a non-empty array (..., C, L); got shape {arr.shape}.")
        X3 = arr.reshape(-1, arr.shape[-2], arr.shape[-1])
        if not self.per_channel:
            X3 = X3.reshape(-1, 1, arr.shape[-1])
        mean, std = _moments(X3)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise DataError("Standardizer.fit got windows with NaN or Inf values; the mean or std is not finite.")
        self.mean_, self.std_ = mean, std
        return self

    def _stats(self, X: Array, method: str) -> tuple[Any, Any]:
        """``mean_`` and floored ``std_`` shaped ``(C, 1)`` in ``X``'s type, dtype and device."""
        if not hasattr(self, "mean_"):
            raise ConfigError(f"This Standardizer is not fitted yet; call 'fit' before '{method}'.")
        if not isinstance(X, (np.ndarray, torch.Tensor)):
            raise DataError(f"The 'X' parameter must be a numpy array or torch.Tensor; got {type(X).__name__}.")
        if X.ndim < 2 or (self.per_channel and X.shape[-2] != self.mean_.shape[0]):
            raise DataError(
                f"Standardizer.{method} expects X of shape (..., {self.mean_.shape[0]}, L) as in fit; "
                f"got {tuple(X.shape)}."
            )
        mean, std = self.mean_[:, None], np.maximum(self.std_, self.eps)[:, None]
        if isinstance(X, torch.Tensor):
            dtype = X.dtype if X.is_floating_point() else torch.float32
            return (torch.as_tensor(mean, dtype=dtype, device=X.device),
                    torch.as_tensor(std, dtype=dtype, device=X.device))
        dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float32
        return mean.astype(dtype), std.astype(dtype)

    def transform(self, X: Array) -> Array:
        """``(X - mean_) / max(std_, eps)``; ``X (..., C, L)`` numpy or torch, same type back."""
        mean, std = self._stats(X, "transform")
        return (X - mean) / std

    def fit_transform(self, X: Array) -> Array:
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: Array) -> Array:
        """``Z * max(std_, eps) + mean_``: undoes :meth:`transform`."""
        mean, std = self._stats(Z, "inverse_transform")
        return Z * std + mean

    def to_dict(self) -> dict[str, Any]:
        """Parameters and fitted state as plain Python types (JSON- and checkpoint-safe)."""
        if not hasattr(self, "mean_"):
            raise ConfigError("This Standardizer is not fitted yet; call 'fit' before 'to_dict'.")
        return {
            "per_channel": bool(self.per_channel),
            "eps": float(self.eps),
            "mean": [float(v) for v in self.mean_],
            "std": [float(v) for v in self.std_],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Standardizer":
        """Rebuild a fitted Standardizer from :meth:`to_dict` output."""
        missing = [k for k in ("per_channel", "eps", "mean", "std") if k not in d]
        if missing:
            raise ConfigError(f"A Standardizer dict needs keys per_channel, eps, mean, std; missing {missing}.")
        obj = cls(per_channel=bool(d["per_channel"]), eps=float(d["eps"]))
        obj._check_params()
        mean, std = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape != std.shape or mean.size == 0 or (not obj.per_channel and mean.size != 1):
            raise ConfigError(
                f"A Standardizer dict needs equal-length 'mean' and 'std' lists (length 1 when "
                f"per_channel is false); got {len(mean)} and {len(std)}."
            )
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std < 0).any():
            raise ConfigError(
                f"A Standardizer dict needs finite 'mean' and non-negative 'std'; got {d['mean']}, {d['std']}."
            )
        obj.mean_, obj.std_ = mean, std
        return obj

    def __repr__(self) -> str:
        return f"Standardizer(per_channel={self.per_channel}, eps={self.eps})"


NORMALIZE_MODES = ("global", "window", "none")


def to_model_input(X_raw: Array, standardizer: Standardizer | None, normalize: str = "global") -> torch.Tensor:
    """Raw windows ``(N, C, L)`` (after noise) → float32 model input ``(N, C, L)``.

    ``normalize``: ``global`` → ``(x − mean_c) / std_c`` with the fitted training ``standardizer``;
    ``window`` → z-score of each window and channel over time; ``none`` → unchanged (the
    ``standardizer`` is not used by the last two and may be ``None``).
    """
    x = torch.as_tensor(X_raw)
    x = x.float() if x.dtype != torch.float32 else x
    if x.ndim != 3:
        raise DataError(f"Model input windows must be 3-D (N, C, L); got shape {tuple(x.shape)}.")
    if normalize == "global":
        if standardizer is None or not hasattr(standardizer, "mean_"):
            raise ConfigError("normalize='global' needs a fitted Standardizer; got none.")
        return standardizer.transform(x)
    if normalize == "window":
        mu = x.mean(dim=-1, keepdim=True)
        sd = x.std(dim=-1, keepdim=True, unbiased=False)
        return (x - mu) / sd.clamp_min(1e-12)
    if normalize == "none":
        return x
    raise ConfigError(f"The 'normalize' parameter must be one of {', '.join(map(repr, NORMALIZE_MODES))}; "
                      f"got {normalize!r}.")
