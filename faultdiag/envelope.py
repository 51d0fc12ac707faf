"""Envelope analysis: the classical diagnosis of localised bearing faults.

A localised fault excites a structural resonance at each impact; the impacts repeat at a
characteristic fault frequency (:func:`faultdiag.bearing.fault_frequencies`). Band-pass
filtering around the resonance, taking the Hilbert envelope and its spectrum reveals that
repetition rate and its harmonics (Randall & Antoni, "Rolling element bearing diagnostics - A
tutorial", MSSP 25 (2011) 485-520).

Band selection (``band_hz=None``): among candidate bands of width Nyquist/6, /4, /3 and /2 with
50 % overlap, the one whose complex envelope has the largest kurtosis
``K = E|a|^4 / (E|a|^2)^2 - 2`` (0 for Gaussian noise, as in Antoni's kurtogram) is used. When no
band is impulsive (``K < 0.5``) the fixed band :data:`DEFAULT_BAND_HZ` (2-5 kHz, where the CWRU
drive-end resonances lie at 12 kHz sampling) is used, clipped to 0.45 x fs.

Band-pass (zero-phase Butterworth of order 4), analytic signal and kurtosis are computed in the
frequency domain from one FFT of the signal (:mod:`faultdiag.bandpass`), shared by the band
search and the envelope spectrum.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from faultdiag.bandpass import Spectrum, analytic_band, band_kurtoses
from faultdiag.bearing import DRIVE_END_6205, BearingGeometry, BearingOrders, fault_frequencies
from faultdiag.errors import ConfigError, DataError

__all__ = ["DEFAULT_BAND_HZ", "FAULT_NAMES", "select_band", "envelope_spectrum", "fault_frequency_report"]

log = logging.getLogger(__name__)

DEFAULT_BAND_HZ = (2000.0, 5000.0)
"""Fallback demodulation band when no candidate band is impulsive."""

FAULT_NAMES = {"bpfo": "outer_race", "bpfi": "inner_race", "bsf": "ball"}
"""Characteristic frequency -> fault name (the names of ``faultdiag.data.simulate.SIM_CLASSES``)."""

_MIN_KURTOSIS = 0.5
_MIN_SAMPLES = 256


def _as_signal(x: np.ndarray, fs_hz: float) -> np.ndarray:
    if isinstance(fs_hz, bool) or not isinstance(fs_hz, (int, float)) or not math.isfinite(fs_hz) or fs_hz <= 0:
        raise ConfigError(f"The 'fs_hz' parameter must be a positive number; got {fs_hz!r}.")
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise DataError(f"The 'x' parameter must be a 1-D signal (T,) or (1, T); got shape {arr.shape}.")
    if arr.size < _MIN_SAMPLES:
        raise DataError(f"The 'x' parameter must have at least {_MIN_SAMPLES} samples; got {arr.size}.")
    if not np.isfinite(arr).all():
        raise DataError("The 'x' parameter contains NaN or Inf values.")
    return arr


def _check_band(band_hz: tuple[float, float], fs_hz: float) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in band_hz)
    except (TypeError, ValueError):
        raise ConfigError(f"The 'band_hz' parameter must be a pair (low_hz, high_hz); got {band_hz!r}.") from None
    if not (0 < lo < hi < fs_hz / 2):
        raise ConfigError(
            f"The 'band_hz' parameter must satisfy 0 < low < high < fs/2 = {fs_hz / 2:g} Hz; got {band_hz!r}."
        )
    return lo, hi


def _candidate_bands(fs_hz: float) -> list[tuple[float, float]]:
    nyq = fs_hz / 2
    lowest, highest = fs_hz / 48, 0.95 * nyq
    bands = []
    for width in (nyq / 6, nyq / 4, nyq / 3, nyq / 2):
        lo = lowest
        while lo + width <= highest:
            bands.append((lo, lo + width))
            lo += width / 2
    return bands


def select_band(x: np.ndarray, fs_hz: float) -> tuple[tuple[float, float], float]:
    """Pick the demodulation band automatically (see the module docstring).

    Args:
        x: signal ``(T,)`` or ``(1, T)``.
        fs_hz: sampling rate in Hz.

    Returns:
        ``((low_hz, high_hz), kurtosis)``: the chosen band and the envelope kurtosis in it.
    """
    return _select_band(Spectrum.of(_as_signal(x, fs_hz), fs_hz))


def _select_band(spec: Spectrum) -> tuple[tuple[float, float], float]:
    fs_hz = spec.fs_hz
    bands = _candidate_bands(fs_hz)
    kurt, band = max(zip(band_kurtoses(spec, bands).tolist(), bands))
    if kurt < _MIN_KURTOSIS:
        band = (DEFAULT_BAND_HZ[0], min(DEFAULT_BAND_HZ[1], 0.45 * fs_hz))
        if band[0] >= band[1]:
            band = (fs_hz / 6, 0.45 * fs_hz)
        kurt = float(band_kurtoses(spec, [band])[0])
        log.debug("no impulsive band (max kurtosis below %.2f); using %s Hz", _MIN_KURTOSIS, band)
    return (float(band[0]), float(band[1])), kurt


def envelope_spectrum(
    x: np.ndarray, fs_hz: float, band_hz: tuple[float, float] | None = None, *, resolution_hz: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided amplitude spectrum of the Hilbert envelope of ``x`` demodulated in ``band_hz``.

    ``x`` is band-passed (zero-phase Butterworth of order 4, :mod:`faultdiag.bandpass`), its
    envelope ``|x + j H(x)|`` taken and its mean removed; the spectrum is averaged over Hann-windowed segments of
    ``fs_hz / resolution_hz`` samples with 50 % overlap (one segment when ``x`` is shorter) and
    scaled so a sinusoidal envelope component of amplitude ``A`` reads ``A``.

    Args:
        x: signal ``(T,)`` or ``(1, T)``.
        fs_hz: sampling rate in Hz.
        band_hz: ``(low_hz, high_hz)``; ``None`` chooses it with :func:`select_band`.
        resolution_hz: target frequency resolution in Hz.

    Returns:
        ``(freqs_hz (F,), amplitude (F,))``.
    """
    x = _as_signal(x, fs_hz)
    if not (isinstance(resolution_hz, (int, float)) and math.isfinite(resolution_hz) and resolution_hz > 0):
        raise ConfigError(f"The 'resolution_hz' parameter must be a positive number; got {resolution_hz!r}.")
    spec = Spectrum.of(x, fs_hz)
    band = _select_band(spec)[0] if band_hz is None else _check_band(band_hz, fs_hz)
    return _envelope_spectrum(spec, band, resolution_hz)


def _envelope_spectrum(spec: Spectrum, band: tuple[float, float], resolution_hz: float) -> tuple[np.ndarray, np.ndarray]:
    fs_hz = spec.fs_hz
    env = np.abs(analytic_band(spec, band)).astype(np.float64)
    env -= env.mean()
    nperseg = min(env.size, int(round(fs_hz / resolution_hz)))
    return np.fft.rfftfreq(nperseg, 1.0 / fs_hz), np.sqrt(2.0 * _welch_power(env, nperseg))


def _welch_power(x: np.ndarray, nperseg: int) -> np.ndarray:
    """Welch's power spectrum ``(nperseg // 2 + 1,)`` of ``x (T,)``: periodic Hann segments of ``nperseg``
    samples, 50 % overlap, no detrending, one-sided, scaled so a sinusoid of amplitude ``A`` reads
    ``A^2 / 2`` (``scipy.signal.welch(..., scaling="spectrum", detrend=False)``), one segment at a time."""
    from scipy import fft

    step = nperseg - nperseg // 2
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nperseg) / nperseg)
    starts = range(0, x.size - nperseg + 1, step)
    power = np.zeros(nperseg // 2 + 1)
    for a in starts:
        power += np.abs(fft.rfft(x[a:a + nperseg] * window)) ** 2
    power /= len(starts) * window.sum() ** 2
    power[1: None if nperseg % 2 else -1] *= 2.0
    return power


def _prominence(freqs_hz: np.ndarray, amp: np.ndarray, f0_hz: float, tol: float) -> tuple[float, float]:
    """Peak within ``f0 (1 +- tol)`` over the median of its neighbourhood ``f0 (1 +- 6 tol)``."""
    df = freqs_hz[1] - freqs_hz[0]
    half = max(tol * f0_hz, 1.5 * df)
    near = np.abs(freqs_hz - f0_hz) <= half
    ring = (np.abs(freqs_hz - f0_hz) <= max(6 * tol * f0_hz, 12 * df)) & ~near & (freqs_hz > 0)
    if not near.any() or ring.sum() < 4:
        return float("nan"), float("nan")
    i = np.flatnonzero(near)[np.argmax(amp[near])]
    background = np.median(amp[ring])
    return float(freqs_hz[i]), (float(amp[i] / background) if background > 0 else float("nan"))


def _line_report(freqs_hz, amp, f_hz, harmonics, tol) -> dict:
    targets = [k * f_hz for k in range(1, harmonics + 1)]
    peaks = [_prominence(freqs_hz, amp, t, tol) for t in targets]
    prom = [p for _, p in peaks]
    valid = [p for p in prom if math.isfinite(p) and p > 0]
    # geometric mean over harmonics: one harmonic coinciding with another family's line
    # (e.g. 2 x BPFI ~ 3 x BPFO on the 6205) cannot make a family stand out alone
    score = float(np.exp(np.mean(np.log(valid)))) if len(valid) == len(prom) else float("nan")
    return {"freq_hz": f_hz, "harmonics_hz": targets, "peak_hz": [f for f, _ in peaks], "prominence": prom, "score": score}


def fault_frequency_report(
    x: np.ndarray,
    fs_hz: float,
    shaft_hz: float,
    geometry: BearingGeometry | BearingOrders = DRIVE_END_6205,
    harmonics: int = 2,
    *,
    band_hz: tuple[float, float] | None = None,
    tolerance: float = 0.02,
    threshold: float = 5.0,
    margin: float = 1.5,
) -> dict:
    """Which characteristic fault frequency stands out in the envelope spectrum of ``x``.

    For each line family (BPFO, BPFI, BSF and 2 x BSF) the envelope amplitude peak within
    ``+-tolerance`` (relative, for slip) of each harmonic ``k f`` (``k = 1..harmonics``) is
    divided by the median envelope amplitude in ``k f (1 +- 6 tolerance)`` outside that window:
    a dimensionless prominence (about 1-2 for noise; family scores of fault-free signals stay
    below 3, e.g. at most 1.9 on CWRU normal 97.mat). A family's score is the geometric mean of
    its prominences; the ball score is the larger of the BSF and 2 x BSF scores. The best family
    is ``dominant`` only if its score is at least ``threshold`` and ``margin`` times the
    runner-up's; otherwise ``dominant`` and ``fault`` are ``None`` (nothing stands out, or the
    evidence is ambiguous).

    Args:
        x: signal ``(T,)`` or ``(1, T)``, ideally several seconds long.
        fs_hz: sampling rate in Hz.
        shaft_hz: shaft speed in Hz (rpm / 60).
        geometry: the bearing (its geometry, or its fault frequencies in orders of shaft speed).
        harmonics: number of harmonics per family, the fundamental included (>= 1).
        band_hz: demodulation band, ``None`` for :func:`select_band`.
        tolerance: relative search half-width around each line.
        threshold: minimum score to call a fault.
        margin: minimum ratio of the best score to the runner-up.

    Returns:
        dict with ``band_hz``, ``band_kurtosis`` (``None`` for a given band), ``shaft_hz``,
        ``frequencies_hz`` (from :func:`fault_frequencies`), ``lines`` (per family: ``freq_hz``,
        ``harmonics_hz``, ``peak_hz``, ``prominence``, ``score``), ``scores`` (``bpfo``, ``bpfi``,
        ``bsf``), ``dominant`` (``"bpfo"``, ``"bpfi"``, ``"bsf"`` or ``None``) and ``fault``
        (``"outer_race"``, ``"inner_race"``, ``"ball"`` or ``None``).
    """
    x = _as_signal(x, fs_hz)
    if isinstance(harmonics, bool) or not isinstance(harmonics, int) or harmonics < 1:
        raise ConfigError(f"The 'harmonics' parameter must be a positive int; got {harmonics!r}.")
    for name, value, upper in (("tolerance", tolerance, 0.1), ("threshold", threshold, math.inf), ("margin", margin, math.inf)):
        if not (isinstance(value, (int, float)) and 0 < value <= upper):
            raise ConfigError(f"The '{name}' parameter must be a number in (0, {upper:g}]; got {value!r}.")
    freqs = fault_frequencies(geometry, shaft_hz)
    spec = Spectrum.of(x, fs_hz)
    if band_hz is None:
        band, kurt = _select_band(spec)
    else:
        band, kurt = _check_band(band_hz, fs_hz), None
    f_hz, amp = _envelope_spectrum(spec, band, min(0.5, shaft_hz / 20))
    families = {"bpfo": freqs["bpfo_hz"], "bpfi": freqs["bpfi_hz"], "bsf": freqs["bsf_hz"], "2bsf": 2 * freqs["bsf_hz"]}
    top = harmonics * max(families.values()) * (1 + 6 * tolerance)
    if top >= fs_hz / 2:
        raise ConfigError(
            f"The 'harmonics' parameter ({harmonics}) puts fault lines up to {top:g} Hz, above fs/2 = {fs_hz / 2:g} Hz."
        )
    lines = {k: _line_report(f_hz, amp, f, harmonics, tolerance) for k, f in families.items()}
    scores = {k: lines[k]["score"] for k in ("bpfo", "bpfi")}
    ball = [lines[k]["score"] for k in ("bsf", "2bsf") if math.isfinite(lines[k]["score"])]
    scores["bsf"] = max(ball) if ball else float("nan")
    ranked = sorted(((s, k) for k, s in scores.items() if math.isfinite(s)), reverse=True)
    dominant = None
    if ranked and ranked[0][0] >= threshold:
        runner_up = ranked[1][0] if len(ranked) > 1 else 0.0
        if ranked[0][0] >= margin * runner_up:
            dominant = ranked[0][1]
    log.debug("envelope scores %s in band %s Hz -> %s", scores, band, dominant)
    return {
        "band_hz": band,
        "band_kurtosis": kurt,
        "shaft_hz": float(shaft_hz),
        "frequencies_hz": freqs,
        "lines": lines,
        "scores": scores,
        "dominant": dominant,
        "fault": FAULT_NAMES.get(dominant) if dominant else None,
    }
