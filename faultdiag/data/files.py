"""The ``files`` source: which files, under which data root, with which label, read how.

:func:`plan_files` lists the recordings of ``data.paths`` (folders searched recursively; the
labels CSV is never taken for a recording), each with its data root, its key (path relative to
the root, as the data fingerprint records it) and its label (:mod:`faultdiag.data.labels`).
:func:`read_entry` reads one with the config's reading options (``variable``, ``skip_rows``,
``channel``, ``source_fs_hz``). :func:`unify_rate` and :func:`unify_channels` make the
recordings one training set, saying what they change.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from faultdiag.config import DataConfig
from faultdiag.data.labels import LabelRule, label_of, label_warnings, parse_label_from
from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError
from faultdiag.provenance import file_sha256, fingerprint

__all__ = ["FileEntry", "plan_files", "read_entry", "file_fingerprint", "unify_rate", "unify_channels"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileEntry:
    """One recording file: ``path``, ``key`` (the path relative to its data root, posix, or the
    bare name of a file named directly; the fingerprint's key) and ``label``."""

    path: Path
    key: str
    label: str

    @property
    def rel(self) -> PurePosixPath:
        return PurePosixPath(self.key)


def _roots(paths: Sequence[str]) -> list[tuple[Path | None, list[Path]]]:
    from faultdiag.data.readers import find_recordings

    out = []
    for item in paths:
        item = Path(item)
        files = find_recordings([item])
        out.append((item if item.is_dir() else None, files))
    return out


def plan_files(data: DataConfig, rule: LabelRule | None = None) -> tuple[list[FileEntry], list[str]]:
    """The recordings of ``data.paths`` with keys and labels, and the label warnings of the layout.

    Raises:
        DataError: no file found, a file the label rule gives no label, an ambiguous labels CSV row.
    """
    rule = rule or parse_label_from(data.label_from, data.labels)
    skip = {rule.table.path.resolve()} if rule.table is not None else set()
    entries: list[FileEntry] = []
    seen: Counter = Counter()
    for root, files in _roots(list(data.paths)):
        for path in files:
            if path.resolve() in skip:
                continue
            rel = PurePosixPath(path.relative_to(root).as_posix()) if root is not None else PurePosixPath(path.name)
            key = rel.as_posix() if len(data.paths) == 1 or root is None else f"{root.name}/{rel.as_posix()}"
            seen[key] += 1
            key = key if seen[key] == 1 else f"{key}#{seen[key]}"
            entries.append(FileEntry(path, key, label_of(rule, rel, path)))
    if not entries:
        raise DataError(f"No supported recording files found in data.paths = {list(data.paths)}.")
    if rule.table is not None and rule.table.ambiguous_names():
        raise DataError(f"The labels file '{rule.table.path}' names {rule.table.ambiguous_names()[:5]} by bare file "
                        "name, and several files have that name; give their paths relative to the CSV.")
    return entries, label_warnings([(e.rel, e.label) for e in entries], rule)


def read_entry(entry: FileEntry | Path, data: DataConfig, label: str | None = None) -> Recording:
    """One recording read with ``data``'s options, its ``data.channel`` picked; a file that states no
    rate (nor a sidecar JSON) is read at ``data.source_fs_hz`` if set."""
    from faultdiag.data.readers import read_recording
    from faultdiag.data.readers.source import MissingRateError

    path = entry.path if isinstance(entry, FileEntry) else Path(entry)
    label = entry.label if isinstance(entry, FileEntry) else label
    opts = dict(label=label, variable=data.variable, skip_rows=data.skip_rows)
    try:
        rec = read_recording(path, **opts)
    except MissingRateError:
        if data.source_fs_hz is None:
            raise ConfigError(f"{path} does not state its sampling rate; set 'data.source_fs_hz' to the rate "
                              f"of such files (e.g. --set data.source_fs_hz=25600), or put a sidecar file "
                              f"{path.name}.json holding {{\"fs_hz\": ...}} beside it.") from None
        rec = read_recording(path, fs_hz=data.source_fs_hz, **opts)
    if isinstance(entry, FileEntry):
        rec = replace(rec, meta=dict(rec.meta, key=entry.key))
    return _pick_channel(rec, data.channel)


def _pick_channel(rec: Recording, channel: str | None) -> Recording:
    if channel is None:
        return rec
    if channel in rec.channels:
        return rec.select([channel])
    if len(rec.channels) == 1:
        log.warning("data.channel = %r: %s has one channel, %r; it is used", channel, rec.name, rec.channels[0])
        return rec
    raise DataError(
        f"The recording '{rec.name}' has no channel {channel!r} (data.channel); its channels are {list(rec.channels)}."
    )


def file_fingerprint(source: str, keyed: Sequence[tuple[str, str | Path]], source_fs_hz: float | None = None,
                     root: str | None = None) -> dict[str, Any]:
    """``{"source", "files": {key: sha256}, "digest"}``; keys are paths relative to the data root, so two
    folders holding the same file names stay apart and a moved data folder keeps its digest."""
    files = {key: file_sha256(path) for key, path in sorted(keyed)}
    fp: dict[str, Any] = {"source": source, "files": files, "digest": fingerprint(files)}
    if source_fs_hz is not None:  # the rate assumed for files that state none changes what is read
        fp["source_fs_hz"] = source_fs_hz
    return fp


def unify_rate(recordings: list[Recording], fs_hz: float | None, what: str = "data.fs_hz") -> tuple[list[Recording], float]:
    """All recordings at one rate: ``fs_hz`` if given, else the rate they share (an error if they do not).

    Each resampling is announced with a warning (polyphase, :meth:`Recording.resample`).
    """
    rates = Counter(r.fs_hz for r in recordings)
    if fs_hz is None:
        if len(rates) > 1:
            listing = ", ".join(f"{n} at {fs:g} Hz" for fs, n in sorted(rates.items()))
            raise ConfigError(f"The recordings have different sampling rates ({listing}); set {what} to the rate to "
                              f"train at (e.g. --set {what}={min(rates):g}; the others are resampled to it).")
        return recordings, float(next(iter(rates)))
    moved = {fs: n for fs, n in rates.items() if abs(fs - fs_hz) > 1e-6}
    if moved:
        listing = ", ".join(f"{n} from {fs:g} Hz" for fs, n in sorted(moved.items()))
        log.warning("resampling %s to %g Hz (%s); leave %s unset to train at the data's own rate", listing,
                    fs_hz, what, what)
    return [r.resample(fs_hz) if abs(r.fs_hz - fs_hz) > 1e-6 else r for r in recordings], float(fs_hz)


def unify_channels(recordings: list[Recording]) -> list[Recording]:
    """Single-channel recordings whose channel names differ (one variable per file, named as it
    happened to be saved) are all named ``ch0``; multichannel ones must agree."""
    names = Counter(r.channels for r in recordings)
    if len(names) == 1:
        return recordings
    if all(len(ch) == 1 for ch in names):
        shown = sorted({ch[0] for ch in names})
        log.info("single-channel recordings with %d different channel names (%s ...) are read as channel 'ch0'",
                 len(shown), ", ".join(shown[:4]))
        return [replace(r, channels=("ch0",)) for r in recordings]
    listing = "; ".join(f"{list(ch)} ({n} files)" for ch, n in names.most_common(4))
    raise DataError(f"The recordings have different channels ({listing}); pick one with data.channel or "
                    "data.variable.")
