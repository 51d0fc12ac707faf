"""The one place where a config's ``data.source`` becomes labelled recordings.

``simulated`` → :func:`faultdiag.data.simulate.simulated_dataset`; ``cwru`` →
:func:`faultdiag.data.cwru.load_cwru`; ``files`` → :func:`faultdiag.data.readers.find_recordings`
and :func:`~faultdiag.data.readers.read_recording`, labelled from a ``labels`` CSV (columns
``file,label``) or else from each file's parent folder name.  Every dataset carries a
fingerprint (file names + SHA-256, or the simulator's parameters + a hash of the signals) that
results files record.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from faultdiag.config import DataConfig
from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError
from faultdiag.provenance import file_sha256, fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """Labelled recordings, the class order (``y`` indexes it) and where they came from."""

    recordings: list[Recording]
    class_names: tuple[str, ...]
    fingerprint: dict[str, Any]


def load_dataset(data: DataConfig) -> Dataset:
    """Load the recordings ``data`` describes, keep ``data.classes`` (all when empty), fix the class order.

    Raises:
        DataError: files missing or unreadable, a requested class with no recording.
        ConfigError: an unknown source.
    """
    if data.source == "simulated":
        recordings, default_classes, fp = _simulated(data)
    elif data.source == "cwru":
        recordings, default_classes, fp = _cwru(data)
    elif data.source == "files":
        recordings, default_classes, fp = _files(data)
    else:
        raise ConfigError(f"The 'data.source' parameter must be 'simulated', 'cwru' or 'files'; got {data.source!r}.")
    class_names = tuple(data.classes) if data.classes else tuple(default_classes)
    recordings = [r for r in recordings if r.label in class_names]
    present = {r.label for r in recordings}
    missing = [c for c in class_names if c not in present]
    if missing:
        raise DataError(
            f"No recording of class(es) {missing} in source '{data.source}'; classes found: {sorted(present)}."
        )
    fp["classes"] = list(class_names)
    log.info("loaded %d recordings of %d classes from %s", len(recordings), len(class_names), data.source)
    return Dataset(recordings, class_names, fp)


def _simulated(data: DataConfig) -> tuple[list[Recording], Sequence[str], dict[str, Any]]:
    from faultdiag.data.simulate import SIM_CLASSES, simulated_dataset

    wanted = tuple(data.classes) if data.classes and set(data.classes) <= set(SIM_CLASSES) else tuple(SIM_CLASSES)
    recs = simulated_dataset(seed=data.sim_seed, duration_s=data.sim_duration_s, fs_hz=data.fs_hz,
                             loads=data.loads, classes=wanted)
    h = hashlib.sha256()
    for r in recs:
        h.update(f"{r.label}\0{r.meta.get('load_hp')}\0".encode())
        h.update(r.signal.tobytes())
    fp = {
        "source": "simulated",
        "params": {"seed": data.sim_seed, "duration_s": data.sim_duration_s, "fs_hz": data.fs_hz, "loads": list(data.loads)},
        "digest": h.hexdigest()[:16],
    }
    return list(recs), tuple(SIM_CLASSES), fp


def _file_fingerprint(source: str, paths: Sequence[str | Path], source_fs_hz: float | None = None) -> dict[str, Any]:
    files = {Path(p).name: file_sha256(p) for p in sorted({str(p) for p in paths})}
    fp = {"source": source, "files": files, "digest": fingerprint(files)}
    if source_fs_hz is not None:  # the rate assumed for files that state none changes what is read
        fp["source_fs_hz"] = source_fs_hz
    return fp


def _cwru(data: DataConfig) -> tuple[list[Recording], Sequence[str], dict[str, Any]]:
    from faultdiag.data.cwru import load_cwru
    from faultdiag.data.cwru_catalogue import WDCNN_CLASSES

    if not Path(data.data_dir).is_dir():
        raise DataError(
            f"The CWRU folder '{data.data_dir}' (data.data_dir) does not exist; download it with "
            f"'faultdiag data download cwru' or set data.data_dir / FAULTDIAG_CWRU_DIR."
        )
    classes = tuple(data.classes) if data.classes else tuple(WDCNN_CLASSES)
    recs = load_cwru(data.data_dir, classes=classes, loads=data.loads, fs_hz=data.fs_hz, channel=data.channel)
    return list(recs), classes, _file_fingerprint("cwru", [r.source for r in recs if r.source])


def _read_labels(path: str) -> dict[str, str]:
    """``file,label`` rows → {file name or relative path: label}."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError(f"The labels file '{path}' (data.labels) does not exist.") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise DataError(f"The labels file '{path}' must be a CSV with columns 'file' and 'label'; got {list(rows[0]) if rows else 'no rows'}.")
    return {row["file"].strip(): row["label"].strip() for row in rows}


def _label_for(path: Path, labels: dict[str, str] | None, labels_dir: Path | None) -> str:
    if labels is None:
        return path.parent.name
    candidates = [path.name, str(path)]
    if labels_dir is not None:
        try:
            candidates.append(path.resolve().relative_to(labels_dir.resolve()).as_posix())
        except ValueError:
            pass
    for key in candidates:
        if key in labels:
            return labels[key]
    raise DataError(f"The file '{path}' has no row in the labels file (data.labels); add a row 'file,label' for it.")


def _pick_channel(rec: Recording, channel: str) -> Recording:
    if channel in rec.channels:
        return rec.select([channel])
    if len(rec.channels) == 1:
        return rec
    raise DataError(
        f"The recording '{rec.name}' has no channel {channel!r} (data.channel); its channels are {list(rec.channels)}."
    )


def read_file(path: str | Path, data: DataConfig, label: str) -> Recording:
    """One recording of ``data.paths``, its ``data.channel`` picked; a file that states no sampling
    rate (a CSV without a time column, a bare ``.npy``) is read at ``data.source_fs_hz`` if set."""
    from faultdiag.data.readers import read_recording
    from faultdiag.data.readers.source import MissingRateError

    try:
        rec = read_recording(path, label=label)
    except MissingRateError:
        if data.source_fs_hz is None:
            raise ConfigError(f"{path} does not state its sampling rate; set 'data.source_fs_hz' to the rate "
                              f"of such files (e.g. --set data.source_fs_hz=25600).") from None
        rec = read_recording(path, label=label, fs_hz=data.source_fs_hz)
    return _pick_channel(rec, data.channel)


def _files(data: DataConfig) -> tuple[list[Recording], Sequence[str], dict[str, Any]]:
    from faultdiag.data.readers import find_recordings

    paths = find_recordings(list(data.paths))
    if not paths:
        raise DataError(f"No supported recording files found in data.paths = {list(data.paths)}.")
    labels = _read_labels(data.labels) if data.labels else None
    labels_dir = Path(data.labels).parent if data.labels else None
    recs = []
    for p in paths:
        rec = read_file(p, data, _label_for(Path(p), labels, labels_dir))
        if abs(rec.fs_hz - data.fs_hz) > 1e-6:
            log.info("resampling %s from %g Hz to %g Hz", rec.name, rec.fs_hz, data.fs_hz)
            rec = rec.resample(data.fs_hz)
        recs.append(rec)
    classes = sorted({r.label for r in recs})
    return recs, classes, _file_fingerprint("files", paths, data.source_fs_hz)
