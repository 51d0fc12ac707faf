"""Sampling-rate conversion for the whole package: one filter, any ratio, whole signals or streams.

**The filter** is ``scipy.signal.resample_poly``'s default, so results match it to float32
rounding: a Kaiser-windowed sinc (beta 5.0) of ``2 * half + 1`` taps at the upsampled rate,
``half = 10 * max(up, down)``, cut off at ``f_c = min(from_hz, to_hz) / 2``. Output sample ``m``
(at time ``m / out_hz``) is

    y[m] = sum_n x[n] * h(m * down - n * up),   h(k) = up * firwin(...)[k + half],  |k| <= half,

with the signal taken as zero outside ``[0, N)`` and ``ceil(N * up / down)`` outputs. Measured
response, the same for every ratio to within 0.01 in these fractions of ``f_c``: gain within
**0.1 dB of 1 from 0 to 0.85 f_c** (1 dB down at 0.91 f_c, 3 dB at 0.96 f_c) and at least
**53 dB of attenuation from 1.16 f_c on** (60 dB from 1.3 f_c). When downsampling, content at
``f`` above the new Nyquist frequency ``f_c`` folds to ``2 f_c - f``, so the band
**0 .. 0.84 f_c** (0-5 kHz at 12 kHz, where bearing resonances are demodulated) is flat within
0.1 dB and receives aliases only from above 1.16 f_c, at least 53 dB down; the top 16 % below
``f_c`` is the transition band. ``tests/test_resample.py`` checks these figures on tones.

**The ratio** ``up / down`` is ``to_hz / from_hz`` in lowest terms when both terms are at most
:data:`MAX_FACTOR` (48,828 -> 12,000 Hz is 1000/4069; 44,100 -> 12,000 is 40/147). Otherwise
(a rate like 48,000.37 Hz) it is the closest fraction with both terms at most ``MAX_FACTOR``:
the output rate ``from_hz * up / down`` then differs from ``to_hz`` by ``rate_error``
(relative; below ``1 / (MAX_FACTOR - 1)`` = 6.1e-5, usually far smaller), which the plan reports.
A ratio outside ``[1 / MAX_FACTOR, MAX_FACTOR]`` is refused.

**The computation** is polyphase and float32. Outputs are grouped in rows of ``R = P * up``
consecutive samples (``P`` chosen so ``R >= 16``); row ``j`` reads the input from ``j * D``
(``D = P * down``) on, so each run of at most 16 outputs of a row is one small matrix product:
an overlapping strided view ``(rows, S)`` of the input times a fixed ``(S, r)`` matrix of
filter taps. That is BLAS work (``torch.matmul``, on the threads of ``torch.set_num_threads``)
instead of ``resample_poly``'s sample-by-sample loop (``benchmarks/resample_speed.py`` compares
the two); when downsampling it spends about 1.8x the multiplications of a bare polyphase
filter, on taps that are zero for some outputs of a run. :class:`Resampler` keeps the input
samples that rows still need between blocks, so feeding a signal in blocks of any size gives
the same samples as resampling it whole (to float32 rounding), edges included.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from faultdiag.errors import ConfigError

__all__ = ["MAX_FACTOR", "ResamplePlan", "Resampler", "resample", "resample_plan"]

MAX_FACTOR = 16384
"""Largest ``up`` or ``down`` of a plan; bounds the filter to ``20 * MAX_FACTOR + 1`` taps."""

KAISER_BETA = 5.0
HALF_PER_FACTOR = 10
ROW_OUTPUTS = 16
BLOCK_LEN = 1 << 18
"""Input samples per block when :func:`resample` works through a whole signal (cache-sized work)."""
"""Target outputs per matrix product: more wastes multiplications on zero taps, fewer wastes BLAS calls."""


@dataclass(frozen=True)
class _Run:
    """Outputs ``[a, b)`` of a row: ``y[j R + a : j R + b] = x[j D + lo : j D + lo + S] @ taps (S, b - a)``."""

    a: int
    b: int
    lo: int
    taps: torch.Tensor


@dataclass(frozen=True, eq=False)
class ResamplePlan:
    """How to convert ``from_hz`` to ``to_hz``: the ratio, the filter and its polyphase layout.

    Attributes:
        from_hz, to_hz: the rates asked for.
        up, down: the ratio used, coprime; ``out_hz = from_hz * up / down``.
        exact: whether ``up / down`` is exactly ``to_hz / from_hz`` (as the floats state them).
        rate_error: ``out_hz / to_hz - 1`` (0 when exact).
        half: the filter's half length in taps at the upsampled rate.
    """

    from_hz: float
    to_hz: float
    up: int
    down: int
    exact: bool
    rate_error: float
    half: int
    row_outputs: int
    row_inputs: int
    runs: tuple[_Run, ...]

    @property
    def out_hz(self) -> float:
        return self.from_hz * self.up / self.down

    @property
    def reach(self) -> tuple[int, int]:
        """``(lo, hi)``: row ``j`` reads input samples ``j D + lo .. j D + hi`` (``lo <= 0``)."""
        return self.runs[0].lo, max(r.lo + r.taps.shape[0] - 1 for r in self.runs)

    def n_out(self, n_in: int) -> int:
        """Output samples for ``n_in`` input samples: ``ceil(n_in * up / down)``."""
        return -(-n_in * self.up // self.down)


def _check_rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
            math.isfinite(value) and value > 0):
        raise ConfigError(f"The '{name}' parameter must be a positive number of Hz; got {value!r}.")
    return float(value)


def _ratio(from_hz: float, to_hz: float, max_factor: int) -> Fraction:
    """``to_hz / from_hz``, or its closest fraction with both terms at most ``max_factor``."""
    exact = Fraction(to_hz) / Fraction(from_hz)
    if max(exact.numerator, exact.denominator) <= max_factor:
        return exact
    if not Fraction(1, max_factor) <= exact <= max_factor:
        raise ConfigError(f"Cannot resample from {from_hz:g} Hz to {to_hz:g} Hz: the ratio {float(exact):.3g} is "
                          f"outside [1/{max_factor}, {max_factor}].")
    # the closest fraction with denominator <= N is within 1/(q N) of r, and r >= 1/N makes its numerator >= 1:
    # a relative error below 1/(N - 1); for r > 1 the same holds for 1/r
    return exact.limit_denominator(max_factor) if exact < 1 else 1 / (1 / exact).limit_denominator(max_factor)


def _kaiser_lowpass(half: int, cutoff: float) -> np.ndarray:
    """``scipy.signal.firwin(2 half + 1, cutoff, window=("kaiser", 5.0))``: a windowed sinc ``(2 half + 1,)`` cut off
    at ``cutoff`` x Nyquist, scaled to unit gain at DC (without importing scipy.signal, 50 MB of memory)."""
    m = np.arange(-half, half + 1, dtype=np.float64)
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(2 * half + 1, KAISER_BETA)
    return h / h.sum()


def _runs(h: np.ndarray, half: int, up: int, down: int, row_outputs: int) -> tuple[_Run, ...]:
    """Split a row of ``row_outputs`` outputs into runs of at most ``ROW_OUTPUTS``, each with its tap matrix."""
    runs = []
    for a in range(0, row_outputs, ROW_OUTPUTS):
        b = min(row_outputs, a + ROW_OUTPUTS)
        lo = -((half - a * down) // up)            # ceil((a down - half) / up)
        hi = ((b - 1) * down + half) // up          # floor(((b - 1) down + half) / up)
        k = (np.arange(a, b)[None, :] * down - np.arange(lo, hi + 1)[:, None] * up)  # (S, r) tap offsets
        taps = np.where(np.abs(k) <= half, h[np.clip(k + half, 0, 2 * half)], 0.0)
        runs.append(_Run(a, b, lo, torch.from_numpy(taps.astype(np.float32))))
    return tuple(runs)


def resample_plan(from_hz: float, to_hz: float, *, max_factor: int = MAX_FACTOR) -> ResamplePlan:
    """The plan converting ``from_hz`` to ``to_hz`` (see the module docstring); plans are cached.

    Raises:
        ConfigError: a rate that is not a positive finite number, ``max_factor < 1``, or a ratio
            outside ``[1 / max_factor, max_factor]``.
    """
    from_hz, to_hz = _check_rate("from_hz", from_hz), _check_rate("to_hz", to_hz)
    if isinstance(max_factor, bool) or not isinstance(max_factor, int) or max_factor < 1:
        raise ConfigError(f"The 'max_factor' parameter must be a positive int; got {max_factor!r}.")
    return _plan(from_hz, to_hz, max_factor)


@functools.lru_cache(maxsize=16)
def _plan(from_hz: float, to_hz: float, max_factor: int) -> ResamplePlan:
    ratio = _ratio(from_hz, to_hz, max_factor)
    up, down = ratio.numerator, ratio.denominator
    half = HALF_PER_FACTOR * max(up, down)
    h = up * _kaiser_lowpass(half, 1.0 / max(up, down))
    per_row = max(1, math.ceil(ROW_OUTPUTS / up))
    exact = ratio == Fraction(to_hz) / Fraction(from_hz)
    return ResamplePlan(from_hz, to_hz, up, down, exact, 0.0 if exact else from_hz * up / down / to_hz - 1.0,
                        half, per_row * up, per_row * down, _runs(h, half, up, down, per_row * up))


class Resampler:
    """Streaming resampling of ``(C, n)`` blocks with a :class:`ResamplePlan`.

    ``feed(block)`` returns every output sample that the input so far determines; ``flush()``
    returns the rest (the zero-padded end). The outputs of all calls, concatenated, are the
    resampled signal, whatever the block sizes. Float32 in and out; at most about one block
    plus ``reach`` input samples are held.
    """

    def __init__(self, plan: ResamplePlan, n_channels: int):
        self.plan, self.n_channels = plan, n_channels
        lo, self._hi = plan.reach
        self._buf = np.zeros((n_channels, -lo), np.float32)   # x[buf_start:], zeros before 0
        self._buf_start, self._next_row, self._n_in = lo, 0, 0

    def feed(self, block: np.ndarray) -> np.ndarray:
        """Append input ``(C, n)``; return the outputs ``(C, m)`` now complete."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.n_channels:
            raise ConfigError(f"The 'block' parameter must have shape ({self.n_channels}, n); got {block.shape}.")
        self._n_in += block.shape[1]
        self._buf = np.concatenate([self._buf, block], axis=1)  # a copy: the caller may reuse its block
        return self._rows(self._ready_rows())

    def flush(self) -> np.ndarray:
        """The remaining outputs ``(C, m)``: the input is over (zeros beyond it)."""
        plan = self.plan
        n_rows = -(-plan.n_out(self._n_in) // plan.row_outputs) - self._next_row
        if n_rows <= 0:
            return np.zeros((self.n_channels, 0), np.float32)
        need = (self._next_row + n_rows - 1) * plan.row_inputs + self._hi + 1 - self._buf_start
        if need > self._buf.shape[1]:
            pad = np.zeros((self.n_channels, need - self._buf.shape[1]), np.float32)
            self._buf = np.concatenate([self._buf, pad], axis=1)
        done = self._next_row * plan.row_outputs
        out = self._rows(n_rows)
        return out[:, : plan.n_out(self._n_in) - done]

    def _ready_rows(self) -> int:
        end = self._buf_start + self._buf.shape[1]
        return max(0, (end - 1 - self._hi) // self.plan.row_inputs + 1 - self._next_row)

    def _rows(self, n_rows: int) -> np.ndarray:
        """Outputs of the next ``n_rows`` rows ``(C, n_rows * R)``; drops input no later row needs."""
        plan = self.plan
        if n_rows <= 0:
            return np.zeros((self.n_channels, 0), np.float32)
        buf = torch.from_numpy(np.ascontiguousarray(self._buf))
        C, L = buf.shape
        out = torch.empty((C, n_rows, plan.row_outputs), dtype=torch.float32)
        base = self._next_row * plan.row_inputs - self._buf_start
        for run in plan.runs:
            view = buf.as_strided((C, n_rows, run.taps.shape[0]), (L, plan.row_inputs, 1), base + run.lo)
            out[:, :, run.a:run.b] = view @ run.taps                 # (C, rows, S) @ (S, r)
        self._next_row += n_rows
        drop = self._next_row * plan.row_inputs + plan.reach[0] - self._buf_start
        self._buf, self._buf_start = self._buf[:, drop:], self._buf_start + drop
        return out.reshape(C, -1).numpy()


def resample(x: np.ndarray, from_hz: float, to_hz: float, *, max_factor: int = MAX_FACTOR) -> np.ndarray:
    """``x (..., T)`` at ``from_hz`` resampled along its last axis to ``to_hz``: float32 ``(..., ceil(T up / down))``.

    ``x`` itself (as float32) when the rates are equal. See :func:`resample_plan` for the ratio used.
    """
    x = np.asarray(x, dtype=np.float32)
    if _check_rate("from_hz", from_hz) == _check_rate("to_hz", to_hz):
        return x
    plan = resample_plan(from_hz, to_hz, max_factor=max_factor)
    flat = x.reshape(-1, x.shape[-1])
    r = Resampler(plan, flat.shape[0])
    parts = [r.feed(flat[:, a:a + BLOCK_LEN]) for a in range(0, flat.shape[1], BLOCK_LEN)] + [r.flush()]
    y = np.concatenate(parts, axis=1)
    return y.reshape(*x.shape[:-1], y.shape[-1])
