"""Decode recordings once into an HDF5 cache; read training windows from it lazily.

Layout of a cache file (h5py, one chunked, compressed, Fletcher-32-checksummed dataset per
recording, so a damaged chunk is detected when it is read)::

    /                      attrs: format="faultdiag-cache", format_version, complete, fs_hz,
                           channels (JSON), labels (JSON, one per recording), fingerprint (JSON)
    /recordings/r000000    float32 (C, T), attrs: label, name, source

The file is written under a temporary name and renamed when complete, so a killed ``faultdiag
data cache`` never leaves a half-written cache under the final name.  Training with
``data.cache = "path.h5"`` (see :func:`cached_splits`) keeps only window *indices* in memory:
``X`` of each split is a :class:`CachedWindows`, which reads the windows of one batch at a time.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from faultdiag.config import DataConfig
from faultdiag.data.recording import Recording
from faultdiag.data.windows import SPLITS, time_regions
from faultdiag.errors import ConfigError, DataError
from faultdiag.provenance import atomic_path

log = logging.getLogger(__name__)

FORMAT, FORMAT_VERSION = "faultdiag-cache", 1
CHUNK_LEN = 16384
CHUNK_CACHE_BYTES = 4 * 2**20


def _iter_recordings(data: DataConfig, class_names: list[str]) -> Iterator[Recording]:
    """Recordings of ``data`` one at a time (``files``: read, channel-picked and resampled per file).

    ``class_names`` receives the source's class order (for ``files``: sorted labels, after the last file).
    With ``data.fs_hz`` unset, files are kept at the first one's rate and another rate is an error.
    """
    from faultdiag.data import datasets
    from faultdiag.data.files import plan_files, read_entry, unify_rate

    if data.source != "files":
        dataset = datasets.load_dataset(data)
        class_names += dataset.class_names
        yield from dataset.recordings
        return
    entries, warnings = plan_files(data)
    for warning in warnings:
        log.warning("labels: %s", warning)
    seen: set[str] = set()
    first_fs_hz = None
    for entry in entries:
        if data.classes and entry.label not in data.classes:
            continue
        rec = read_entry(entry, data)
        if data.fs_hz is not None:
            (rec,), _ = unify_rate([rec], data.fs_hz)
        elif first_fs_hz is None:
            first_fs_hz = rec.fs_hz
        elif abs(rec.fs_hz - first_fs_hz) > 1e-6:
            raise ConfigError(f"'{entry.path}' is at {rec.fs_hz:g} Hz, the files before it at {first_fs_hz:g} Hz: "
                              f"set data.fs_hz to the rate to cache at (e.g. --set data.fs_hz={min(rec.fs_hz, first_fs_hz):g}; "
                              "the others are resampled to it).")
        seen.add(str(rec.label))
        yield rec
    class_names += list(data.classes) if data.classes else sorted(seen)


def estimate_cache_bytes(data: DataConfig) -> int:
    """Upper estimate of a cache's size before compression: source file sizes, or the simulator's samples."""
    from faultdiag.data.readers import find_recordings

    if data.source == "files":
        return int(sum(Path(p).stat().st_size for p in find_recordings(list(data.paths))))
    if data.source == "hitsm":
        folder = Path(data.data_dir)
        return int(sum(p.stat().st_size for p in folder.rglob("*.mat"))) if folder.is_dir() else 0
    if data.source == "cwru":
        folder = Path(data.data_dir)
        return int(sum(p.stat().st_size for p in folder.rglob("*.mat"))) if folder.is_dir() else 0
    n_classes = len(data.classes) if data.classes else 4
    return int(4 * data.sim_duration_s * data.fs_hz * len(data.loads) * n_classes * 4)


def build_cache(data: DataConfig, path: str | os.PathLike, *, compression: str = "lzf",
                chunk_len: int = CHUNK_LEN) -> Path:
    """Decode every recording of ``data`` into the HDF5 cache ``path`` (atomically); returns the path.

    Recordings are read one at a time, so memory holds one recording, whatever the data size.
    ``compression``: ``lzf`` (fast), ``gzip`` (smaller) or ``none``.
    """
    import h5py

    if compression not in ("lzf", "gzip", "none"):
        raise ConfigError(f"The 'compression' parameter must be 'lzf', 'gzip' or 'none'; got {compression!r}.")
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        class_names: list[str] = []
        labels, channels, fs_hz = _write_recordings(f.create_group("recordings"), data, class_names, compression,
                                                    chunk_len)
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "fs_hz": fs_hz,
                        "class_names": json.dumps(class_names),
                        "channels": json.dumps(channels), "labels": json.dumps(labels),
                        "fingerprint": json.dumps(_source_fingerprint(data)), "complete": True})
    log.info("cached %d recordings in %s", len(labels), path)
    return path


def _write_recordings(group: Any, data: DataConfig, class_names: list[str], compression: str,
                      chunk_len: int) -> tuple[list[str], list[str], float]:
    labels: list[str] = []
    channels: list[str] | None = None
    names: set[tuple[str, ...]] = set()
    fs_hz = 0.0
    for i, rec in enumerate(_iter_recordings(data, class_names)):
        names.add(rec.channels)
        fs_hz = rec.fs_hz
        if channels is None:
            channels = list(rec.channels)
        elif len(rec.channels) != len(channels):
            raise DataError(f"All recordings must have {len(channels)} channel(s) to share a cache; "
                            f"{rec.name} has {len(rec.channels)}.")
        C, T = rec.signal.shape
        ds = group.create_dataset(f"r{i:06d}", data=rec.signal.astype(np.float32, copy=False),
                                  chunks=(C, min(T, chunk_len)), fletcher32=True, shuffle=compression != "none",
                                  compression=None if compression == "none" else compression)
        ds.attrs.update({"label": str(rec.label), "name": rec.name, "source": str(rec.source or "")})
        labels.append(str(rec.label))
    if not labels:
        raise DataError(f"No recordings to cache from source '{data.source}'.")
    if len(names) > 1 and all(len(n) == 1 for n in names):  # one variable per file, named at random
        channels = ["ch0"]
    return labels, channels or [], float(fs_hz)


def _source_fingerprint(data: DataConfig) -> dict[str, Any]:
    from faultdiag.data.files import file_fingerprint, plan_files

    if data.source == "simulated":
        return {"source": "simulated", "params": {"seed": data.sim_seed, "duration_s": data.sim_duration_s,
                                                  "fs_hz": data.fs_hz, "loads": list(data.loads)}}
    if data.source == "files":
        return file_fingerprint("files", [(e.key, e.path) for e in plan_files(data)[0]], data.source_fs_hz)
    if data.source == "hitsm":
        from faultdiag.data.hitsm import find_hitsm

        return file_fingerprint("hitsm", [(f.key, f.path) for f in find_hitsm(data.data_dir, data.rigs, data.speeds_rpm)])
    from faultdiag.data.readers import find_recordings

    root = Path(data.data_dir)
    return file_fingerprint("cwru", [(p.relative_to(root).as_posix(), p) for p in find_recordings([root])])


@dataclass(frozen=True)
class CacheInfo:
    """Header of a validated cache: per-recording ``labels`` and ``lengths`` (samples)."""

    path: Path
    fs_hz: float
    channels: tuple[str, ...]
    labels: tuple[str, ...]
    lengths: tuple[int, ...]
    fingerprint: dict[str, Any]
    class_names: tuple[str, ...] = ()


def open_cache(path: str | os.PathLike) -> CacheInfo:
    """Read and check a cache's header.

    Raises:
        DataError: the file is missing, truncated, not HDF5, not a faultdiag cache, incomplete,
            or its datasets do not match its header.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"The cache file '{path}' (data.cache) does not exist; build it with 'faultdiag data cache'.")
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            if attrs.get("format") != FORMAT or not bool(attrs.get("complete", False)):
                raise DataError(f"The file '{path}' is not a complete faultdiag cache; rebuild it with 'faultdiag data cache'.")
            if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
                raise DataError(f"The cache '{path}' has format version {attrs['format_version']}; "
                                f"this faultdiag reads up to {FORMAT_VERSION}.")
            labels = tuple(json.loads(attrs["labels"]))
            group = f["recordings"]
            lengths = tuple(int(group[f"r{i:06d}"].shape[1]) for i in range(len(labels)))
            channels = tuple(json.loads(attrs["channels"]))
            if any(group[f"r{i:06d}"].shape[0] != len(channels) for i in range(len(labels))):
                raise DataError(f"The cache '{path}' is inconsistent: a recording's channel count differs from the header.")
            return CacheInfo(path, float(attrs["fs_hz"]), channels, labels, lengths, json.loads(attrs["fingerprint"]),
                             tuple(json.loads(attrs["class_names"])))
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"The cache file '{path}' is unreadable (truncated, corrupt or not a faultdiag cache): "
                        f"{type(exc).__name__}: {exc}. Rebuild it with 'faultdiag data cache'.") from None


class CachedWindows:
    """Lazy windows ``(N, C, L)`` of a cache: ``X[idx]`` reads just those windows (float32).

    Indexing by an int array, a slice or an int returns a new numpy array; ``np.asarray(X)``
    reads every window (what :func:`faultdiag.evaluate.evaluate_snrs` does for the test split).
    """

    def __init__(self, path: str | os.PathLike, recs: np.ndarray, starts: np.ndarray, window_len: int,
                 n_channels: int) -> None:
        self.path, self.recs, self.starts = Path(path), np.asarray(recs, np.int64), np.asarray(starts, np.int64)
        self.window_len, self.n_channels = int(window_len), int(n_channels)
        self._file: Any = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.recs), self.n_channels, self.window_len)

    ndim, dtype = 3, np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.recs)

    def _h5(self) -> Any:
        import h5py

        if self._file is None:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
        return self._file

    def __getitem__(self, idx: Any) -> np.ndarray:
        idx = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx, dtype=np.int64)
        scalar = idx.ndim == 0
        idx = idx.reshape(-1)
        out = np.empty((len(idx), self.n_channels, self.window_len), dtype=np.float32)
        group = self._h5()["recordings"]
        try:
            for j in np.argsort(self.recs[idx] * (1 << 40) + self.starts[idx], kind="stable"):
                r, s = int(self.recs[idx[j]]), int(self.starts[idx[j]])
                out[j] = group[f"r{r:06d}"][:, s : s + self.window_len]
        except (OSError, KeyError) as exc:
            raise DataError(f"Cannot read windows from the cache '{self.path}' (corrupt or truncated): {exc}. "
                            "Rebuild it with 'faultdiag data cache'.") from None
        return out[0] if scalar else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self[np.arange(len(self))]
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """All windows in order, ``batch_size`` at a time."""
        for i in range(0, len(self), batch_size):
            yield self[slice(i, i + batch_size)]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True, eq=False)
class CachedWindowSet:
    """A :class:`~faultdiag.data.windows.WindowSet` whose ``X`` is a :class:`CachedWindows`."""

    X: CachedWindows
    y: np.ndarray
    groups: np.ndarray
    starts: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)


def cached_splits(data: DataConfig) -> tuple[dict[str, CachedWindowSet], CacheInfo, tuple[str, ...]]:
    """Lazy train/val/test windows of the cache ``data.cache``, split by time region as in memory.

    Recordings whose label is not in ``data.classes`` (all when empty) are left out; window
    length, hops and split ratios come from ``data``.  Returns the splits, the cache header and
    the class names.
    """
    info = open_cache(data.cache)
    if data.fs_hz is not None and abs(info.fs_hz - data.fs_hz) > 1e-6:
        raise ConfigError(f"The cache '{info.path}' holds recordings at {info.fs_hz:g} Hz; data.fs_hz is "
                          f"{data.fs_hz:g}. Rebuild the cache or set data.fs_hz = {info.fs_hz:g}.")
    class_names = tuple(data.classes) if data.classes else info.class_names
    missing = [c for c in class_names if c not in info.labels]
    if missing:
        raise DataError(f"No recording of class(es) {missing} in the cache '{info.path}'; it holds {sorted(set(info.labels))}.")
    hops = {"train": data.hop, "val": data.eval_hop or data.window_len, "test": data.eval_hop or data.window_len}
    parts: dict[str, list[tuple[int, int, np.ndarray]]] = {s: [] for s in SPLITS}
    for r, (label, n) in enumerate(zip(info.labels, info.lengths)):
        if label not in class_names:
            continue
        try:
            regions = time_regions(n, data.split, data.window_len)
        except DataError as err:
            raise DataError(f"Cannot split recording {r} of the cache '{info.path}': {err}") from None
        for s in SPLITS:
            a, b = regions[s]
            count = 0 if b - a < data.window_len else (b - a - data.window_len) // hops[s] + 1
            parts[s].append((r, class_names.index(label), a + hops[s] * np.arange(count, dtype=np.int64)))
    splits = {s: _window_set(info, parts[s], data.window_len, class_names) for s in SPLITS}
    return splits, info, class_names


def _window_set(info: CacheInfo, parts: Sequence[tuple[int, int, np.ndarray]], window_len: int,
                class_names: tuple[str, ...]) -> CachedWindowSet:
    recs = np.concatenate([np.full(len(st), r, np.int64) for r, _, st in parts] or [np.empty(0, np.int64)])
    y = np.concatenate([np.full(len(st), k, np.int64) for _, k, st in parts] or [np.empty(0, np.int64)])
    starts = np.concatenate([st for _, _, st in parts] or [np.empty(0, np.int64)])
    X = CachedWindows(info.path, recs, starts, window_len, len(info.channels))
    return CachedWindowSet(X, y, recs.copy(), starts, class_names)


def streaming_moments(X: CachedWindows, batch_size: int = 256,
                      transform: Callable[[np.ndarray], Any] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel mean and population std over all windows and time, and the RMS of each window.

    ``transform`` (e.g. the front end, ``(B, C, L) -> (B, C, L')``) is applied before the moments;
    the RMS is always of the raw windows.  Returns ``mean (C,)``, ``std (C,)`` (float64) and
    ``rms (N,)``; one pass, one batch in memory.
    """
    s = np.zeros(X.n_channels)
    sq = np.zeros(X.n_channels)
    rms = np.empty(len(X))
    pos, count = 0, 0
    for xb in X.batches(batch_size):
        raw = xb.astype(np.float64)
        rms[pos : pos + len(xb)] = np.sqrt((raw**2).sum(axis=2).sum(axis=1) / (X.n_channels * X.window_len))
        pos += len(xb)
        feat = raw if transform is None else np.asarray(transform(xb), dtype=np.float64)
        s += feat.sum(axis=(0, 2))
        sq += (feat**2).sum(axis=(0, 2))
        count += feat.shape[0] * feat.shape[2]
    n = max(count, 1)
    mean = s / n
    return mean, np.sqrt(np.maximum(sq / n - mean**2, 0.0)), rms
