"""Spectra of windows as alternative 1-D model inputs: the magnitude and the envelope spectrum.

Both map windows ``(N, C, L)`` to ``(N, C, L // 2)``: bins ``k = 1 .. L // 2`` of the
one-sided spectrum of the Hann-windowed signal, at ``k fs / L`` Hz (:func:`spectrum_freqs_hz`).
The DC bin is dropped (it holds the sensor offset, or nothing after a band-pass).

Scale: an amplitude spectrum ``A_k = 2 |X_k| / sum(w)`` (``w`` the periodic Hann window), so a
sinusoid of amplitude ``a`` at a bin centre reads ``a``; with ``scale="db"`` (default) it is
``20 log10(A_k + floor)`` with ``floor = 1e-10 max_k A_k`` per window and channel (-200 dB,
only to keep empty bins finite). Decibels are what standardises well: linear spectra are
heavy-tailed (a few lines hold most of the power), so one mean and std per channel squash every
other bin to nearly the same value, whereas log magnitudes spread over a few tens of dB with a
roughly symmetric distribution, and added white noise raises a floor instead of reshaping peaks.
A gain change of the sensor shifts every dB bin equally (the global standardiser absorbs it).

The envelope spectrum is that spectrum of the Hilbert envelope ``|y + j H(y)|`` of the
band-passed window ``y`` (:func:`faultdiag.frontend.filters.analytic_bandpass`), its mean
removed: it shows the repetition rate of impacts ringing in the band (fault frequencies and
their harmonics), the classical diagnosis of localised bearing faults (Randall & Antoni 2011).
"""

from __future__ import annotations

import numpy as np
import torch

from faultdiag.errors import ConfigError
from faultdiag.frontend.filters import check_windows, analytic_bandpass

__all__ = ["SCALES", "spectrum_freqs_hz", "magnitude_spectrum", "envelope_spectrum"]

SCALES = ("db", "linear")
_FLOOR_REL = 1e-10


def spectrum_freqs_hz(n_samples: int, fs_hz: float) -> np.ndarray:
    """Frequencies ``(L // 2,)`` in Hz of the bins the spectra here return: ``k fs / L``, ``k = 1 .. L // 2``."""
    return np.arange(1, n_samples // 2 + 1) * (float(fs_hz) / n_samples)


def _check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ConfigError(f"The 'scale' parameter must be one of {list(SCALES)}; got {scale!r}.")
    return scale


def _amplitude_spectrum(x: torch.Tensor, scale: str) -> torch.Tensor:
    """``(N, C, L)`` float32 -> ``(N, C, L // 2)`` amplitude (or dB) of bins 1 .. L // 2."""
    n = x.shape[-1]
    window = torch.hann_window(n, periodic=True, dtype=x.dtype, device=x.device)
    amp = torch.fft.rfft(x * window).abs()[..., 1 : n // 2 + 1] * (2.0 / window.sum())
    if scale == "linear":
        return amp
    floor = _FLOOR_REL * amp.amax(dim=-1, keepdim=True) + torch.finfo(amp.dtype).tiny
    return 20.0 * torch.log10(amp + floor)


def magnitude_spectrum(x: torch.Tensor, *, scale: str = "db") -> torch.Tensor:
    """One-sided amplitude spectrum of every Hann-windowed window (see the module docstring).

    Args:
        x: windows ``(N, C, L)``, real floating point, any device.
        scale: ``"db"`` (``20 log10`` of the amplitude) or ``"linear"`` (the amplitude).

    Returns:
        float32 ``(N, C, L // 2)``; bin ``k - 1`` is at ``k fs / L`` Hz.
    """
    return _amplitude_spectrum(check_windows(x), _check_scale(scale))


def envelope_spectrum(
    x: torch.Tensor, fs_hz: float, low_hz: float, high_hz: float, order: int = 4, *, scale: str = "db"
) -> torch.Tensor:
    """Amplitude spectrum of the mean-removed Hilbert envelope of the band-passed windows.

    ``e = |analytic_bandpass(x, fs_hz, low_hz, high_hz, order)|``, ``e - mean_t(e)``, then
    :func:`magnitude_spectrum`. The envelope of a band of width ``B`` varies at rates up to
    about ``B``, so bins far above ``high_hz - low_hz`` hold little.

    Args:
        x: windows ``(N, C, L)``, real floating point, any device.
        fs_hz, low_hz, high_hz, order: the demodulation band (as for
            :func:`faultdiag.frontend.filters.bandpass`).
        scale: ``"db"`` or ``"linear"``.

    Returns:
        float32 ``(N, C, L // 2)``; bin ``k - 1`` is at ``k fs / L`` Hz.
    """
    scale = _check_scale(scale)
    env = analytic_bandpass(x, fs_hz, low_hz, high_hz, order).abs()
    return _amplitude_spectrum(env - env.mean(dim=-1, keepdim=True), scale)
