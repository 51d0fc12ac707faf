"""Reader for delimited text recordings (CSV, TSV, ``;``- or whitespace-separated), in chunks.

A text preamble before the table (instrument, date, units ...) is skipped: ``skip_rows=N`` skips
the first N lines, else the table is found by :func:`~faultdiag.data.readers.sniff.locate_table`
(the first run of numeric rows, with the header just above it). The separator is sniffed (``;``
implies decimal commas when the numbers hold commas); the table's first line is a header when
any of its fields is not a number, else channels are named ``ch0``, ``ch1`` ... A time column
(``time``, ``t``, ``timestamp``, any case, with an optional unit: ``time_s``, ``time_ms``,
``t_us``, ``Time [ns]``; or ``time_column=``, in seconds) gives the sampling rate from its
spacing unless ``fs_hz`` is passed, in which case it is only dropped. Columns with an empty
header (a pandas index) are skipped.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from faultdiag.data.readers.sniff import (
    decode_text, is_number, locate_table, sample_lines, sniff_delimiter, sniff_text, split_fields,
)
from faultdiag.data.readers.source import (
    RecordingSource, check_spacing, fs_from_time, resolve_fs, select_channels, time_scale,
)
from faultdiag.errors import ConfigError, DataError

log = logging.getLogger(__name__)

_PROBE_ROWS = 100_000


@dataclass(frozen=True)
class _Dialect:
    sep: str
    decimal: str
    encoding: str
    names: tuple[str, ...]
    header: bool
    skip: int = 0  # preamble lines before the header (or the first row)


def _check_skip(skip_rows: Any) -> int | None:
    if skip_rows is None:
        return None
    if isinstance(skip_rows, bool) or not isinstance(skip_rows, int) or skip_rows < 0:
        raise ConfigError(f"The 'skip_rows' parameter must be an int >= 0; got {skip_rows!r}.")
    return skip_rows


def _dialect(path: Path, skip_rows: int | None = None) -> _Dialect:
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    at_eof = len(head) < (1 << 16)
    text = decode_text(head) or ""
    raw = text.splitlines()
    if not at_eof and raw:
        raw = raw[:-1]
    if skip_rows is None:
        skip = locate_table(raw, path.suffix.lower())[1]
        if skip:
            log.info("%s: skipping a preamble of %d line(s) before the table", path, skip)
    else:
        skip = skip_rows
    sep = sniff_text(path, head) if not skip else _table_sep(raw[skip:], path)
    lines = sample_lines("\n".join(raw[skip:]), True)
    if sep is None or not lines:
        raise DataError(f"{path} is not delimited text with one or more numeric columns"
                        + (f" after its first {skip} line(s)." if skip else "."))
    try:
        head.decode("utf-8-sig")
        encoding = "utf-8-sig"
    except UnicodeDecodeError as exc:
        encoding = "utf-8-sig" if exc.start >= len(head) - 4 else "latin-1"
    first = split_fields(lines[0], sep)
    header = not all(is_number(f) for f in first if f)
    body = lines[1:] if header else lines
    rows = [split_fields(ln, sep) for ln in body]
    blank = [all(i >= len(r) or not r[i] for r in rows) for i in range(len(first))]
    names = tuple(first) if header else tuple("" if blank[i] else f"ch{i}" for i in range(len(first)))
    decimal = "," if sep == ";" and any("," in f for r in rows for f in r) else "."
    widths = Counter(len(r) for r in rows)
    if widths and widths.most_common(1)[0][0] > len(names):  # rows end with a delimiter
        names += ("",) * (widths.most_common(1)[0][0] - len(names))
    return _Dialect(sep, decimal, encoding, names, header, skip)


def _table_sep(lines: list[str], path: Path) -> str | None:
    return sniff_delimiter(sample_lines("\n".join(lines), True), path.suffix.lower())


def _time_column(path: Path, names: tuple[str, ...], time_column: str | None) -> tuple[str | None, float]:
    """The time column's name and its unit in seconds (``time_column=`` is in seconds unless its name says)."""
    if time_column is not None:
        if time_column not in names:
            raise ConfigError(
                f"The 'time_column' parameter names '{time_column}', which {path} does not have; its "
                f"columns are {list(names)}."
            )
        return time_column, time_scale(time_column) or 1.0
    name = next((n for n in names if n and time_scale(n) is not None), None)
    return name, (time_scale(name) if name is not None else 1.0)


def _frames(path: Path, d: _Dialect, usecols: list[int], chunk_len: int) -> Iterator[pd.DataFrame]:
    """Chunks of the file as DataFrames of the columns at the positions in ``usecols``.

    Every column is parsed (pandas' ``usecols`` would silently drop surplus fields of a ragged
    row); the unused ones are dropped per chunk.
    """
    try:
        reader = pd.read_csv(
            path, sep=d.sep, header=None, skiprows=d.skip + (1 if d.header else 0), names=range(len(d.names)),
            decimal=d.decimal, encoding=d.encoding, skipinitialspace=True, chunksize=chunk_len,
        )
        with reader:
            for frame in reader:
                yield frame[usecols]
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path} cannot be parsed as delimited text ({str(exc).strip()}).") from exc


def _check_frame(path: Path, frame: pd.DataFrame, d: _Dialect, start: int) -> None:
    """DataError naming column, sample and line of the first non-numeric or empty value."""
    for pos in frame.columns:
        col = frame[pos]
        if col.dtype.kind not in "iuf":
            values = pd.to_numeric(col, errors="coerce")
            bad = np.flatnonzero(values.isna().to_numpy() & col.notna().to_numpy())
            if bad.size:
                i = int(bad[0])
                raise DataError(
                    f"{path}: column '{d.names[pos]}' holds the non-numeric value {col.iloc[i]!r} at "
                    f"sample {start + i} (line {start + i + 1 + d.header + d.skip}); pick numeric columns with "
                    "the 'channel' option (--channel, data.channel)."
                )
        empty = np.flatnonzero(col.isna().to_numpy())
        if empty.size:
            i = int(empty[0])
            raise DataError(
                f"{path}: column '{d.names[pos]}' is empty or NaN at sample {start + i} "
                f"(line {start + i + 1 + d.header + d.skip})."
            )


def open_csv(path: Path, *, fs_hz: float | None, channels: Any, label: str | None,
             time_column: str | None = None, skip_rows: int | None = None, **_: Any) -> RecordingSource:
    """Delimited text, read in chunks of rows with pandas; ``n_samples`` is ``None``."""
    d = _dialect(path, _check_skip(skip_rows))
    time_name, t_scale = _time_column(path, d.names, time_column)
    skipped = [n for n in d.names if not n]
    if skipped:
        log.info("%s: skipping %d column(s) with an empty header", path, len(skipped))
    candidates = [n for n in d.names if n and n != time_name]
    chan_names = [candidates[i] for i in select_channels(path, candidates, channels)]
    chan_pos = [d.names.index(n) for n in chan_names]
    time_pos = d.names.index(time_name) if time_name is not None else None
    usecols = sorted(set(chan_pos + ([time_pos] if time_pos is not None else [])))
    frames = _frames(path, d, usecols, _PROBE_ROWS)
    try:
        probe = next(frames, None)
    finally:
        frames.close()
    if probe is None or len(probe) == 0:
        raise DataError(f"{path} holds no samples (only a header or blank lines).")
    _check_frame(path, probe, d, 0)
    what = f"time column '{time_name}'"
    use_time = time_pos is not None and fs_hz is None
    file_fs = fs_from_time(path, probe[time_pos].to_numpy(np.float64) * t_scale, what) if use_time else None
    fs = resolve_fs(path, file_fs, fs_hz, "no time column")

    def chunks(chunk_len: int) -> Iterator[np.ndarray]:
        start, last_t = 0, None
        for frame in _frames(path, d, usecols, chunk_len):
            _check_frame(path, frame, d, start)
            if use_time:
                t = frame[time_pos].to_numpy(np.float64) * t_scale
                first = start if last_t is None else start - 1
                t_all = t if last_t is None else np.concatenate([[last_t], t])
                check_spacing(path, np.diff(t_all), 1.0 / fs, first, what)
                last_t = t[-1] if t.size else last_t
            yield frame[chan_pos].to_numpy(np.float32).T
            start += len(frame)

    meta = {"format": "csv", "time_column": time_name} if time_name else {"format": "csv"}
    if d.skip:
        meta["skipped_rows"] = d.skip
    return RecordingSource(fs, tuple(chan_names), None, str(path), meta, label, "csv", chunks)
