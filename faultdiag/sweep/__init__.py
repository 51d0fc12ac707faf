"""Sweeps: models × noise kinds × SNRs × seeds, one sub-run ("cell") per training.

- :mod:`~faultdiag.sweep.plan`: the protocols (``train-clean``, ``train-mixed``, ``matched``) and their cells.
- :mod:`~faultdiag.sweep.cell`: train, score and record one cell; finished cells are skipped.
- :mod:`~faultdiag.sweep.jobs`: cells side by side in worker processes (``--jobs N``).
- :mod:`~faultdiag.sweep.reports`: the aggregate files (tables, plots, provenance).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from faultdiag.config import RunConfig
from faultdiag.errors import ConfigError, FaultdiagError
from faultdiag.evaluate import TIDY_COLUMNS, tidy
from faultdiag.sweep.cell import PreparedCache, cond_key
from faultdiag.sweep.jobs import run_cells
from faultdiag.sweep.plan import Cell, plan_cells
from faultdiag.sweep.reports import write_reports

__all__ = ["Cell", "plan_cells", "run_sweep", "tidy_rows", "write_reports", "TIDY_COLUMNS"]

log = logging.getLogger(__name__)


def tidy_rows(result: dict, cell: Cell) -> pd.DataFrame:
    """The tidy rows (``TIDY_COLUMNS``) of the conditions ``cell`` asks for."""
    wanted = {cond_key(*c) for c in cell.conditions}
    rows = [e for e in result["evaluations"] if cond_key(e["kind"], e["snr_db"], e["adabn"]) in wanted]
    return tidy([{**e, "seed": result["seed"]} for e in rows], result["model"], result["protocol"],
                task=result.get("task", ""), adapt=result.get("adapt", "none"))


def run_sweep(cfg: RunConfig, out_dir: str | Path, *, progress: bool = True, resume: bool = False,
              on_cell: Callable[[dict], None] | None = None, jobs: int = 1,
              cache: PreparedCache | None = None) -> pd.DataFrame:
    """Run (or finish) the sweep ``cfg.sweep`` in ``out_dir`` and write the aggregate reports.

    Args:
        progress: tqdm bars during training (one job only).
        resume: continue a cell whose training was interrupted from its ``last.pt``
            (finished cells are always skipped).
        on_cell: called after each cell with ``{"index", "total", "model", "cell", "status",
            "result", "error"}``, status ``trained`` | ``scored`` | ``skipped`` | ``failed``.
        jobs: cells trained at a time, each in its own process with one CPU thread.
        cache: prepared data to reuse (the command line prepares it first to show the classes).
    Returns:
        The tidy results table (``TIDY_COLUMNS``), one row per model × kind × SNR × AdaBN × seed.
    Raises:
        FaultdiagError: after every cell has run, if some failed (their errors listed); no
            aggregate file is written then.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"The 'jobs' parameter must be a positive int; got {jobs!r}.")
    out_dir, t0 = Path(out_dir), time.perf_counter()
    cells = plan_cells(cfg)
    results: list[dict | None] = [None] * len(cells)
    failed, n_trained = [], 0
    for done, (i, result, status, error) in enumerate(
            run_cells(cells, out_dir, jobs=jobs, resume=resume, progress=progress and jobs == 1,
                      cache=cache if cache is not None else PreparedCache()), start=1):
        cell = cells[i]
        log.info("cell %d/%d: %s %s %s", done, len(cells), cell.model, cell.cell_id, status)
        results[i], n_trained = result, n_trained + (status == "trained")
        if error is not None:
            failed.append(f"{cell.model} {cell.cell_id}: {type(error).__name__}: {error}")
        if on_cell is not None:
            on_cell({"index": done, "total": len(cells), "model": cell.model, "cell": cell.cell_id,
                     "status": status, "result": result, "error": error})
    if failed:
        raise FaultdiagError(f"{len(failed)} of {len(cells)} sweep cells failed (the others are saved in "
                             f"{out_dir / 'cells'}; run the sweep again to retry):\n  " + "\n  ".join(failed))
    df = pd.concat([tidy_rows(r, c) for r, c in zip(results, cells)], ignore_index=True)
    write_reports(df, results, cfg, out_dir, wall_s=time.perf_counter() - t0, n_trained=n_trained)
    return df
