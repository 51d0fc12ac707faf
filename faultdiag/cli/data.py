"""``faultdiag data``: inspect recordings, download public data sets, write simulated recordings."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from faultdiag.errors import ConfigError, DataError

_COLUMNS = ("file", "channels", "fs_hz", "samples", "seconds", "label", "rpm", "load_hp")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect, download or simulate recordings",
                                   description="Inspect recordings, download public data sets, simulate recordings.")
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("inspect", help="list recordings: channels, rate, length, label, speed, load")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (searched recursively)")
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


def _describe(path: Path, shown: str, fs_hz: float | None) -> dict[str, Any]:
    from faultdiag.data.readers import open_recording

    src = open_recording(path, fs_hz=fs_hz)
    n = src.n_samples
    if n is None:  # CSV: count by streaming blocks
        n = sum(block.shape[1] for _, block in src.iter_blocks(1 << 16))
    row = {"file": shown, "channels": ",".join(src.channels), "fs_hz": src.fs_hz, "samples": n,
           "seconds": round(n / src.fs_hz, 3), "label": src.label, "rpm": src.meta.get("rpm"),
           "load_hp": src.meta.get("load_hp")}
    for key in ("fault", "diameter_in", "or_position", "cwru_number", "format"):
        if src.meta.get(key) is not None:
            row[key] = src.meta[key]
    return row


def _expand(arg: str) -> list[tuple[Path, str]] | str:
    """(file, name to show) pairs for one PATH argument, or the reason it gave none."""
    from faultdiag.data.readers import find_recordings

    root = Path(arg)
    try:
        files = find_recordings([root])
    except DataError as exc:
        return str(exc)
    return [(f, str(f.relative_to(root)) if root.is_dir() else str(f)) for f in files]


def _format_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.0f}" if value.is_integer() else f"{value:.3f}"
        return str(value)

    cells = [list(_COLUMNS)] + [[cell(r.get(c)) for c in _COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]
    numeric = {"fs_hz", "samples", "seconds", "rpm", "load_hp"}
    lines = []
    for row in cells:
        parts = [v.rjust(w) if c in numeric else v.ljust(w) for v, w, c in zip(row, widths, _COLUMNS)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for arg in args.paths:
        found = _expand(arg)
        if isinstance(found, str):
            failures.append({"file": arg, "error": found})
            continue
        for path, shown in found:
            try:
                rows.append(_describe(path, shown, args.fs_hz))
            except (DataError, ConfigError) as exc:
                failures.append({"file": shown, "error": str(exc)})
    if args.json:
        print(json.dumps({"recordings": rows, "unreadable": failures}, indent=2, default=str))
    else:
        if rows:
            print(_format_table(rows))
        print(f"{len(rows)} recording(s) read, {len(failures)} unreadable.")
        for fail in failures:
            print(f"unreadable: {fail['file']}: {fail['error']}")
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
