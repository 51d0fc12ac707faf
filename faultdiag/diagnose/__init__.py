"""Verdicts on new recordings: a trained model and this week's files in, one checked row per file out.

For each recording :func:`diagnose` (streaming, memory bounded whatever the length, see
:mod:`faultdiag.diagnose.stream`):

1. opens it (:func:`faultdiag.data.readers.open_recording`; a file that states no rate is read at
   the model's training rate, with a note) and picks the model's channel(s);
2. resamples it to the model's rate when they differ (polyphase, block by block);
3. cuts windows the way the model was trained (``window_len`` from the checkpoint; hop =
   ``window_len``, non-overlapping, unless ``hop`` is given) and turns them into model input
   with the checkpoint's :class:`~faultdiag.data.inputs.InputSpec`, as training did;
4. runs the model in large batches and keeps running sums: votes per class and mean class
   probabilities. The verdict is the majority vote; ``confidence`` is the mean probability
   of the predicted class over all windows;
5. flags what makes a verdict untrustworthy: too few windows, clipping (many samples at the
   extreme value), flat windows, RMS far outside the training range (checkpoint ``signal_stats``);
6. checks the verdict against physics: the envelope spectrum of the first ``envelope_s``
   seconds (default 10 s) of the first model channel, at the file's own rate, scored at BPFO,
   BPFI and BSF and their harmonics (:func:`faultdiag.envelope.fault_frequency_report`) for the
   shaft speed and the bearing that :mod:`faultdiag.diagnose.physics` picks; when it cannot run,
   ``envelope_note`` says why. Only the excerpt is held in memory;
7. adds the true label where it is known (:mod:`faultdiag.diagnose.truth`): :func:`summarize`
   gives accuracy and a confusion matrix over those files.
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from faultdiag.bearings import Bearing, parse_bearing
from faultdiag.diagnose.model import Predictor, load_predictor, select_rows
from faultdiag.diagnose.physics import PhysicsInputs, default_bearing, resolve_inputs, run_check
from faultdiag.diagnose.rows import (FLAT_SHARE, MIN_WINDOWS, RMS_FAR_SHARE, agreement, envelope_columns,  # noqa: F401
                                     fault_kind, verdict_columns)
from faultdiag.data.resample import resample_plan
from faultdiag.diagnose.parallel import check_jobs, ordered_map, split_jobs, torch_threads
from faultdiag.diagnose.stream import FLAT_REL, Excerpt, SignalChecks, WindowTally, iter_windows, resample_blocks
from faultdiag.diagnose.truth import read_info, summarize, truth_rule
from faultdiag.errors import ConfigError, DataError, FaultdiagError

__all__ = ["diagnose", "diagnose_file", "fault_kind", "agreement", "load_predictor", "summarize"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256
"""Fastest measured on a 2-core CPU for the paper and wide presets (larger batches fall out of cache)."""
ENVELOPE_S = 10.0
MAX_BLOCK_LEN = 1 << 18
"""Most source samples read (and resampled) at once: bounds memory at high sampling rates."""


def _check_int(name: str, value: Any, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"The '{name}' parameter must be a positive int; got {value!r}.")
    return int(value)


def _check_number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"The '{name}' parameter must be a positive number; got {value!r}.")
    return float(value)


def _check_range(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ConfigError(f"The 'rpm_range' parameter must be (low, high) rpm with 0 < low < high; got {value!r}.")
    return lo, hi


def _open(path: Path, ckpt: Any, fs_hz: float | None, variable: str | None, skip_rows: int | None) -> tuple[Any, str]:
    """The file opened for streaming; one that states no rate (nor --fs-hz) is read at the model's rate, noted."""
    from faultdiag.data.readers import open_recording
    from faultdiag.data.readers.source import MissingRateError

    try:
        return open_recording(path, fs_hz=fs_hz, variable=variable, skip_rows=skip_rows), ""
    except MissingRateError:
        src = open_recording(path, fs_hz=ckpt.inputs.fs_hz, variable=variable, skip_rows=skip_rows)
        return src, f"no rate in the file: read at the model's {ckpt.inputs.fs_hz:g} Hz (--fs-hz to set it)"


def _stream(path: Path, pred: Predictor, *, channel, fs_hz, hop, batch_size, envelope_s, physics, variable=None,
            skip_rows=None, threads=1):
    """Read, resample, window and classify one file (the model on ``threads`` threads); returns (source,
    rows, tally, checks, excerpt, (up, down), rate note, physics inputs, (envelope report or None, note,
    rpm, rpm source)). ``physics`` holds the caller's ``rpm``/``rpm_source``/``bearing``/
    ``bearing_source``/``fallback``/``rpm_range`` (see :func:`faultdiag.diagnose.physics.resolve_inputs`)."""
    ckpt = pred.ckpt
    src, rate_note = _open(path, ckpt, fs_hz, variable, skip_rows)
    rows = select_rows(src, ckpt, channel)
    inputs = resolve_inputs(src.meta, **physics)
    same = math.isclose(src.fs_hz, ckpt.inputs.fs_hz, rel_tol=1e-9)
    plan = None if same else resample_plan(src.fs_hz, ckpt.inputs.fs_hz)
    up, down = (1, 1) if plan is None else (plan.up, plan.down)
    stats = ckpt.signal_stats or {}
    rms_range = (stats["rms_min"], stats["rms_max"]) if "rms_min" in stats and "rms_max" in stats else None
    flat_rms = FLAT_REL * float(stats.get("rms_median") or 1e-6)
    tally = WindowTally(len(ckpt.class_names), rms_range, flat_rms)
    checks, excerpt = SignalChecks(), Excerpt(int(round(envelope_s * src.fs_hz)))
    block_len = min(MAX_BLOCK_LEN, max(1 << 16, batch_size * hop * down // up))

    def model_rate_chunks():
        for raw, out in resample_blocks(src, rows, plan, block_len):
            checks.update(raw)
            excerpt.add(raw[0])
            yield out

    envelope = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        per_thread = -(-batch_size // threads)  # each model thread takes a share of a batch: memory as for one
        batches = iter_windows(model_rate_chunks(), ckpt.inputs.window_len, hop, per_thread)
        for X, (probs, scores) in ordered_map(lambda X: (X, pred.predict(X)), batches, threads):
            if envelope is None and excerpt.full():  # the envelope check runs beside the model
                envelope = pool.submit(run_check, excerpt.value(), src.fs_hz, inputs)
            tally.add_raw(X)
            tally.add_probs(probs, scores)
        envelope = envelope.result() if envelope is not None else run_check(excerpt.value(), src.fs_hz, inputs)
    return src, rows, tally, checks, excerpt, (up, down), rate_note, inputs, envelope


def diagnose_file(path: str | os.PathLike, predictor: Predictor, *, channel: Sequence[str] | None = None,
                  fs_hz: float | None = None, rpm: float | None = None, hop: int | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, bearing: str | Bearing | None = None,
                  envelope_s: float = ENVELOPE_S, plot_dir: str | os.PathLike | None = None,
                  rpm_range: tuple[float, float] | None = None, true_label: str | None = None,
                  variable: str | None = None, skip_rows: int | None = None,
                  rpm_source: str = "--rpm", threads: int = 1) -> dict[str, Any]:
    """Diagnose one file (see the module docstring); returns its result row. Errors propagate.

    ``threads > 1`` runs the model on that many threads of one PyTorch thread each
    (:mod:`faultdiag.diagnose.parallel`); the row is the same.
    """
    ckpt = predictor.ckpt
    path = Path(path)
    hop = hop or ckpt.inputs.window_len
    physics = dict(rpm=rpm, rpm_source=rpm_source if rpm is not None else "",
                   bearing=parse_bearing(bearing) if bearing is not None else None,
                   bearing_source="given" if bearing is not None else "", fallback=default_bearing(ckpt.config),
                   rpm_range=rpm_range)
    with torch_threads(1 if threads > 1 and torch.get_num_threads() > 1 else None):
        src, rows, tally, checks, excerpt, (up, down), rate_note, inputs, (report, note, rpm_used, rpm_from) = _stream(
            path, predictor, channel=channel, fs_hz=fs_hz, hop=hop, batch_size=batch_size, envelope_s=envelope_s,
            physics=physics, variable=variable, skip_rows=skip_rows, threads=threads)
    n = tally.n_windows
    duration_s = checks.n_samples / src.fs_hz
    if n == 0:
        raise DataError(f"{path} is too short: {duration_s:.3g} s gives no window of {ckpt.inputs.window_len} samples "
                        f"({ckpt.inputs.window_len / ckpt.inputs.fs_hz:.3g} s at the model's {ckpt.inputs.fs_hz:g} Hz).")
    probs = tally.prob_sum / n
    x = excerpt.value()
    row = {"true": true_label if true_label is not None else (src.label if src.label in ckpt.class_names else None)}
    row.update(verdict_columns(path, src, rows, ckpt, tally, checks, probs, resampled=up != down,
                               threshold=getattr(predictor.density, "threshold_", None)))
    row.update(envelope_columns(row["predicted"], report, "; ".join(filter(None, [rate_note, note])), rpm_used,
                                rpm_from, inputs.bearing.name if inputs.bearing is not None else None, x.size / src.fs_hz))
    if plot_dir is not None:
        from faultdiag.diagnose.plot import plot_diagnosis

        out = Path(plot_dir) / f"{path.name}.png"
        row["plot"] = str(plot_diagnosis(out, row, x, src.fs_hz, report, ckpt.class_names, inputs.bearing))
    return row


def _expand(paths: Sequence[str | os.PathLike]) -> list[tuple[str, Path | None, Path | None, str | None]]:
    """``(name, file or None, its root folder or None, error or None)`` per input: folders expanded,
    missing paths as errors."""
    from faultdiag.data.readers import find_recordings

    out = []
    for p in paths:
        try:
            root = Path(p) if Path(p).is_dir() else None
            out.extend((str(f), f, root, None) for f in find_recordings([p]))
        except DataError as exc:
            out.append((str(p), None, None, str(exc)))
    return out


def diagnose(model_path: str | os.PathLike, paths: str | os.PathLike | Sequence[str | os.PathLike], *,
             channel: str | Sequence[str] | None = None, fs_hz: float | None = None, rpm: float | None = None,
             hop: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE, plot_dir: str | os.PathLike | None = None,
             bearing: str | Bearing | None = None, envelope_s: float = ENVELOPE_S, jit: bool | None = None,
             progress: bool = False, rpm_range: tuple[float, float] | None = None,
             info: str | os.PathLike | None = None, variable: str | None = None,
             skip_rows: int | None = None, jobs: int = 1, precision: str = "float32") -> pd.DataFrame:
    """Diagnose recordings with a trained model: one row per recording (see the module docstring).

    Args:
        model_path: a checkpoint written by training (``checkpoint.pt``).
        paths: files and/or folders (searched recursively); CSV, MAT, HDF5, ``.npy``, ``.npz``.
        channel: channel name(s) to feed the model (default: the checkpoint's channels, or the
            file's when it has exactly as many).
        fs_hz: sampling rate for files that do not state one (default: the model's training rate,
            noted in the row).
        rpm: shaft speed for the envelope check of every file (default: ``info``'s, the file's,
            or an estimate within ``rpm_range``).
        hop: samples between window starts at the model's rate (default: ``window_len``).
        batch_size: windows per forward pass.
        plot_dir: write ``<file name>.png`` per recording there.
        bearing: a bearing name or spec (:func:`faultdiag.bearings.parse_bearing`); default: the
            file's fault frequencies, else the checkpoint's ``data.bearing`` or training source's.
        envelope_s: seconds at the start of each file used for the envelope check.
        jit: also trace the (folded) model with TorchScript (see :func:`load_predictor`);
            ``None`` (default) means no: it did not pay for its ~2 s even on 60 min recordings.
        progress: show a progress bar over files.
        rpm_range: ``(low, high)`` rpm to estimate a file's speed in when none is known.
        info: a CSV with columns ``file`` and ``rpm`` and/or ``label`` (paths relative to the CSV).
        variable, skip_rows: reading options (:func:`faultdiag.data.readers.open_recording`).
        jobs: threads to use (0: one per CPU core): files side by side, and a file's batches of
            windows on several threads, each running PyTorch on one thread
            (:mod:`faultdiag.diagnose.parallel`). The results are those of ``jobs=1``.
        precision: ``"float32"`` (default) or ``"bfloat16"``, the network's arithmetic
            (:func:`~faultdiag.diagnose.model.load_predictor`; bfloat16 needs a CPU that runs it natively).

    Returns:
        DataFrame with columns ``true`` (known label or None), ``file``, ``predicted``,
        ``confidence``, ``n_windows``, ``share_<class>`` (share of windows voting for it),
        ``prob_<class>`` (mean probability), ``warnings``, the envelope check (``rpm``,
        ``rpm_source``, ``bearing``, ``envelope_fault``, ``bpfo_score``, ``bpfi_score``,
        ``bsf_score``, ``agreement``, ``envelope_note``) and ``error`` (``None`` unless the file
        failed; failed files keep only ``file`` and ``error``). ``df.attrs["class_names"]``: the
        model's classes; :func:`summarize` scores the rows with a known label.

    Raises:
        ConfigError: a bad parameter. DataError: an unreadable checkpoint or ``info`` file. Problems
        with a recording never raise: they become its ``error``.
    """
    from tqdm.auto import tqdm

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    channel = [channel] if isinstance(channel, str) else (list(channel) if channel else None)
    opts = dict(channel=channel, fs_hz=_check_number("fs_hz", fs_hz), hop=_check_int("hop", hop, allow_none=True),
                batch_size=_check_int("batch_size", batch_size), envelope_s=_check_number("envelope_s", envelope_s),
                plot_dir=plot_dir, rpm_range=_check_range(rpm_range), variable=variable, skip_rows=skip_rows)
    rpm = _check_number("rpm", rpm)
    bearing = parse_bearing(bearing) if bearing is not None else None
    table = read_info(info)
    jobs = check_jobs(jobs)
    files = _expand(list(paths))
    predictor = load_predictor(model_path, jit=bool(jit), precision=precision)
    known = truth_rule(predictor.ckpt.config, predictor.ckpt.class_names)
    at_once, opts["threads"] = split_jobs(jobs, sum(path is not None for _, path, _, _ in files))

    def one(item: tuple[str, Path | None, Path | None, str | None]) -> dict[str, Any]:
        name, path, root, error = item
        if error is None:
            try:
                return diagnose_file(path, predictor, bearing=bearing, **opts, **_per_file(path, root, rpm, table, known))
            except FaultdiagError as exc:
                error = str(exc)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:  # unexpected reader failures
                log.debug("diagnosing %s failed", path, exc_info=True)
                error = f"{type(exc).__name__}: {exc}"
        log.info("%s: %s", name, error)  # the command line prints failures, once each
        return {"file": name, "error": error}

    with torch_threads(1 if jobs > 1 else None):
        rows = list(tqdm(ordered_map(one, files, at_once), total=len(files), desc="diagnose", unit="file",
                         disable=not progress))
    return _table(rows, predictor.ckpt.class_names)


def _per_file(path: Path, root: Path | None, rpm: float | None, table: Any, known: Any) -> dict[str, Any]:
    """Speed and true label of one file: ``--rpm``, the info CSV, the training data's rule (file name)."""
    info_rpm, info_label = table.lookup(path) if table is not None else (None, None)
    rule_label, rule_rpm = known(path, root)
    if rpm is not None:
        speed, source = rpm, "--rpm"
    elif info_rpm is not None:
        speed, source = info_rpm, "--info"
    else:
        speed, source = rule_rpm, "file name"
    return {"rpm": speed, "rpm_source": source, "true_label": info_label or rule_label}


def _table(rows: list[dict[str, Any]], class_names: Sequence[str]) -> pd.DataFrame:
    """Rows to a DataFrame with a fixed column order, failures included."""
    good = next((r for r in rows if r.get("error") is None), None)
    columns = list(good) if good else ["file", "predicted", "confidence", "n_windows",
                                         *(f"share_{c}" for c in class_names), "warnings", "error"]
    df = pd.DataFrame(rows, columns=columns)
    df.attrs["class_names"] = list(class_names)
    return df
