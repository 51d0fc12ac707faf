"""What a file's named scalars say: sampling rate, shaft speed, bearing fault frequencies.

Scalars are matched by the last part of their name (``bearing.sr`` in a MAT struct, ``bearing/sr``
in HDF5, ``sr`` at the top level), case ignored:

- sampling rate: ``FS_NAMES`` (``fs``, ``fs_hz``, ``sr``, ``sampling_rate``, ``sample_rate`` ...);
  a scalar named ``rate`` counts as one only when no such name exists and it is at least
  :data:`MIN_RATE_HZ` (a shaft rate is far lower). A rate beside the signal in the same struct wins.
- shaft speed: ``rpm``/``speed_rpm``/``shaft_rpm`` (rpm), ``shaft_hz``/``shaft_rate`` (Hz), or
  ``rate`` below :data:`MIN_RATE_HZ` when a sampling rate is stated too (the MFPT files hold
  ``sr`` = 97,656 and ``rate`` = 25, the shaft rate in Hz).
- bearing: ``bpfo``, ``bpfi``, ``bsf``, ``ftf`` (all four). They are orders of shaft speed when
  ``ftf < 1`` (the cage turns slower than the shaft), else Hz at the recorded speed; Hz values
  also give that speed, since ``f_shaft = FTF (BPFO + BPFI) / BPFO`` holds for every bearing.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np

from faultdiag.data.readers.source import FS_NAMES

__all__ = ["leaf", "numeric_scalars", "stated_fs", "stated_meta", "MIN_RATE_HZ"]

MIN_RATE_HZ = 1000.0
RPM_NAMES = ("rpm", "speed_rpm", "shaft_rpm", "shaft_speed_rpm")
SHAFT_HZ_NAMES = ("shaft_hz", "shaft_rate", "shaft_speed_hz", "shaft_frequency_hz")
BEARING_KEYS = ("bpfo", "bpfi", "bsf", "ftf")


def leaf(key: str) -> str:
    """The last part of a dotted or slashed name, lower case."""
    return re.split(r"[./]", str(key))[-1].lower()


def _parent(key: str) -> str:
    parts = re.split(r"[./]", str(key))
    return ".".join(parts[:-1])


def numeric_scalars(other: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric one-element values of ``other`` (arrays, h5py datasets) as floats."""
    out = {}
    for key, value in other.items():
        try:
            arr = np.asarray(value[()] if hasattr(value, "id") else value)
        except (TypeError, ValueError):
            continue
        if arr.dtype.kind in "iuf" and arr.size == 1 and math.isfinite(float(arr.reshape(-1)[0])):
            out[str(key)] = float(arr.reshape(-1)[0])
    return out


def stated_fs(scalars: Mapping[str, float], signal_key: str | None = None) -> tuple[float | None, str, str | None]:
    """``(fs_hz, what, key)`` of the stated sampling rate, else ``(None, "", None)``.

    A rate in the same struct/group as ``signal_key`` is preferred to one elsewhere.
    """
    named = [k for k in scalars if leaf(k) in FS_NAMES]
    if not named:
        named = [k for k in scalars if leaf(k) == "rate" and scalars[k] >= MIN_RATE_HZ]
    if not named:
        return None, "", None
    home = _parent(signal_key) if signal_key else None
    named.sort(key=lambda k: (_parent(k) != home, k.count(".") + k.count("/"), k))
    key = named[0]
    return scalars[key], f"variable '{key}'", key


def _bearing(scalars: Mapping[str, float], home: str | None) -> tuple[dict[str, float] | None, float | None]:
    """Bearing orders and the shaft speed (Hz) that Hz values imply, from bpfo/bpfi/bsf/ftf scalars."""
    found: dict[str, float] = {}
    for key in sorted(scalars, key=lambda k: _parent(k) != home):
        name = leaf(key)
        if name in BEARING_KEYS and name not in found and scalars[key] > 0:
            found[name] = scalars[key]
    if len(found) < 4:
        return None, None
    if found["ftf"] < 1:
        return found, None
    shaft_hz = found["ftf"] * (found["bpfo"] + found["bpfi"]) / found["bpfo"]
    return {k: v / shaft_hz for k, v in found.items()}, shaft_hz


def stated_meta(scalars: Mapping[str, float], fs_key: str | None, signal_key: str | None = None) -> dict[str, Any]:
    """``rpm`` (with ``rpm_source``) and ``bearing_orders`` that ``scalars`` state (see the module docstring)."""
    meta: dict[str, Any] = {}
    home = _parent(signal_key) if signal_key else None
    for key, value in scalars.items():
        name = leaf(key)
        if value <= 0 or key == fs_key or "rpm" in meta:
            continue
        if name in RPM_NAMES:
            meta.update(rpm=value, rpm_source=f"variable '{key}'")
        elif name in SHAFT_HZ_NAMES or (name == "rate" and fs_key is not None and value < MIN_RATE_HZ):
            meta.update(rpm=60.0 * value, rpm_source=f"variable '{key}' (Hz)")
    orders, shaft_hz = _bearing(scalars, home)
    if orders is not None:
        meta["bearing_orders"] = orders
        if shaft_hz is not None and "rpm" not in meta:
            meta.update(rpm=60.0 * shaft_hz, rpm_source="the file's bearing frequencies (Hz)")
    return meta
