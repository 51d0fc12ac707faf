"""Options of the noisy-MNIST demo: :class:`DemoConfig` (the article's protocol by default) and its TOML file.

Precedence in one step: command line > ``--config`` TOML file (table ``[mnist_demo]``, e.g.
``configs/mnist_seed.toml``) > the defaults.  Unknown tables or keys are errors naming the file.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Optional

from faultdiag import validate
from faultdiag.config.io import read_toml
from faultdiag.errors import ConfigError

__all__ = ["DemoConfig", "DEMO_MODELS", "BN_STATS", "PRECISIONS", "load_demo_config"]

DEMO_MODELS = ("drsn-cw", "drsn-cs", "resnet")
BN_STATS = ("precise", "running")
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class DemoConfig:
    """Options of the demo; the defaults are the article's protocol."""

    models: tuple[str, ...] = ("drsn-cw", "resnet")
    preset: str = "seed-mnist"
    units: int = 1
    epochs: int = 5
    batch_size: int = 100
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-7
    l2: float = 1e-4
    noise_scale: float = 0.5
    seed: int = 0
    n_seeds: int = 1
    limit: Optional[int] = None
    eval_each_epoch: bool = True
    eval_batch_size: int = 1000
    num_threads: Optional[int] = None
    compile: bool = False
    bn_stats: str = "precise"
    precision: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        for name in self.models:
            if name not in DEMO_MODELS:
                raise ConfigError(f"The 'models' parameter must list names from {DEMO_MODELS}; got {name!r}.")
        if not self.models:
            raise ConfigError("The 'models' parameter must name at least one model; got none.")
        for name in ("units", "epochs", "batch_size", "n_seeds", "eval_batch_size"):
            validate.positive_int(name, getattr(self, name))
        for name in ("limit", "num_threads"):
            if getattr(self, name) is not None:
                validate.positive_int(name, getattr(self, name))
        validate.nonnegative_int("seed", self.seed)
        validate.choice("bn_stats", self.bn_stats, BN_STATS)
        validate.choice("precision", self.precision, PRECISIONS)
        for name in ("lr", "adam_eps", "l2", "noise_scale", "beta1", "beta2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"The '{name}' parameter must be a finite number >= 0; got {value!r}.")


def load_demo_config(path: str | os.PathLike | None, overrides: dict[str, Any]) -> DemoConfig:
    """``overrides`` (e.g. from the command line) > the ``[mnist_demo]`` table of ``path`` > defaults."""
    options: dict[str, Any] = {}
    if path is not None:
        table = read_toml(path)
        unknown_tables = sorted(set(table) - {"mnist_demo"})
        if unknown_tables:
            raise ConfigError(f"Config file '{path}' has unknown table(s) {unknown_tables}; expected [mnist_demo].")
        options = dict(table.get("mnist_demo", {}))
        fields = {f.name for f in dataclasses.fields(DemoConfig)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ConfigError(f"Config file '{path}' has unknown key(s) {unknown} in [mnist_demo]; "
                              f"valid keys are {sorted(fields)}.")
    options.update(overrides)
    if "models" in options:
        options["models"] = tuple(options["models"])
    return DemoConfig(**options)
