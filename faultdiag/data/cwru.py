"""The Case Western Reserve University (CWRU) bearing data: finding, reading and labelling its files.

Which file is what comes from :mod:`faultdiag.data.cwru_catalogue`. The normal baseline is
sampled at 48 kHz (see ../shared/data/MANIFEST.md, note N1), although many papers pair it with
12 kHz fault data as if it were 12 kHz; :func:`load_cwru` resamples it, and
:func:`infer_fs_hz` tells a recording's true rate from its shaft-speed lines.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.fft import next_fast_len

from faultdiag.data.cwru_catalogue import WDCNN_CLASSES, _catalogue, lookup, number_from_name
from faultdiag.data.readers import read_recording
from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError

__all__ = ["load_cwru", "infer_fs_hz"]

log = logging.getLogger(__name__)


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
        rec = read_recording(found[number], dataset=dataset).select(channel).resample(fs_hz)
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
