"""One PNG per diagnosed recording: waveform, envelope spectrum with fault-frequency markers, class probabilities."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from faultdiag.bearing import BearingGeometry, BearingOrders
from faultdiag.provenance import atomic_write

WAVEFORM_S = 1.0
"""Seconds of waveform shown."""

_MARKERS = (("bpfo", "BPFO", "tab:red"), ("bpfi", "BPFI", "tab:green"), ("bsf", "2xBSF", "tab:purple"))


def _envelope_panel(ax, x: np.ndarray, fs_hz: float, report: dict | None, harmonics: int = 3) -> None:
    from faultdiag.envelope import envelope_spectrum

    if report is None:
        ax.text(0.5, 0.5, "no envelope check (see envelope_note)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    freqs = report["frequencies_hz"]
    resolution_hz = min(0.5, report["shaft_hz"] / 20)
    f_hz, amp = envelope_spectrum(x, fs_hz, tuple(report["band_hz"]), resolution_hz=resolution_hz)
    lines = {"bpfo": freqs["bpfo_hz"], "bpfi": freqs["bpfi_hz"], "bsf": 2 * freqs["bsf_hz"]}
    f_max = min(fs_hz / 2, harmonics * max(lines.values()) * 1.15)
    keep = f_hz <= f_max
    ax.plot(f_hz[keep], amp[keep], lw=0.7, color="0.2")
    for key, label, color in _MARKERS:
        for k in range(1, harmonics + 1):
            ax.axvline(k * lines[key], color=color, ls="--", lw=0.8, alpha=0.8, label=label if k == 1 else None)
    ax.axvline(report["shaft_hz"], color="0.6", ls=":", lw=0.8, label="shaft")
    band = report["band_hz"]
    ax.set_title(f"envelope spectrum, band {band[0]:.0f}-{band[1]:.0f} Hz; stands out: {report['dominant'] or 'none'}")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("envelope amplitude")
    ax.legend(fontsize=7, loc="upper right")


def plot_diagnosis(path: str | os.PathLike, row: dict[str, Any], x: np.ndarray, fs_hz: float, report: dict | None,
                   class_names: Sequence[str], geometry: BearingGeometry | BearingOrders | None) -> Path:
    """Write the figure of one diagnosis to ``path`` (PNG, atomically) and return the path.

    Args:
        row: the recording's result row (``predicted``, ``confidence``, ``prob_<class>``, ...).
        x: the excerpt ``(T,)`` the envelope check used, at ``fs_hz``.
        report: :func:`faultdiag.envelope.fault_frequency_report` of ``x``, or ``None``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 9), gridspec_kw={"height_ratios": [1, 1.4, 0.9]})
    try:
        n = min(x.size, int(WAVEFORM_S * fs_hz))
        axes[0].plot(np.arange(n) / fs_hz, x[:n], lw=0.5)
        axes[0].set_xlabel("time (s)")
        axes[0].set_ylabel("amplitude")
        axes[0].set_title(f"{Path(row['file']).name}: {row['predicted']} ({row['confidence']:.0%}), "
                          f"{row['n_windows']} windows; envelope: {row['agreement']}")
        _envelope_panel(axes[1], x, fs_hz, report)
        probs = [row[f"prob_{c}"] for c in class_names]
        axes[2].barh(list(class_names), probs, color=["tab:blue" if c == row["predicted"] else "0.6" for c in class_names])
        axes[2].set_xlim(0, 1)
        markers = f"{geometry.name} kinematics for markers" if geometry is not None else "no bearing given"
        axes[2].set_xlabel(f"mean class probability ({markers})")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path
