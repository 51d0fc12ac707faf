"""Writing a :class:`Recording` as CSV, MAT v5, HDF5 or ``.npz`` (atomically).

Layouts, each read back by :func:`faultdiag.data.readers.read_recording`:

- ``.csv``: header ``time_s,<channels>``, one row per sample; the label is not stored.
- ``.mat``: MAT v5, one ``(T, 1)`` single-precision variable per channel, ``fs_hz`` and ``label``.
- ``.h5`` / ``.hdf5``: dataset ``signal`` ``(C, T)`` float32 with attributes ``fs_hz``,
  ``channels`` and ``label``.
- ``.npz``: one ``(T,)`` float32 array per channel (key = channel name), ``fs_hz`` and ``label``.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from faultdiag.data.readers.source import FS_NAMES, TIME_NAMES
from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError
from faultdiag.provenance import atomic_write

WRITE_EXTENSIONS = (".csv", ".mat", ".h5", ".hdf5", ".npz")
_MATLAB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
_RESERVED = tuple(FS_NAMES) + tuple(TIME_NAMES) + ("label", "channels")


def _check_names(rec: Recording, path: Path, matlab: bool = False) -> None:
    names = list(rec.channels)
    clash = [n for n in names if n.lower() in _RESERVED]
    invalid = [n for n in names if matlab and not _MATLAB_NAME.fullmatch(n)]
    if clash or invalid or len(set(names)) != len(names):
        rule = "unique MATLAB identifiers" if matlab else "unique"
        raise ConfigError(
            f"Cannot write {path}: channel names must be {rule} and not one of {list(_RESERVED)}; "
            f"got {names}. Rename them first (Recording(..., channels=...))."
        )


def write_recording(rec: Recording, path: str | Path) -> Path:
    """Write ``rec`` to ``path``, the format chosen by its extension (see module doc); returns the path.

    Raises:
        ConfigError: unsupported extension, or channel names the format cannot hold.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITE_EXTENSIONS:
        raise ConfigError(
            f"Cannot write {path}: the extension must be one of {list(WRITE_EXTENSIONS)}; got '{ext}'."
        )
    _check_names(rec, path, matlab=ext == ".mat")
    {".csv": _write_csv, ".mat": _write_mat, ".npz": _write_npz}.get(ext, _write_hdf5)(rec, path)
    return path


def _write_csv(rec: Recording, path: Path) -> None:
    import pandas as pd

    columns = {"time_s": np.round(np.arange(rec.n_samples) / rec.fs_hz, 9)}
    columns.update({name: rec.signal[i] for i, name in enumerate(rec.channels)})
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        pd.DataFrame(columns).to_csv(fh, index=False)


def _write_mat(rec: Recording, path: Path) -> None:
    from scipy.io import savemat

    variables = {name: rec.signal[i][:, None] for i, name in enumerate(rec.channels)}
    variables["fs_hz"] = np.float64(rec.fs_hz)
    if rec.label is not None:
        variables["label"] = rec.label
    with atomic_write(path, "wb") as fh:
        savemat(fh, variables, format="5", do_compression=False, oned_as="column")


def _write_hdf5(rec: Recording, path: Path) -> None:
    import h5py

    with atomic_write(path, "w+b") as fh, h5py.File(fh, "w") as f:
        chunk = (len(rec.channels), max(1, min(rec.n_samples, 1 << 16)))
        dset = f.create_dataset("signal", data=rec.signal, chunks=chunk)
        dset.attrs["fs_hz"] = rec.fs_hz
        dset.attrs["channels"] = np.array(rec.channels, dtype=h5py.string_dtype())
        if rec.label is not None:
            dset.attrs["label"] = rec.label


def _write_npz(rec: Recording, path: Path) -> None:
    entries = {name: rec.signal[i] for i, name in enumerate(rec.channels)}
    entries["fs_hz"] = np.float64(rec.fs_hz)
    if rec.label is not None:
        entries["label"] = np.str_(rec.label)
    with atomic_write(path, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
        for key, value in entries.items():
            arr = np.asarray(value)
            with zf.open(f"{key}.npy", "w", force_zip64=arr.nbytes > 1 << 30) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
