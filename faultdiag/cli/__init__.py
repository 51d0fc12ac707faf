"""The faultdiag command line: the only place that parses arguments and reads config files.

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its parsers and sets ``func`` (a handler taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from faultdiag import __version__
from faultdiag.errors import FaultdiagError

# Command modules, in the order their commands appear in --help.
_COMMAND_MODULES = (
    "faultdiag.cli.run",
    "faultdiag.cli.diagnose",
    "faultdiag.cli.data",
    "faultdiag.cli.models",
    "faultdiag.cli.mnist",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faultdiag",
        description="Diagnose machine faults from vibration signals with Deep Residual Shrinkage Networks.",
    )
    parser.add_argument("--version", action="version", version=f"faultdiag {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FaultdiagError as exc:
        print(f"faultdiag: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("faultdiag: interrupted", file=sys.stderr)
        return 130
