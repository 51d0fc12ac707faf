"""A recording opened for streaming, and the checks every reader shares.

:class:`RecordingSource` knows a file's header (sampling rate, channel names, length when the
format states it) and reads its signal block by block, so an hour at 48 kHz never has to sit in
memory at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError

TIME_NAMES = ("time", "t", "time_s", "timestamp")
"""Names of a time vector in seconds; with a unit (``time_ms``, ``t_us``, ``Time [s]``, ``time (ns)``) see :func:`time_scale`."""
TIME_UNITS_S = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "\u00b5s": 1e-6,
                "usec": 1e-6, "ns": 1e-9, "min": 60.0}
_TIME_NAME = re.compile(r"^(timestamp|time|t)(?:[\s_\-]*[\[(]?\s*([a-z\u00b5]+)\s*[\])]?)?$")
FS_NAMES = ("fs", "fs_hz", "sampling_rate", "sample_rate", "sr", "samplerate", "sampling_frequency",
            "sampling_rate_hz", "sample_rate_hz", "fsample")
SPACING_TOLERANCE = 0.25  # a sample spacing may differ this much (relative) from the median
MIN_CHUNK_LEN = 1 << 14
READ_CHUNK_LEN = 1 << 18


@dataclass(frozen=True, eq=False)
class RecordingSource:
    """A recording file opened for block-wise reading.

    Attributes:
        fs_hz: sampling rate in Hz.
        channels: channel names, in the order of the rows of each block.
        n_samples: samples per channel, or ``None`` when unknown before reading (CSV).
        source: path of the file.
        meta: metadata (``format`` and whatever the file states).
        label: class label stated by the caller or the file, else ``None``.
        format: one of ``readers.FORMATS``.
    """

    fs_hz: float
    channels: tuple[str, ...]
    n_samples: int | None
    source: str
    meta: dict[str, Any]
    label: str | None
    format: str
    _read_chunks: Callable[[int], Iterator[np.ndarray]] = field(repr=False)

    def iter_blocks(self, block_len: int, overlap: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_sample, block)`` with ``block`` float32 ``(C, n)``.

        Block ``k`` starts at ``k * (block_len - overlap)``; every block has ``block_len`` samples
        except the last, which ends at the end of the signal (a signal shorter than
        ``block_len`` gives one short block). At most about ``2 * block_len`` samples are held.

        Raises:
            ConfigError: ``block_len`` is not a positive int or ``overlap`` not in ``[0, block_len)``.
            DataError: the file holds NaN/Inf or unreadable values (named by sample index).
        """
        _check_block_args(block_len, overlap)
        hop = block_len - overlap
        buf = np.empty((len(self.channels), 0), np.float32)
        buf_start = next_start = 0
        last_end = 0
        for chunk in self._checked_chunks(max(hop, MIN_CHUNK_LEN)):
            buf = np.concatenate([buf, chunk], axis=1) if buf.shape[1] else chunk
            while buf_start + buf.shape[1] - next_start >= block_len:
                offset = next_start - buf_start
                yield next_start, buf[:, offset:offset + block_len]
                last_end = next_start + block_len
                next_start += hop
            if next_start > buf_start:
                buf = buf[:, next_start - buf_start:]
                buf_start = next_start
        end = buf_start + buf.shape[1]
        if end > last_end:
            yield next_start, buf[:, next_start - buf_start:]

    def read(self) -> Recording:
        """Read the whole signal into a :class:`Recording`."""
        chunk_len = self.n_samples if self.n_samples else READ_CHUNK_LEN
        chunks = list(self._checked_chunks(max(chunk_len, 1)))
        if not chunks or sum(c.shape[1] for c in chunks) == 0:
            raise DataError(f"{self.source} holds no samples (zero-length signal).")
        signal = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=1)
        return Recording(signal, self.fs_hz, self.channels, self.label, self.source, dict(self.meta))

    def _checked_chunks(self, chunk_len: int) -> Iterator[np.ndarray]:
        """Consecutive float32 ``(C, n)`` chunks, each checked for NaN/Inf."""
        start = 0
        for chunk in self._read_chunks(chunk_len):
            chunk = np.asarray(chunk, dtype=np.float32)
            assert chunk.ndim == 2 and chunk.shape[0] == len(self.channels), chunk.shape
            finite = np.isfinite(chunk)
            if not finite.all():
                row, col = np.argwhere(~finite)[0]
                raise DataError(
                    f"{self.source} holds a non-finite value ({chunk[row, col]}) in channel "
                    f"'{self.channels[row]}' at sample {start + col}."
                )
            start += chunk.shape[1]
            if chunk.shape[1]:
                yield chunk


def _check_block_args(block_len: Any, overlap: Any) -> None:
    if isinstance(block_len, bool) or not isinstance(block_len, (int, np.integer)) or block_len <= 0:
        raise ConfigError(f"The 'block_len' parameter must be a positive int; got {block_len!r}.")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or not 0 <= overlap < block_len:
        raise ConfigError(
            f"The 'overlap' parameter must be an int in [0, block_len={block_len}); got {overlap!r}."
        )


def source_from_recording(rec: Recording, fmt: str) -> RecordingSource:
    """A source over a recording already in memory (MAT v5, .npz)."""

    def chunks(chunk_len: int) -> Iterator[np.ndarray]:
        for a in range(0, rec.n_samples, chunk_len):
            yield rec.signal[:, a:a + chunk_len]

    meta = dict(rec.meta, format=fmt)
    return RecordingSource(rec.fs_hz, rec.channels, rec.n_samples, str(rec.source), meta, rec.label, fmt, chunks)


def time_scale(name: str) -> float | None:
    """Seconds per unit of a column/variable named like time (``time``, ``t_ms``, ``Time [us]`` ...), else None.

    A name without a unit is in seconds. Example: ``time_scale("time_ms") == 1e-3``.
    """
    match = _TIME_NAME.match(str(name).strip().lower())
    if match is None:
        return None
    return TIME_UNITS_S.get(match.group(2) or "")


def check_fs_param(fs_hz: Any) -> float | None:
    if fs_hz is None:
        return None
    if isinstance(fs_hz, bool) or not isinstance(fs_hz, (int, float, np.number)) or not (
        math.isfinite(fs_hz) and fs_hz > 0
    ):
        raise ConfigError(f"The 'fs_hz' parameter must be a positive number of Hz; got {fs_hz!r}.")
    return float(fs_hz)


class MissingRateError(ConfigError):
    """The file states no sampling rate and the caller gave none."""


def resolve_fs(path: Any, file_fs_hz: float | None, fs_hz: float | None, what: str) -> float:
    """The sampling rate: the file's, else the caller's; ConfigError when neither (a
    :class:`MissingRateError`) or when they disagree."""
    if file_fs_hz is None and fs_hz is None:
        raise MissingRateError(
            f"{path} does not state its sampling rate ({what}); give it with the fs_hz option (--fs-hz in "
            f"diagnose and data inspect, data.source_fs_hz in a config) or in a sidecar file beside it "
            f"(<file name>.json holding {{\"fs_hz\": ...}})."
        )
    if file_fs_hz is None:
        return float(fs_hz)
    if not (math.isfinite(file_fs_hz) and file_fs_hz > 0):
        raise DataError(f"{path} states a sampling rate of {file_fs_hz!r} Hz ({what}); it must be positive.")
    if fs_hz is not None and not math.isclose(file_fs_hz, fs_hz, rel_tol=1e-6):
        raise ConfigError(
            f"The 'fs_hz' parameter ({fs_hz:g} Hz) contradicts {path}, which states "
            f"{file_fs_hz:g} Hz ({what}); leave fs_hz out or fix the file."
        )
    return float(file_fs_hz)


def fs_from_time(path: Any, t: np.ndarray, what: str) -> float:
    """Sampling rate from a time vector ``(T,)`` in seconds.

    Every spacing must lie within ``SPACING_TOLERANCE`` of the median spacing (no gap, no
    repeated or reversed time stamp). The rate is ``1 / dt`` with ``dt`` the least-squares slope
    of ``t`` against the sample index, which is robust to rounded time stamps; it is snapped to
    the nearest integer Hz when that rate fits the stamps as well (within 1.5x the spread of the
    fit's residuals, i.e. within the stamps' rounding).
    """
    t = np.asarray(t, dtype=np.float64)
    if t.size < 2:
        raise DataError(f"{path}: the {what} needs at least 2 samples to give a sampling rate; got {t.size}.")
    spacing = np.diff(t)
    median_s = float(np.median(spacing))
    if not median_s > 0:
        raise DataError(f"{path}: the {what} does not increase (median spacing {median_s!r} s).")
    check_spacing(path, spacing, median_s, 0, what)
    idx = np.arange(t.size, dtype=np.float64) - (t.size - 1) / 2
    tc = t - t.mean()
    dt_s = float(idx @ tc / (idx @ idx))
    fs_hz, fs_int = 1.0 / dt_s, round(1.0 / dt_s)
    if fs_int > 0 and np.ptp(tc - idx / fs_int) <= 1.5 * np.ptp(tc - idx * dt_s) + 1e-12:
        return float(fs_int)
    return float(fs_hz)


def check_spacing(path: Any, spacing: np.ndarray, dt_s: float, first_sample: int, what: str) -> None:
    """DataError when a spacing of ``spacing`` differs from ``dt_s`` by more than the tolerance."""
    bad = np.flatnonzero(np.abs(spacing - dt_s) > SPACING_TOLERANCE * dt_s)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: the {what} is not uniformly sampled: between samples {first_sample + i} and "
            f"{first_sample + i + 1} the step is {spacing[i]:.6g} s, expected {dt_s:.6g} s "
            f"(within {SPACING_TOLERANCE:.0%}); a gap or repeated time stamp? Resample the file or "
            "pass fs_hz to vouch for the rate."
        )


def select_channels(path: Any, available: Sequence[str], wanted: Sequence[str] | str | None) -> list[int]:
    """Indices of the ``wanted`` channel names in ``available`` (all when ``wanted`` is None)."""
    if wanted is None:
        return list(range(len(available)))
    names = [wanted] if isinstance(wanted, str) else list(wanted)
    if not names:
        raise ConfigError(f"The 'channels' parameter must name at least one channel of {path}; got [].")
    missing = [c for c in names if c not in available]
    if missing:
        raise ConfigError(
            f"The 'channels' parameter names {missing}, which {path} does not have; its channels "
            f"are {list(available)}."
        )
    return [list(available).index(c) for c in names]


def file_label(value: Any) -> str | None:
    """A label stored in a file (string, 0-d or 1-element string array, bytes), else None."""
    arr = np.asarray(value)
    if arr.dtype.kind in "US" and arr.size == 1:
        item = arr.reshape(-1)[0]
        return item.decode() if isinstance(item, bytes) else str(item)
    return None
