"""A sidecar JSON file beside a recording that states what the recording does not (its sampling rate).

For ``run_07.csv`` the sidecar is ``run_07.csv.json`` or else ``run_07.json``, holding an object
such as ``{"fs_hz": 25600, "rpm": 1480}``. ``fs_hz`` is used when the recording states no rate (a
headerless CSV, a bare ``.npy``); a recording that states another rate is an error. ``rpm`` is
the shaft speed, used when the file states none. Other keys are ignored (and logged).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from faultdiag.errors import DataError

__all__ = ["sidecar_path", "read_sidecar", "SIDECAR_KEYS"]

log = logging.getLogger(__name__)

SIDECAR_KEYS = ("fs_hz", "rpm")


def sidecar_path(path: Path) -> Path | None:
    """``<file>.json`` or ``<stem>.json`` beside ``path`` (the first that exists), else None."""
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate != path and candidate.is_file():
            return candidate
    return None


def read_sidecar(path: Path) -> tuple[dict[str, float], Path | None]:
    """The sidecar's known keys as positive floats (``{}`` when there is none) and its path."""
    side = sidecar_path(path)
    if side is None:
        return {}, None
    try:
        raw: Any = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"The sidecar file {side} of {path.name} is not readable JSON ({exc}).") from None
    if not isinstance(raw, dict):
        raise DataError(f"The sidecar file {side} must hold a JSON object such as {{\"fs_hz\": 25600}}; got {raw!r}.")
    out = {}
    for key in SIDECAR_KEYS:
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise DataError(f"The sidecar file {side}: '{key}' must be a positive number; got {value!r}.")
            out[key] = float(value)
    ignored = sorted(set(raw) - set(SIDECAR_KEYS))
    if ignored:
        log.info("%s: keys %s ignored (known: %s)", side, ignored, list(SIDECAR_KEYS))
    return out, side
