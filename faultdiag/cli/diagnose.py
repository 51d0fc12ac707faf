"""``faultdiag diagnose``: verdicts on new recordings with a trained model."""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from typing import Any

import pandas as pd

_TABLE_COLUMNS = ("file", "predicted", "confidence", "n_windows", "envelope_fault", "agreement", "warnings")


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
            "Recordings are streamed: memory stays bounded whatever their length.\n"
            "Exit status: 0 all diagnosed, 1 some files failed (listed on stderr), 2 usage error."),
        epilog="example: faultdiag diagnose --model runs/quick/cells/drsn-cw/clean-seed0/checkpoint.pt data/week42/ --rpm 1797 --plot plots/")
    p.add_argument("--model", required=True, metavar="CKPT", help="checkpoint written by train or sweep")
    p.add_argument("paths", nargs="+", metavar="PATH", help="recording files or folders (CSV, MAT, HDF5, .npy, .npz)")
    p.add_argument("--channel", action="append", metavar="NAME",
                   help="channel fed to the model (repeat for multichannel models; default: the model's channels)")
    p.add_argument("--fs-hz", type=float, metavar="F", help="sampling rate for files that do not state one")
    p.add_argument("--rpm", type=float, metavar="R", help="shaft speed for the envelope check (default: file's rpm)")
    p.add_argument("--bearing", choices=("de", "fe"), default="de",
                   help="bearing geometry: de = CWRU drive end SKF 6205 (default), fe = fan end SKF 6203")
    p.add_argument("--hop", type=int, metavar="N", help="samples between windows (default: the window length)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="windows per forward pass (default 256)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="threads: files side by side and a file's batches in parallel, PyTorch on one thread "
                        "each (0: one per CPU core; default 1)")
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


def _table(df: pd.DataFrame) -> str:
    cols = [c for c in _TABLE_COLUMNS if c in df.columns]
    view = df[cols].copy()
    view["file"] = view["file"].map(lambda s: str(s).replace("\\", "/").rsplit("/", 1)[-1])
    if "confidence" in view:
        view["confidence"] = view["confidence"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    if "n_windows" in view:
        view["n_windows"] = view["n_windows"].map(lambda v: "" if pd.isna(v) else str(int(v)))
    view = view.astype(object).where(view.notna(), "")
    return view.to_string(index=False)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from faultdiag.diagnose import diagnose
    from faultdiag.provenance import atomic_write

    df = diagnose(args.model, args.paths, channel=args.channel, fs_hz=args.fs_hz, rpm=args.rpm, hop=args.hop,
                  batch_size=args.batch_size, plot_dir=args.plot, bearing=args.bearing, envelope_s=args.envelope_s,
                  progress=not args.no_progress and sys.stderr.isatty(), jobs=args.jobs)
    failed = df[df["error"].notna()]
    if args.json:
        print(json.dumps(_records(df), indent=2))
    elif args.csv:
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        with atomic_write(args.csv, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        print(f"wrote {len(df)} rows to {args.csv}")
    else:
        print(_table(df[df["error"].isna()]) if len(failed) < len(df) else "no recording diagnosed")
    for _, row in failed.iterrows():
        print(f"faultdiag: failed: {row['file']}: {row['error']}", file=sys.stderr)
    return 1 if len(failed) else 0
