"""Verdicts on new recordings: a trained model and this week's files in, one checked row per file out.

For each recording :func:`diagnose` (streaming, memory bounded whatever the length, see
:mod:`faultdiag.diagnose.stream`):

1. opens it (:func:`faultdiag.data.readers.open_recording`) and picks the model's channel(s);
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
   shaft speed (``rpm`` argument, else the file's ``rpm`` metadata) and the bearing
   (CWRU drive end by default). Only the excerpt is held in memory.
"""

from __future__ import annotations

import logging
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from faultdiag.bearing import DRIVE_END_6205, FAN_END_6203
from faultdiag.checkpoint import Checkpoint
from faultdiag.data.resample import resample_plan
from faultdiag.diagnose.model import Predictor, load_predictor, select_rows
from faultdiag.diagnose.parallel import check_jobs, ordered_map, split_jobs, torch_threads
from faultdiag.diagnose.stream import (CLIP_SHARE, FLAT_REL, RMS_FAR_FACTOR, Excerpt, SignalChecks, WindowTally,
                                       iter_windows, resample_blocks)
from faultdiag.errors import ConfigError, DataError, FaultdiagError

__all__ = ["diagnose", "diagnose_file", "fault_kind", "load_predictor", "BEARINGS"]

log = logging.getLogger(__name__)

BEARINGS = {"de": DRIVE_END_6205, "fe": FAN_END_6203}
DEFAULT_BATCH_SIZE = 256
"""Fastest measured on a 2-core CPU for the paper and wide presets (larger batches fall out of cache)."""
ENVELOPE_S = 10.0
MIN_WINDOWS = 5
FLAT_SHARE = 0.01
RMS_FAR_SHARE = 0.25
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


def fault_kind(class_name: str) -> str | None:
    """``normal``, ``inner_race``, ``outer_race``, ``ball`` from a class name, else ``None``.

    ``IR007``/``inner_race`` → inner race, ``OR007@6``/``outer_race`` → outer race,
    ``B007``/``ball`` → ball, ``normal``/``healthy`` → normal.
    """
    s = str(class_name).strip().lower()
    if s.startswith(("normal", "healthy", "baseline")):
        return "normal"
    if s.startswith(("ir", "inner")):
        return "inner_race"
    if s.startswith(("or", "outer")):
        return "outer_race"
    if s.startswith("ball") or re.match(r"b\d", s):
        return "ball"
    return None


def agreement(predicted: str | None, envelope_fault: str | None, envelope_ran: bool) -> str:
    """``agrees``, ``disagrees``, ``no evidence`` (network says fault, envelope shows none) or ``n/a``."""
    kind = fault_kind(predicted) if predicted else None
    if not envelope_ran or kind is None:
        return "n/a"
    if envelope_fault is None:
        return "agrees" if kind == "normal" else "no evidence"
    return "agrees" if envelope_fault == kind else "disagrees"


def _stream(path: Path, pred: Predictor, *, channel, fs_hz, hop, batch_size, envelope_s, rpm, bearing, threads=1):
    """Read, resample, window and classify one file (the model on ``threads`` threads); returns (source, rows,
    tally, checks, excerpt, (up, down), (envelope report or None, note)). ``rpm=None`` takes the file's ``rpm``."""
    from faultdiag.data.readers import open_recording

    ckpt = pred.ckpt
    src = open_recording(path, fs_hz=fs_hz)
    rows = select_rows(src, ckpt, channel)
    rpm = rpm if rpm is not None else _meta_rpm(src.meta)
    same = math.isclose(src.fs_hz, ckpt.inputs.fs_hz, rel_tol=1e-9)
    plan = None if same else resample_plan(src.fs_hz, ckpt.inputs.fs_hz)
    up, down = (1, 1) if plan is None else (plan.up, plan.down)
    stats = ckpt.signal_stats or {}
    rms_range = (stats["rms_min"], stats["rms_max"]) if "rms_min" in stats and "rms_max" in stats else None
    flat_rms = FLAT_REL * float(stats.get("rms_median") or 1e-6)
    tally = WindowTally(len(ckpt.class_names), rms_range, flat_rms)
    checks, excerpt = SignalChecks(), Excerpt(int(round(envelope_s * src.fs_hz)))
    block_len = min(MAX_BLOCK_LEN, max(1 << 16, batch_size * hop * down // up))

    envelope: list = []  # the envelope check, started beside the model as soon as its excerpt is read

    def model_rate_chunks():
        for raw, out in resample_blocks(src, rows, plan, block_len):
            checks.update(raw)
            excerpt.add(raw[0])
            if not envelope and excerpt.full():
                envelope.append(pool.submit(_envelope, excerpt.value(), src.fs_hz, rpm, bearing))
            yield out
        if not envelope:  # a file shorter than the excerpt
            envelope.append(pool.submit(_envelope, excerpt.value(), src.fs_hz, rpm, bearing))

    with ThreadPoolExecutor(max_workers=1) as pool:
        per_thread = -(-batch_size // threads)  # each model thread takes a share of a batch: memory as for one
        batches = iter_windows(model_rate_chunks(), ckpt.inputs.window_len, hop, per_thread)
        for X, probs in ordered_map(lambda X: (X, pred.predict(X)), batches, threads):
            tally.add_raw(X)
            tally.add_probs(probs)
        envelope = envelope[0].result()
    return src, rows, tally, checks, excerpt, (up, down), envelope


def _meta_rpm(meta: dict[str, Any]) -> float | None:
    """The file's ``rpm`` metadata as a positive float, else ``None``."""
    try:
        value = float(np.asarray(meta.get("rpm")).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _envelope(excerpt: np.ndarray, fs_hz: float, rpm: float | None, bearing: str) -> tuple[dict | None, str]:
    """The fault-frequency report of the excerpt, or ``(None, reason)``."""
    from faultdiag.envelope import fault_frequency_report

    if rpm is None:
        return None, "no shaft speed (pass rpm / --rpm)"
    try:
        return fault_frequency_report(excerpt, fs_hz, rpm / 60.0, BEARINGS[bearing]), ""
    except FaultdiagError as exc:
        return None, f"envelope check failed: {exc}"


def _warnings(tally: WindowTally, checks: SignalChecks, ckpt: Checkpoint) -> list[str]:
    out = []
    n = tally.n_windows
    if n < MIN_WINDOWS:
        out.append(f"short: only {n} window(s) of {ckpt.inputs.window_len / ckpt.inputs.fs_hz:.3g} s")
    clipped = checks.clipped_share()
    if clipped >= CLIP_SHARE:
        out.append(f"clipped: {clipped:.2%} of samples at the extreme value")
    if tally.n_flat / n >= FLAT_SHARE:
        out.append(f"flat: {tally.n_flat / n:.0%} of windows have no variation")
    if tally.rms_range is not None and tally.n_rms_far / n >= RMS_FAR_SHARE:
        lo, hi = tally.rms_range
        out.append(f"outside training distribution: {tally.n_rms_far / n:.0%} of windows have RMS beyond "
                   f"{RMS_FAR_FACTOR:g}x the training range [{lo:.3g}, {hi:.3g}] (mean RMS {tally.rms_sum / n:.3g})")
    return out


def _row(path: Path, src: Any, rows: list[int], ckpt: Checkpoint, tally: WindowTally, checks: SignalChecks,
         probs: np.ndarray, resampled: bool) -> dict[str, Any]:
    """The network's part of a result row: verdict, vote shares, mean probabilities, signal checks."""
    n = tally.n_windows
    k = int(np.lexsort((-probs, -tally.votes))[0])  # most votes; ties to the higher mean probability
    return {
        "file": str(path), "format": src.format, "fs_hz": src.fs_hz, "resampled_to_hz": ckpt.inputs.fs_hz if resampled else None,
        "channels": ",".join(src.channels[i] for i in rows), "duration_s": checks.n_samples / src.fs_hz,
        "n_windows": n, "predicted": ckpt.class_names[k], "confidence": float(probs[k]),
        **{f"share_{c}": float(v) / n for c, v in zip(ckpt.class_names, tally.votes)},
        **{f"prob_{c}": float(p) for c, p in zip(ckpt.class_names, probs)},
        "warnings": "; ".join(_warnings(tally, checks, ckpt)),
        "rms_mean": tally.rms_sum / n, "clipped_share": checks.clipped_share(), "flat_share": tally.n_flat / n,
    }


def _envelope_columns(predicted: str, report: dict | None, note: str, rpm: float | None,
                      excerpt_s: float) -> dict[str, Any]:
    """The physics part of a result row."""
    fault = report["fault"] if report else None
    return {
        "rpm": rpm, "envelope_s": excerpt_s, "envelope_fault": fault,
        **{f"{f}_score": (report["scores"][f] if report else None) for f in ("bpfo", "bpfi", "bsf")},
        "agreement": agreement(predicted, fault, report is not None), "envelope_note": note,
        "plot": None, "error": None,
    }


def diagnose_file(path: str | os.PathLike, predictor: Predictor, *, channel: Sequence[str] | None = None,
                  fs_hz: float | None = None, rpm: float | None = None, hop: int | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, bearing: str = "de", envelope_s: float = ENVELOPE_S,
                  plot_dir: str | os.PathLike | None = None, threads: int = 1) -> dict[str, Any]:
    """Diagnose one file (see the module docstring); returns its result row. Errors propagate.

    ``threads > 1`` runs the model on that many threads of one PyTorch thread each
    (:mod:`faultdiag.diagnose.parallel`); the row is the same.
    """
    ckpt = predictor.ckpt
    path = Path(path)
    hop = hop or ckpt.inputs.window_len
    with torch_threads(1 if threads > 1 and torch.get_num_threads() > 1 else None):
        src, rows, tally, checks, excerpt, (up, down), (report, note) = _stream(
            path, predictor, channel=channel, fs_hz=fs_hz, hop=hop, batch_size=batch_size, envelope_s=envelope_s,
            rpm=rpm, bearing=bearing, threads=threads)
    n = tally.n_windows
    duration_s = checks.n_samples / src.fs_hz
    if n == 0:
        raise DataError(f"{path} is too short: {duration_s:.3g} s gives no window of {ckpt.inputs.window_len} samples "
                        f"({ckpt.inputs.window_len / ckpt.inputs.fs_hz:.3g} s at the model's {ckpt.inputs.fs_hz:g} Hz).")
    probs = tally.prob_sum / n
    rpm_used = rpm if rpm is not None else _meta_rpm(src.meta)
    x = excerpt.value()
    row = _row(path, src, rows, ckpt, tally, checks, probs, resampled=up != down)
    row.update(_envelope_columns(row["predicted"], report, note, rpm_used, x.size / src.fs_hz))
    if plot_dir is not None:
        from faultdiag.diagnose.plot import plot_diagnosis

        out = Path(plot_dir) / f"{path.name}.png"
        row["plot"] = str(plot_diagnosis(out, row, x, src.fs_hz, report, ckpt.class_names, BEARINGS[bearing]))
    return row


def _expand(paths: Sequence[str | os.PathLike]) -> list[tuple[str, Path | None, str | None]]:
    """``(name, file or None, error or None)`` for each input: folders expanded, missing paths as errors."""
    from faultdiag.data.readers import find_recordings

    out = []
    for p in paths:
        try:
            out.extend((str(f), f, None) for f in find_recordings([p]))
        except DataError as exc:
            out.append((str(p), None, str(exc)))
    return out


def diagnose(model_path: str | os.PathLike, paths: str | os.PathLike | Sequence[str | os.PathLike], *,
             channel: str | Sequence[str] | None = None, fs_hz: float | None = None, rpm: float | None = None,
             hop: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE, plot_dir: str | os.PathLike | None = None,
             bearing: str = "de", envelope_s: float = ENVELOPE_S, jit: bool | None = None,
             progress: bool = False, jobs: int = 1) -> pd.DataFrame:
    """Diagnose recordings with a trained model: one row per recording (see the module docstring).

    Args:
        model_path: a checkpoint written by training (``checkpoint.pt``).
        paths: files and/or folders (searched recursively); CSV, MAT, HDF5, ``.npy``, ``.npz``.
        channel: channel name(s) to feed the model (default: the checkpoint's channels, or the
            file's when it has exactly as many).
        fs_hz: sampling rate for files that do not state one.
        rpm: shaft speed for the envelope check (default: the file's ``rpm`` metadata).
        hop: samples between window starts at the model's rate (default: ``window_len``).
        batch_size: windows per forward pass.
        plot_dir: write ``<file name>.png`` per recording there.
        bearing: ``de`` (CWRU drive end, SKF 6205) or ``fe`` (fan end, SKF 6203).
        envelope_s: seconds at the start of each file used for the envelope check.
        jit: also trace the (folded) model with TorchScript (see :func:`load_predictor`);
            ``None`` (default) means no: it did not pay for its ~2 s even on 60 min recordings.
        progress: show a progress bar over files.
        jobs: threads to use (0: one per CPU core): files side by side, and a file's batches of
            windows on several threads, each running PyTorch on one thread
            (:mod:`faultdiag.diagnose.parallel`). The results are those of ``jobs=1``.

    Returns:
        DataFrame with columns ``file``, ``predicted``, ``confidence``, ``n_windows``,
        ``share_<class>`` (share of windows voting for it), ``prob_<class>`` (mean probability),
        ``warnings``, the envelope check (``rpm``, ``envelope_fault``, ``bpfo_score``,
        ``bpfi_score``, ``bsf_score``, ``agreement``) and ``error`` (``None`` unless the file
        failed; failed files keep only ``file`` and ``error``).

    Raises:
        ConfigError: a bad parameter. DataError: an unreadable checkpoint. Problems with a
        recording never raise: they become its ``error``.
    """
    from tqdm.auto import tqdm

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    channel = [channel] if isinstance(channel, str) else (list(channel) if channel else None)
    opts = dict(channel=channel, fs_hz=_check_number("fs_hz", fs_hz), rpm=_check_number("rpm", rpm),
                hop=_check_int("hop", hop, allow_none=True), batch_size=_check_int("batch_size", batch_size),
                envelope_s=_check_number("envelope_s", envelope_s), plot_dir=plot_dir)
    if bearing not in BEARINGS:
        raise ConfigError(f"The 'bearing' parameter must be one of {list(BEARINGS)}; got {bearing!r}.")
    jobs = check_jobs(jobs)
    files = _expand(list(paths))
    predictor = load_predictor(model_path, jit=bool(jit))
    at_once, opts["threads"] = split_jobs(jobs, sum(path is not None for _, path, _ in files))

    def one(item: tuple[str, Path | None, str | None]) -> dict[str, Any]:
        name, path, error = item
        if error is None:
            try:
                return diagnose_file(path, predictor, bearing=bearing, **opts)
            except FaultdiagError as exc:
                error = str(exc)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:  # unexpected reader failures
                log.debug("diagnosing %s failed", path, exc_info=True)
                error = f"{type(exc).__name__}: {exc}"
        log.warning("%s: %s", name, error)
        return {"file": name, "error": error}

    with torch_threads(1 if jobs > 1 else None):
        rows = list(tqdm(ordered_map(one, files, at_once), total=len(files), desc="diagnose", unit="file",
                         disable=not progress))
    return _table(rows, predictor.ckpt.class_names)


def _table(rows: list[dict[str, Any]], class_names: Sequence[str]) -> pd.DataFrame:
    """Rows to a DataFrame with a fixed column order, failures included."""
    good = next((r for r in rows if r.get("error") is None), None)
    columns = list(good) if good else ["file", "predicted", "confidence", "n_windows",
                                         *(f"share_{c}" for c in class_names), "warnings", "error"]
    return pd.DataFrame(rows, columns=columns)
