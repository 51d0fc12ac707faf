"""Reading vibration recordings from files: CSV/TSV, MAT v5, MAT v7.3, HDF5, ``.npy``, ``.npz``.

The format is recognised by content (:func:`sniff_format`), never trusted from the extension.
:func:`read_recording` returns a whole :class:`~faultdiag.data.recording.Recording`;
:func:`open_recording` returns a :class:`RecordingSource` that reads block by block, for
recordings too long to hold in memory. Example::

    rec = read_recording("run_07.csv", fs_hz=25600, channels=["acc_x"])
    src = open_recording("hour_48k.h5")
    for start, block in src.iter_blocks(block_len=48_000, overlap=24_000):
        ...  # block: float32 (C, n)

Where the sampling rate comes from, per format: a time column (CSV), a scalar variable
``fs``/``Fs``/``fs_hz``/``sampling_rate``/``sr`` or a time vector (MAT, ``.npz``), an attribute
``fs_hz``/``fs``/``sampling_rate`` (HDF5), the CWRU catalogue (CWRU MAT files); otherwise the
``fs_hz`` argument or a sidecar JSON file (:mod:`faultdiag.data.readers.sidecar`) is required.
An ``fs_hz`` argument that contradicts a stated rate is an error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from faultdiag.data.readers.arrays import open_mat5, open_npy, open_npz
from faultdiag.data.readers.text import open_csv
from faultdiag.data.readers.hdf5 import open_hdf5
from faultdiag.data.readers.sidecar import read_sidecar
from faultdiag.data.readers.sniff import FORMATS, check_file, sniff_format
from faultdiag.data.readers.source import MissingRateError, RecordingSource, check_fs_param
from faultdiag.data.readers.write import WRITE_EXTENSIONS, write_recording
from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError

__all__ = [
    "FORMATS", "SUPPORTED_EXTENSIONS", "WRITE_EXTENSIONS", "RecordingSource", "find_recordings",
    "open_recording", "read_recording", "sniff_format", "write_recording",
]

SUPPORTED_EXTENSIONS = (".csv", ".tsv", ".txt", ".mat", ".h5", ".hdf5", ".npy", ".npz")


def _check_options(channels: Any, label: Any, time_column: Any, dataset: Any, variable: Any = None) -> None:
    if channels is not None and not (
        isinstance(channels, str)
        or (isinstance(channels, Sequence) and all(isinstance(c, str) for c in channels))
    ):
        raise ConfigError(f"The 'channels' parameter must be a name or a list of names; got {channels!r}.")
    for name, value in (("label", label), ("time_column", time_column), ("dataset", dataset), ("variable", variable)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"The '{name}' parameter must be a string or None; got {value!r}.")


def open_recording(
    path: str | os.PathLike,
    *,
    fs_hz: float | None = None,
    channels: Sequence[str] | str | None = None,
    label: str | None = None,
    time_column: str | None = None,
    dataset: str | None = None,
    variable: str | None = None,
    skip_rows: int | None = None,
) -> RecordingSource:
    """Open ``path`` for block-wise reading (see :meth:`RecordingSource.iter_blocks`).

    Args:
        path: a recording file of any format in ``FORMATS``.
        fs_hz: sampling rate in Hz, required when the file does not state one.
        channels: channel name(s) to keep, in this order (default: all).
        label: class label to attach (default: the file's ``label`` entry, if any).
        time_column: CSV column holding time in seconds (default: ``time``/``t``/``time_s``/``timestamp``).
        dataset: HDF5 / MAT 7.3 dataset path to read (default: every numeric 1-D/2-D dataset);
            for a CWRU MAT file, the CWRU set (``"12k_DE"`` ...) that numbers a file whose name
            lacks its CWRU number (see :func:`faultdiag.data.cwru_catalogue.recording_from_variables`).
        variable: the one signal to read, in any format that names its arrays: a MAT variable or
            struct field (``bearing.gs``), an HDF5 dataset (``bearing/gs`` or ``bearing.gs``), an
            ``.npz`` entry, a CSV column. Default: every numeric signal (a file holding one signal
            and scalars, such as a MATLAB struct with the signal and its rate, needs none).
        skip_rows: text files: lines before the header (default: a preamble is detected).

    Raises:
        DataError: missing, empty, damaged or unrecognised file; no signal; zero samples.
        ConfigError: bad option, no sampling rate known, unknown channel or dataset.
    """
    path = check_file(path)
    fs_hz = check_fs_param(fs_hz)
    _check_options(channels, label, time_column, dataset, variable)
    side, side_path = read_sidecar(path)
    opts = dict(fs_hz=fs_hz, channels=channels, label=label, time_column=time_column, dataset=dataset,
                variable=variable, skip_rows=skip_rows)
    fmt = sniff_format(path)
    try:
        src = _dispatch(path, fmt, opts)
    except MissingRateError:
        if "fs_hz" not in side:
            raise
        src = _dispatch(path, fmt, {**opts, "fs_hz": side["fs_hz"]})
        src.meta["fs_source"] = f"sidecar {side_path.name}"
    else:
        if "fs_hz" in side and fs_hz is None and abs(side["fs_hz"] - src.fs_hz) > 1e-6 * src.fs_hz:
            raise DataError(f"{path} states {src.fs_hz:g} Hz but its sidecar {side_path.name} says {side['fs_hz']:g} Hz; "
                            "fix one of them.")
    if "rpm" in side and "rpm" not in src.meta:
        src.meta.update(rpm=side["rpm"], rpm_source=f"sidecar {side_path.name}")
    return src


def _dispatch(path: Path, fmt: str, opts: dict[str, Any]) -> RecordingSource:
    variable = opts["variable"]
    if fmt == "csv":
        if variable is not None and opts["channels"] is None:
            opts = {**opts, "channels": [variable]}
        return open_csv(path, **opts)
    if fmt == "npy" and variable is not None:
        raise ConfigError(f"The 'variable' option ('{variable}') does not apply to {path}: an .npy file holds one "
                          "unnamed array.")
    if opts["skip_rows"]:
        raise ConfigError(f"The 'skip_rows' option applies to text files; {path} is {fmt}.")
    if fmt == "mat5":
        return open_mat5(path, **opts)
    if fmt in ("mat73", "hdf5"):
        return open_hdf5(path, fmt, **opts)
    if fmt == "npy":
        return open_npy(path, **opts)
    return open_npz(path, **opts)


def read_recording(
    path: str | os.PathLike,
    *,
    fs_hz: float | None = None,
    channels: Sequence[str] | str | None = None,
    label: str | None = None,
    time_column: str | None = None,
    dataset: str | None = None,
    variable: str | None = None,
    skip_rows: int | None = None,
) -> Recording:
    """Read the whole of ``path`` into a :class:`Recording` ``(C, T)`` float32.

    Arguments and errors as for :func:`open_recording`; NaN/Inf in the signal is a DataError
    naming the channel and sample.
    """
    src = open_recording(path, fs_hz=fs_hz, channels=channels, label=label,
                         time_column=time_column, dataset=dataset, variable=variable, skip_rows=skip_rows)
    return src.read()


def find_recordings(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into recording files.

    A file is kept whatever its extension (its content decides the format); a folder is searched
    recursively for ``SUPPORTED_EXTENSIONS``, skipping hidden files and folders and file tables
    (text files whose first field is ``file``: a labels or ``--info`` CSV), in sorted order.
    Duplicates are dropped, first occurrence kept.

    Raises:
        DataError: a path does not exist, or nothing was found.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: list[Path] = []
    for item in items:
        item = Path(item)
        if item.is_dir():
            found.extend(_scan_folder(item))
        elif item.exists():
            found.append(item)
        else:
            raise DataError(f"The recording path {item} does not exist.")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise DataError(
            f"No recording files ({', '.join(SUPPORTED_EXTENSIONS)}) found in {[str(p) for p in items]}."
        )
    return unique


def _scan_folder(folder: Path) -> list[Path]:
    files = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in SUPPORTED_EXTENSIONS and not is_file_table(path):
            files.append(path)
    return sorted(files)


def is_file_table(path: Path) -> bool:
    """True for a text file whose first line starts with the field ``file`` (a labels/info CSV, not a recording)."""
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        return False
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline(4096)
    except OSError:
        return False
    return re.split(r"[,;\t]", first.strip(), maxsplit=1)[0].strip().strip("\"'").lower() == "file"
