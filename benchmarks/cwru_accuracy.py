"""CWRU accuracy per SNR next to the published anchors (WDCNN protocol and DRSN-paper protocol).

    python -m benchmarks.cwru_accuracy wdcnn [--jobs 4] [--device cuda] [--data-dir DIR] [--set KEY=VALUE ...]
    python -m benchmarks.cwru_accuracy paper [--jobs 8] ...

Runs the sweep of ``configs/cwru_<protocol>.toml`` with ``jobs`` cells at a time (as
``faultdiag sweep --jobs N``: one process per cell, one thread each; finished cells are
skipped, and the matched grid runs condition by condition, so that a run stopped early leaves
whole conditions). Writes
``benchmarks/results/cwru_<protocol>/``: ``summary.md`` (faultdiag next to the anchors),
``summary.json``, ``results.csv``, ``accuracy_vs_snr.png`` (anchors as grey lines) and
``benchmark.json`` (command line, overrides, wall time, machine, code revision; the sweep's own
``sweep.json`` beside it holds config, seeds and data fingerprint).

Anchors (published numbers, not measured here):
- WDCNN and WDCNN + AdaBN: Zhang et al., Sensors 2017, 17, 425, Table 7 (CWRU, trained on clean
  data, tested with white Gaussian noise). Their split is random over overlapping windows.
- DRSN paper (Zhao et al., IEEE TII 2019): mean test accuracy over all noise settings on the
  authors' own gearbox data -- a reference for the ranking of the models, not for CWRU numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SNRS_WDCNN = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
ANCHORS = {
    "wdcnn": {
        "WDCNN (published)": dict(zip(SNRS_WDCNN, (0.6695, 0.8081, 0.9051, 0.9701, 0.9888, 0.9954, 0.9983, 0.9981))),
        "WDCNN + AdaBN (published)": dict(zip(SNRS_WDCNN, (0.9256, 0.9679, 0.9877, 0.9949, 0.9967, 0.9983, 0.9987, 0.9993))),
    },
    "paper": {},  # the paper's anchors are means over all settings: see PAPER_MEANS
}
PAPER_MEANS = {"drsn-cw": 0.8957, "drsn-cs": 0.8855, "resnet": 0.8625, "convnet": 0.7762}
KEEP = ("results.csv", "summary.csv", "summary.md", "summary.json", "sweep.json", "accuracy_vs_snr.png")


def run_grid(protocol: str, out: Path, sets: list[str], device: str, jobs: int) -> float:
    """Every cell of the grid, ``jobs`` at a time, then the aggregate files; returns the wall time in seconds."""
    from faultdiag.config import load_config
    from faultdiag.sweep import run_sweep

    cfg = load_config(ROOT / "configs" / f"cwru_{protocol}.toml", [*sets, f'device="{device}"'])
    t0 = time.perf_counter()

    def on_cell(info: dict) -> None:
        print(f"[{info['index']}/{info['total']}] {info['model']} {info['cell']}: {info['status']} "
              f"after {time.perf_counter() - t0:.0f} s", flush=True)

    run_sweep(cfg, out, progress=False, resume=True, on_cell=on_cell, jobs=jobs)
    return time.perf_counter() - t0


def report_finished(protocol: str, out: Path, sets: list[str]) -> int:
    """Aggregate the cells of the grid that have finished (``result.json``), training nothing;
    returns how many of the grid's cells were found. For a grid only partly run."""
    from faultdiag.config import load_config
    from faultdiag.sweep import plan_cells, tidy_rows, write_reports

    cfg = load_config(ROOT / "configs" / f"cwru_{protocol}.toml", sets)
    rows, results = [], []
    cells = plan_cells(cfg)
    for cell in cells:
        path = cell.directory(out) / "result.json"
        if path.is_file():
            result = json.loads(path.read_text())
            rows.append(tidy_rows(result, cell))
            results.append(result)
    if not rows:
        raise SystemExit(f"no finished cell of this grid in {out}")
    df = pd.concat(rows, ignore_index=True)
    write_reports(df, results, cfg, out, wall_s=0.0, n_trained=0)
    print(f"{len(results)} of {len(cells)} cells finished; aggregated without training")
    return len(results)


def anchor_table(protocol: str, df: pd.DataFrame) -> str:
    """Markdown: mean accuracy (%) per model × SNR beside the published anchors."""
    df = df[df["kind"] != "clean"]
    lines = []
    if protocol == "wdcnn":
        mean = df.groupby(["model", "adabn", "snr_db"])["accuracy"].agg(["mean", "std"]).reset_index()
        snrs = sorted(mean["snr_db"].unique())
        lines.append("| model | " + " | ".join(f"{s:g} dB" for s in snrs) + " |")
        lines.append("|:---|" + "---:|" * len(snrs))
        for label, curve in ANCHORS["wdcnn"].items():
            lines.append(f"| {label} | " + " | ".join(f"{100 * curve.get(s, float('nan')):.2f}" for s in snrs) + " |")
        for (model, adabn), rows in mean.groupby(["model", "adabn"]):
            cells = [f"{100 * r['mean']:.2f} ± {100 * (r['std'] if r['std'] == r['std'] else 0):.2f}"
                     for _, r in rows.sort_values("snr_db").iterrows()]
            lines.append(f"| faultdiag {model}{' + AdaBN' if adabn else ''} | " + " | ".join(cells) + " |")
    else:
        lines += _paper_table(df)
    return "\n".join(lines) + "\n"


def _paper_table(df: pd.DataFrame) -> list[str]:
    """Mean accuracy per model over the kind × SNR conditions that every model has finished (a
    partial grid compares like with like), beside the paper's means over its 18 settings."""
    conds = df.groupby("model").apply(lambda g: set(zip(g["kind"], g["snr_db"])), include_groups=False)
    common = set.intersection(*conds) if len(conds) else set()
    shared = df[[(k, s) in common for k, s in zip(df["kind"], df["snr_db"])]]
    names = ", ".join(f"{k} {s:g} dB" for k, s in sorted(common))
    lines = [f"Conditions finished by every model ({len(common)}): {names or 'none'}.", "",
             "| model | mean accuracy over the shared conditions (%) | seeds | conditions it finished | "
             "DRSN paper, its gearbox data, all 18 settings (%) |", "|:---|---:|---:|---:|---:|"]
    for model in sorted(conds.index):
        per_seed = shared[shared["model"] == model].groupby("seed")["accuracy"].mean()
        mean = f"{100 * per_seed.mean():.2f}" if len(per_seed) else "—"
        if len(per_seed) > 1:
            mean += f" ± {100 * per_seed.std(ddof=1):.2f}"
        lines.append(f"| {model} | {mean} | {len(per_seed)} | {len(conds[model])} | "
                     f"{100 * PAPER_MEANS.get(model, float('nan')):.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("protocol", choices=("wdcnn", "paper"))
    parser.add_argument("--jobs", type=int, default=2, help="cells trained at a time (one process each)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", help="CWRU folder (default: the config's data_dir)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, help="sweep folder (default runs/bench_cwru_<protocol>)")
    parser.add_argument("--report-only", action="store_true",
                        help="aggregate the finished cells of --out without training the others")
    parser.add_argument("--results", type=Path, help="where the committed results go "
                        "(default benchmarks/results/cwru_<protocol>)")
    args = parser.parse_args(argv)
    sets = list(args.sets) + ([f'data.data_dir="{args.data_dir}"'] if args.data_dir else [])
    out = args.out or ROOT / "runs" / f"bench_cwru_{args.protocol}"
    results = args.results or ROOT / "benchmarks" / "results" / f"cwru_{args.protocol}"
    finished = None
    if args.report_only:
        wall_s, finished = 0.0, report_finished(args.protocol, out, sets)
    else:
        wall_s = run_grid(args.protocol, out, sets, args.device, args.jobs)

    from faultdiag import report
    from faultdiag.provenance import code_revision, library_versions, machine_info, write_json

    results.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        shutil.copy2(out / name, results / name)
    df = pd.read_csv(out / "results.csv")
    report.plot_accuracy_vs_snr(df, results / "accuracy_vs_snr.png", anchors=ANCHORS[args.protocol] or None)
    table = anchor_table(args.protocol, df)
    with open(results / "summary.md", "a", encoding="utf-8") as fh:
        fh.write("\n## Next to the published anchors\n\n" + table)
    write_json(results / "benchmark.json", {
        "protocol": args.protocol, "command": " ".join(sys.argv), "overrides": sets, "jobs": args.jobs,
        "device": args.device, "wall_s": round(wall_s, 1), "report_only": args.report_only,
        "cells_finished": finished, "machine": machine_info(),
        "versions": library_versions(), "code_revision": code_revision(),
        "anchors": {k: {str(s): a for s, a in v.items()} for k, v in ANCHORS[args.protocol].items()},
        "paper_means": PAPER_MEANS if args.protocol == "paper" else None,
    })
    print(table)
    print(f"wall time {wall_s:.0f} s; results in {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
