"""Readers for files of named arrays: MAT v5 (scipy), ``.npz`` and ``.npy`` (numpy).

Each numeric 1-D or 2-D array becomes one or more channels; in a 2-D array the longer axis is
time, so ``(T, C)`` and ``(C, T)`` both work; ``variable=`` keeps one array. MATLAB structs are
read field by field under dotted names (``bearing.gs``, ``bearing.sr``; nested structs too), so
a struct holding one signal and its rate is read like plain variables. Named scalars give the
sampling rate, shaft speed and bearing frequencies (:mod:`faultdiag.data.readers.scalars`); a
vector named like time (``time``, ``t``, ``time_s``, ``timestamp``) gives the rate from its
spacing. MAT files whose variables look like CWRU's (``X105_DE_time``) go to
:func:`faultdiag.data.cwru_catalogue.recording_from_variables`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from faultdiag.data.readers.scalars import leaf, numeric_scalars, stated_fs, stated_meta
from faultdiag.data.readers.source import (
    RecordingSource, file_label, fs_from_time, resolve_fs, select_channels, source_from_recording, time_scale,
)
from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CWRU_VARIABLE = re.compile(r"X\d{3}_(DE|FE|BA)_time")


@dataclass(frozen=True)
class ChannelRef:
    """Where one channel lives: array ``key``, its time axis and its row on the other axis."""

    name: str
    key: str
    time_axis: int
    row: int
    n_samples: int


def signal_layout(shape: Sequence[int]) -> tuple[int, int, int] | None:
    """``(time_axis, n_channels, n_samples)`` of a 1-D/2-D array shape; None for other shapes."""
    if len(shape) == 1:
        return 0, 1, int(shape[0])
    if len(shape) == 2:
        time_axis = 0 if shape[0] > shape[1] else 1
        return time_axis, int(shape[1 - time_axis]), int(shape[time_axis])
    return None


def channel_refs(key: str, shape: Sequence[int], names: Sequence[str] | None = None) -> list[ChannelRef]:
    """One :class:`ChannelRef` per channel of the array ``key`` of ``shape`` (empty if no signal)."""
    layout = signal_layout(shape)
    if layout is None or layout[2] < 2:
        return []
    time_axis, n_channels, n_samples = layout
    if names is None or len(names) != n_channels:
        names = [key] if n_channels == 1 else [f"{key}_{i}" for i in range(n_channels)]
    return [ChannelRef(str(n), key, time_axis, i, n_samples) for i, n in enumerate(names)]


def pick_refs(path: Any, refs: list[ChannelRef], channels: Any, seen: Sequence[str]) -> list[ChannelRef]:
    """Select ``channels`` among ``refs`` and check they all have the same length."""
    if not refs:
        raise DataError(
            f"{path} holds no numeric signal (a 1-D or 2-D numeric array with 2 or more samples); "
            f"the variables seen are {list(seen)}."
        )
    refs = [refs[i] for i in select_channels(path, [r.name for r in refs], channels)]
    lengths = {r.name: r.n_samples for r in refs}
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"{path} holds signals of different lengths {lengths}; pick one with the 'variable' option "
            "(--variable, data.variable)."
        )
    if refs[0].n_samples == 0:
        raise DataError(f"{path} holds no samples (zero-length signal).")
    return refs


def read_span(get: Callable[[str], Any], refs: Sequence[ChannelRef], a: int, b: int) -> np.ndarray:
    """Samples ``a:b`` of every channel in ``refs`` as ``(C, b - a)``; each array is read once."""
    rows, cache = [], {}
    for ref in refs:
        if ref.key not in cache:
            arr = get(ref.key)
            if arr.ndim == 1:
                block = np.asarray(arr[a:b])[None, :]
            elif ref.time_axis == 1:
                block = np.asarray(arr[:, a:b])
            else:
                block = np.asarray(arr[a:b, :]).T
            cache[ref.key] = block
        rows.append(cache[ref.key][ref.row])
    return np.stack(rows).astype(np.float32, copy=False)


def split_named_arrays(path: Any, arrays: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split ``arrays`` into numeric signal candidates and the rest (scalars, strings, ...)."""
    numeric, other = {}, {}
    for key, value in arrays.items():
        arr = np.asarray(value) if not hasattr(value, "dtype") else value
        if arr.dtype.kind in "iuf" and arr.ndim >= 1 and arr.size > 1:
            numeric[key] = arr
        else:
            other[key] = arr
    return numeric, other


def flatten_structs(variables: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """MATLAB structs (scipy's structured arrays of one element) → their fields under dotted names.

    ``{"bearing": struct(gs=..., sr=...)}`` → ``{"bearing.gs": ..., "bearing.sr": ...}``, nested
    structs recursively; struct arrays of several elements and cell arrays stay as they are (they
    are not signals).
    """
    out: dict[str, Any] = {}
    for key, value in variables.items():
        name = f"{prefix}{key}"
        arr = value if isinstance(value, np.ndarray) else None
        if arr is not None and arr.dtype.names and arr.size == 1:
            item = arr.reshape(-1)[0]
            out.update(flatten_structs({f: item[f] for f in arr.dtype.names}, f"{name}."))
        else:
            out[name] = value
    return out


def _pick_variable(path: Any, numeric: dict[str, Any], other: Mapping[str, Any], variable: str) -> dict[str, Any]:
    if variable in numeric:
        return {variable: numeric[variable]}
    raise ConfigError(
        f"The 'variable' option names '{variable}', which {path} does not hold as a numeric signal; its signals "
        f"are {sorted(numeric)} (other variables: {sorted(other)[:20]})."
    )


def recording_from_arrays(path: Path, arrays: Mapping[str, Any], fmt: str, *, fs_hz: float | None,
                          channels: Any, label: str | None, variable: str | None = None) -> Recording:
    """A Recording from named in-memory arrays (MAT v5 variables and struct fields, .npz entries)."""
    numeric, other = split_named_arrays(path, arrays)
    time_key = next((k for k in numeric if time_scale(leaf(k)) is not None and signal_layout(numeric[k].shape)
                     and signal_layout(numeric[k].shape)[1] == 1), None)
    t = np.asarray(numeric.pop(time_key)).reshape(-1) * time_scale(leaf(time_key)) if time_key is not None else None
    if variable is not None:
        numeric = _pick_variable(path, numeric, other, variable)
    scalars = numeric_scalars(other)
    file_fs, what, fs_key = stated_fs(scalars, variable or next(iter(numeric), None))
    if t is not None and file_fs is None and fs_hz is None:
        what = f"time variable '{time_key}'"
        file_fs = fs_from_time(path, t, what)
    refs = [r for key, arr in numeric.items() for r in channel_refs(key, arr.shape)]
    refs = pick_refs(path, refs, channels, list(arrays))
    fs = resolve_fs(path, file_fs, fs_hz, what or "no fs/fs_hz/sr/sampling_rate variable or time vector")
    signal = read_span(numeric.__getitem__, refs, 0, refs[0].n_samples)
    if label is None:
        label = file_label(other["label"]) if "label" in other else None
    meta = {"format": fmt, **stated_meta(scalars, fs_key, refs[0].key)}
    return Recording(signal, fs, tuple(r.name for r in refs), label, str(path), meta)


def open_mat5(path: Path, *, fs_hz: float | None, channels: Any, label: str | None,
              dataset: str | None = None, variable: str | None = None, **_: Any) -> RecordingSource:
    """MAT v5 via scipy.io.loadmat, read whole (``dataset`` only matters to CWRU files)."""
    from scipy.io import loadmat

    try:
        raw = loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError ... on damaged files
        raise DataError(f"{path} is not a readable MAT v5 file ({type(exc).__name__}: {exc}).") from exc
    variables = {k: v for k, v in raw.items() if not k.startswith("__")}
    if any(CWRU_VARIABLE.fullmatch(k) for k in variables) and variable is None:
        rec = cwru_recording(path, variables, fs_hz=fs_hz, channels=channels, label=label, dataset=dataset)
    else:
        rec = recording_from_arrays(path, flatten_structs(variables), "mat5", fs_hz=fs_hz, channels=channels,
                                    label=label, variable=variable)
    return source_from_recording(rec, "mat5")


def cwru_recording(path: Path, variables: dict[str, Any], *, fs_hz: float | None, channels: Any,
                   label: str | None, dataset: str | None = None) -> Recording:
    """Hand CWRU-style variables to :mod:`faultdiag.data.cwru`, then apply the caller's options.

    ``dataset`` is then the CWRU set (``"12k_DE"`` ...) that numbers files named without their
    CWRU number, as :func:`faultdiag.data.cwru_catalogue.recording_from_variables` takes it.
    """
    from faultdiag.data.cwru_catalogue import recording_from_variables

    rec = recording_from_variables(path, variables, dataset=dataset)
    resolve_fs(path, rec.fs_hz, fs_hz, "CWRU catalogue")
    if channels is not None:
        rec = rec.select(channels)
    if label is not None:
        rec = rec.with_label(label)
    return rec


def open_npz(path: Path, *, fs_hz: float | None, channels: Any, label: str | None, variable: str | None = None,
             **_: Any) -> RecordingSource:
    """``.npz``: one channel per 1-D array (name = key), optional ``fs_hz`` and ``label`` entries."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # zipfile, ValueError (pickled objects), OSError
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc}).") from exc
    rec = recording_from_arrays(path, arrays, "npz", fs_hz=fs_hz, channels=channels, label=label, variable=variable)
    return source_from_recording(rec, "npz")


def open_npy(path: Path, *, fs_hz: float | None, channels: Any, label: str | None, **_: Any) -> RecordingSource:
    """``.npy`` array ``(T,)`` or ``(C, T)`` (a ``(T, C)`` array is read transposed), memory-mapped.

    Channels are named ``ch0``, ``ch1`` ...; ``fs_hz`` must be given.
    """
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path} is not a readable .npy file ({type(exc).__name__}: {exc}).") from exc
    layout = signal_layout(arr.shape)
    if arr.dtype.kind not in "iuf" or layout is None:
        raise DataError(f"{path} must hold a numeric array (T,) or (C, T); got {arr.dtype} {arr.shape}.")
    if arr.size == 0:
        raise DataError(f"{path} holds no samples (zero-length array of shape {arr.shape}).")
    names = [f"ch{i}" for i in range(layout[1])]
    if layout[0] == 0 and arr.ndim == 2:
        log.info("%s: array %s read as (T, C) = %d samples x %d channels", path, arr.shape, layout[2], layout[1])
    refs = pick_refs(path, channel_refs("array", arr.shape, names), channels, ["array"])
    fs = resolve_fs(path, None, fs_hz, ".npy files hold no sampling rate")
    n = refs[0].n_samples

    def chunks(chunk_len: int) -> Iterator[np.ndarray]:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
        for a in range(0, n, chunk_len):
            yield read_span(lambda _key: data, refs, a, min(a + chunk_len, n)).copy()

    names = tuple(r.name for r in refs)
    return RecordingSource(fs, names, n, str(path), {"format": "npy"}, label, "npy", chunks)
