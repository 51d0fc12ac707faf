"""The one record type for a vibration recording.

A :class:`Recording` holds a signal of shape ``(channels, samples)`` as float32, its sampling
rate ``fs_hz``, channel names, an optional class label, the file it came from and free-form
metadata (``rpm``, ``load_hp``, ``fault``, ``diameter_in``, ``sensor``, ``cwru_number`` ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from faultdiag.errors import ConfigError, DataError


@dataclass(frozen=True, eq=False)
class Recording:
    """A multichannel vibration recording.

    Attributes:
        signal: float32 array ``(C, T)``; finite values only.
        fs_hz: sampling rate in Hz (> 0).
        channels: one name per row of ``signal`` (e.g. ``("DE", "FE", "BA")``).
        label: class name, or ``None`` when unknown.
        source: path of the file it was read from, or ``None``.
        meta: metadata such as ``rpm``, ``load_hp``, ``fault``, ``diameter_in``.
    """

    signal: np.ndarray
    fs_hz: float
    channels: tuple[str, ...]
    label: str | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        sig = np.asarray(self.signal)
        if sig.ndim == 1:
            sig = sig[None, :]
        if sig.ndim != 2:
            raise DataError(f"A recording's signal must be 2-D (channels, samples){where}; got shape {sig.shape}.")
        if sig.dtype != np.float32:
            sig = sig.astype(np.float32)
        if not (isinstance(self.fs_hz, (int, float)) and math.isfinite(self.fs_hz) and self.fs_hz > 0):
            raise DataError(f"The 'fs_hz' of a recording must be a positive number{where}; got {self.fs_hz!r}.")
        channels = tuple(str(c) for c in self.channels)
        if len(channels) != sig.shape[0]:
            raise DataError(
                f"A recording needs one channel name per signal row{where}; got {len(channels)} names "
                f"{channels} for {sig.shape[0]} rows."
            )
        if sig.size and not np.isfinite(sig).all():
            bad = np.argwhere(~np.isfinite(sig))[0]
            raise DataError(
                f"The signal{where} contains NaN or Inf values (first at channel "
                f"'{channels[bad[0]]}', sample {bad[1]})."
            )
        object.__setattr__(self, "signal", sig)
        object.__setattr__(self, "fs_hz", float(self.fs_hz))
        object.__setattr__(self, "channels", channels)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    @property
    def name(self) -> str:
        """A short name for tables and logs: the file name, or the label."""
        if self.source:
            return self.source.replace("\\", "/").rsplit("/", 1)[-1]
        return self.label or "recording"

    def select(self, channels: Sequence[str] | str) -> "Recording":
        """Return a recording with only ``channels`` (names), in the order given."""
        wanted = [channels] if isinstance(channels, str) else list(channels)
        missing = [c for c in wanted if c not in self.channels]
        if missing:
            raise ConfigError(
                f"The 'channel' parameter names {missing}, which {self.name} does not have; "
                f"its channels are {list(self.channels)}."
            )
        rows = [self.channels.index(c) for c in wanted]
        return replace(self, signal=self.signal[rows], channels=tuple(wanted))

    def resample(self, fs_hz: float) -> "Recording":
        """Return the recording resampled to ``fs_hz`` (:func:`faultdiag.data.resample.resample`: any ratio)."""
        from faultdiag.data.resample import resample

        if isinstance(fs_hz, bool) or not isinstance(fs_hz, (int, float)) or not (math.isfinite(fs_hz) and fs_hz > 0):
            raise ConfigError(f"The 'fs_hz' parameter must be a positive number; got {fs_hz!r}.")
        if fs_hz == self.fs_hz:
            return self
        meta = dict(self.meta, resampled_from_hz=self.fs_hz)
        return replace(self, signal=resample(self.signal, self.fs_hz, fs_hz), fs_hz=float(fs_hz), meta=meta)

    def with_label(self, label: str | None) -> "Recording":
        return replace(self, label=label)
