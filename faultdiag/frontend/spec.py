"""The front end's specification and the one function the input pipeline calls.

Pipeline: raw windows (+ test noise) ``(N, C, L)`` -> :func:`apply_front_end` -> standardise
(fitted on the front end's output of the *training* windows) -> model. The band of a
``"bandpass"`` or ``"envelope_spectrum"`` front end is chosen from clean training windows only
(:func:`faultdiag.frontend.band_select.choose_band`) and stored in the checkpoint with
:meth:`FrontEnd.to_dict`, so test and diagnosis windows go through exactly the same filter.

Kinds and output shapes (``L`` the window length):

=====================  ============================================  ===============
kind                   what                                          output
=====================  ============================================  ===============
``"none"``             the raw windows, unchanged (as float32)       ``(N, C, L)``
``"bandpass"``         zero-phase Butterworth band-pass              ``(N, C, L)``
``"spectrum"``         amplitude spectrum in dB, bins 1 .. L//2      ``(N, C, L//2)``
``"envelope_spectrum"`` envelope spectrum in dB of the band           ``(N, C, L//2)``
=====================  ============================================  ===============
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch

from faultdiag.config.schema import FRONT_END_KINDS
from faultdiag.errors import ConfigError
from faultdiag.frontend.filters import bandpass, check_band, check_windows
from faultdiag.frontend.spectral import envelope_spectrum, magnitude_spectrum

__all__ = ["FRONT_END_KINDS", "FrontEnd", "apply_front_end"]

_BANDED = ("bandpass", "envelope_spectrum")


@dataclass(frozen=True)
class FrontEnd:
    """What the front end does to raw windows (plain types only, so it round-trips through JSON).

    Attributes:
        kind: one of :data:`FRONT_END_KINDS`.
        low_hz, high_hz: band edges in Hz; required for ``"bandpass"`` and
            ``"envelope_spectrum"`` (``0 < low_hz < high_hz < fs_hz / 2``), ``None`` otherwise.
        order: Butterworth prototype order of the band-pass (applied forwards and backwards).
        fs_hz: sampling rate in Hz the band refers to; required with a band.
    """

    kind: str = "none"
    low_hz: float | None = None
    high_hz: float | None = None
    order: int = 4
    fs_hz: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FRONT_END_KINDS:
            raise ConfigError(f"The 'kind' parameter must be one of {list(FRONT_END_KINDS)}; got {self.kind!r}.")
        if isinstance(self.order, bool) or not isinstance(self.order, int) or not 1 <= self.order <= 16:
            raise ConfigError(f"The 'order' parameter must be an int in [1, 16]; got {self.order!r}.")
        if self.kind in _BANDED:
            if self.low_hz is None or self.high_hz is None or self.fs_hz is None:
                raise ConfigError(
                    f"A '{self.kind}' front end needs low_hz, high_hz and fs_hz; got low_hz={self.low_hz!r}, "
                    f"high_hz={self.high_hz!r}, fs_hz={self.fs_hz!r}."
                )
            fs_hz, low_hz, high_hz, order = check_band(self.fs_hz, self.low_hz, self.high_hz, self.order)
            for name, value in (("fs_hz", fs_hz), ("low_hz", low_hz), ("high_hz", high_hz), ("order", order)):
                object.__setattr__(self, name, value)
            return
        if self.low_hz is not None or self.high_hz is not None:
            raise ConfigError(
                f"A '{self.kind}' front end takes no band; got low_hz={self.low_hz!r}, high_hz={self.high_hz!r}."
            )
        if self.fs_hz is not None:  # optional here (a spectrum's bins are at k fs / L): validate it anyway
            if isinstance(self.fs_hz, bool) or not isinstance(self.fs_hz, (int, float)) or not (math.isfinite(self.fs_hz) and self.fs_hz > 0):
                raise ConfigError(f"The 'fs_hz' parameter must be a positive number or None; got {self.fs_hz!r}.")
            object.__setattr__(self, "fs_hz", float(self.fs_hz))

    def output_length(self, window_len: int) -> int:
        """Length of the front end's output for windows of ``window_len`` samples."""
        return window_len // 2 if self.kind in ("spectrum", "envelope_spectrum") else window_len

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{"kind", "low_hz", "high_hz", "order", "fs_hz"}`` for checkpoints and JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FrontEnd":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"A front-end spec must be a mapping; got {type(d).__name__}.")
        unknown = sorted(set(d) - {"kind", "low_hz", "high_hz", "order", "fs_hz"})
        if unknown:
            raise ConfigError(f"Unknown front-end keys {unknown}; known: kind, low_hz, high_hz, order, fs_hz.")
        return cls(**dict(d))


def apply_front_end(x: torch.Tensor, spec: FrontEnd) -> torch.Tensor:
    """Raw (possibly noisy) windows ``(N, C, L)`` -> front-end output (shapes in the module docstring).

    Args:
        x: windows ``(N, C, L)``, real floating point, any device; the result stays there.
        spec: a :class:`FrontEnd`.

    Returns:
        float32 ``(N, C, spec.output_length(L))``.
    """
    if not isinstance(spec, FrontEnd):
        raise ConfigError(f"The 'spec' parameter must be a FrontEnd; got {type(spec).__name__}.")
    x = check_windows(x)
    if spec.kind == "none":
        return x
    if spec.kind == "bandpass":
        return bandpass(x, spec.fs_hz, spec.low_hz, spec.high_hz, spec.order)
    if spec.kind == "spectrum":
        return magnitude_spectrum(x)
    return envelope_spectrum(x, spec.fs_hz, spec.low_hz, spec.high_hz, spec.order)
