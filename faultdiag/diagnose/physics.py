"""The physics side of :mod:`faultdiag.diagnose`: which bearing, which shaft speed, and the envelope check.

Bearing, first found wins: the caller's (``--bearing``/``--bearing-geometry``/``--bearing-orders``,
or an ``--info`` CSV); the fault frequencies the file stores (``bpfo``/``bpfi``/``bsf``/``ftf``);
the checkpoint's ``data.bearing``; the training source's own (CWRU and the simulator: the CWRU
drive-end 6205, or the fan-end 6203 for a fan-end channel; HIT-SM: 6205). Without one the check
does not run, and the row says so.

Shaft speed: the caller's ``rpm`` (or the ``--info`` CSV's); the file's (a CWRU ``RPM`` variable,
an MFPT ``rate``, a sidecar JSON, a HIT-SM file name); else, within ``rpm_range`` when given, an
estimate from the spectrum (:mod:`faultdiag.speed`, with its comb score); else none, and the row
says why the check did not run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from faultdiag.bearings import Bearing, parse_bearing
from faultdiag.errors import FaultdiagError

__all__ = ["PhysicsInputs", "default_bearing", "resolve_inputs", "run_check"]

_SOURCE_BEARINGS = {"simulated": "cwru-de", "cwru": "cwru-de", "hitsm": "6205"}
NO_SPEED = "no shaft speed: pass --rpm, an --info CSV (file,rpm), or --rpm-range LO:HI to estimate it from the spectrum"
NO_BEARING = "no bearing: pass --bearing (e.g. 6205), --bearing-geometry or --bearing-orders, or set data.bearing"


@dataclass(frozen=True)
class PhysicsInputs:
    """What the envelope check of one file uses: ``rpm`` and ``bearing`` (or None) and where each came from."""

    rpm: float | None
    rpm_source: str
    bearing: Bearing | None
    bearing_source: str
    rpm_range: tuple[float, float] | None = None


def default_bearing(config: dict[str, Any]) -> tuple[Bearing | None, str]:
    """The bearing a checkpoint's config names (``data.bearing``) or its source implies, and the reason."""
    data = (config or {}).get("data", {})
    if data.get("bearing"):
        return parse_bearing(data["bearing"], "data.bearing"), "checkpoint's data.bearing"
    source = data.get("source")
    if source in _SOURCE_BEARINGS:
        name = "cwru-fe" if source in ("cwru", "simulated") and str(data.get("channel")).upper() == "FE" else _SOURCE_BEARINGS[source]
        return parse_bearing(name), f"the {source} training data's bearing"
    return None, ""


def _meta_rpm(meta: dict[str, Any]) -> float | None:
    try:
        value = float(np.asarray(meta.get("rpm")).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def resolve_inputs(meta: dict[str, Any], *, rpm: float | None, rpm_source: str, bearing: Bearing | None,
                   bearing_source: str, fallback: tuple[Bearing | None, str],
                   rpm_range: tuple[float, float] | None) -> PhysicsInputs:
    """Pick the speed and bearing of one file (see the module docstring); ``meta`` is the file's metadata."""
    if rpm is None and _meta_rpm(meta) is not None:
        rpm, rpm_source = _meta_rpm(meta), f"file ({meta.get('rpm_source') or 'rpm'})"
    if bearing is None and meta.get("bearing_orders"):
        bearing = parse_bearing("orders:" + ",".join(f"{k}={v:.6g}" for k, v in meta["bearing_orders"].items()))
        bearing_source = "file's fault frequencies"
    if bearing is None:
        bearing, bearing_source = fallback
    return PhysicsInputs(rpm, rpm_source, bearing, bearing_source, rpm_range)


def run_check(excerpt: np.ndarray, fs_hz: float, inputs: PhysicsInputs) -> tuple[dict | None, str, float | None, str]:
    """``(envelope report or None, note, rpm used, its source)`` for one file's excerpt ``(T,)``."""
    from faultdiag.envelope import fault_frequency_report
    from faultdiag.speed import estimate_shaft_speed

    rpm, source, notes = inputs.rpm, inputs.rpm_source, []
    if rpm is None and inputs.rpm_range is not None:
        try:
            estimate = estimate_shaft_speed(excerpt, fs_hz, inputs.rpm_range)
        except FaultdiagError as exc:
            return None, f"speed estimate failed: {exc}", None, ""
        notes.append(estimate.describe())
        if estimate.accepted:
            rpm, source = estimate.rpm, f"spectrum estimate (comb {estimate.score_db:.1f} dB)"
    if inputs.bearing is None:
        return None, "; ".join([*notes, NO_BEARING]), rpm, source
    if rpm is None:
        return None, "; ".join([*notes, NO_SPEED]), None, ""
    try:
        report = fault_frequency_report(excerpt, fs_hz, rpm / 60.0, inputs.bearing)
    except FaultdiagError as exc:
        return None, "; ".join([*notes, f"envelope check failed: {exc}"]), rpm, source
    return report, "; ".join(notes), rpm, source
