"""Cells trained side by side: one process per job, one CPU thread each, finished cells skipped.

A pool of ``jobs`` worker processes (spawned, so CUDA works in them) takes the cells in plan
order; each worker keeps its own prepared data between cells (:class:`~faultdiag.sweep.cell.PreparedCache`).
Several processes may share one GPU.  A cell that fails does not stop the others; the failures
are reported together at the end.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterator

from faultdiag.sweep.cell import PreparedCache, run_cell
from faultdiag.sweep.plan import Cell

__all__ = ["run_cells"]

_CACHE: PreparedCache | None = None


def _init_worker() -> None:
    global _CACHE
    _CACHE = PreparedCache()


def _work(cell: Cell, out_dir: Path, resume: bool) -> tuple[dict, str]:
    import torch

    torch.set_num_threads(cell.config.train.threads or 1)
    return run_cell(cell, out_dir, _CACHE, resume=resume, progress=False)


def run_cells(cells: list[Cell], out_dir: Path, *, jobs: int, resume: bool, progress: bool,
              cache: PreparedCache) -> Iterator[tuple[int, dict | None, str, BaseException | None]]:
    """Run every cell; yield ``(index in cells, result, status, error)`` as each finishes.

    ``jobs == 1`` runs them in turn in this process (an error is raised at once); more runs them
    in worker processes and yields a failed cell with status ``"failed"`` and its error.
    """
    if jobs == 1:
        for i, cell in enumerate(cells):
            result, status = run_cell(cell, out_dir, cache, resume=resume, progress=progress)
            yield i, result, status, None
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker) as pool:
        futures = {pool.submit(_work, cell, out_dir, resume): i for i, cell in enumerate(cells)}
        for future in as_completed(futures):
            try:
                result, status = future.result()
                yield futures[future], result, status, None
            except Exception as exc:  # noqa: BLE001 - reported with the cell, raised after the others
                yield futures[future], None, "failed", exc
