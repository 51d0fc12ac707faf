"""Choosing the front end's band from clean training windows (never from test or noisy data).

Candidate bands (:func:`candidate_bands`) follow the 1/3-binary tree of Antoni's fast kurtogram
(MSSP 21 (2007) 108-124): at level ``log2(m)`` the range ``[0, fs/2]`` is cut into ``m``
adjacent bands of width ``(fs/2) / m``, ``m`` in 2, 3, 4, 6, 8, 12, 16 (levels 1, 1.6, 2, 2.6,
3, 3.6, 4). Limits, so that every band is a sensible demodulation band: the width is at least
``min_width_hz`` (default ``fs / 32``, one sixteenth of Nyquist: the envelope must carry fault
rates and their first harmonics, and narrower bands hold too few independent samples per
window for stable statistics); the low edge is raised to ``min_low_hz`` (default 500 Hz, above
the shaft harmonics, mains and their sidebands) and the high edge lowered to ``0.98 fs/2``
(a Butterworth band-pass must stay below Nyquist); a band left narrower than ``min_width_hz``
by these cuts is dropped.

Statistics per window and band (from :func:`faultdiag.frontend.filters.analytic_bandpass`, the
front end's own filter, so a band is judged as it will be used; multichannel windows are
averaged over channels): the band power ``E`` (mean square of the band-passed window) and the
spectral kurtosis of its complex envelope ``a``, ``SK = mean|a|^4 / (mean|a|^2)^2 - 2``
(0 for Gaussian noise, large for repeated impacts).

Judged under noise (``snr_db``, default 0 dB): white noise at ``snr_db`` adds the expected
in-band power ``N = P 10^(-snr_db/10) g`` to a window of power ``P`` (``g`` the mean of
``|H|^4`` over ``[0, fs/2]``, the filter's white-noise power gain), and lowers the envelope's
kurtosis, in expectation, to ``SK E^2 / (E + N)^2`` (independent circular Gaussian noise ``n`` of
power ``s2``: ``E|s+n|^4 = E|s|^4 + 4 E|s|^2 s2 + 2 s2^2``). Deterministic, computed from the clean windows; no
noise is drawn. Without it (``snr_db=None``) the classical statistics favour bands where
impacts are impulsive but weak, which the first noise swamps. Measured on the CWRU WDCNN
protocol (benchmarks/results/band_choice.json; test windows, white noise at -4 dB): the clean
kurtogram picks 1.5-2.25 kHz, where the fault windows' median in-band SNR is -16.3 dB (broadband:
-4 dB); at 0 dB it picks 2-4 kHz, +0.6 dB; on the simulator 3-5.9 kHz (-6.2 dB) versus 2-4 kHz
(-1.6 dB).

Methods:

* ``"kurtogram"`` -- impulsiveness of the faults: per fault class (every class except
  ``normal_label``) the median SK over its windows, divided by that class's best band, then
  averaged over fault classes (each class votes equally; one extremely spiky class cannot
  decide alone). Needs no separability between classes, only impacts.
* ``"fisher"`` -- class separability of impulsiveness: the Fisher ratio over all classes (equal
  class weights) ``mean_k (mu_k - mu)^2 / mean_k var_k`` of ``log(1 + SK)``. Independent of the
  sensor's gain.
* ``"fisher_energy"`` -- the Fisher ratio of the band's log power ``log(E + N)``. It rewards
  bands where classes differ in level, so it follows gain differences between recordings
  (on HIT-SM, where recordings of some classes are 30-100 times quieter, it picks the lowest
  band): kept for comparison.

Windows used: at most ``max_windows_per_class`` per class, evenly spaced over that class's
windows in their given order (deterministic). Multichannel windows: statistics are averaged
over channels. The highest score wins; ties go to the band listed first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from faultdiag.config.schema import BAND_METHODS
from faultdiag.errors import ConfigError, DataError
from faultdiag.frontend.filters import analytic_bandpass, bandpass_gain

__all__ = ["METHODS", "BandChoice", "candidate_bands", "band_statistics", "choose_band", "class_subset"]

METHODS = BAND_METHODS
_BAND_COUNTS = (2, 3, 4, 6, 8, 12, 16)
_HIGH_EDGE = 0.98


@dataclass(frozen=True)
class BandChoice:
    """A chosen band and the scores of every candidate.

    Attributes:
        low_hz, high_hz: the chosen band.
        method: the method that chose it (one of :data:`METHODS`).
        fs_hz: sampling rate in Hz.
        bands_hz: ``(K, 2)`` candidate bands, as tuples ``(low_hz, high_hz)``.
        levels: ``(K,)`` kurtogram level ``log2(m)`` of each candidate.
        scores: ``(K,)`` score of each candidate (higher is better).
        params: the settings used (``normal_label``, ``snr_db``, ...), plain types.
    """

    low_hz: float
    high_hz: float
    method: str
    fs_hz: float
    bands_hz: tuple[tuple[float, float], ...]
    levels: tuple[float, ...]
    scores: tuple[float, ...]
    params: dict

    def table(self) -> pd.DataFrame:
        """One row per candidate, best first: ``low_hz, high_hz, level, score, chosen``."""
        df = pd.DataFrame(self.bands_hz, columns=["low_hz", "high_hz"])
        df["level"], df["score"] = self.levels, self.scores
        df["chosen"] = (df.low_hz == self.low_hz) & (df.high_hz == self.high_hz)
        return df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain types for JSON: the band, method, fs and every candidate's score."""
        return {
            "low_hz": self.low_hz, "high_hz": self.high_hz, "method": self.method, "fs_hz": self.fs_hz,
            "params": dict(self.params),
            "candidates": [
                {"low_hz": lo, "high_hz": hi, "level": lv, "score": s}
                for (lo, hi), lv, s in zip(self.bands_hz, self.levels, self.scores)
            ],
        }


def candidate_bands(
    fs_hz: float, *, min_low_hz: float = 500.0, min_width_hz: float | None = None
) -> list[tuple[float, float, float]]:
    """The 1/3-binary grid of bands within the limits of the module docstring.

    Returns:
        ``[(level, low_hz, high_hz), ...]`` ordered by level, then frequency.
    """
    if isinstance(fs_hz, bool) or not isinstance(fs_hz, (int, float)) or not (math.isfinite(fs_hz) and fs_hz > 0):
        raise ConfigError(f"The 'fs_hz' parameter must be a positive number; got {fs_hz!r}.")
    nyq = fs_hz / 2
    min_width_hz = nyq / 16 if min_width_hz is None else min_width_hz
    for name, value in (("min_low_hz", min_low_hz), ("min_width_hz", min_width_hz)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < _HIGH_EDGE * nyq:
            raise ConfigError(f"The '{name}' parameter must be a number in [0, {_HIGH_EDGE * nyq:g}) Hz; got {value!r}.")
    out = []
    for m in _BAND_COUNTS:
        width = nyq / m
        for i in range(m):
            low, high = max(i * width, min_low_hz, 1e-6 * nyq), min((i + 1) * width, _HIGH_EDGE * nyq)
            if high - low >= min_width_hz and high - low > 0:
                out.append((round(math.log2(m), 1), float(low), float(high)))
    if not out:
        raise ConfigError(
            f"No candidate band fits between min_low_hz={min_low_hz:g} Hz and {_HIGH_EDGE:g} x fs/2 = "
            f"{_HIGH_EDGE * nyq:g} Hz with a width of at least min_width_hz={min_width_hz:g} Hz."
        )
    return out


def class_subset(y: np.ndarray, max_per_class: int) -> np.ndarray:
    """Indices of at most ``max_per_class`` windows per class, evenly spaced, sorted."""
    keep = []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        if idx.size > max_per_class:
            idx = idx[np.linspace(0, idx.size - 1, max_per_class).round().astype(np.int64)]
        keep.append(idx)
    return np.sort(np.concatenate(keep))


def band_statistics(X: torch.Tensor, fs_hz: float, bands: Sequence[tuple[float, float]], order: int = 4) -> dict:
    """Per window and band: band power and spectral kurtosis of the envelope, averaged over channels.

    Args:
        X: windows ``(N, C, L)``.
        bands: ``[(low_hz, high_hz), ...]``, ``B`` bands.

    Returns:
        ``{"power": (N, B), "sk": (N, B), "noise_gain": (B,), "window_power": (N,)}`` float64
        numpy arrays: ``power`` the mean square of the band-passed window, ``sk`` the envelope
        kurtosis, ``noise_gain`` the fraction of white-noise power the filter passes,
        ``window_power`` the mean square of the window.
    """
    n = X.shape[-1]
    grid = np.arange(n // 2 + 1) * (fs_hz / n)
    power, sk, noise_gain = [], [], []
    for low, high in bands:
        a = analytic_bandpass(X, fs_hz, low, high, order)
        e2 = a.real.double().pow(2), a.abs().double().pow(2)
        p2 = e2[1].mean(dim=-1)
        power.append(e2[0].mean(dim=-1).mean(dim=-1))
        sk.append((e2[1].pow(2).mean(dim=-1) / p2.pow(2).clamp_min(1e-300) - 2.0).mean(dim=-1))
        noise_gain.append(float(np.mean(bandpass_gain(grid, fs_hz, low, high, order) ** 2)))
    return {
        "power": torch.stack(power, dim=1).cpu().numpy(),
        "sk": torch.stack(sk, dim=1).cpu().numpy(),
        "noise_gain": np.asarray(noise_gain),
        "window_power": X.double().pow(2).mean(dim=(1, 2)).cpu().numpy(),
    }


def _noise_power(stats: dict, snr_db: float | None) -> np.ndarray:
    """Expected in-band power ``(N, B)`` of white noise at ``snr_db`` (0 for ``None``)."""
    if snr_db is None:
        return np.zeros_like(stats["power"])
    return stats["window_power"][:, None] * 10.0 ** (-snr_db / 10.0) * stats["noise_gain"][None, :]


def _fisher(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fisher ratio ``(B,)`` of features ``f (N, B)``: variance of class means / mean within-class variance."""
    classes = np.unique(y)
    if classes.size < 2:
        raise DataError(f"A Fisher ratio needs windows of at least two classes; got labels {classes.tolist()}.")
    means = np.stack([f[y == k].mean(axis=0) for k in classes])
    within = np.mean([f[y == k].var(axis=0) for k in classes], axis=0)
    return means.var(axis=0) / np.maximum(within, 1e-12)


def _scores(stats: dict, y: np.ndarray, method: str, normal_label: int | None, snr_db: float | None) -> np.ndarray:
    power = stats["power"]
    noisy_power = power + _noise_power(stats, snr_db)
    if method == "fisher_energy":
        return _fisher(np.log(np.maximum(noisy_power, 1e-300)), y)
    sk = stats["sk"] * (power / np.maximum(noisy_power, 1e-300)) ** 2
    if method == "fisher":
        return _fisher(np.log1p(np.maximum(sk, 0.0)), y)
    faults = [k for k in np.unique(y) if k != normal_label]
    if not faults:
        raise DataError(f"The kurtogram needs windows of at least one fault class; all labels are {normal_label!r}.")
    per_class = np.stack([np.median(sk[y == k], axis=0) for k in faults])  # (K_fault, B)
    top = per_class.max(axis=1, keepdims=True)
    return np.mean(per_class / np.where(top > 0, top, 1.0), axis=0)


def _check_inputs(X: Any, y: Any, method: str, max_windows_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    if method not in METHODS:
        raise ConfigError(f"The 'method' parameter must be one of {list(METHODS)}; got {method!r}.")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 3 or X.shape[0] == 0 or X.shape[-1] < 64:
        raise DataError(f"The 'X' parameter must be windows (N, C, L) with N >= 1 and L >= 64; got shape {X.shape}.")
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"The 'y' parameter must be integer labels of shape ({X.shape[0]},); got {y.dtype} {y.shape}.")
    if not np.isfinite(X).all():
        raise DataError("The 'X' parameter contains NaN or Inf values.")
    if isinstance(max_windows_per_class, bool) or not isinstance(max_windows_per_class, int) or max_windows_per_class < 2:
        raise ConfigError(f"The 'max_windows_per_class' parameter must be an int >= 2; got {max_windows_per_class!r}.")
    return X, y


def choose_band(
    X: np.ndarray,
    y: np.ndarray,
    fs_hz: float,
    method: str = "kurtogram",
    *,
    normal_label: int | None = None,
    snr_db: float | None = 0.0,
    order: int = 4,
    min_low_hz: float = 500.0,
    min_width_hz: float | None = None,
    max_windows_per_class: int = 256,
) -> BandChoice:
    """Choose the front end's band from clean training windows (methods in the module docstring).

    Args:
        X: clean training windows ``(N, C, L)`` (numpy array or array-like).
        y: ``(N,)`` integer class labels.
        fs_hz: sampling rate in Hz.
        method: one of :data:`METHODS`.
        normal_label: label of the fault-free class, left out of the kurtogram's fault classes
            (``None``: every class counts as a fault class). Not used by the Fisher methods.
        snr_db: judge bands under white noise at this SNR in dB (``None``: on the clean
            statistics); 0 dB by default, the lower half of the usual -4..10 dB anti-noise range.
        order: Butterworth order of the band-pass used to score bands (use the front end's).
        min_low_hz, min_width_hz: limits of the candidate bands (:func:`candidate_bands`).
        max_windows_per_class: windows per class used, evenly spaced (deterministic).

    Returns:
        A :class:`BandChoice`; the same inputs give the same choice.
    """
    X, y = _check_inputs(X, y, method, max_windows_per_class)
    if snr_db is not None and (isinstance(snr_db, bool) or not isinstance(snr_db, (int, float)) or not math.isfinite(snr_db)):
        raise ConfigError(f"The 'snr_db' parameter must be a finite number or None; got {snr_db!r}.")
    grid = candidate_bands(fs_hz, min_low_hz=min_low_hz, min_width_hz=min_width_hz)
    bands = [(lo, hi) for _, lo, hi in grid]
    idx = class_subset(y, max_windows_per_class)
    with torch.no_grad():
        stats = band_statistics(torch.as_tensor(X[idx], dtype=torch.float32), float(fs_hz), bands, order)
    y = y[idx]
    scores = _scores(stats, y, method, normal_label, snr_db)
    best = int(np.argmax(scores))
    params = {"normal_label": None if normal_label is None else int(normal_label), "snr_db": snr_db, "order": order,
              "min_low_hz": float(min_low_hz),
              "min_width_hz": float(fs_hz / 32 if min_width_hz is None else min_width_hz),
              "windows_used": int(idx.size)}
    return BandChoice(
        low_hz=bands[best][0], high_hz=bands[best][1], method=method, fs_hz=float(fs_hz),
        bands_hz=tuple(bands), levels=tuple(lv for lv, _, _ in grid),
        scores=tuple(float(s) for s in scores), params=params,
    )
