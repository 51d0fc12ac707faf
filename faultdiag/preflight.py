"""Checks that run before any long job: can the output be written, and does it fit on the disk?

A run that fails after an hour because the output folder is read-only or the disk is full
loses the hour; these checks fail in the first second instead, with the folder, the bytes
needed and the bytes free in the message.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from faultdiag.errors import ConfigError

log = logging.getLogger(__name__)

MARGIN_BYTES = 16 * 1024 * 1024
"""Slack added to every estimate (logs, configs, metrics files, file-system overhead)."""


def check_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create ``path`` if needed and prove it is writable by writing and removing a probe file.

    Raises:
        ConfigError: ``path`` is (under) a regular file, or it cannot be created or written.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"The output folder '{path}' ({option}) cannot be created: it or a parent is a file.") from None
    except OSError as exc:
        raise ConfigError(f"The output folder '{path}' ({option}) cannot be created: {exc.strerror or exc}.") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".faultdiag-write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"The output folder '{path}' ({option}) is not writable: {exc.strerror or exc}.") from None
    return path


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes free to this user on the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def check_free_space(path: str | os.PathLike, needed_bytes: int, what: str = "the run", *,
                     margin_bytes: int = MARGIN_BYTES) -> int:
    """Fail unless ``needed_bytes + margin_bytes`` are free where ``path`` lives; returns the bytes free.

    Raises:
        ConfigError: not enough free space (message names the folder, the need and what is free).
    """
    if needed_bytes < 0:
        raise ConfigError(f"The 'needed_bytes' parameter must be >= 0; got {needed_bytes}.")
    free = free_bytes(path)
    need = int(needed_bytes) + int(margin_bytes)
    if free < need:
        raise ConfigError(f"Not enough disk space for {what} in '{path}': about {_mb(need)} needed "
                          f"(estimate {_mb(needed_bytes)} + {_mb(margin_bytes)} margin), {_mb(free)} free. "
                          "Free space or choose another output folder.")
    log.debug("%s needs about %s in %s; %s free", what, _mb(need), path, _mb(free))
    return free


def estimate_train_bytes(n_params: int, epochs: int, optimizer: str = "adam") -> int:
    """Upper estimate of what a training writes: checkpoint.pt, last.pt, their temporary copies, logs.

    ``checkpoint.pt`` holds the weights once; ``last.pt`` the current and best weights plus the
    optimiser state (two moment tensors for Adam, one momentum tensor for SGD); an atomic
    write briefly needs the largest file twice.  Buffers (BatchNorm statistics) are counted
    as parameters.  ``train_log.csv`` grows by ~200 bytes per epoch.
    """
    if n_params < 0 or epochs < 0:
        raise ConfigError(f"The 'n_params' and 'epochs' parameters must be >= 0; got {n_params}, {epochs}.")
    weights = 4 * int(n_params)
    ckpt = weights + 64 * 1024
    last = weights * (2 + (2 if optimizer == "adam" else 1)) + 64 * 1024
    return ckpt + last + max(ckpt, last) + 200 * int(epochs)


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
