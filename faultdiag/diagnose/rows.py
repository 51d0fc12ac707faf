"""One result row of :mod:`faultdiag.diagnose`: the network's verdict, its warnings and the physics check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from faultdiag.checkpoint import Checkpoint
from faultdiag.diagnose.stream import CLIP_SHARE, RMS_FAR_FACTOR, SignalChecks, WindowTally

__all__ = ["fault_kind", "agreement", "familiarity", "warnings_for", "verdict_columns", "envelope_columns"]

MIN_WINDOWS = 5
FLAT_SHARE = 0.01
RMS_FAR_SHARE = 0.25


def fault_kind(class_name: str) -> str | None:
    """``normal``, ``inner_race``, ``outer_race``, ``ball`` from a class name, else ``None``.

    ``IR007``/``inner_race`` → inner race, ``OR007@6``/``outer_race`` → outer race,
    ``B007``/``ball`` → ball, ``normal``/``healthy`` → normal.
    """
    import re

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


def familiarity(tally: WindowTally, threshold: float | None) -> dict[str, Any] | None:
    """How unlike the training data the recording's windows are in the network's feature space
    (:func:`faultdiag.ood.recording_verdict`), or ``None`` without a checkpoint density."""
    from faultdiag.ood import recording_verdict

    if threshold is None or not tally.scores:
        return None
    return recording_verdict(np.concatenate(tally.scores), threshold)


def warnings_for(tally: WindowTally, checks: SignalChecks, ckpt: Checkpoint,
                 familiar: dict[str, Any] | None = None) -> list[str]:
    """What makes a verdict untrustworthy: unlike the training data (features), too few windows,
    clipping, flat windows, RMS outside the training range."""
    out = [familiar["warning"]] if familiar is not None and familiar["unlike_training"] else []
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


def verdict_columns(path: Path, src: Any, rows: list[int], ckpt: Checkpoint, tally: WindowTally,
                    checks: SignalChecks, probs: np.ndarray, resampled: bool,
                    threshold: float | None = None) -> dict[str, Any]:
    """The network's part of a result row: verdict, vote shares, mean probabilities, signal checks, and
    ``unlike_training_share`` (windows over the feature-space threshold) with ``reliable`` (False when
    the recording is unlike anything the model was trained on; None without a density)."""
    n = tally.n_windows
    k = int(np.lexsort((-probs, -tally.votes))[0])  # most votes; ties to the higher mean probability
    familiar = familiarity(tally, threshold)
    return {
        "file": str(path), "format": src.format, "fs_hz": src.fs_hz, "resampled_to_hz": ckpt.inputs.fs_hz if resampled else None,
        "channels": ",".join(src.channels[i] for i in rows), "duration_s": checks.n_samples / src.fs_hz,
        "n_windows": n, "predicted": ckpt.class_names[k], "confidence": float(probs[k]),
        **{f"share_{c}": float(v) / n for c, v in zip(ckpt.class_names, tally.votes)},
        **{f"prob_{c}": float(p) for c, p in zip(ckpt.class_names, probs)},
        "reliable": None if familiar is None else not familiar["unlike_training"],
        "unlike_training_share": None if familiar is None else familiar["share_over"],
        "warnings": "; ".join(warnings_for(tally, checks, ckpt, familiar)),
        "rms_mean": tally.rms_sum / n, "clipped_share": checks.clipped_share(), "flat_share": tally.n_flat / n,
    }


def envelope_columns(predicted: str, report: dict | None, note: str, rpm: float | None, rpm_source: str,
                     bearing: str | None, excerpt_s: float) -> dict[str, Any]:
    """The physics part of a result row."""
    fault = report["fault"] if report else None
    return {
        "rpm": rpm, "rpm_source": rpm_source or None, "bearing": bearing, "envelope_s": excerpt_s,
        "envelope_fault": fault, **{f"{f}_score": (report["scores"][f] if report else None) for f in ("bpfo", "bpfi", "bsf")},
        "agreement": agreement(predicted, fault, report is not None), "envelope_note": note or None,
        "plot": None, "error": None,
    }
