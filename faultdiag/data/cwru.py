"""The Case Western Reserve University (CWRU) bearing data: catalogue, file names, labels, loading.

The catalogue ``cwru_catalogue.csv`` (shipped with the package) has one row per CWRU file
number: the normal baseline (97-100), 12 kHz drive end, 48 kHz drive end and 12 kHz fan end.
Columns: ``number, dataset, fault, or_position, diameter_in, load_hp, rpm`` (nominal
1797/1772/1750/1730), ``fs_hz, faulted_bearing, var_prefix`` (the ``Xnnn`` prefix inside the
file where it is not the file number), ``sha256`` (where known) and ``notes`` (quirks).

The normal baseline is sampled at 48 kHz (see ../shared/data/MANIFEST.md, note N1), although
many papers pair it with 12 kHz fault data as if it were 12 kHz; :func:`load_cwru` resamples it.
"""

from __future__ import annotations

import functools
import math
import logging
import re
from importlib import resources
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.fft import next_fast_len

from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError

__all__ = [
    "WDCNN_CLASSES", "catalogue", "lookup", "number_from_name", "class_name",
    "recording_from_variables", "load_cwru", "infer_fs_hz",
]

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


def _read(path: Path, dataset: str) -> Recording:
    try:
        from faultdiag.data.readers import read_recording
    except ImportError:  # readers not available: read the MAT v5 file directly
        from scipy.io import loadmat

        return recording_from_variables(path, loadmat(path), dataset=dataset)
    return read_recording(path, dataset=dataset)


def _wanted_entries(classes: Sequence[str], loads: Iterable[int], dataset: str) -> pd.DataFrame:
    df = _catalogue()
    known = set(df[df.dataset.isin(["normal", dataset])].class_name)
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise ConfigError(f"The 'classes' parameter names {unknown}, which the CWRU {dataset} set does not have; "
                          f"known: {sorted(known)}.")
    return df[df.dataset.isin(["normal", dataset]) & df.class_name.isin(classes) & df.load_hp.isin(list(loads))]


def load_cwru(
    data_dir: str | Path,
    *,
    classes: Sequence[str] = WDCNN_CLASSES,
    loads: Sequence[int] = (0, 1, 2, 3),
    fs_hz: float = 12000,
    channel: str = "DE",
    dataset: str = "12k_DE",
) -> list[Recording]:
    """Read, label and resample the CWRU files of ``classes`` x ``loads`` found under ``data_dir``.

    Files may use any naming style of :func:`number_from_name`. Every recording is reduced to
    ``channel`` and resampled to ``fs_hz`` (the 48 kHz normal baseline is decimated by 4 for the
    default 12 kHz). A missing class/load combination is logged; a class with no file at all
    raises :class:`DataError` naming the folder and the files expected. Each recording's meta
    records ``cwru_normal_available`` (normal file numbers found, e.g. ``[97]``).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"The CWRU folder {root} does not exist or is not a folder.")
    wanted = _wanted_entries(classes, loads, dataset)
    found: dict[int, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() == ".mat"):
        number = number_from_name(path, dataset)
        if number in wanted.index:
            found.setdefault(number, path)
    for cls in classes:
        rows = wanted[wanted.class_name == cls]
        if not set(rows.number) & set(found):
            files = ", ".join(f"{n}.mat" for n in rows.number)
            raise DataError(f"No CWRU file of class '{cls}' in {root}; expected one of: {files} "
                            "(or the same numbers in names like 12k_Drive_End_IR007_0_105.mat).")
        for number, load in zip(rows.number, rows.load_hp):
            if number not in found:
                log.warning("CWRU class '%s' at %d HP is missing in %s (expected %d.mat).", cls, load, root, number)
    normal_found = sorted(n for n in found if lookup(n)["fault"] == "normal")
    recordings = []
    for number in sorted(found):
        rec = _read(found[number], dataset).select(channel).resample(fs_hz)
        recordings.append(replace(rec, meta=dict(rec.meta, cwru_normal_available=normal_found)))
    return recordings


def _line_prominence_db(spec: np.ndarray, df_hz: float, freq_hz: float, tol_hz: float, background_hz: float) -> float:
    """Peak of ``spec`` within ``freq_hz +- tol_hz`` over its median within ``+- background_hz``, in dB."""
    i0, i1 = int(math.ceil((freq_hz - tol_hz) / df_hz)), int(math.floor((freq_hz + tol_hz) / df_hz)) + 1
    b0, b1 = max(int((freq_hz - background_hz) / df_hz), 1), int((freq_hz + background_hz) / df_hz) + 1
    background = np.concatenate([spec[b0:max(i0 - 2, b0)], spec[i1 + 2:b1]])
    if i1 <= i0 or background.size == 0 or i1 > len(spec):
        return float("-inf")
    return float(20 * np.log10(spec[i0:i1].max() / max(np.median(background), 1e-300)))


def infer_fs_hz(
    signal: np.ndarray,
    rpm: float,
    candidates: Sequence[float] = (12000, 48000),
    *,
    harmonics: Sequence[int] = (1, 2, 3),
    threshold_db: float = 12.0,
    rpm_tol: float = 10.0,
) -> float:
    """Decide a recording's true sampling rate from its shaft-speed lines.

    For each candidate rate, the amplitude spectrum (Hann window, whole record) is searched for
    lines at the shaft harmonics ``k * rpm / 60`` (within one bin plus ``k * rpm_tol / 60`` Hz);
    a line's prominence is its peak over the median background within +-5 Hz, in dB, and a
    candidate's score is the median over ``harmonics``. A signal sampled at ``fs`` but read at
    ``fs / 4`` still shows lines there (the true 4th, 8th, 12th harmonics), while one read at
    ``4 * fs`` shows none, so the answer is the *highest* candidate whose score reaches
    ``threshold_db``; if none does, the best-scoring one is returned and a warning logged.

    Args:
        signal: ``(T,)`` or ``(C, T)`` (the first channel is used); a few seconds at least.
        rpm: shaft speed in revolutions per minute.
        rpm_tol: how far the true speed may be from ``rpm``. The default (10 rpm) covers the
            catalogue's nominal speeds, which files without an RPM variable have to use: with
            1 rpm, 3008.mat (nominal 1730 rpm) showed no lines at 12 kHz and was read as 48 kHz;
            with 10 rpm every one of the 61 CWRU files in the test data gets its true rate.
    """
    x = np.asarray(signal, dtype=np.float64)
    x = x[0] if x.ndim == 2 else x
    if x.ndim != 1 or x.size < 1024:
        raise DataError(f"infer_fs_hz needs a 1-D signal of at least 1024 samples; got shape {np.shape(signal)}.")
    if not (math.isfinite(rpm) and rpm > 0):
        raise ConfigError(f"The 'rpm' parameter must be a positive number; got {rpm!r}.")
    n_fft = next_fast_len(x.size, real=True)
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size), n_fft))
    scores = {}
    for fs in sorted(candidates):
        df_hz = fs / n_fft
        lines = [_line_prominence_db(spec, df_hz, k * rpm / 60, df_hz + k * rpm_tol / 60, 5.0) for k in harmonics]
        scores[fs] = float(np.median(lines))
    log.debug("infer_fs_hz scores (dB): %s", scores)
    passing = [fs for fs, score in scores.items() if score >= threshold_db]
    if passing:
        return float(max(passing))
    best = max(scores, key=scores.get)
    log.warning("No candidate sampling rate shows clear shaft lines (scores %s dB); guessing %g Hz.", scores, best)
    return float(best)
