"""How unlike the training data a window is, in the network's own feature space.

A signal-level check (RMS outside the training range) misses a recording from another machine
whose level happens to match.  Here the features that feed the final classifier, ``f(x) (D,)``,
are modelled as class-conditional Gaussians (Lee et al., NeurIPS 2018) and a window's score is
its squared Mahalanobis distance to the nearest class::

    score(x) = min_k (f(x) - mu_k)^T P_k (f(x) - mu_k),    P_k = Sigma_k^-1

Each ``Sigma_k`` is shrunk towards a scaled identity (Ledoit-Wolf by default) so it can be
inverted even for dead ReLU features.  Lee et al. tie ``Sigma_k = Sigma`` across classes
(``covariance="tied"``); the default here is one per class, because on HIT-SM the "normal" class
is a tight cluster (its input is ~100x quieter) and, judged by the spread of the loud classes,
another rig's quiet faulty recordings looked typical (benchmarks/ood_probe.py).  The threshold
is calibrated on validation windows (held-out time regions, not the windows the network was
fitted on) as a split-conformal quantile: a fresh in-distribution window exceeds it with
probability at most ``1 - quantile``.  :func:`recording_verdict` turns one recording's window
scores into a warning.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence, Union

import numpy as np
import torch
from torch import nn

from faultdiag.errors import ConfigError, DataError
from faultdiag.models.features import penultimate

log = logging.getLogger(__name__)

Array = Union[np.ndarray, torch.Tensor]

UNLIKE_SHARE = 0.5
"""A recording is unlike the training data when MORE than this share of its windows exceed the threshold."""

_SCORE_ROWS = 4096

WARNING_TEXT = "unlike anything this model was trained on: do not trust the verdict"


def penultimate_features(model: nn.Module, X: torch.Tensor, batch_size: int = 512,
                         return_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Inputs of ``model.fc`` (the final ``nn.Linear``) for windows ``X (N, C, L)``, in eval mode.

    Read with a forward pre-hook on ``model.fc`` that is removed afterwards, also on error; the
    model's train/eval mode is restored.  Runs under ``torch.inference_mode`` in batches.

    Returns:
        features ``(N, D)`` float32 on the CPU (``D = model.fc.in_features``); with
        ``return_logits`` also the logits ``(N, K)`` of the same pass.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"The 'batch_size' parameter must be a positive int; got {batch_size!r}.")
    if not isinstance(X, torch.Tensor) or X.ndim < 2 or X.shape[0] == 0:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise DataError(f"The 'X' parameter must be a non-empty torch.Tensor (N, C, ...); got {shape}.")
    device = next(model.parameters()).device
    was_training = model.training
    logits = []
    try:
        model.eval()
        with torch.inference_mode(), penultimate(model) as captured:
            for i in range(0, len(X), batch_size):
                logits.append(model(X[i:i + batch_size].to(device, torch.float32)).float().cpu())
                captured[-1] = captured[-1].detach().float().cpu()  # one batch of features on the device at a time
    finally:
        model.train(was_training)
    features = torch.cat(captured)
    if features.shape[0] != len(X):
        raise DataError(f"model.fc ran {features.shape[0]} times the batch rows for {len(X)} windows; "
                        "penultimate_features needs a model that calls fc once per forward.")
    return (features, torch.cat(logits)) if return_logits else features


def _numpy(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)


def energy_score(logits: Array, T: float = 1.0) -> np.ndarray:
    """Free energy ``E(x) = -T logsumexp(logits / T)`` (Liu et al., NeurIPS 2020): ``(N, K) -> (N,)``.

    Higher means more unusual, as for :meth:`FeatureDensity.score`.
    """
    from scipy.special import logsumexp

    if not (isinstance(T, (int, float)) and math.isfinite(T) and T > 0):
        raise ConfigError(f"The 'T' parameter must be a positive number; got {T!r}.")
    z = _as_2d("logits", logits)
    return -T * logsumexp(z / T, axis=1)


def _as_2d(name: str, X: Array, n_features: int | None = None) -> np.ndarray:
    arr = _numpy(X)
    if arr.ndim != 2 or arr.shape[0] == 0 or (n_features is not None and arr.shape[1] != n_features):
        want = f"(N, {n_features})" if n_features is not None else "(N, D)"
        raise DataError(f"The '{name}' parameter must be a non-empty {want} array; got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise DataError(f"The '{name}' parameter contains NaN or Inf values.")
    return arr


class FeatureDensity:
    """Class means and shrunk covariance(s) of penultimate features; Mahalanobis scores.

    Args:
        shrinkage: ``"ledoit-wolf"`` (``sklearn.covariance.LedoitWolf``: the shrinkage that
            minimises the expected Frobenius error) or a number in [0, 1] for a fixed
            ``(1 - a) Sigma + a mu I`` (``mu`` = mean variance); 0 is the empirical covariance
            (pseudo-inverted).
        covariance: ``"per-class"`` -- one covariance per class (a tight class is not judged by
            the spread of the others); ``"tied"`` -- one within-class covariance shared by all
            classes (Lee et al.).

    Attributes (after :meth:`fit`): ``classes_ (K,)``, ``means_ (K, D)``, ``precision_`` ``(D, D)``
    (tied) or ``(K, D, D)`` (per-class), ``shrinkage_`` (the value used: a float, or ``(K,)``),
    ``n_fit_``.  After :meth:`calibrate`: ``threshold_``, ``quantile_``, ``n_calibration_``.
    """

    def __init__(self, shrinkage: str | float = "ledoit-wolf", covariance: str = "per-class") -> None:
        self.shrinkage = shrinkage
        self.covariance = covariance

    def _check_params(self) -> None:
        s = self.shrinkage
        if not (s == "ledoit-wolf" or (isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= 1)):
            raise ConfigError(f"The 'shrinkage' parameter must be 'ledoit-wolf' or a number in [0, 1]; got {s!r}.")
        if self.covariance not in ("tied", "per-class"):
            raise ConfigError(f"The 'covariance' parameter must be 'tied' or 'per-class'; got {self.covariance!r}.")

    def _precision(self, residuals: np.ndarray, what: str) -> tuple[np.ndarray, float]:
        """Pseudo-inverse of the shrunk covariance of centred ``residuals (M, D)``, and the shrinkage."""
        from sklearn.covariance import LedoitWolf, empirical_covariance, shrunk_covariance

        if len(residuals) < 2 or not np.any(residuals):
            raise DataError(f"FeatureDensity.fit needs at least 2 rows that are not all equal for {what}; "
                            f"got {len(residuals)} rows.")
        if self.shrinkage == "ledoit-wolf":
            lw = LedoitWolf(assume_centered=True).fit(residuals)
            cov, shrink = lw.covariance_, float(lw.shrinkage_)
        else:
            shrink = float(self.shrinkage)
            cov = shrunk_covariance(empirical_covariance(residuals, assume_centered=True), shrink)
        return np.linalg.pinv(cov, hermitian=True), shrink

    def fit(self, features: Array, y: Array | Sequence[int]) -> "FeatureDensity":
        """Class means and the shrunk within-class covariance(s) of ``features (N, D)``, labels ``y (N,)``."""
        self._check_params()
        F = _as_2d("features", features)
        y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).ravel()
        if y.shape != (F.shape[0],):
            raise DataError(f"The 'y' parameter must hold one label per feature row ({F.shape[0]}); "
                            f"got shape {y.shape}.")
        classes, inverse = np.unique(y, return_inverse=True)
        means = np.stack([F[inverse == k].mean(axis=0) for k in range(len(classes))])
        centred = F - means[inverse]                                   # (N, D) within-class residuals
        if self.covariance == "tied":
            precision, shrink = self._precision(centred, "the pooled residuals")
        else:
            pairs = [self._precision(centred[inverse == k], f"class {c.item()!r}") for k, c in enumerate(classes)]
            precision, shrink = np.stack([p for p, _ in pairs]), np.array([a for _, a in pairs])
        self.classes_, self.means_, self.precision_, self.shrinkage_ = classes, means, precision, shrink
        self.n_fit_ = int(F.shape[0])
        for attr in ("threshold_", "quantile_", "n_calibration_"):  # a refit invalidates the calibration
            self.__dict__.pop(attr, None)
        log.info("FeatureDensity: %d classes, D=%d, %s covariance, %d rows", len(classes), F.shape[1],
                 self.covariance, len(F))
        return self

    def _require_fitted(self, method: str) -> None:
        if not hasattr(self, "means_"):
            raise ConfigError(f"This FeatureDensity is not fitted yet; call 'fit' before '{method}'.")

    def score(self, features: Array) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean: ``(N, D) -> (N,)`` float64."""
        self._require_fitted("score")
        F = _as_2d("features", features, self.means_.shape[1])
        P = self.precision_ if self.precision_.ndim == 3 else self.precision_[None]  # (K or 1, D, D)
        out = np.empty(len(F))
        for i in range(0, len(F), _SCORE_ROWS):                        # bounded (rows, K, D) temporaries
            diff = F[None, i:i + _SCORE_ROWS, :] - self.means_[:, None, :]     # (K, n, D)
            out[i:i + _SCORE_ROWS] = ((diff @ P) * diff).sum(axis=2).min(axis=0)
        return out

    def calibrate(self, val_features: Array, quantile: float = 0.95) -> "FeatureDensity":
        """Set ``threshold_`` from in-distribution validation features ``(M, D)``.

        The threshold is the ``ceil((M + 1) q)``-th smallest validation score (split-conformal):
        a fresh window exchangeable with the validation ones exceeds it with probability at most
        ``1 - q`` (and at least ``1 - q - 1 / (M + 1)``).  Needs ``M >= q / (1 - q)``.
        """
        self._require_fitted("calibrate")
        if not (isinstance(quantile, (int, float)) and not isinstance(quantile, bool) and 0 < quantile < 1):
            raise ConfigError(f"The 'quantile' parameter must be a number in (0, 1); got {quantile!r}.")
        scores = np.sort(self.score(val_features))
        rank = math.ceil((len(scores) + 1) * quantile)
        if rank > len(scores):
            raise DataError(f"FeatureDensity.calibrate needs at least {math.ceil(quantile / (1 - quantile))} "
                            f"validation windows for quantile {quantile}; got {len(scores)}.")
        self.threshold_, self.quantile_, self.n_calibration_ = float(scores[rank - 1]), float(quantile), len(scores)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Parameters and state as plain Python lists/floats (JSON and ``weights_only`` safe)."""
        self._require_fitted("to_dict")
        return {
            "kind": "mahalanobis", "covariance": self.covariance,
            "shrinkage": self.shrinkage if isinstance(self.shrinkage, str) else float(self.shrinkage),
            "classes": [c.item() for c in self.classes_], "means": self.means_.tolist(),
            "precision": self.precision_.tolist(), "shrinkage_used": np.asarray(self.shrinkage_).tolist(),
            "n_fit": self.n_fit_,
            **{k: getattr(self, k + "_", None) for k in ("threshold", "quantile", "n_calibration")},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureDensity":
        """Rebuild from :meth:`to_dict` output."""
        keys = ("kind", "covariance", "shrinkage", "classes", "means", "precision", "shrinkage_used", "n_fit",
                "threshold")
        missing = [k for k in keys if k not in d]
        if missing or d.get("kind") != "mahalanobis":
            raise ConfigError(f"A FeatureDensity dict needs kind='mahalanobis' and keys {list(keys)}; "
                              f"missing {missing}, kind {d.get('kind')!r}.")
        obj = cls(shrinkage=d["shrinkage"], covariance=d["covariance"])
        obj._check_params()
        means, precision = np.asarray(d["means"], np.float64), np.asarray(d["precision"], np.float64)
        k, dim = means.shape if means.ndim == 2 else (-1, -1)
        want = (dim, dim) if obj.covariance == "tied" else (k, dim, dim)
        if means.ndim != 2 or precision.shape != want or len(d["classes"]) != k:
            raise ConfigError(f"A FeatureDensity dict needs 'means' (K, D), 'precision' (D, D) if tied or (K, D, D), "
                              f"and K 'classes'; got {means.shape}, {precision.shape} and {len(d['classes'])}.")
        obj.classes_, obj.means_, obj.precision_ = np.asarray(d["classes"]), means, precision
        shrink = np.asarray(d["shrinkage_used"], np.float64)
        obj.shrinkage_, obj.n_fit_ = (float(shrink) if shrink.ndim == 0 else shrink), int(d["n_fit"])
        if d["threshold"] is not None:
            obj.threshold_, obj.quantile_ = float(d["threshold"]), float(d["quantile"])
            obj.n_calibration_ = int(d["n_calibration"])
        return obj

    def __repr__(self) -> str:
        return f"FeatureDensity(shrinkage={self.shrinkage!r}, covariance={self.covariance!r})"


def recording_verdict(window_scores: Array | Sequence[float], threshold: float,
                      max_share: float = UNLIKE_SHARE) -> dict[str, Any]:
    """Aggregate one recording's window scores into an "unlike the training data" decision.

    Rule: the recording is unlike the training data when more than ``max_share`` (default half)
    of its windows score above ``threshold``.  For an in-distribution recording each window
    exceeds a 95 % threshold with probability about 5 %, so a majority over it is far outside
    chance even though neighbouring windows are correlated; a few outlying windows (a knock, a
    transient) do not trip it.

    Returns:
        ``{"n_windows", "n_over", "share_over", "median_score", "threshold", "unlike_training",
        "warning"}``; ``warning`` is the sentence shown to the user, or ``None``.
    """
    s = _numpy(window_scores).ravel()
    if s.size == 0 or not np.isfinite(s).all():
        raise DataError(f"The 'window_scores' parameter must be a non-empty array of finite scores; "
                        f"got {s.size} values.")
    if isinstance(threshold, bool) or not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
        raise ConfigError(f"The 'threshold' parameter must be a finite number; got {threshold!r}.")
    if not (isinstance(max_share, (int, float)) and 0 <= max_share < 1):
        raise ConfigError(f"The 'max_share' parameter must be a number in [0, 1); got {max_share!r}.")
    n_over = int((s > threshold).sum())
    share, median = n_over / s.size, float(np.median(s))
    unlike = share > max_share
    warning = None
    if unlike:
        ratio = f" = {median / threshold:.1f}x the threshold" if threshold > 0 else ""
        warning = (f"{WARNING_TEXT} ({share:.0%} of {s.size} windows score above the threshold {threshold:.3g}; "
                   f"median score {median:.3g}{ratio})")
    return {"n_windows": int(s.size), "n_over": n_over, "share_over": share, "median_score": median,
            "threshold": float(threshold), "unlike_training": bool(unlike), "warning": warning}


def auroc(in_scores: Array | Sequence[float], out_scores: Array | Sequence[float]) -> float:
    """Area under the ROC curve of telling out-of-distribution from in-distribution scores.

    1.0: every out score is above every in score; 0.5: no better than chance (ties count half).
    """
    from sklearn.metrics import roc_auc_score

    a = [_numpy(v).ravel() for v in (in_scores, out_scores)]
    for name, v in zip(("in_scores", "out_scores"), a):
        if v.size == 0 or not np.isfinite(v).all():
            raise DataError(f"The '{name}' parameter must be a non-empty array of finite scores; "
                            f"got {v.size} values.")
    labels = np.concatenate([np.zeros(a[0].size), np.ones(a[1].size)])
    return float(roc_auc_score(labels, np.concatenate(a)))
