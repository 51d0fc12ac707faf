"""Band-pass filtering in the frequency domain: analytic band signals and envelope kurtosis from one FFT.

Envelope analysis (:mod:`faultdiag.envelope`) band-passes a signal around a structural resonance
and takes its analytic signal ``a = y + j H(y)``. Both steps are diagonal in the frequency
domain, so one FFT of the signal serves every band:

* the band-pass is a Butterworth of order 4 (bilinear transform) run forwards and backwards,
  zero phase with amplitude gain ``g = |H|^2 = 1 / (1 + w^8)``, ``w = (W - W_l W_h / W) / (W_h - W_l)``,
  ``W = tan(pi f / fs)`` and ``W_l``, ``W_h`` at the band edges (:func:`bandpass_gain`): what
  ``scipy.signal.sosfiltfilt`` with ``butter(4, band, "bandpass")`` applies, except at the ends:
  the filtering here is circular over the zero-padded FFT length, after a 50 ms fade at each end
  (:meth:`Spectrum.of`), where ``sosfiltfilt`` pads by odd extension, whose start-up transient
  can dominate a band's kurtosis (CWRU 3008.mat: 484 there, 1.7 here, in 250-1250 Hz);
* the analytic signal is the inverse FFT of ``2 X(f) g(f)`` over positive frequencies.

A band's envelope kurtosis ``K = E|a|^4 / (E|a|^2)^2 - 2`` (0 for Gaussian noise, as in Antoni's
kurtogram) needs no full-rate inverse transform: only the ``W`` bins where ``g > 1e-4`` are
kept, shifted to baseband (which leaves ``|a|`` unchanged) and inverse-transformed on
``M >= 2 W`` points. ``|a|^2`` and ``|a|^4`` are trigonometric polynomials of degree below ``W`` and
``2 W``, so their means over those ``M`` samples equal their means over the full-rate envelope.
Transforms run in single precision, means in double.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft

__all__ = ["Spectrum", "analytic_band", "band_kurtoses", "bandpass_gain"]

BUTTER_ORDER = 4
GAIN_FLOOR = 1e-4
"""Bins where the band-pass gain is below this (-80 dB in power) are left out of a band's kurtosis."""
EDGE_TAPER_S = 0.05
"""Seconds faded in and out at the ends of the signal before its FFT (see :meth:`Spectrum.of`)."""


@dataclass(frozen=True, eq=False)
class Spectrum:
    """One-sided FFT of a real signal ``x (n,)`` zero-padded to ``n_fft``.

    Attributes:
        values: ``rfft(x, n_fft)`` complex64 ``(n_fft // 2 + 1,)``.
        fs_hz: sampling rate of ``x``.
        n: length of ``x``.
    """

    values: np.ndarray
    fs_hz: float
    n: int

    @classmethod
    def of(cls, x: np.ndarray, fs_hz: float) -> "Spectrum":
        """The spectrum of ``x (n,)`` (any real dtype; transformed as float32), mean removed and ends tapered.

        The FFT treats the signal as periodic: its end joins its start, a jump that would ring in
        every band. A raised-cosine fade over ``EDGE_TAPER_S`` (at most 5 % of the signal) at
        each end removes it.
        """
        x = np.asarray(x, dtype=np.float64)
        x = (x - x.mean()).astype(np.float32)
        k = min(int(round(EDGE_TAPER_S * fs_hz)), x.size // 20)
        if k > 1:
            fade = (0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)).astype(np.float32)
            x[:k] *= fade
            x[-k:] *= fade[::-1]
        return cls(fft.rfft(x, fft.next_fast_len(x.size, real=True)), float(fs_hz), x.size)

    @property
    def n_fft(self) -> int:
        return 2 * (self.values.size - 1)

    @property
    def freqs_hz(self) -> np.ndarray:
        return np.arange(self.values.size) * (self.fs_hz / self.n_fft)

    def tan(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """``W = tan(pi f / fs)`` of bins ``lo:hi`` (``inf`` at Nyquist)."""
        k = np.arange(lo, self.values.size if hi is None else hi, dtype=np.float64)
        with np.errstate(divide="ignore"):
            return np.tan(np.pi * k / self.n_fft)


def _gain_from_tan(w: np.ndarray, band_hz: tuple[float, float], fs_hz: float) -> np.ndarray:
    """:func:`bandpass_gain` from ``W = tan(pi f / fs)`` ``(F,)`` (the 4th-order formula of the front end)."""
    from faultdiag.frontend.filters import gain_from_tan

    wl, wh = np.tan(np.pi * np.asarray(band_hz, dtype=np.float64) / fs_hz)
    return gain_from_tan(w, float(wl), float(wh), order=4)


def bandpass_gain(freqs_hz: np.ndarray, band_hz: tuple[float, float], fs_hz: float) -> np.ndarray:
    """Amplitude gain ``(F,)`` at ``freqs_hz`` of the zero-phase band-pass (module docstring):
    1/2 at the band edges, 0 at DC and Nyquist."""
    f = np.clip(np.asarray(freqs_hz, dtype=np.float64), 0.0, fs_hz / 2)
    with np.errstate(divide="ignore"):
        return _gain_from_tan(np.tan(np.pi * f / fs_hz), band_hz, fs_hz)


def _gain_span(spec: Spectrum, band_hz: tuple[float, float]) -> tuple[int, int]:
    """Bins ``lo:hi`` where the gain is at least ``GAIN_FLOOR`` (solving ``w = -+w_floor`` for ``W``)."""
    wl, wh = np.tan(np.pi * np.asarray(band_hz, dtype=np.float64) / spec.fs_hz)
    b = (1.0 / GAIN_FLOOR - 1.0) ** (1.0 / (2 * BUTTER_ORDER)) * (wh - wl)
    root = np.sqrt(b * b + 4 * wl * wh)                   # W - Wl Wh / W = s  ->  W = (s + root) / 2
    lo, hi = (np.arctan((s + root) / 2) / np.pi * spec.n_fft for s in (-b, b))
    return int(np.floor(lo)), min(spec.values.size, int(np.ceil(hi)) + 1)


def analytic_band(spec: Spectrum, band_hz: tuple[float, float]) -> np.ndarray:
    """The analytic signal ``(n,)`` complex64 of the signal band-passed in ``band_hz``."""
    full = np.zeros(spec.n_fft, np.complex64)
    full[: spec.values.size] = spec.values * (2 * _gain_from_tan(spec.tan(), band_hz, spec.fs_hz)).astype(np.float32)
    return fft.ifft(full)[: spec.n]


def band_kurtoses(spec: Spectrum, bands: list[tuple[float, float]]) -> np.ndarray:
    """Envelope kurtosis ``(B,)`` of the signal in each band (module docstring); 0 for a silent band."""
    out = np.zeros(len(bands))
    for i, band in enumerate(bands):
        lo, hi = _gain_span(spec, band)
        if hi <= lo:
            continue
        part = spec.values[lo:hi] * _gain_from_tan(spec.tan(lo, hi), band, spec.fs_hz).astype(np.float32)
        e2 = np.abs(fft.ifft(part, fft.next_fast_len(2 * (hi - lo)))).astype(np.float64)
        e2 *= e2
        power = e2.mean()                                  # einsum, not np.dot: no BLAS thread pool
        out[i] = np.einsum("i,i->", e2, e2) / e2.size / power**2 - 2.0 if power > 0 else 0.0
    return out
