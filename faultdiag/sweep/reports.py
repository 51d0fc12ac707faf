"""A sweep's aggregate files: tidy results, mean ± std over seeds, plots and provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from faultdiag import report
from faultdiag.config import RunConfig, config_to_dict
from faultdiag.provenance import atomic_write, code_revision, library_versions, machine_info, write_json
from faultdiag.sweep.plan import snr_id

__all__ = ["write_reports", "plot_name"]


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)


def _confusion_plots(results: list[dict], out_dir: Path) -> list[str]:
    """For each model (first seed, no AdaBN): the lowest SNR of the first kind, and clean."""
    written, seen = [], set()
    for result in results:
        if result["model"] in seen:
            continue
        seen.add(result["model"])
        evals = [e for e in result["evaluations"] if not e["adabn"]]
        noisy = sorted((e for e in evals if e["kind"] != "clean"), key=lambda e: (e["kind"], e["snr_db"]))
        picks = ([noisy[0]] if noisy else []) + [e for e in evals if e["kind"] == "clean"][:1]
        for e in picks:
            cond = "clean" if e["snr_db"] is None else f"{e['kind']}_{snr_id(e['snr_db'])}dB"
            path = out_dir / f"confusion_{result['model']}_{cond}.png"
            classes = list(e["per_class"])  # class names, in index order
            level = "" if e["snr_db"] is None else f" {e['snr_db']:g} dB"
            title = f"{result['model']}, {e['kind']}{level}, seed {result['seed']}"
            report.plot_confusion(e["confusion"], classes, path, title=title)
            written.append(path.name)
    return written


def plot_name(cfg: RunConfig) -> str:
    """The sweep's plot: accuracy per task for the ``cross-domain`` protocol, accuracy vs SNR otherwise."""
    return "accuracy_per_task.png" if cfg.sweep.protocol == "cross-domain" else "accuracy_vs_snr.png"


def write_reports(df: pd.DataFrame, results: list[dict], cfg: RunConfig, out_dir: Path, *,
                  wall_s: float, n_trained: int) -> dict[str, Path]:
    """``results.csv`` (tidy), ``summary.csv/.md/.json`` (mean ± std over seeds), the plot
    (``accuracy_vs_snr.png``; ``accuracy_per_task.png`` for the ``cross-domain`` protocol),
    ``confusion_*.png`` and ``sweep.json`` (provenance), returned by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = report.summary_table(df)
    fingerprints = {json.dumps(r.get("data_fingerprint"), sort_keys=True, default=str): r.get("data_fingerprint")
                    for r in results}
    provenance = {"config": config_to_dict(cfg), "seeds": list(cfg.sweep.seeds),
                  "data_fingerprint": list(fingerprints.values()),
                  "class_table": next((r["class_table"] for r in results if r.get("class_table")), None),
                  "code_revision": code_revision(), "versions": library_versions()}
    plot = plot_name(cfg)
    names = ("results.csv", "summary.csv", "summary.md", "summary.json", plot, "sweep.json")
    paths = {name: out_dir / name for name in names}
    _write_csv(df, paths["results.csv"])
    _write_csv(summary, paths["summary.csv"])
    with atomic_write(paths["summary.md"], "w", encoding="utf-8") as fh:
        fh.write(f"# Sweep: protocol {cfg.sweep.protocol}, seeds {list(cfg.sweep.seeds)}\n\n")
        digests = ", ".join(str((f or {}).get("digest")) for f in provenance["data_fingerprint"])
        fh.write(f"Code revision `{provenance['code_revision']}`, data fingerprint `{digests}`. "
                 f"Mean ± std (ddof=1) over seeds; metric in percent of test windows.\n\n")
        fh.write(report.to_markdown(summary))
    write_json(paths["summary.json"], {**provenance, "summary": json.loads(summary.to_json(orient="records"))})
    draw = report.plot_accuracy_per_task if plot == "accuracy_per_task.png" else report.plot_accuracy_vs_snr
    draw(df, paths[plot])
    confusions = _confusion_plots(results, out_dir)
    write_json(paths["sweep.json"], {**provenance, "machine": machine_info(), "wall_s": round(wall_s, 3),
                                     "cells": [f"cells/{r['model']}/{r['cell']}" for r in results],
                                     "cells_trained": n_trained, "confusion_plots": confusions})
    return paths
