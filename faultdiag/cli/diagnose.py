"""``faultdiag diagnose``: verdicts on new recordings with a trained model."""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from typing import Any

import pandas as pd

_TABLE_COLUMNS = ("file", "true", "predicted", "confidence", "n_windows", "rpm", "envelope_fault", "agreement",
                  "warnings", "envelope_note")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "diagnose", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="diagnose recordings with a trained model (a verdict per file)",
        description=(
            "Window each recording as the model was trained (window, channel, normalisation from the\n"
            "checkpoint; non-overlapping windows unless --hop), resample it to the model's rate when\n"
            "needed, and report per recording the predicted class, its confidence (mean probability),\n"
            "the share of windows voting for each class and warnings (short, clipped, flat, outside\n"
            "the training RMS range). An envelope-spectrum check on the first --envelope-s seconds\n"
            "says which bearing fault frequency (BPFO, BPFI, BSF) stands out and whether it agrees.\n"
            "Recordings are streamed: memory stays bounded whatever their length. Where a file's true\n"
            "label is known (--info, or the training data's labelling rule) a 'true' column, the\n"
            "accuracy and a confusion matrix are printed.\n"
            "Exit status: 0 all diagnosed, 1 some files failed (listed on stderr), 2 usage error."),
        epilog=("examples: faultdiag diagnose --model runs/quick/cells/drsn-cw/clean-seed0/checkpoint.pt data/week42/ "
                "--rpm 1797 --plot plots/\n"
                "          faultdiag diagnose --model ckpt.pt pump7/ --info pump7/speeds.csv --bearing 6205"))
    p.add_argument("--model", required=True, metavar="CKPT", help="checkpoint written by train or sweep")
    p.add_argument("paths", nargs="+", metavar="PATH", help="recording files or folders (CSV, MAT, HDF5, .npy, .npz)")
    p.add_argument("--channel", action="append", metavar="NAME",
                   help="channel fed to the model (repeat for multichannel models; default: the model's channels)")
    p.add_argument("--fs-hz", type=float, metavar="F",
                   help="sampling rate for files that do not state one (default: the model's training rate, noted)")
    p.add_argument("--variable", metavar="NAME", help="the signal to read in each file (e.g. bearing.gs)")
    p.add_argument("--skip-rows", type=int, metavar="N", help="text files: lines before the header (default: detected)")
    p.add_argument("--rpm", type=float, metavar="R",
                   help="shaft speed of every file for the envelope check (default: --info, else the file's)")
    p.add_argument("--rpm-range", metavar="LO:HI",
                   help="estimate a file's unknown speed from its spectrum within LO-HI rpm (e.g. 1400:1800)")
    p.add_argument("--info", metavar="CSV",
                   help="per-file shaft speed and/or true label: columns file,rpm[,label] (paths relative to the CSV)")
    p.add_argument("--bearing", metavar="NAME",
                   help="bearing for the envelope check, from the table (6205, 6203, cwru-de, cwru-fe, mfpt, mb-er16k) "
                        "(default: the file's fault frequencies, else the checkpoint's data.bearing or training data's)")
    p.add_argument("--bearing-geometry", metavar="SPEC",
                   help="balls=N,ball_d=D,pitch_d=P[,angle=DEG] (diameters in any one unit)")
    p.add_argument("--bearing-orders", metavar="SPEC",
                   help="fault frequencies as multiples of shaft speed: bpfo=X,bpfi=X,bsf=X,ftf=X")
    p.add_argument("--hop", type=int, metavar="N", help="samples between windows (default: the window length)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="windows per forward pass (default 256)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="threads: files side by side and a file's batches in parallel, PyTorch on one thread "
                        "each (0: one per CPU core; default 1)")
    p.add_argument("--precision", default="float32", metavar="P",
                   help="float32 (default) or bfloat16: the network in bfloat16, faster on a CPU with AVX-512 BF16 "
                        "(the same class as float32 on >= 99.5 %% of windows in our tests; refused on a CPU without it)")
    p.add_argument("--envelope-s", type=float, default=10.0, metavar="S",
                   help="seconds at the start of each file used for the envelope check (default 10)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON list of per-recording results")
    out.add_argument("--csv", metavar="OUT", help="write all results to this CSV file (atomically)")
    p.add_argument("--plot", metavar="DIR", help="save one PNG per recording in DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_diagnose)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NaN and missing values as null."""
    rows = []
    for row in df.to_dict("records"):
        clean = {}
        for k, v in row.items():
            if hasattr(v, "item"):
                v = v.item()
            clean[k] = None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        rows.append(clean)
    return rows


def _rpm_cell(row: pd.Series) -> str:
    if pd.isna(row.get("rpm")):
        return ""
    estimated = str(row.get("rpm_source") or "").startswith("spectrum")
    return f"{row['rpm']:.0f}" + (" (est.)" if estimated else "")


def _table(df: pd.DataFrame) -> str:
    cols = [c for c in _TABLE_COLUMNS if c in df.columns and (c != "true" or df[c].notna().any())
            and (c not in ("warnings", "envelope_note") or df[c].fillna("").astype(str).str.len().any())]
    view = df[cols].copy()
    view["file"] = view["file"].map(lambda s: str(s).replace("\\", "/").rsplit("/", 1)[-1])
    if "confidence" in view:
        view["confidence"] = view["confidence"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    if "n_windows" in view:
        view["n_windows"] = view["n_windows"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    if "rpm" in view:
        view["rpm"] = df.apply(_rpm_cell, axis=1)
    view = view.rename(columns={"envelope_note": "notes"})
    view = view.astype(object).where(view.notna(), "")
    return view.to_string(index=False)


def _summary_text(summary: dict[str, Any]) -> str:
    """Accuracy and the confusion matrix (rows: true, columns: predicted) as text."""
    lines = [f"accuracy on the {summary['n_files']} file(s) with a known label: {summary['n_correct']}/"
             f"{summary['n_files']} = {summary['accuracy']:.1%}", "confusion (rows: true label, columns: predicted):"]
    matrix = pd.DataFrame(summary["confusion"], index=summary["labels"], columns=summary["predicted"])
    matrix = matrix[(matrix.sum(axis=1) > 0)]
    lines.append(matrix.to_string())
    return "\n".join(lines)


def _rpm_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        return float(lo), float(hi)
    except ValueError:
        from faultdiag.errors import ConfigError

        raise ConfigError(f"The '--rpm-range' option must be LO:HI in rpm (e.g. 1400:1800); got {text!r}.") from None


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from faultdiag.bearings import bearing_spec
    from faultdiag.cli.failures import failure_lines
    from faultdiag.diagnose import diagnose, summarize
    from faultdiag.provenance import atomic_write

    bearing = bearing_spec(args.bearing, args.bearing_geometry, args.bearing_orders)
    df = diagnose(args.model, args.paths, channel=args.channel, fs_hz=args.fs_hz, rpm=args.rpm, hop=args.hop,
                  batch_size=args.batch_size, plot_dir=args.plot, bearing=bearing, envelope_s=args.envelope_s,
                  progress=not args.no_progress and sys.stderr.isatty(), rpm_range=_rpm_range(args.rpm_range),
                  info=args.info, variable=args.variable, skip_rows=args.skip_rows, jobs=args.jobs,
                  precision=args.precision)
    failed = df[df["error"].notna()]
    summary = summarize(df, df.attrs["class_names"])
    if args.json:
        print(json.dumps({"recordings": _records(df), "summary": summary}, indent=2))
    elif args.csv:
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        with atomic_write(args.csv, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        print(f"wrote {len(df)} rows to {args.csv}")
    else:
        print(_table(df[df["error"].isna()]) if len(failed) < len(df) else "no recording diagnosed")
    if summary is not None and not args.json:
        print(_summary_text(summary))
    for line in failure_lines(((row["file"], row["error"]) for _, row in failed.iterrows()), "faultdiag: failed"):
        print(line, file=sys.stderr)
    return 1 if len(failed) else 0
