"""Tables and plots of results: mean ± std over seeds, accuracy vs SNR, confusion matrices.

The input of everything here is the *tidy* results table of a sweep (one row per model ×
protocol × noise kind × SNR × AdaBN × seed; columns ``model, protocol, kind, snr_db, adabn,
seed, accuracy, balanced_accuracy, macro_f1``, and for the ``cross-domain`` protocol ``task``
(``"1>2"``: trained on domains 1, tested on 2) and ``adapt`` (the adaptation method)). Clean
(noise-free) rows have ``kind="clean"`` and ``snr_db`` NaN. Metrics are fractions in [0, 1];
tables show them in percent.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from faultdiag.errors import ConfigError
from faultdiag.provenance import atomic_write

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
KEYS = ("model", "protocol", "adapt", "task", "kind", "snr_db", "adabn")
CLEAN = "clean"


def _check_columns(df: pd.DataFrame, needed: Sequence[str], name: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ConfigError(f"The '{name}' table must have columns {list(needed)}; missing {missing}.")


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof=1, NaN for one seed) over seeds of every metric.

    Args:
        df: tidy results (see module docstring); ``seed`` may be absent (one seed).
    Returns:
        One row per model × protocol × kind × snr_db × adabn with ``n_seeds`` and
        ``<metric>_mean`` / ``<metric>_std`` for each metric present.
    """
    _check_columns(df, ("model", "kind", "snr_db", "accuracy"), "results")
    keys = [k for k in KEYS if k in df.columns]
    metrics = [m for m in METRICS if m in df.columns]
    grouped = df.groupby(keys, dropna=False, sort=True)
    out = grouped[metrics].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out.insert(0, "n_seeds", grouped.size())
    return out.reset_index()


def _snr_label(kind: str, snr_db: float) -> str:
    if kind == CLEAN or snr_db is None or (isinstance(snr_db, float) and math.isnan(snr_db)):
        return CLEAN
    return f"{snr_db:g} dB"


def _cell(mean: float, std: float, n: int) -> str:
    if mean is None or math.isnan(mean):
        return "—"
    if n > 1 and not math.isnan(std):
        return f"{100 * mean:.1f} ± {100 * std:.1f}"
    return f"{100 * mean:.1f}"


def _labelled(summary: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``summary`` with column ``row``: the model, its protocol where several, `` +CORAL`` etc.
    for an adaptation method, `` +AdaBN``."""
    rows = summary.copy()
    adabn = rows["adabn"].astype(bool) if "adabn" in rows.columns else pd.Series(False, index=rows.index)
    protocol = rows["protocol"].astype(str) if "protocol" in rows.columns else None
    label = rows["model"].astype(str)
    if protocol is not None and protocol.nunique() > 1:
        label = label + " (" + protocol + ")"
    if "adapt" in rows.columns:
        method = rows["adapt"].fillna("none").astype(str)
        label = label.where(method == "none", label + " +" + method.str.upper())
    rows["row"] = label.where(~adabn, label + " +AdaBN")
    return rows


def is_cross_domain(df: pd.DataFrame) -> bool:
    """Whether tidy results or a summary come from the ``cross-domain`` protocol (rows with a task)."""
    return "task" in df.columns and df["task"].fillna("").astype(str).str.len().gt(0).any()


def pivot_summary(summary: pd.DataFrame, metric: str = "accuracy") -> dict[str, pd.DataFrame]:
    """Wide tables of ``metric`` (percent, "mean ± std"): one per noise kind.

    Rows are models (with " +AdaBN" appended where AdaBN was on), columns are the SNRs in
    increasing order followed by "clean" (the clean rows are repeated in every kind's table).
    """
    if f"{metric}_mean" not in summary.columns:
        raise ConfigError(f"The 'metric' parameter must be one of {list(METRICS)}; got {metric!r}.")
    rows = _labelled(summary)
    if is_cross_domain(rows):
        return {"cross-domain": _task_table(rows, metric)}
    rows["col"] = [_snr_label(k, s) for k, s in zip(rows["kind"], rows["snr_db"])]
    rows["text"] = [
        _cell(m, s, int(n))
        for m, s, n in zip(rows[f"{metric}_mean"], rows[f"{metric}_std"], rows["n_seeds"])
    ]
    kinds = [k for k in dict.fromkeys(rows["kind"]) if k != CLEAN] or [CLEAN]
    clean = rows[rows["kind"] == CLEAN]
    tables = {}
    for kind in kinds:
        part = pd.concat([rows[rows["kind"] == kind], clean]) if kind != CLEAN else clean
        snrs = sorted(float(s) for s in part.loc[part["kind"] != CLEAN, "snr_db"].unique())
        columns = [_snr_label(kind, s) for s in snrs] + ([CLEAN] if len(clean) else [])
        wide = part.pivot_table(index="row", columns="col", values="text", aggfunc="first", sort=False)
        tables[kind] = wide.reindex(columns=columns).fillna("—")
        tables[kind].index.name = "model"
        tables[kind].columns.name = None
    return tables


def _task_table(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Models × tasks (``"1>2"``), then the mean over tasks (of the per-task means; ± their std)."""
    rows = rows.copy()
    rows["text"] = [_cell(m, s, int(n)) for m, s, n in
                    zip(rows[f"{metric}_mean"], rows[f"{metric}_std"], rows["n_seeds"])]
    tasks = list(dict.fromkeys(rows["task"].astype(str)))
    wide = rows.pivot_table(index="row", columns="task", values="text", aggfunc="first", sort=False)
    wide = wide.reindex(columns=tasks).fillna("—")
    means = rows.groupby("row", sort=False)[f"{metric}_mean"].agg(["mean", "std", "size"])
    wide["mean"] = [_cell(m, s, int(n)) for m, s, n in zip(means["mean"], means["std"], means["size"])]
    wide.index.name, wide.columns.name = "model", None
    return wide


def _render(table: pd.DataFrame, markdown: bool) -> str:
    header = [table.index.name or ""] + [str(c) for c in table.columns]
    body = [[str(i)] + [str(v) for v in row] for i, row in zip(table.index, table.to_numpy())]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body])


def to_markdown(summary: pd.DataFrame, metric: str = "accuracy") -> str:
    """The summary as Markdown: one pipe table per noise kind, ``metric`` in percent."""
    parts = []
    for kind, table in pivot_summary(summary, metric).items():
        what = "tasks (train > test domains), clean test windows" if kind == "cross-domain" else f"noise: {kind}"
        parts.append(f"### {metric.replace('_', ' ')} (%), {what}\n\n{_render(table, markdown=True)}\n")
    return "\n".join(parts)


def to_text(summary: pd.DataFrame, metric: str = "accuracy") -> str:
    """The summary as plain aligned text (what the CLI prints)."""
    parts = []
    for kind, table in pivot_summary(summary, metric).items():
        what = "tasks (train > test domains), clean test windows" if kind == "cross-domain" else f"noise: {kind}"
        parts.append(f"{metric.replace('_', ' ')} (%), {what}\n{_render(table, markdown=False)}")
    return "\n\n".join(parts)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=150, bbox_inches="tight")


def plot_accuracy_vs_snr(
    df: pd.DataFrame,
    path: str | os.PathLike,
    anchors: Mapping[str, Mapping[float, float]] | None = None,
    metric: str = "accuracy",
) -> None:
    """Accuracy vs SNR: one panel per noise kind, one line per model, error bars = std over seeds.

    AdaBN rows are dashed. Clean accuracy is drawn at an extra "clean" tick right of the SNRs.

    Args:
        df: tidy results (or a ``summary_table``; it is summarised here when it has ``seed``).
        path: output PNG.
        anchors: optional reference curves, label → {snr_db: accuracy fraction}, drawn grey
            (e.g. published WDCNN numbers) in every panel.
    """
    summary = summary_table(df) if "n_seeds" not in df.columns else df
    plt = _pyplot()
    kinds = [k for k in dict.fromkeys(summary["kind"]) if k != CLEAN] or [CLEAN]
    clean = summary[summary["kind"] == CLEAN]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4.0), squeeze=False, sharey=True)
    groups = ["model"] + [k for k in ("protocol", "adabn") if k in summary.columns]
    colors = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(summary["model"]))}
    for ax, kind in zip(axes[0], kinds):
        part = summary[summary["kind"] == kind]
        snrs = sorted(float(s) for s in part["snr_db"].dropna().unique())
        step = (snrs[-1] - snrs[0]) / max(len(snrs) - 1, 1) if snrs else 1.0
        x_clean = (snrs[-1] + 1.5 * step) if snrs else 0.0
        for key, rows in part.groupby(groups, sort=False):
            key = dict(zip(groups, key if isinstance(key, tuple) else (key,)))
            rows = rows.sort_values("snr_db")
            adabn = bool(key.get("adabn", False))
            label = str(key["model"]) + (" +AdaBN" if adabn else "")
            if "protocol" in key and summary["protocol"].nunique() > 1:
                label += f" ({key['protocol']})"
            style = dict(color=colors[key["model"]], linestyle="--" if adabn else "-", marker="o", capsize=3)
            x = rows["snr_db"].to_numpy(float)
            y = 100 * rows[f"{metric}_mean"].to_numpy(float)
            err = 100 * np.nan_to_num(rows[f"{metric}_std"].to_numpy(float))
            ax.errorbar(x, y, yerr=err, label=label, **style)
            sel = clean
            for k in ("model", "protocol", "adabn"):
                if k in key:
                    sel = sel[sel[k] == key[k]]
            if len(sel) and snrs:
                ax.errorbar([x_clean], 100 * sel[f"{metric}_mean"].to_numpy(float),
                            yerr=100 * np.nan_to_num(sel[f"{metric}_std"].to_numpy(float)),
                            **{**style, "marker": "s", "linestyle": "none"})
        for name, curve in (anchors or {}).items():
            xs = sorted(float(s) for s in curve)
            ax.plot(xs, [100 * float(curve[s]) for s in sorted(curve)], color="0.55",
                    linestyle=":", marker="x", label=name)
        if snrs:
            ticks = snrs + ([x_clean] if len(clean) else [])
            ax.set_xticks(ticks, [f"{s:g}" for s in snrs] + (["clean"] if len(clean) else []))
        ax.set_title(f"noise: {kind}")
        ax.set_xlabel("SNR (dB)")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"{metric.replace('_', ' ')} (%)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_accuracy_per_task(df: pd.DataFrame, path: str | os.PathLike, metric: str = "accuracy") -> None:
    """Cross-domain results as grouped bars: one group per task (``"1>2"``) and one for the mean over
    tasks, one bar per model / adaptation / AdaBN row; error bars = std over seeds (for the mean: the
    std of the per-task means, as in the tables).

    Args:
        df: tidy results (or a ``summary_table``) of the ``cross-domain`` protocol.
        path: output PNG.
    """
    summary = summary_table(df) if "n_seeds" not in df.columns else df
    if not is_cross_domain(summary):
        raise ConfigError("plot_accuracy_per_task needs cross-domain results (a 'task' column); got none.")
    rows = _labelled(summary)
    tasks = list(dict.fromkeys(rows["task"].astype(str)))
    labels = list(dict.fromkeys(rows["row"]))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.9 * (len(tasks) + 1) * max(1.0, len(labels) / 3))), 4.2))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        part = rows[rows["row"] == label]
        part = part.set_index(part["task"].astype(str))
        means = [100 * float(part.loc[t, f"{metric}_mean"]) if t in part.index else np.nan for t in tasks]
        stds = [100 * float(np.nan_to_num(part.loc[t, f"{metric}_std"])) if t in part.index else 0.0 for t in tasks]
        task_means = np.array(means, float)
        means.append(float(np.nanmean(task_means)))
        stds.append(float(np.nanstd(task_means, ddof=1)) if np.isfinite(task_means).sum() > 1 else 0.0)
        x = np.arange(len(tasks) + 1) + (i - (len(labels) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, capsize=2, label=label, color=f"C{i}",
               hatch="//" if label.endswith("+AdaBN") else None, edgecolor="white", linewidth=0.5)
    arrow = "\n→ " if max(len(t) for t in tasks) > 12 else "→"  # long domain names: one per line
    ax.set_xticks(np.arange(len(tasks) + 1), [t.replace(">", arrow) for t in tasks] + ["mean"])
    lowest = np.nanmin(100 * rows[f"{metric}_mean"].to_numpy(float))
    ax.set_ylim(max(0.0, 10 * np.floor(lowest / 10) - 10), 100.5)
    ax.set_xlabel("task (train → test domain)")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16 if arrow == "→" else -0.26),
              ncol=min(len(labels), 4), frameon=False)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_confusion(
    cm: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
    title: str | None = None,
) -> None:
    """Confusion matrix (rows true, columns predicted) coloured by row-normalised recall,
    annotated with counts."""
    cm = np.asarray(cm, dtype=np.int64)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ConfigError(f"The 'cm' parameter must be a {k}×{k} matrix for {k} class names; got shape {cm.shape}.")
    plt = _pyplot()
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = max(4.0, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
