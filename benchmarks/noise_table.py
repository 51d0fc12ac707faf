"""One noise-robustness table from several sweeps of the WDCNN protocol, next to the published WDCNN.

    python -m benchmarks.noise_table --run "band-pass=runs/bench_bandpass" --run "none=runs/bench_none" \\
        [--ensemble ticnn --ensemble drsn-cw] [--trials benchmarks/results/cwru_wdcnn_trials.jsonl --trial leaky-wdcnn] \\
        [--out benchmarks/results/cwru_noise_table] [--plot-only]

Each ``--run LABEL=DIR`` is a finished train-clean sweep folder (``faultdiag sweep`` or
``benchmarks.cwru_accuracy``) whose models were trained the same way except for what LABEL names
(e.g. the front end). For every model and AdaBN setting the table gives the test accuracy (%) at
each SNR, mean ± std over the sweep's seeds. ``--ensemble MODEL`` adds, per run, the ensemble of
that model's seeds (mean probabilities, :class:`faultdiag.models.ensemble.Ensemble`), scored on the
same test windows and noise. ``--trial NAME`` adds a single-seed row of ``benchmarks.cwru_wdcnn_trials``
(e.g. WDCNN on WDCNN's own leaky split), marked as such.

Marks: **bold** = at or above the published WDCNN (with AdaBN: WDCNN + AdaBN) at that SNR;
† = at or above every anchor model (``wdcnn``, ``ticnn``) of the same run and AdaBN setting.
Writes ``table.md``, ``table.csv``, ``table.json`` (the runs' provenance) and ``accuracy_vs_snr.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from faultdiag import report
from faultdiag.config import load_config
from faultdiag.evaluate import evaluate_snrs, load_ensemble, prepared_for, tidy
from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

ROOT = Path(__file__).resolve().parent.parent
SNRS = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
PUBLISHED = {False: dict(zip(SNRS, (66.95, 80.81, 90.51, 97.01, 98.88, 99.54, 99.83, 99.81))),
             True: dict(zip(SNRS, (92.56, 96.79, 98.77, 99.49, 99.67, 99.83, 99.87, 99.93)))}
ANCHOR_MODELS = ("wdcnn", "ticnn")


def ensemble_rows(run_dir: Path, model: str) -> pd.DataFrame:
    """The ensemble of ``model``'s seeds in ``run_dir``, scored like the sweep scored each seed."""
    cells = sorted((run_dir / "cells" / model).glob("clean-seed*"))
    if len(cells) < 2:
        raise SystemExit(f"--ensemble {model}: fewer than two seeds in {run_dir / 'cells' / model}")
    net, ckpt = load_ensemble([c / "checkpoint.pt" for c in cells])
    cfg = load_config(cells[0] / "config.toml")
    prepared = prepared_for(ckpt, cfg)
    rows = []
    for adabn in cfg.sweep.adabn:
        rows += evaluate_snrs(net, prepared, kinds=("gaussian",), snrs_db=cfg.sweep.snrs_db, seed=cfg.seed,
                              adabn=adabn, include_clean=True, batch_size=cfg.train.eval_batch_size)
    return tidy(rows, f"{model} ensemble of {len(cells)}", "train-clean")


def trial_rows(path: Path, name: str) -> pd.DataFrame:
    """The last row named ``name`` of a ``cwru_wdcnn_trials`` JSONL file, in the tidy layout (one seed)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    matches = [r for r in rows if r["name"] == name]
    if not matches:
        raise SystemExit(f"--trial {name}: no such row in {path}")
    r = matches[-1]
    label = f"{r['config']['model']['name']} ({name}, 1 seed{', leaky split' if r.get('leaky') else ''})"
    out = []
    for adabn, key in ((False, "plain"), (True, "adabn")):
        for snr, acc in r[key].items():
            if snr != "clean":
                out.append({"model": label, "adabn": adabn, "kind": "gaussian", "snr_db": float(snr),
                            "accuracy": acc / 100, "seed": r["seed"]})
    return pd.DataFrame(out)


def table(df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Markdown and a wide frame: rows run × model × AdaBN, columns the SNRs (mean ± std %)."""
    df = df[df["snr_db"].notna()]
    stats = (df.groupby(["run", "model", "adabn", "snr_db"])["accuracy"].agg(["mean", "std", "size"])
             .reset_index())
    best_anchor = (stats[stats["model"].isin(ANCHOR_MODELS)].groupby(["run", "adabn", "snr_db"])["mean"].max())
    lines = ["| run | model | " + " | ".join(f"{s:g} dB" for s in SNRS) + " |", "|:---|:---|" + "---:|" * len(SNRS)]
    for adabn in (False, True):
        lines.append(f"| published | WDCNN{' + AdaBN' if adabn else ''} (Zhang et al. 2017) | "
                     + " | ".join(f"{PUBLISHED[adabn][s]:.2f}" for s in SNRS) + " |")
    wide = []
    for (run, model, adabn), part in stats.groupby(["run", "model", "adabn"], sort=False):
        cells = []
        for snr in SNRS:
            hit = part[part["snr_db"] == snr]
            if hit.empty:
                cells.append("—")
                continue
            m, s, n = 100 * hit["mean"].iloc[0], 100 * hit["std"].iloc[0], int(hit["size"].iloc[0])
            text = f"{m:.2f}" + (f" ± {s:.2f}" if n > 1 and s == s else "")
            if m >= PUBLISHED[bool(adabn)][snr]:
                text = f"**{text}**"
            anchor = best_anchor.get((run, adabn, snr))
            if anchor is not None and model not in ANCHOR_MODELS and m >= 100 * anchor:
                text += " †"
            cells.append(text)
        name = f"{model}{' + AdaBN' if adabn else ''}"
        lines.append(f"| {run} | {name} | " + " | ".join(cells) + " |")
        wide.append({"run": run, "model": name, **{f"{s:g} dB": c for s, c in zip(SNRS, cells)}})
    return "\n".join(lines) + "\n", pd.DataFrame(wide)


def plot(df: pd.DataFrame, path: Path) -> None:
    """Accuracy vs SNR of every run × model (the published WDCNN as grey reference lines); the
    single-seed diagnostic rows stay in the table only."""
    df = df[df["run"] != "diagnostic"]
    df = df.assign(model=df["run"] + ": " + df["model"].astype(str), kind=df["kind"].fillna("gaussian"))
    anchors = {f"WDCNN{' + AdaBN' if a else ''} (published)": {s: v / 100 for s, v in PUBLISHED[a].items()}
               for a in (False, True)}
    report.plot_accuracy_vs_snr(df[df["snr_db"].notna()], path, anchors=anchors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--ensemble", action="append", default=[], metavar="MODEL")
    parser.add_argument("--trials", type=Path, default=ROOT / "benchmarks" / "results" / "cwru_wdcnn_trials.jsonl")
    parser.add_argument("--trial", action="append", default=[], metavar="NAME")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cwru_noise_table")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from --out's results.csv")
    args = parser.parse_args(argv)
    if args.plot_only:
        plot(pd.read_csv(args.out / "results.csv"), args.out / "accuracy_vs_snr.png")
        return 0
    if not args.run:
        parser.error("give at least one --run LABEL=DIR (or --plot-only)")
    frames, provenance = [], {}
    for item in args.run:
        label, _, folder = item.partition("=")
        run_dir = Path(folder)
        df = pd.read_csv(run_dir / "results.csv")
        for model in args.ensemble:
            df = pd.concat([df, ensemble_rows(run_dir, model)], ignore_index=True)
        frames.append(df.assign(run=label))
        provenance[label] = json.loads((run_dir / "sweep.json").read_text())
    for name in args.trial:
        frames.append(trial_rows(args.trials, name).assign(run="diagnostic"))
    df = pd.concat(frames, ignore_index=True)
    text, wide = table(df)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text)
    wide.to_csv(args.out / "table.csv", index=False)
    df.to_csv(args.out / "results.csv", index=False)
    plot(df, args.out / "accuracy_vs_snr.png")
    write_json(args.out / "table.json", {"runs": provenance, "ensembles": args.ensemble, "trials": args.trial,
                                          "published": {str(k): v for k, v in PUBLISHED.items()},
                                          "code_revision": code_revision(), "versions": library_versions(),
                                          "machine": machine_info()})
    print(text)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
