"""What training would see, file by file, before training: ``faultdiag data inspect``.

:func:`inspect_files` describes recordings (channels, rate, length, what the file states about
its label, speed and load) and gives each the label training would give it (``train_label``, by
the config's ``data.label_from`` rule, or the HIT-SM state); :func:`layout_warnings` adds what
looks wrong about those labels (:func:`faultdiag.data.labels.label_warnings`) and the rates.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from faultdiag.config import DataConfig
from faultdiag.data.labels import LabelRule, label_of, label_warnings, parse_label_from
from faultdiag.errors import ConfigError, DataError

__all__ = ["Inspection", "inspect_files", "inspect_config"]

log = logging.getLogger(__name__)

_META_KEYS = ("fault", "diameter_in", "or_position", "cwru_number", "format", "rig", "rpm_source", "fs_source",
              "skipped_rows", "bearing_orders")


@dataclass
class Inspection:
    """``rows`` (one dict per readable file), ``failures`` (``{"file", "error"}``) and ``warnings``."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _describe(path: Path, shown: str, data: DataConfig, fs_hz: float | None) -> dict[str, Any]:
    from faultdiag.data.readers import open_recording

    src = open_recording(path, fs_hz=fs_hz, variable=data.variable, skip_rows=data.skip_rows)
    n = src.n_samples
    if n is None:  # CSV: count by streaming blocks
        n = sum(block.shape[1] for _, block in src.iter_blocks(1 << 16))
    row = {"file": shown, "channels": ",".join(src.channels), "fs_hz": src.fs_hz, "samples": n,
           "seconds": round(n / src.fs_hz, 3), "label": src.label, "train_label": None, "rpm": src.meta.get("rpm"),
           "load_hp": src.meta.get("load_hp")}
    row.update({k: src.meta[k] for k in _META_KEYS if src.meta.get(k) is not None})
    return row


def _files_under(arg: str) -> tuple[Path | None, list[Path]]:
    from faultdiag.data.readers import find_recordings

    root = Path(arg)
    return (root if root.is_dir() else None), find_recordings([root])


def inspect_files(paths: list[str], data: DataConfig, fs_hz: float | None = None) -> Inspection:
    """Describe every recording under ``paths`` with ``data``'s reading options and label rule."""
    result = Inspection()
    try:
        rule: LabelRule | None = parse_label_from(data.label_from, data.labels)
    except (ConfigError, DataError) as exc:
        result.warnings.append(f"no train_label: {exc}")
        rule = None
    skip = {rule.table.path.resolve()} if rule is not None and rule.table is not None else set()
    entries = []
    for arg in paths:
        try:
            root, files = _files_under(arg)
        except DataError as exc:
            result.failures.append({"file": arg, "error": str(exc)})
            continue
        for path in (p for p in files if p.resolve() not in skip):
            rel = PurePosixPath(path.relative_to(root).as_posix()) if root is not None else PurePosixPath(path.name)
            shown = rel.as_posix() if root is not None else str(path)
            try:
                row = _describe(path, shown, data, fs_hz if fs_hz is not None else data.source_fs_hz)
            except (DataError, ConfigError) as exc:
                result.failures.append({"file": shown, "error": str(exc)})
                continue
            if rule is not None:
                try:
                    row["train_label"] = label_of(rule, rel, path)
                    entries.append((rel, row["train_label"]))
                except DataError as exc:
                    row["train_label"] = None
                    result.warnings.append(str(exc))
            result.rows.append(row)
    if rule is not None:
        result.warnings += label_warnings(entries, rule)
    result.warnings += _rate_warnings(result.rows, data) + _hitsm_hint(paths)
    return result


def _hitsm_hint(paths: list[str]) -> list[str]:
    from faultdiag.data.hitsm import parse_hitsm_path

    found = [p for arg in paths if Path(arg).is_dir() for p in Path(arg).rglob("*.mat")]
    if found and sum(parse_hitsm_path(p) is not None for p in found) >= 0.8 * len(found):
        return ["these files are named like the HIT-SM data set (<rig>/<state>_<rpm>.mat): read them with "
                "data.source = 'hitsm' and data.data_dir = the folder above the rigs (51.2 kHz, labels from the state), "
                "e.g. faultdiag data inspect --config configs/hitsm.toml --set data.data_dir=..."]
    return []


def _rate_warnings(rows: list[dict[str, Any]], data: DataConfig) -> list[str]:
    rates = Counter(r["fs_hz"] for r in rows)
    if len(rates) > 1 and data.fs_hz is None:
        listing = ", ".join(f"{n} at {fs:g} Hz" for fs, n in sorted(rates.items()))
        return [f"the recordings have different sampling rates ({listing}): training needs data.fs_hz set "
                "(the others are then resampled)."]
    other = {fs: n for fs, n in rates.items() if data.fs_hz is not None and abs(fs - data.fs_hz) > 1e-6}
    if other:
        listing = ", ".join(f"{n} at {fs:g} Hz" for fs, n in sorted(other.items()))
        return [f"data.fs_hz = {data.fs_hz:g}: training resamples {listing} to it."]
    return []


def inspect_config(data: DataConfig) -> Inspection:
    """:func:`inspect_files` for what a config's ``[data]`` section names (files, HIT-SM or CWRU folder)."""
    if data.source == "files":
        return inspect_files(list(data.paths), data)
    if data.source == "simulated":
        raise ConfigError("data.source = 'simulated' reads no files; there is nothing to inspect.")
    if data.source == "cwru":
        result = inspect_files([data.data_dir], DataConfig(source="files", paths=(data.data_dir,), label_from="parent"))
        for row in result.rows:
            row["train_label"] = row["label"]  # the CWRU catalogue labels the files
        result.rows = [r for r in result.rows if (not data.classes or r["label"] in data.classes)
                       and (r.get("load_hp") is None or r["load_hp"] in data.loads)]
        result.warnings = _rate_warnings(result.rows, data)
        return result
    return _inspect_hitsm(data)


def _inspect_hitsm(data: DataConfig) -> Inspection:
    from faultdiag.data.hitsm import HITSM_FS_HZ, find_hitsm

    result = Inspection()
    rule = parse_label_from(data.label_from, None) if data.label_from else None
    entries = []
    for f in find_hitsm(data.data_dir, data.rigs, data.speeds_rpm):
        try:
            row = _describe(f.path, f.key, data, HITSM_FS_HZ)
        except (DataError, ConfigError) as exc:
            result.failures.append({"file": f.key, "error": str(exc)})
            continue
        row.update(rig=f.rig, rpm=float(f.rpm), variable=row["channels"], channels="acc",
                   train_label=label_of(rule, PurePosixPath(f.key), f.path) if rule else f.state)
        entries.append((PurePosixPath(f.key), row["train_label"]))
        result.rows.append(row)
    if rule is not None:
        result.warnings += label_warnings(entries, rule)
    result.warnings += _rate_warnings(result.rows, data)
    return result
