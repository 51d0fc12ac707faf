"""Exceptions raised at faultdiag's public boundaries.

Every message names the file or parameter, the constraint and the value received, e.g.
"The 'window_len' parameter must be a positive int; got -3."  The CLI maps ``exit_code``
to the process exit status.
"""


class FaultdiagError(Exception):
    """Base class of every error faultdiag raises on purpose."""

    exit_code = 1


class DataError(FaultdiagError, ValueError):
    """A data file or array is missing, unreadable or invalid (exit status 1)."""

    exit_code = 1


class ConfigError(FaultdiagError, ValueError):
    """A parameter, option or configuration value is invalid (exit status 2)."""

    exit_code = 2
