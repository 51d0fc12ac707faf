"""The CWRU catalogue: file numbers, classes, loads, rates, and labelled recordings from a file's variables.

The catalogue ``cwru_catalogue.csv`` (shipped with the package) has one row per CWRU file
number: the normal baseline (97-100), 12 kHz drive end, 48 kHz drive end and 12 kHz fan end.
Columns: ``number, dataset, fault, or_position, diameter_in, load_hp, rpm`` (nominal
1797/1772/1750/1730), ``fs_hz, faulted_bearing, var_prefix`` (the ``Xnnn`` prefix inside the
file where it is not the file number), ``sha256`` (where known) and ``notes`` (quirks).

This module reads no files: the readers (:mod:`faultdiag.data.readers`) hand it a file's
variables (:func:`recording_from_variables`) and :mod:`faultdiag.data.cwru` finds and loads files.
"""

from __future__ import annotations

import functools
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError

__all__ = ["WDCNN_CLASSES", "DATASETS", "catalogue", "lookup", "number_from_name", "class_name",
           "recording_from_variables"]

log = logging.getLogger(__name__)

WDCNN_CLASSES = ("normal", "IR007", "IR014", "IR021", "B007", "B014", "B021", "OR007@6", "OR014@6", "OR021@6")
DATASETS = ("normal", "12k_DE", "48k_DE", "12k_FE")
_FAULT_CODES = {"inner_race": "IR", "ball": "B", "outer_race": "OR"}
_CHANNELS = ("DE", "FE", "BA")
_VAR_RE = re.compile(r"^X(\d{3,4})_(DE|FE|BA)_time$")
_RPM_RE = re.compile(r"^X(\d{3,4})RPM$")
_NAME_RE = re.compile(
    r"^(?:(?P<rate>12k|48k)_(?P<end>drive|fan)_end_)?"
    r"(?P<cls>normal|ir\d{3}|b\d{3}|or\d{3}@\d{1,2})_(?P<load>[0-3])(?:_(?P<num>\d+))?$",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=1)
def _catalogue() -> pd.DataFrame:
    with resources.files("faultdiag.data").joinpath("cwru_catalogue.csv").open("r") as f:
        df = pd.read_csv(f, dtype={"or_position": str, "var_prefix": str, "sha256": str, "notes": str})
    for col in ("or_position", "var_prefix", "sha256", "notes"):
        df[col] = df[col].fillna("")
    df["class_name"] = [class_name(row) for row in df.to_dict("records")]
    return df.set_index("number", drop=False)


def catalogue() -> pd.DataFrame:
    """The CWRU catalogue as a DataFrame indexed by file number (a copy; the table is cached)."""
    return _catalogue().copy()


def lookup(number: int) -> dict[str, Any]:
    """The catalogue row of CWRU file ``number`` as a dict (``diameter_in``/``or_position`` None where n/a)."""
    df = _catalogue()
    try:
        key = int(number)
        row = df.loc[key].to_dict()
    except (KeyError, TypeError, ValueError):
        raise DataError(
            f"The CWRU file number {number!r} is not in the catalogue (numbers run from 97 to 3008)."
        ) from None
    row["number"] = int(row["number"])
    row["load_hp"] = int(row["load_hp"])
    row["rpm"] = float(row["rpm"])
    row["fs_hz"] = float(row["fs_hz"])
    row["diameter_in"] = None if pd.isna(row["diameter_in"]) else float(row["diameter_in"])
    row["or_position"] = row["or_position"] or None
    return row


def class_name(entry: Mapping[str, Any], scheme: str = "wdcnn") -> str:
    """The class name of a catalogue entry.

    ``scheme="wdcnn"``: fault code + diameter in mils + OR position, e.g. ``"IR007"``,
    ``"OR021@6"``, ``"IR028"``, ``"OR007@3"``, or ``"normal"``. ``scheme="fault"``: the fault
    type only (``normal``, ``inner_race``, ``ball``, ``outer_race``).
    """
    if scheme == "fault":
        return str(entry["fault"])
    if scheme != "wdcnn":
        raise ConfigError(f"The 'scheme' parameter must be 'wdcnn' or 'fault'; got {scheme!r}.")
    if entry["fault"] == "normal":
        return "normal"
    mils = int(round(float(entry["diameter_in"]) * 1000))
    return f"{_FAULT_CODES[entry['fault']]}{mils:03d}{entry.get('or_position') or ''}"


def number_from_name(path: str | Path, dataset: str = "12k_DE") -> int | None:
    """The CWRU file number a file name stands for, or None when the name is not recognised.

    Recognised names (case-insensitive, any folder): ``105.mat``; ``12k_Drive_End_IR007_0_105.mat``
    and ``normal_0_97.mat`` (the trailing number); ``IR007_0.mat``, ``OR007@6_1.mat`` (class and
    load, looked up in ``dataset``: 12 kHz drive end by default, as in the mirrors that use these
    names for ``Data/12k_DE``); ``Normal_0.mat`` (the normal baseline at that load, 97-100).
    """
    if dataset not in DATASETS:
        raise ConfigError(f"The 'dataset' parameter must be one of {DATASETS}; got {dataset!r}.")
    stem = Path(path).stem
    if stem.isdigit():
        return int(stem)
    m = _NAME_RE.match(stem)
    if not m:
        return None
    if m["num"]:
        return int(m["num"])
    if m["rate"]:
        dataset = f"{m['rate'].lower()}_{'DE' if m['end'].lower() == 'drive' else 'FE'}"
    cls = m["cls"].upper() if m["cls"].lower() != "normal" else "normal"
    df = _catalogue()
    rows = df[(df.class_name == cls) & (df.load_hp == int(m["load"]))
              & (df.dataset == ("normal" if cls == "normal" else dataset))]
    return int(rows.number.iloc[0]) if len(rows) == 1 else None


def _group_variables(variables: Mapping[str, Any]) -> tuple[dict[int, dict[str, np.ndarray]], dict[int, float]]:
    groups: dict[int, dict[str, np.ndarray]] = {}
    rpms: dict[int, float] = {}
    for key, value in variables.items():
        if m := _VAR_RE.match(key):
            groups.setdefault(int(m[1]), {})[m[2]] = np.asarray(value, dtype=np.float64).ravel()
        elif (m := _RPM_RE.match(key)) and np.size(value) >= 1:
            rpms[int(m[1])] = float(np.asarray(value).ravel()[0])
    return groups, rpms


def _number_from_prefix(prefix: int) -> int | None:
    df = _catalogue()
    by_var = df[df.var_prefix == f"X{prefix:03d}"]
    if len(by_var) == 1:
        return int(by_var.number.iloc[0])
    return prefix if prefix in df.index else None


def _choose_group(path: str, groups: Mapping[int, Any], name_number: int | None) -> tuple[int, int]:
    """Pick the variable prefix to read and the CWRU number it stands for: (prefix, number)."""
    if name_number is not None and name_number in _catalogue().index:
        expected = {name_number}
        var_prefix = _catalogue().loc[name_number, "var_prefix"]
        if var_prefix:
            expected.add(int(var_prefix[1:]))
        hits = sorted(expected & set(groups))
        if hits:
            return hits[0], name_number
    if len(groups) != 1:
        raise DataError(
            f"{path} holds CWRU variables for several prefixes {['X%03d' % p for p in sorted(groups)]} and its "
            f"name gives no number that picks one (got {name_number}); rename it to '<number>.mat'."
        )
    prefix = next(iter(groups))
    number = _number_from_prefix(prefix)
    if name_number is None:
        if number is None:
            raise DataError(f"{path}: neither its name nor its variable prefix X{prefix:03d} is a CWRU file number.")
        return prefix, number
    if number is not None and number != name_number:
        log.warning("%s: the file name says CWRU %d but the variables are X%03d; trusting the variables.",
                    path, name_number, prefix)
        return prefix, number
    if name_number not in _catalogue().index:
        raise DataError(f"{path}: the number {name_number} in its name is not a CWRU file number.")
    log.info("%s: variable prefix X%03d differs from file number %d; using the file name.", path, prefix, name_number)
    return prefix, name_number


def recording_from_variables(
    path: str | Path, variables: Mapping[str, Any], *, dataset: str | None = None
) -> Recording:
    """Build a labelled :class:`Recording` from the variables of a CWRU ``.mat`` file.

    Args:
        path: the file (its name gives the CWRU number, see :func:`number_from_name`).
        variables: name -> array, as ``scipy.io.loadmat`` returns them (``X105_DE_time`` ...).
        dataset: context for names without a number such as ``IR007_0.mat`` (default 12k DE).

    Returns:
        Recording ``(C, T)`` with the channels present among DE, FE, BA (in that order), the
        catalogue's ``fs_hz``, label = :func:`class_name`, and meta ``cwru_number, dataset, fault,
        diameter_in, load_hp, or_position, rpm, rpm_source, var_prefix, faulted_bearing``.
        The RPM comes from ``XnnnRPM`` when present, else the catalogue's nominal value.
    """
    path = str(path)
    groups, rpms = _group_variables(variables)
    if not groups:
        raise DataError(f"{path} holds no CWRU signal variables (expected names like 'X105_DE_time').")
    prefix, number = _choose_group(path, groups, number_from_name(path, dataset or "12k_DE"))
    entry = lookup(number)
    chosen = groups[prefix]
    channels = tuple(c for c in _CHANNELS if c in chosen)
    n = min(len(chosen[c]) for c in channels)
    if any(len(chosen[c]) != n for c in channels):
        log.warning("%s: channels differ in length %s; truncating to %d samples.",
                    path, {c: len(chosen[c]) for c in channels}, n)
    rpm = rpms.get(prefix)
    meta = {
        "cwru_number": number, "dataset": entry["dataset"], "fault": entry["fault"],
        "diameter_in": entry["diameter_in"], "load_hp": entry["load_hp"], "or_position": entry["or_position"],
        "rpm": rpm if rpm is not None else entry["rpm"], "rpm_source": "file" if rpm is not None else "catalogue",
        "var_prefix": f"X{prefix:03d}", "faulted_bearing": entry["faulted_bearing"], "sensor": "accelerometer",
    }
    if entry["notes"]:
        meta["notes"] = entry["notes"]
    signal = np.stack([chosen[c][:n] for c in channels])
    return Recording(signal, entry["fs_hz"], channels, label=class_name(entry), source=path, meta=meta)
