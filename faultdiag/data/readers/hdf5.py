"""Readers for HDF5 and MATLAB v7.3 files (h5py), sliced block by block.

Every numeric 1-D/2-D dataset (searched recursively, so MATLAB structs and nested groups too) is
a signal; ``dataset=`` (or ``variable=``, where ``bearing.gs`` also finds ``bearing/gs``) picks
one. The sampling rate comes from an attribute ``fs_hz``/``fs``/``sampling_rate`` (on the dataset,
then on the file root), a scalar dataset of such a name (one in the signal's own group first),
or a time vector; shaft speed and bearing frequencies from scalar datasets
(:mod:`faultdiag.data.readers.scalars`). MATLAB v7.3 stores arrays
column-major, so h5py sees them transposed (a MATLAB ``(T, 1)`` column is ``(1, T)`` here); the
"longer axis is time" rule reads both. MATLAB strings (class ``char``) are uint16 datasets and are
never taken for signals. CWRU-style variables go to :mod:`faultdiag.data.cwru`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from faultdiag.data.readers.arrays import CWRU_VARIABLE, channel_refs, cwru_recording, pick_refs, read_span
from faultdiag.data.readers.scalars import numeric_scalars, stated_fs, stated_meta
from faultdiag.data.readers.source import (
    FS_NAMES, RecordingSource, file_label, fs_from_time, resolve_fs, source_from_recording, time_scale,
)
from faultdiag.errors import ConfigError, DataError

MATLAB_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
_TIME_PROBE_LEN = 100_000


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not a readable HDF5 / MAT v7.3 file ({exc}).") from exc


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
    return value


def _inventory(f: Any, fmt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Numeric datasets by path, and the other datasets (scalars, MATLAB strings) by path."""
    numeric, other = {}, {}

    def visit(name: str, obj: Any) -> None:
        if not hasattr(obj, "shape") or name.startswith("#"):  # groups, MATLAB #refs#/#subsystem#
            return
        cls = _decode(obj.attrs.get("MATLAB_class", b""))
        if fmt == "mat73" and (cls not in MATLAB_NUMERIC or "MATLAB_empty" in obj.attrs):
            other[name] = obj
        elif obj.dtype.kind in "iuf" and obj.ndim >= 1 and obj.size > 1:
            numeric[name] = obj
        else:
            other[name] = obj

    f.visititems(visit)
    return numeric, other


def _stated_fs(f: Any, datasets: list[Any], scalars: dict[str, float],
               signal_key: str | None) -> tuple[float | None, str, str | None]:
    """``(fs_hz, what, key)``: an attribute first (key ``""``), else a scalar dataset (its path)."""
    for obj, where in [(d, f"attribute of '{d.name}'") for d in datasets] + [(f, "attribute of the file root")]:
        for key, value in obj.attrs.items():
            if key.lower() in FS_NAMES and np.asarray(value).size == 1:
                return float(np.asarray(value).reshape(-1)[0]), f"{where} '{key}'", ""
    fs, what, key = stated_fs(scalars, signal_key)
    return fs, what.replace("variable", "dataset"), key


def _scalars(other: dict[str, Any]) -> dict[str, float]:
    """Numeric scalar datasets (MATLAB strings and logicals left out)."""
    plain = {k: v for k, v in other.items()
             if _decode(v.attrs.get("MATLAB_class", b"double")) in MATLAB_NUMERIC and "MATLAB_empty" not in v.attrs}
    return numeric_scalars(plain)


def _resolve_dataset(path: Path, numeric: dict[str, Any], dataset: str) -> str:
    key = dataset.strip("/")
    for candidate in (key, key.replace(".", "/")):
        if candidate in numeric:
            return candidate
    raise ConfigError(
        f"The 'variable' option names '{dataset}', which is not a numeric signal in {path}; its signal "
        f"datasets are {sorted(numeric)}."
    )


def _stated_label(f: Any, datasets: list[Any], other: dict[str, Any]) -> str | None:
    for obj in list(datasets) + [f]:
        if "label" in obj.attrs:
            return file_label(_decode(obj.attrs["label"]))
    if "label" in other:
        obj = other["label"]
        if _decode(obj.attrs.get("MATLAB_class", b"")) == "char":
            return "".join(chr(c) for c in np.asarray(obj[()]).reshape(-1))
        return file_label(_decode(obj[()]))
    return None


def _names_attr(obj: Any) -> list[str] | None:
    names = _decode(obj.attrs.get("channels"))
    return list(names) if isinstance(names, list) else None


def open_hdf5(path: Path, fmt: str, *, fs_hz: float | None, channels: Any, label: str | None,
              dataset: str | None = None, variable: str | None = None, **_: Any) -> RecordingSource:
    """HDF5 or MAT v7.3 (``fmt``), read slice by slice."""
    dataset = dataset if dataset is not None else variable
    with _open(path) as f:
        numeric, other = _inventory(f, fmt)
        if fmt == "mat73" and variable is None and any(CWRU_VARIABLE.fullmatch(k) for k in numeric):
            variables = {k: np.asarray(v[()]).T for k, v in numeric.items()}
            variables.update({k: np.asarray(v[()]).T for k, v in other.items() if v.dtype.kind in "iuf"})
            rec = cwru_recording(path, variables, fs_hz=fs_hz, channels=channels, label=label, dataset=dataset)
            return source_from_recording(rec, fmt)
        if dataset is not None:
            key = _resolve_dataset(path, numeric, dataset)
            numeric = {key: numeric[key]}
        scalars = _scalars(other)
        file_fs, what, fs_key = _stated_fs(f, list(numeric.values()), scalars, next(iter(numeric), None))
        file_fs, what = _time_fs(path, numeric, file_fs, fs_hz, what)
        refs = [r for k, d in numeric.items() for r in channel_refs(k, d.shape, _names_attr(d))]
        refs = pick_refs(path, refs, channels, sorted(numeric) + sorted(other))
        fs = resolve_fs(path, file_fs, fs_hz, what or "no fs_hz/fs/sampling_rate attribute")
        meta = {"format": fmt, **stated_meta(scalars, fs_key, refs[0].key)}
        if label is None:
            label = _stated_label(f, [numeric[r.key] for r in refs[:1]], other)
    n = refs[0].n_samples

    def chunks(chunk_len: int) -> Iterator[np.ndarray]:
        with _open(path) as g:
            for a in range(0, n, chunk_len):
                yield read_span(g.__getitem__, refs, a, min(a + chunk_len, n))

    names = tuple(r.name for r in refs)
    return RecordingSource(fs, names, n, str(path), meta, label, fmt, chunks)


def _time_fs(path: Path, numeric: dict[str, Any], file_fs: float | None, fs_hz: float | None,
             what: str) -> tuple[float | None, str]:
    """Drop a time-vector dataset from ``numeric``; use its spacing when no rate is stated."""
    for key in list(numeric):
        refs = channel_refs(key, numeric[key].shape)
        scale = time_scale(key.rsplit("/", 1)[-1])
        if scale is not None and len(refs) == 1:
            data = numeric.pop(key)
            if file_fs is None and fs_hz is None:
                n = min(refs[0].n_samples, _TIME_PROBE_LEN)
                probe = data[:n] if data.ndim == 1 else data[0, :n] if refs[0].time_axis == 1 else data[:n, 0]
                what = f"time dataset '{key}'"
                file_fs = fs_from_time(path, np.asarray(probe, dtype=np.float64) * scale, what)
    return file_fs, what
