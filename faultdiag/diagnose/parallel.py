"""Parallel pieces of :mod:`faultdiag.diagnose`: files side by side, and one file's batches on several threads.

The networks are small (a few thousand parameters, 4-64 channels): one forward pass of 256
windows keeps one core busy but parallelises poorly inside PyTorch (several threads per
operation mostly wait on each other). ``jobs`` threads that each run whole operations on
one PyTorch thread use the cores better, so with ``jobs > 1``:

* files are diagnosed ``min(jobs, n_files)`` at a time (:func:`ordered_map` over files);
* a file's windows go to ``max(1, jobs // n_files_at_a_time)`` model threads in batches of
  ``ceil(batch_size / threads)`` while the calling thread reads, resamples and windows the
  next ones (:func:`ordered_map`, at most ``threads + 1`` of them in flight: memory about as
  for one thread, and the same probabilities, the network's output for a window not depending
  on the other windows of its batch);
* PyTorch runs one thread per operation for the duration (:func:`torch_threads`), restored after.

Results come back in input order, so the verdicts equal those of ``jobs=1`` (the same windows
and batches; probabilities summed in the same order).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

import torch

from faultdiag.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_jobs(jobs: object) -> int:
    """``jobs`` as a positive int; 0 means one per available core."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ConfigError(f"The 'jobs' parameter must be an int >= 0 (0: one per CPU core); got {jobs!r}.")
    return jobs or available_cores()


def split_jobs(jobs: int, n_files: int) -> tuple[int, int]:
    """``(files at a time, model threads per file)`` for ``jobs`` threads and ``n_files`` files."""
    at_once = max(1, min(jobs, n_files))
    return at_once, max(1, jobs // at_once)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int, ahead: int | None = None) -> Iterator[R]:
    """``fn(item)`` for each item, in order, on ``threads`` threads (in this thread when ``threads <= 1``).

    ``items`` is consumed in the calling thread, at most ``ahead`` (default ``threads + 1``) items
    ahead of the results yielded; an exception in ``fn`` is raised here, when its item's turn comes.
    """
    if threads <= 1:
        yield from map(fn, items)
        return
    ahead = ahead or threads + 1
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """PyTorch intra-op threads set to ``n`` inside the block (unchanged when ``None``), restored after."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
