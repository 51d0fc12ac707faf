"""What lets a training run stop and resume: ``last.pt`` (model, optimiser, RNG states, history),
the per-epoch ``train_log.csv``, and the clean-up of temporary files a killed write left.

A run resumed from ``last.pt`` continues exactly where it stopped (same numbers as an
uninterrupted run); resuming with a config that differs in a key that changes what is learnt
(:func:`faultdiag.config.config_diff`) is refused with the differing keys named.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from faultdiag.checkpoint import load_torch_file
from faultdiag.config import RunConfig, config_diff, config_to_dict
from faultdiag.distributed import SINGLE, DistContext, all_gather_object
from faultdiag.errors import ConfigError, DataError
from faultdiag.provenance import atomic_write

__all__ = ["TrainState", "Generators", "write_log", "save_last", "restore", "remove_stale_temps"]

log = logging.getLogger(__name__)


@dataclass
class Generators:
    """The random sources a training carries across epochs: batch order, redrawn noise, augmentation."""

    shuffle: torch.Generator
    noise: torch.Generator
    augment: torch.Generator
    target: torch.Generator | None = None  # target batches of domain adaptation


@dataclass
class TrainState:
    """What the loop carries from epoch to epoch (saved in last.pt)."""

    epoch: int = 0  # epochs completed
    best_epoch: int = 0
    best_acc: float = -1.0
    best_loss: float = float("inf")
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] | None = None
    finished: bool = False
    ema: dict[str, torch.Tensor] | None = None  # the weights' moving average (train.ema > 0)


def write_log(path: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())


def save_last(path: Path, cfg: RunConfig, model, optimizer, gens: Generators, state: TrainState,
              ctx: DistContext = SINGLE, extra: torch.nn.Module | None = None) -> None:
    """Rank 0 writes the training state; every rank's noise generator state is gathered into it."""
    noise_states = all_gather_object(gens.noise.get_state(), ctx)
    if not ctx.is_main:
        return
    payload = {
        "format": "faultdiag-train-state", "config": config_to_dict(cfg), "epoch": state.epoch,
        "best_epoch": state.best_epoch, "best_acc": state.best_acc, "best_loss": state.best_loss,
        "best_state": state.best_state, "history": state.history, "finished": state.finished,
        "ema": {k: v.detach().cpu() for k, v in state.ema.items()} if state.ema is not None else None,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "world_size": ctx.world_size,
        "rng": {"shuffle": gens.shuffle.get_state(), "noise": noise_states[0], "noise_ranks": noise_states,
                "augment": gens.augment.get_state(), "torch": torch.get_rng_state(),
                **({"target": gens.target.get_state()} if gens.target is not None else {})},
        "extra": {k: v.detach().cpu() for k, v in extra.state_dict().items()} if extra is not None else None,
    }
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)


def restore(path: Path, cfg: RunConfig, model, optimizer, gens: Generators, ctx: DistContext = SINGLE,
            extra: torch.nn.Module | None = None) -> TrainState:
    """Load ``last.pt`` into ``model``, ``optimizer`` and ``gens``; the state to continue from."""
    raw = load_torch_file(path, map_location="cpu")
    if not isinstance(raw, dict) or raw.get("format") != "faultdiag-train-state":
        raise DataError(f"The file '{path}' is not a faultdiag training state (last.pt).")
    diff = config_diff(raw["config"], config_to_dict(cfg))
    if diff:
        raise ConfigError(f"Cannot resume from '{path}': the config differs from the interrupted run's "
                          f"({'; '.join(diff)}). Use the same config or a new --out folder.")
    if int(raw.get("world_size", 1)) != ctx.world_size:
        raise ConfigError(f"Cannot resume from '{path}': it was written by {raw.get('world_size', 1)} process(es), "
                          f"this run has {ctx.world_size}. Resume with the same number of processes.")
    try:
        model.load_state_dict(raw["model"])
        if extra is not None:
            extra.load_state_dict(raw["extra"])
        optimizer.load_state_dict(raw["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise DataError(f"The training state '{path}' does not fit this model: {str(exc).splitlines()[0]}") from None
    gens.shuffle.set_state(raw["rng"]["shuffle"])
    gens.noise.set_state(raw["rng"].get("noise_ranks", [raw["rng"]["noise"]])[ctx.rank])
    if "augment" in raw["rng"]:  # absent from files written before augmentation existed
        gens.augment.set_state(raw["rng"]["augment"])
    if gens.target is not None:
        gens.target.set_state(raw["rng"]["target"])
    torch.set_rng_state(raw["rng"]["torch"])
    log.info("resuming %s after epoch %d", path.parent, raw["epoch"])
    return TrainState(epoch=raw["epoch"], best_epoch=raw["best_epoch"], best_acc=raw["best_acc"],
                  best_loss=raw["best_loss"], best_state=raw["best_state"], history=raw["history"],
                  finished=raw["finished"], ema=_on_device(raw.get("ema"), model))


def _on_device(ema: dict[str, torch.Tensor] | None, model) -> dict[str, torch.Tensor] | None:
    if ema is None:
        return None
    device = next(iter(model.state_dict().values())).device
    return {k: v.to(device) for k, v in ema.items()}


def remove_stale_temps(out_dir: Path) -> None:
    """Delete temporary files an atomic write left behind when its process was killed."""
    for name in ("checkpoint.pt", "last.pt", "train_log.csv", "config.toml", "metrics.json"):
        for tmp in out_dir.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
