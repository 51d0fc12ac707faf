"""Figure of a band choice: mean training spectrum per class with the band, and every candidate's score."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from faultdiag.errors import DataError
from faultdiag.frontend.band_select import BandChoice
from faultdiag.provenance import atomic_write

__all__ = ["mean_power_spectrum", "plot_band_choice"]


def mean_power_spectrum(X: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean periodogram of Hann-windowed windows ``X (N, C, L)``, averaged over windows and channels.

    Returns:
        ``(freqs_hz (L // 2 + 1,), power (L // 2 + 1,))``, power in signal units squared per Hz.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3 or X.shape[0] == 0:
        raise DataError(f"The 'X' parameter must be windows (N, C, L) with N >= 1; got shape {X.shape}.")
    n = X.shape[-1]
    w = np.hanning(n + 1)[:-1]
    spec = np.abs(np.fft.rfft((X - X.mean(axis=-1, keepdims=True)) * w, axis=-1)) ** 2 / (fs_hz * np.sum(w**2))
    spec[..., 1:-1] *= 2
    return np.fft.rfftfreq(n, 1.0 / fs_hz), spec.mean(axis=(0, 1))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_band_choice(
    choice: BandChoice,
    X: np.ndarray,
    fs_hz: float,
    path: str | os.PathLike,
    *,
    y: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Write a PNG (atomically) of ``choice`` over the training windows it was chosen from.

    Top: mean power spectrum of the windows of each class (one curve for all when ``y`` is
    ``None``), log scale, the chosen band shaded. Bottom: every candidate band drawn as a
    horizontal segment at its score, the chosen one in red.

    Args:
        choice: a :class:`~faultdiag.frontend.band_select.BandChoice`.
        X: clean training windows ``(N, C, L)``.
        fs_hz: sampling rate in Hz.
        path: the PNG to write.
        y: ``(N,)`` integer labels, for one curve per class.
        class_names: names of labels ``0 .. K-1`` for the legend.
        title: figure title (default: method and band).
    """
    X = np.asarray(X)
    labels = np.zeros(len(X), dtype=np.int64) if y is None else np.asarray(y)
    if labels.shape != (len(X),):
        raise DataError(f"The 'y' parameter must have shape ({len(X)},); got {labels.shape}.")
    plt = _pyplot()
    fig, (ax_psd, ax_score) = plt.subplots(2, 1, figsize=(9.0, 7.0), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for k in np.unique(labels):
        freqs, power = mean_power_spectrum(X[labels == k], fs_hz)
        name = "all windows" if y is None else (class_names[k] if class_names is not None else f"class {k}")
        ax_psd.semilogy(freqs / 1000, np.maximum(power, 1e-30), lw=0.9, label=str(name))
    for ax in (ax_psd, ax_score):
        ax.axvspan(choice.low_hz / 1000, choice.high_hz / 1000, color="tab:red", alpha=0.12, lw=0)
        ax.grid(True, alpha=0.3)
    ax_psd.set_ylabel("mean power spectral density")
    ax_psd.legend(fontsize=7, ncol=2 if len(np.unique(labels)) > 5 else 1)
    for (lo, hi), score in zip(choice.bands_hz, choice.scores):
        chosen = (lo, hi) == (choice.low_hz, choice.high_hz)
        ax_score.plot([lo / 1000, hi / 1000], [score, score], color="tab:red" if chosen else "0.35",
                      lw=3.0 if chosen else 1.2, solid_capstyle="butt")
    snr = choice.params.get("snr_db")
    ax_score.set_ylabel(f"{choice.method} score" + ("" if snr is None else f" at {snr:g} dB"))
    ax_score.set_xlabel("frequency (kHz)")
    ax_score.set_xlim(0, fs_hz / 2000)
    fig.suptitle(title or f"{choice.method}: {choice.low_hz:.0f}-{choice.high_hz:.0f} Hz", fontsize=11)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
