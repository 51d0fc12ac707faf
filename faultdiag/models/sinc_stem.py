"""A learnable band-pass stem: a bank of windowed-sinc FIR band-pass filters (SincNet-style).

After Ravanelli & Bengio, "Speaker recognition from raw waveform with SincNet" (SLT 2018):
each output channel is a linear-phase FIR band-pass whose only parameters are its two cutoffs,
so the first layer learns *where* to listen instead of ``kernel_size`` free weights::

    f1 = clamp(min_low + |low_|, max = 1/2 - min_width)          cycles per sample
    f2 = clamp(f1 + min_width + |width_|, max = 1/2)              (1/2 = Nyquist)
    h[n] = (2 f2 sinc(2 f2 t_n) - 2 f1 sinc(2 f1 t_n)) w[n],   t_n = n - (K - 1) / 2
    y = conv1d(x, h, stride, 'same' padding)

``sinc(u) = sin(pi u) / (pi u)``, ``w`` the Hamming window. The passband gain is about 1 (the
difference of two unit-gain low-passes), so the output is the band-passed signal in the input's
units. Cutoffs are stored as fractions of ``fs`` (cycles per sample): an Adam step of size
``lr`` moves a cutoff by about ``lr fs`` Hz (12 Hz at 12 kHz for ``lr = 1e-3``).
The transition band of a Hamming-windowed sinc is about ``3.3 fs / K`` wide, which sets the
default floors ``min_low_hz = min_width_hz = fs / K`` (no FIR of K taps resolves finer).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from faultdiag.errors import ConfigError

__all__ = ["SincBandpass1d"]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"The '{name}' parameter must be a positive int; got {value!r}.")
    return value


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"The '{name}' parameter must be a finite number; got {value!r}.")
    return float(value)


class SincBandpass1d(nn.Module):
    """Learnable band-pass FIR bank, ``(N, C, L) -> (N, C * out_channels, ceil(L / stride))``.

    Every input channel goes through the same ``out_channels`` filters; output channel
    ``c * out_channels + i`` is input channel ``c`` through filter ``i``. At initialisation
    the filters tile ``[low_hz, high_hz]`` with ``out_channels`` adjacent bands of equal width.

    Args:
        out_channels: number of band-pass filters.
        kernel_size: FIR length ``K`` (odd gives an integer group delay; even works too).
        fs_hz: sampling rate in Hz.
        low_hz, high_hz: band the filters tile at init, ``min_low_hz <= low_hz < high_hz <= fs/2``.
        stride: convolution stride.
        min_low_hz, min_width_hz: floors of every filter's low cutoff and width (default
            ``fs_hz / kernel_size`` each).
    """

    def __init__(
        self,
        out_channels: int,
        kernel_size: int,
        fs_hz: float,
        low_hz: float,
        high_hz: float,
        stride: int = 1,
        *,
        min_low_hz: float | None = None,
        min_width_hz: float | None = None,
    ) -> None:
        super().__init__()
        self.out_channels = _positive_int("out_channels", out_channels)
        self.kernel_size = _positive_int("kernel_size", kernel_size)
        self.stride = _positive_int("stride", stride)
        self.fs_hz = _number("fs_hz", fs_hz)
        if self.fs_hz <= 0:
            raise ConfigError(f"The 'fs_hz' parameter must be positive; got {fs_hz!r}.")
        floor_hz = self.fs_hz / self.kernel_size
        self.min_low_hz = floor_hz if min_low_hz is None else _number("min_low_hz", min_low_hz)
        self.min_width_hz = floor_hz if min_width_hz is None else _number("min_width_hz", min_width_hz)
        low_hz, high_hz = _number("low_hz", low_hz), _number("high_hz", high_hz)
        if not (0 < self.min_low_hz <= low_hz < high_hz <= self.fs_hz / 2) or self.min_width_hz <= 0:
            raise ConfigError(
                f"The band must satisfy 0 < min_low_hz <= low_hz < high_hz <= fs_hz / 2 = {self.fs_hz / 2:g} Hz "
                f"with min_width_hz > 0; got min_low_hz={self.min_low_hz:g}, low_hz={low_hz:g}, high_hz={high_hz:g}, "
                f"min_width_hz={self.min_width_hz:g}."
            )
        width_hz = (high_hz - low_hz) / self.out_channels
        if width_hz < self.min_width_hz:
            raise ConfigError(
                f"The band {low_hz:g}-{high_hz:g} Hz split into out_channels={self.out_channels} filters gives "
                f"{width_hz:g} Hz each, narrower than min_width_hz={self.min_width_hz:g} Hz (fs_hz / kernel_size by "
                "default); use fewer channels, a longer kernel or a wider band."
            )
        lows_hz = low_hz + width_hz * torch.arange(self.out_channels, dtype=torch.float64)
        self.low_ = nn.Parameter(((lows_hz - self.min_low_hz) / self.fs_hz).float())
        self.width_ = nn.Parameter(torch.full((self.out_channels,), (width_hz - self.min_width_hz) / self.fs_hz))
        k = self.kernel_size
        self.register_buffer("taps", torch.arange(k, dtype=torch.float32) - (k - 1) / 2, persistent=False)
        self.register_buffer("window", torch.hamming_window(k, periodic=False), persistent=False)

    def cutoffs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Low and high cutoffs ``(out_channels,)`` in cycles per sample (formula in the module docstring)."""
        min_low, min_width = self.min_low_hz / self.fs_hz, self.min_width_hz / self.fs_hz
        low = torch.clamp(min_low + self.low_.abs(), max=0.5 - min_width)
        high = torch.clamp(low + min_width + self.width_.abs(), max=0.5)
        return low, high

    def band_edges_hz(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Low and high cutoffs ``(out_channels,)`` in Hz."""
        low, high = self.cutoffs()
        return low * self.fs_hz, high * self.fs_hz

    def filters(self) -> torch.Tensor:
        """The FIR kernels ``(out_channels, K)``."""
        low, high = (f[:, None] for f in self.cutoffs())
        t = self.taps[None, :]
        h = 2 * high * torch.sinc(2 * high * t) - 2 * low * torch.sinc(2 * low * t)
        return h * self.window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, length = x.shape  # (N, C, L)
        k = self.kernel_size
        x = F.pad(x.reshape(n * c, 1, length), ((k - 1) // 2, k // 2))  # Keras 'same': extra sample on the right
        y = F.conv1d(x, self.filters()[:, None, :].to(x.dtype), stride=self.stride)  # (N C, out, ceil(L / s))
        return y.reshape(n, c * self.out_channels, y.shape[-1])

    def extra_repr(self) -> str:
        return (f"out_channels={self.out_channels}, kernel_size={self.kernel_size}, fs_hz={self.fs_hz:g}, "
                f"stride={self.stride}, min_low_hz={self.min_low_hz:g}, min_width_hz={self.min_width_hz:g}")
