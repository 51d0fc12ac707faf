"""``faultdiag data``: inspect recordings, download public data sets, write simulated recordings."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from faultdiag.errors import ConfigError, DataError

_COLUMNS = ("file", "channels", "fs_hz", "samples", "seconds", "label", "train_label", "rpm", "load_hp")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect, download or simulate recordings",
                                   description="Inspect recordings, download public data sets, simulate recordings.")
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser(
        "inspect", help="list recordings: channels, rate, length, label training would give, speed, load",
        description=("List recordings as training would read them: channels, rate, length, the label the file\n"
                     "states (label) and the one training gives it (train_label, by --label-from or the config's\n"
                     "data.label_from), speed and load; then warnings about labels that look wrong."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples: faultdiag data inspect recordings/ --label-from folder:1\n"
               "          faultdiag data inspect --config configs/hitsm.toml --set data.data_dir=data/hitsm")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (searched recursively)")
    p.add_argument("--config", metavar="TOML", help="inspect what this config's [data] section names (no PATH)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override a config key, e.g. --set data.label_from=folder:1 (repeatable)")
    p.add_argument("--label-from", metavar="RULE", help="parent (default), folder:N, regex:PATTERN or csv (with --labels)")
    p.add_argument("--labels", metavar="CSV", help="labels CSV with columns file,label (paths relative to the CSV)")
    p.add_argument("--variable", metavar="NAME", help="the signal to read in each file (e.g. bearing.gs)")
    p.add_argument("--skip-rows", type=int, metavar="N", help="text files: lines before the header (default: detected)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--fs-hz", type=float, default=None, help="sampling rate for files that do not state one")
    p.set_defaults(func=_inspect)

    p = sub.add_parser("download", help="download CWRU or MNIST, verified by SHA-256")
    p.add_argument("name", choices=("cwru", "mnist"))
    p.add_argument("--dest", required=True, type=Path, help="folder to write the files to")
    p.add_argument("--base-url", action="append", default=None, metavar="URL",
                   help="mirror base URL instead of the official one (repeat for fallbacks)")
    p.add_argument("--files", nargs="+", default=None, metavar="NAME",
                   help="only these files (CWRU: numbers such as 97 105); default: all with a known checksum")
    p.add_argument("--allow-unverified", action="store_true",
                   help="accept files without a published checksum (their SHA-256 is logged)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_download)

    p = sub.add_parser("simulate", help="write simulated bearing recordings (all classes and loads)")
    p.add_argument("--out", required=True, type=Path, help="folder to write the recordings to")
    p.add_argument("--format", choices=("csv", "mat"), default="csv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration-s", type=float, default=10.0, help="seconds per recording")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("cache", help="decode a config's recordings once into an HDF5 cache for lazy training",
                       epilog="example: faultdiag data cache --config configs/cwru_wdcnn.toml --out cache/cwru.h5; "
                              "then train with --set data.cache=cache/cwru.h5")
    p.add_argument("--config", metavar="TOML", help="run config whose [data] section names the recordings")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override a config key, e.g. --set data.paths=[\"week42/\"] (repeatable)")
    p.add_argument("--out", required=True, type=Path, help="cache file to write (HDF5, written atomically)")
    p.add_argument("--compression", choices=("lzf", "gzip", "none"), default="lzf",
                   help="lzf (fast, default), gzip (smaller) or none")
    p.set_defaults(func=_cache)


def _format_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.0f}" if value.is_integer() else f"{value:.3f}"
        return str(value)

    columns = [c for c in _COLUMNS if c in ("file", "train_label") or any(r.get(c) is not None for r in rows)]
    for extra in ("variable", "rig"):
        if any(r.get(extra) for r in rows):
            columns.insert(1, extra)
    cells = [columns] + [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    numeric = {"fs_hz", "samples", "seconds", "rpm", "load_hp"}
    lines = []
    for row in cells:
        parts = [v.rjust(w) if c in numeric else v.ljust(w) for v, w, c in zip(row, widths, columns)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _inspection(args: argparse.Namespace) -> Any:
    from faultdiag.config import DataConfig, load_config
    from faultdiag.data.inspect import inspect_config, inspect_files

    if args.config or args.overrides:
        if args.paths:
            raise ConfigError("Give PATHs or --config/--set, not both (the config names the data).")
        return inspect_config(load_config(args.config, args.overrides).data)
    if not args.paths:
        raise ConfigError("Give at least one PATH, or --config with a [data] section.")
    data = DataConfig(source="files", paths=tuple(args.paths), label_from=args.label_from, labels=args.labels,
                      variable=args.variable, skip_rows=args.skip_rows)
    return inspect_files(list(args.paths), data, fs_hz=args.fs_hz)


def _inspect(args: argparse.Namespace) -> int:
    from faultdiag.data.labels import describe_entries

    found = _inspection(args)
    rows, failures = found.rows, found.failures
    if args.json:
        print(json.dumps({"recordings": rows, "unreadable": failures, "warnings": found.warnings}, indent=2,
                         default=str))
        return 1 if failures else 0
    if rows:
        print(_format_table(rows))
    print(f"{len(rows)} recording(s) read, {len(failures)} unreadable.")
    labelled = [(r["file"], r["train_label"]) for r in rows if r.get("train_label") is not None]
    if labelled:
        print(f"train labels: {describe_entries(labelled)}")
    from faultdiag.cli.failures import failure_lines

    for line in failure_lines(((f["file"], f["error"]) for f in failures), "unreadable"):
        print(line)
    for warning in found.warnings:
        print(f"warning: {warning}")
    return 1 if failures else 0


def _download(args: argparse.Namespace) -> int:
    from faultdiag.data.download import download_dataset

    paths = download_dataset(args.name, args.dest, base_url=args.base_url, files=args.files,
                             progress=not args.no_progress, allow_unverified=args.allow_unverified)
    print(f"{len(paths)} file(s) of '{args.name}' verified in {args.dest}.")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from faultdiag.data.readers import write_recording
    from faultdiag.data.simulate import simulated_dataset

    if not args.duration_s > 0:
        raise ConfigError(f"The '--duration-s' option must be a positive number; got {args.duration_s}.")
    recordings = simulated_dataset(seed=args.seed, duration_s=args.duration_s)
    # One sub-folder per class: the layout `data.source = "files"` reads labels from.
    for i, rec in enumerate(recordings):
        load, severity = rec.meta.get("load_hp"), rec.meta.get("severity")
        stem = f"{i:03d}_{rec.label}_{load}hp_sev{severity}"
        folder = args.out / rec.label
        folder.mkdir(parents=True, exist_ok=True)
        write_recording(rec, folder / f"{re.sub(r'[^A-Za-z0-9@._-]', '_', stem)}.{args.format}")
    print(f"{len(recordings)} simulated recording(s) written to {args.out} ({args.format}), "
          "one sub-folder per class.", file=sys.stdout)
    return 0


def _cache(args: argparse.Namespace) -> int:
    from faultdiag.config import load_config
    from faultdiag.data.cache import build_cache, estimate_cache_bytes, open_cache
    from faultdiag.preflight import check_free_space, check_output_dir

    data = load_config(args.config, args.overrides).data
    check_output_dir(args.out.parent, "--out")
    check_free_space(args.out.parent, 2 * estimate_cache_bytes(data), "the cache")
    info = open_cache(build_cache(data, args.out, compression=args.compression))
    hours = sum(info.lengths) / info.fs_hz / 3600
    print(f"cached {len(info.labels)} recording(s), {hours:.2f} h at {info.fs_hz:g} Hz, "
          f"classes {sorted(set(info.labels))} in {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
    return 0
