"""Re-scoring the finished cells of a WDCNN-protocol sweep, one JSON line per cell: the loop the scripts share.

``benchmarks.adabn_scope`` and ``benchmarks.bf16_agreement`` each define ``score_cell(cell, prepared) -> (row,
prepared)`` and call :func:`main` with it; the cells are ``RUN_DIR/cells/<model>/clean-seed<N>``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

SNRS_DB = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
"""The WDCNN protocol's test SNRs (dB), the ones these scripts re-score."""


def main(argv: list[str] | None, description: str, default_out: Path,
         score_cell: Callable[..., tuple[dict, object]], line: Callable[[dict], str],
         options: dict[str, dict] | None = None) -> list[dict]:
    """Parse ``RUN_DIR [--models ...] [--seeds ...] [--out FILE]``, score every cell, print ``line(row)`` and
    append ``row`` to ``--out`` as it goes (a run stopped half-way keeps the cells already scored).

    ``options``: the script's own options, ``{"--name": add_argument keywords}``; their values reach
    ``score_cell`` as keywords (``name=...``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--models", nargs="+", default=["drsn-cw"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", type=Path, default=default_out)
    for flag, kwargs in (options or {}).items():
        p.add_argument(flag, **kwargs)
    args = p.parse_args(argv)
    extra = {name: getattr(args, name) for name in (f.lstrip("-").replace("-", "_") for f in options or {})}
    rows, prepared = [], None  # every cell of one sweep shares the data and the split
    for model in args.models:
        for seed in args.seeds:
            row, prepared = score_cell(args.run_dir / "cells" / model / f"clean-seed{seed}", prepared, **extra)
            rows.append(row)
            print(line(row), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
    return rows
