"""Fit loop: config → windows → (noise) → model input → trained model, checkpoints and a log.

Data flow: :func:`~faultdiag.prepare.prepare` loads recordings, splits them by time region into
raw train/val/test windows and fits the standardiser on the training windows only;
:func:`~faultdiag.prepare.to_model_input` turns raw (possibly noisy) windows into model input
(both re-exported here).  :func:`train_model` runs the epochs, keeps the best-validation weights
in ``checkpoint.pt`` and everything needed to resume in ``last.pt``
(:mod:`faultdiag.train_state`).

Randomness: all of it flows from ``cfg.seed`` through dedicated ``torch.Generator`` objects
(weight init, shuffling, training noise, validation noise), so the same seed gives the same
numbers, and a run resumed from ``last.pt`` gives the same result as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from faultdiag.checkpoint import save_checkpoint
from faultdiag.config import RunConfig, config_to_dict, save_config
from faultdiag.data.windows import WindowSet
from faultdiag.distributed import (SINGLE, DistContext, all_reduce_sum, check_batch_size, init_from_env, shard,
                                   shutdown, wrap_model)
from faultdiag.errors import ConfigError
from faultdiag.prepare import (Prepared, _check_lazy_noise, _is_lazy, add_window_noise, derive_seed, prepare,
                               rms_stats, signal_stats, to_model_input)
from faultdiag.preflight import check_free_space, check_output_dir, estimate_train_bytes
from faultdiag.schedules import learning_rate, make_optimizer, set_learning_rate
from faultdiag.train_state import _remove_stale_temps, _restore, _save_last, _State, _write_log

__all__ = ["TrainResult", "train_model", "resolve_device", "Prepared", "prepare", "to_model_input",
           "add_window_noise", "derive_seed", "signal_stats", "rms_stats"]

log = logging.getLogger(__name__)

# Tags that derive independent seeds from cfg.seed, one per source of randomness.
_INIT, _SHUFFLE, _TRAIN_NOISE, _VAL_NOISE = 0, 1, 2, 3


@dataclass(frozen=True, eq=False)
class TrainResult:
    """``model``: best-validation weights, eval mode. ``history``: one dict per epoch (as in train_log.csv)."""

    model: nn.Module
    checkpoint_path: Path
    history: list[dict[str, Any]]
    prepared: Prepared
    best_epoch: int


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("The 'device' parameter is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'.")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"The 'device' parameter must be 'auto', 'cpu' or 'cuda'; got {device!r}.")
    return torch.device(device)


@contextlib.contextmanager
def _deterministic(seed: int, threads: int, device: torch.device) -> Iterator[None]:
    """Seeded global RNG, deterministic kernels and ``threads`` for the block; all restored afterwards."""
    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, _INIT))
        try:
            if threads > 0:
                torch.set_num_threads(threads)
            if device.type == "cuda":  # CPU kernels used here are deterministic; the switch costs seconds to import
                torch.use_deterministic_algorithms(True, warn_only=True)
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            yield
        finally:
            torch.set_num_threads(prev_threads)
            if device.type == "cuda":
                torch.use_deterministic_algorithms(prev_det)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn


def _build(cfg: RunConfig, prepared: Prepared) -> tuple[nn.Module, dict[str, Any]]:
    from faultdiag.models.networks import build_model

    kwargs = dict(dims=1, in_channels=len(prepared.channels), num_classes=len(prepared.class_names),
                  seed=derive_seed(cfg.seed, _INIT), **cfg.model.model_kwargs())
    model = build_model(cfg.model.name, **kwargs)
    build_kwargs = dict(getattr(model, "build_kwargs", None) or kwargs)
    build_kwargs.pop("name", None)
    return model, build_kwargs


def _inputs(ws: WindowSet, prepared: Prepared, cfg: RunConfig, tag: int) -> torch.Tensor:
    """Model input of a split: clean, or with noise fixed once by seed (noise.train = fixed/fresh)."""
    X = torch.from_numpy(ws.X)
    if cfg.noise.train != "clean" and len(ws):
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, tag))
        X = add_window_noise(X, cfg.noise.train_snr_db, cfg.noise.kind, cfg.noise.per,
                             torch.from_numpy(ws.groups), gen)
    return to_model_input(X, prepared, prepared.normalize)


@torch.no_grad()
def _score(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode on inputs ``X (N, C, L)``."""
    loss_sum, correct, n = _score_sums(model, ((X[i : i + batch_size], y[i : i + batch_size])
                                               for i in range(0, len(y), batch_size)), device)
    return (float("nan"), float("nan")) if n == 0 else (loss_sum / n, correct / n)


@torch.no_grad()
def _score_sums(model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
                device: torch.device) -> tuple[float, int, int]:
    """(summed cross-entropy, correct, count) of ``model`` in eval mode over ``(X (B, C, L), y (B,))`` batches."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for xb, yb in batches:
        logits = model(xb.to(device))
        yb = yb.to(device)
        loss_sum += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
        n += len(yb)
    return loss_sum, correct, n


def _batches(n: int, batch_size: int, world_size: int = 1) -> list[tuple[int, int]]:
    """Batch bounds; a trailing batch with fewer than two windows per rank is dropped (BatchNorm needs two)."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    short = bounds and bounds[-1][1] - bounds[-1][0] < 2 * world_size
    return bounds[:-1] if len(bounds) > 1 and short else bounds


def _val_batches(val: dict, cfg: RunConfig, prepared: Prepared, ctx: DistContext) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's validation batches: slices of precomputed inputs, or windows read from the cache.

    Cached windows get noise from a generator re-seeded for every scoring, so each epoch sees
    the same validation noise (fixed by seed, as in memory).
    """
    bs = cfg.train.eval_batch_size
    if not val["lazy"]:
        X, y = val["X"][ctx.rank :: ctx.world_size], val["y"][ctx.rank :: ctx.world_size]
        yield from ((X[i : i + bs], y[i : i + bs]) for i in range(0, len(y), bs))
        return
    idx = np.arange(ctx.rank, len(prepared.val), ctx.world_size)
    gen = torch.Generator().manual_seed(derive_seed(derive_seed(cfg.seed, _VAL_NOISE), ctx.rank))
    for i in range(0, len(idx), bs):
        raw = torch.from_numpy(prepared.val.X[idx[i : i + bs]])
        if cfg.noise.train != "clean":
            raw = add_window_noise(raw, cfg.noise.train_snr_db, cfg.noise.kind, "window", None, gen)
        yield to_model_input(raw, prepared, prepared.normalize), torch.from_numpy(prepared.val.y[idx[i : i + bs]])


def _batch_input(data: dict, idx: torch.Tensor, cfg: RunConfig, prepared: Prepared, gens: dict) -> torch.Tensor:
    """Model input of training windows ``idx``: precomputed, or raw (from memory or the cache) + fresh noise."""
    if not data["fresh"] and not data["lazy"]:
        return data["X"][idx]
    raw = torch.from_numpy(prepared.train.X[idx.numpy()]) if data["lazy"] else data["raw"][idx]
    if data["fresh"]:
        raw = add_window_noise(raw, cfg.noise.train_snr_db, cfg.noise.kind, cfg.noise.per,
                               data["groups"][idx], gens["noise"])
    return to_model_input(raw, prepared, prepared.normalize)


def _run_epoch(net, optimizer, cfg: RunConfig, prepared: Prepared, data: dict, gens: dict,
               epoch: int, device: torch.device, progress: bool, ctx: DistContext = SINGLE) -> dict[str, float]:
    """One pass over the training windows in a seeded random order; returns mean loss and accuracy.

    Every rank draws the same order; rank ``r`` trains on its shard of each global batch and the
    loss is scaled so that DDP's gradient average is the gradient of the global batch mean.
    """
    from tqdm.auto import tqdm

    net.train()
    n = len(data["y"])
    perm = torch.randperm(n, generator=gens["shuffle"])
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(_batches(n, cfg.train.batch_size, ctx.world_size), desc=f"{cfg.model.name} epoch {epoch}/{cfg.train.epochs}",
               disable=not progress, leave=False, unit="batch")
    for start, stop in bar:
        idx = shard(perm[start:stop], ctx)
        xb, yb = _batch_input(data, idx, cfg, prepared, gens).to(device), data["y"][idx].to(device)
        logits = net(xb)
        if ctx.enabled:
            loss = nn.functional.cross_entropy(logits, yb, reduction="sum") * (ctx.world_size / (stop - start))
        else:
            loss = nn.functional.cross_entropy(logits, yb)
        if not torch.isfinite(loss.detach()):
            raise ConfigError(f"Training diverged: the loss is {float(loss)} in epoch {epoch}; lower 'train.lr' "
                              f"(now {cfg.train.lr}) or set 'train.grad_clip'.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.train.grad_clip)
        optimizer.step()
        loss_sum += loss.item() * ((stop - start) / ctx.world_size if ctx.enabled else len(idx))
        correct += int((logits.argmax(1) == yb).sum())
        seen += len(idx)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
    bar.close()
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], ctx, device)
    return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1)}


def _save_best(path: Path, model, build_kwargs, cfg: RunConfig, prepared: Prepared, metrics: dict) -> None:
    save_checkpoint(
        path, model=model, model_name=cfg.model.name, model_kwargs=build_kwargs,
        class_names=prepared.class_names, fs_hz=prepared.fs_hz, window_len=prepared.window_len,
        hop=prepared.hop, channels=prepared.channels, normalizer=prepared.normalizer_dict(),
        signal_stats=prepared.signal_stats, config=config_to_dict(cfg),
        metrics={**metrics, "data_fingerprint": prepared.fingerprint},
    )


def train_model(cfg: RunConfig, out_dir: str | os.PathLike, *, prepared: Prepared | None = None,
                resume: bool = False, progress: bool = True,
                on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` and keep the best-validation-accuracy weights.

    Writes ``out_dir/config.toml`` (resolved config), ``checkpoint.pt`` (best weights, see
    :mod:`faultdiag.checkpoint`), ``last.pt`` (model, optimiser, RNG states, epoch, best so far,
    history: what ``resume=True`` continues from) and ``train_log.csv`` (one row per epoch).
    Training noise follows ``cfg.noise`` (clean, fixed once by seed, or fresh every batch);
    validation windows get the same kind and SNR of noise, fixed by seed.
    ``on_epoch_end(row)`` is called after each epoch's files are written.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel,
    each rank trains on its shard of every batch (:mod:`faultdiag.distributed`), metrics are
    summed over ranks and only rank 0 writes files.  Before any data is loaded the output folder
    is checked for writability, and before the first epoch the disk for free space.
    """
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    ctx, device = init_from_env(device)
    created = not out_dir.exists()
    try:
        check_batch_size(cfg.train.batch_size, ctx)
        if ctx.is_main:
            check_output_dir(out_dir)
        return _train(cfg, out_dir, prepared, resume, progress and ctx.is_main, on_epoch_end, ctx, device)
    except BaseException:
        if created and ctx.is_main and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a run that failed before writing anything leaves nothing behind
        raise
    finally:
        shutdown(ctx)


def _train(cfg: RunConfig, out_dir: Path, prepared: Prepared | None, resume: bool, progress: bool,
           on_epoch_end: Callable | None, ctx: DistContext, device: torch.device) -> TrainResult:
    prepared = prepared if prepared is not None else prepare(cfg)
    lazy = _is_lazy(prepared.train)
    if lazy:
        _check_lazy_noise(cfg)
    ckpt_path, last_path = out_dir / "checkpoint.pt", out_dir / "last.pt"
    with _deterministic(cfg.seed, cfg.train.threads, device):
        model, build_kwargs = _build(cfg, prepared)
        model.to(device)
        if ctx.is_main:
            n_values = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
            check_free_space(out_dir, estimate_train_bytes(n_values, cfg.train.epochs, cfg.train.optimizer), "the training")
        net = wrap_model(model, ctx, device)
        optimizer = make_optimizer(model.parameters(), cfg.train)
        noise_seed = derive_seed(cfg.seed, _TRAIN_NOISE)
        gens = {"shuffle": torch.Generator().manual_seed(derive_seed(cfg.seed, _SHUFFLE)),
                "noise": torch.Generator().manual_seed(noise_seed if ctx.rank == 0 else derive_seed(noise_seed, ctx.rank))}
        fresh = cfg.noise.train == "fresh"
        data = {"fresh": fresh, "lazy": lazy, "y": torch.from_numpy(prepared.train.y),
                "raw": torch.from_numpy(prepared.train.X) if fresh and not lazy else None,
                "groups": torch.from_numpy(prepared.train.groups),
                "X": None if fresh or lazy else _inputs(prepared.train, prepared, cfg, _TRAIN_NOISE)}
        val = {"lazy": lazy, "y": torch.from_numpy(prepared.val.y),
               "X": None if lazy else _inputs(prepared.val, prepared, cfg, _VAL_NOISE)}
        if resume and last_path.is_file():
            state = _restore(last_path, cfg, model, optimizer, gens, device, ctx)
        else:
            if resume:
                log.info("no %s to resume from; starting afresh", last_path)
            state = _State(history=[])
        if ctx.is_main:
            _remove_stale_temps(out_dir)
            save_config(cfg, out_dir / "config.toml")
        save_best = (lambda m: _save_best(ckpt_path, m, build_kwargs, cfg, prepared, _best_metrics(state))) \
            if ctx.is_main else None
        while not state.finished and state.epoch < cfg.train.epochs:
            _one_epoch(net, model, optimizer, cfg, prepared, data, val, gens, state, device, progress, save_best, ctx)
            if ctx.is_main:
                _write_log(out_dir / "train_log.csv", state.history)
            _save_last(last_path, cfg, model, optimizer, gens, state, ctx)
            if on_epoch_end is not None:
                on_epoch_end(state.history[-1])
        model.load_state_dict(state.best_state)
        model.eval()
    return TrainResult(model=model, checkpoint_path=ckpt_path, history=state.history, prepared=prepared,
                       best_epoch=state.best_epoch)


def _best_metrics(state: _State) -> dict[str, Any]:
    row = state.history[state.best_epoch - 1]
    return {"best_epoch": state.best_epoch, "val_accuracy": row["val_acc"], "val_loss": row["val_loss"],
            "train_accuracy": row["train_acc"], "train_loss": row["train_loss"],
            "epochs_run": state.epoch, "finished": state.finished}


def _one_epoch(net, model, optimizer, cfg, prepared, data, val, gens, state: _State, device, progress,
               save_best, ctx: DistContext = SINGLE) -> None:
    """Run epoch ``state.epoch + 1``, score it on validation, update best/early stopping in ``state``.

    ``net`` is what trains (``model`` or its DDP wrapper); validation sums are reduced over ranks,
    so every rank takes the same best/stop decisions.  ``save_best`` is None on ranks other than 0.
    """
    t0 = time.perf_counter()
    lr = learning_rate(state.epoch, cfg.train)
    set_learning_rate(optimizer, lr)
    epoch = state.epoch + 1
    row = {"epoch": epoch, "lr": lr, **_run_epoch(net, optimizer, cfg, prepared, data, gens, epoch, device, progress, ctx)}
    sums = _score_sums(model, _val_batches(val, cfg, prepared, ctx), device)
    loss_sum, correct, n_val = all_reduce_sum(sums, ctx, device)
    val_loss, val_acc = (loss_sum / n_val, correct / n_val) if n_val else (float("nan"), float("nan"))
    improved = n_val == 0 or val_acc > state.best_acc or (val_acc == state.best_acc and val_loss < state.best_loss)
    row.update(val_loss=val_loss, val_acc=val_acc, best=improved, time_s=round(time.perf_counter() - t0, 3))
    state.history.append(row)
    state.epoch = epoch
    if improved:
        state.best_epoch, state.best_acc, state.best_loss = epoch, val_acc, val_loss
        state.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    patience = cfg.train.patience
    state.finished = epoch >= cfg.train.epochs or (patience > 0 and epoch - state.best_epoch >= patience)
    if (improved or state.finished) and save_best is not None:
        current = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(state.best_state)
        save_best(model)
        model.load_state_dict(current)
    log.info("epoch %d/%d lr %.3g train loss %.4f acc %.3f val loss %.4f acc %.3f%s", epoch, cfg.train.epochs, lr,
             row["train_loss"], row["train_acc"], val_loss, val_acc, " *" if improved else "")
