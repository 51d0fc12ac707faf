"""The one place where a config's ``data.source`` becomes labelled recordings.

``simulated`` → :func:`faultdiag.data.simulate.simulated_dataset`; ``cwru`` →
:func:`faultdiag.data.cwru.load_cwru`; ``hitsm`` → :mod:`faultdiag.data.hitsm`; ``files`` →
:mod:`faultdiag.data.files` (labels as ``data.label_from`` says, :mod:`faultdiag.data.labels`).
Every dataset carries its sampling rate (``data.fs_hz``, else the data's own) and a fingerprint
(each file's path relative to the data root and SHA-256, or the simulator's parameters and a hash
of the signals) that results files record. What a layout or a config key suggests is wrong is
logged as a warning (the command line shows warnings).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from faultdiag.config import DataConfig
from faultdiag.data.files import file_fingerprint, plan_files, read_entry, unify_channels, unify_rate
from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError

__all__ = ["Dataset", "load_dataset", "inapplicable_keys"]

log = logging.getLogger(__name__)

_SOURCE_KEYS = {
    "loads": ("simulated", "cwru"), "channel": ("cwru", "files"), "paths": ("files",), "labels": ("files",),
    "label_from": ("files", "hitsm"), "variable": ("files",), "skip_rows": ("files",), "rigs": ("hitsm",),
    "speeds_rpm": ("hitsm",), "source_fs_hz": ("files",),
}
"""Which sources each source-specific key applies to."""


@dataclass(frozen=True)
class Dataset:
    """Labelled recordings at one rate ``fs_hz``, the class order (``y`` indexes it) and where they came from."""

    recordings: list[Recording]
    class_names: tuple[str, ...]
    fingerprint: dict[str, Any]
    fs_hz: float = 0.0


def inapplicable_keys(data: DataConfig) -> list[str]:
    """Source-specific keys set in ``data`` that its source does not use (``data.loads`` for files ...)."""
    out = []
    for key, sources in _SOURCE_KEYS.items():
        value = getattr(data, key)
        if data.source not in sources and value not in (None, (), ""):
            if data.source in ("simulated", "cwru") and key in ("loads", "channel"):
                continue
            out.append(f"data.{key} = {value!r} does not apply to data.source = '{data.source}' (it applies to "
                       f"{', '.join(sources)}); it is ignored.")
    return out


def load_dataset(data: DataConfig) -> Dataset:
    """Load the recordings ``data`` describes, keep ``data.classes`` (all when empty), fix the class order.

    Raises:
        DataError: files missing or unreadable, a requested class with no recording.
        ConfigError: an unknown source; recordings at several rates and no ``data.fs_hz``.
    """
    for warning in inapplicable_keys(data):
        log.warning(warning)
    loaders = {"simulated": _simulated, "cwru": _cwru, "files": _files, "hitsm": _hitsm}
    if data.source not in loaders:
        raise ConfigError(f"The 'data.source' parameter must be one of {list(loaders)}; got {data.source!r}.")
    recordings, default_classes, fp = loaders[data.source](data)
    class_names = tuple(data.classes) if data.classes else tuple(default_classes)
    recordings = [r for r in recordings if r.label in class_names]
    present = {r.label for r in recordings}
    missing = [c for c in class_names if c not in present]
    if missing:
        raise DataError(
            f"No recording of class(es) {missing} in source '{data.source}'; classes found: {sorted(present)}."
        )
    fp["classes"] = list(class_names)
    fs_hz = recordings[0].fs_hz
    log.info("loaded %d recordings of %d classes from %s at %g Hz", len(recordings), len(class_names), data.source, fs_hz)
    return Dataset(recordings, class_names, fp, fs_hz)


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


def _keyed(root: str | Path, paths: Sequence[str | Path]) -> list[tuple[str, str]]:
    """``(path relative to root, path)`` pairs for the fingerprint."""
    root = Path(root)
    return [(Path(p).relative_to(root).as_posix() if Path(p).is_relative_to(root) else Path(p).name, str(p))
            for p in paths]


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
    return list(recs), classes, file_fingerprint("cwru", _keyed(data.data_dir, [r.source for r in recs if r.source]))


def _files(data: DataConfig) -> tuple[list[Recording], Sequence[str], dict[str, Any]]:
    entries, warnings = plan_files(data)
    for warning in warnings:
        log.warning("labels: %s", warning)
    wanted = set(data.classes)
    recs = [read_entry(e, data) for e in entries if not wanted or e.label in wanted]
    if not recs:
        raise DataError(f"No recording of classes {sorted(wanted)} in data.paths = {list(data.paths)}; labels found: "
                        f"{sorted({e.label for e in entries})}.")
    recs, _ = unify_rate(unify_channels(recs), data.fs_hz)
    if data.channel is None and len(recs[0].channels) > 1:
        log.warning("the model takes all %d channels %s as input; set data.channel to use one",
                    len(recs[0].channels), list(recs[0].channels))
    keyed = [(e.key, e.path) for e in entries if not wanted or e.label in wanted]
    return recs, sorted({r.label for r in recs}), file_fingerprint("files", keyed, data.source_fs_hz)


def _hitsm(data: DataConfig) -> tuple[list[Recording], Sequence[str], dict[str, Any]]:
    from pathlib import PurePosixPath

    from faultdiag.data.hitsm import HITSM_STATES, find_hitsm, read_hitsm
    from faultdiag.data.labels import label_of, label_warnings, parse_label_from

    files = find_hitsm(data.data_dir, data.rigs, data.speeds_rpm)
    rule = parse_label_from(data.label_from, None) if data.label_from else None
    labels = [label_of(rule, PurePosixPath(f.key), f.path) if rule else f.state for f in files]
    if rule is not None:
        for warning in label_warnings([(PurePosixPath(f.key), lab) for f, lab in zip(files, labels)], rule):
            log.warning("labels: %s", warning)
    wanted = set(data.classes)
    picked = [(f, lab) for f, lab in zip(files, labels) if not wanted or lab in wanted]
    recs, _ = unify_rate([read_hitsm(f, lab) for f, lab in picked], data.fs_hz)
    present = {lab for _, lab in picked}
    order = [s for s in HITSM_STATES if s in present] + sorted(present - set(HITSM_STATES))
    fp = file_fingerprint("hitsm", [(f.key, f.path) for f, _ in picked])
    fp["selection"] = {"rigs": sorted({f.rig for f, _ in picked}), "speeds_rpm": sorted({f.rpm for f, _ in picked})}
    return recs, order, fp
