"""Argument checks shared by every public boundary: one message template, one place.

Each check raises :class:`~faultdiag.errors.ConfigError` naming the parameter, the constraint and
the value received ("The 'window_len' parameter must be a positive int; got -3.") and returns the
value, converted where that is harmless (a numpy int becomes an int).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from faultdiag.errors import ConfigError

__all__ = ["positive_int", "nonnegative_int", "positive_number", "nonnegative_number", "choice", "fraction"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int > 0."""
    if not _is_int(value) or value <= 0:
        raise ConfigError(f"The '{name}' parameter must be a positive int; got {value!r}.")
    return int(value)


def nonnegative_int(name: str, value: Any) -> int:
    """``value`` as an int >= 0."""
    if not _is_int(value) or value < 0:
        raise ConfigError(f"The '{name}' parameter must be an int >= 0; got {value!r}.")
    return int(value)


def positive_number(name: str, value: Any) -> float:
    """``value`` as a finite float > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"The '{name}' parameter must be a positive number; got {value!r}.")
    return float(value)


def nonnegative_number(name: str, value: Any) -> float:
    """``value`` as a finite float >= 0."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"The '{name}' parameter must be a number >= 0; got {value!r}.")
    return float(value)


def fraction(name: str, value: Any, *, closed_high: bool = False) -> float:
    """``value`` in ``[0, 1)`` (``[0, 1]`` with ``closed_high``)."""
    ok = _is_number(value) and 0 <= value and (value <= 1 if closed_high else value < 1)
    if not ok:
        raise ConfigError(f"The '{name}' parameter must be a number in [0, 1{']' if closed_high else ')'}; got {value!r}.")
    return float(value)


def choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"The '{name}' parameter must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value
