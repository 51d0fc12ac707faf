"""The fit loop: a model, an optimiser, batch sources and a :class:`~faultdiag.config.TrainConfig`.

:func:`fit` runs epochs until ``cfg.epochs`` or early stopping, keeps the best-validation
weights in its :class:`~faultdiag.training.state.TrainState`, and calls ``on_epoch`` after each
epoch (the caller writes logs and checkpoints there).  Extra loss terms (e.g. domain adaptation
on unlabelled target windows) plug in as :class:`LossTerm` callables that receive the
penultimate features of each training batch.

Every rank draws the same epoch order from the shuffle generator; rank ``r`` trains on its shard
of each global batch and the loss is scaled so that DDP's gradient average is the gradient of
the global batch mean (:mod:`faultdiag.distributed`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Protocol

import torch
from torch import nn

from faultdiag.config import TrainConfig
from faultdiag.distributed import SINGLE, DistContext, all_reduce_sum, shard
from faultdiag.errors import ConfigError
from faultdiag.models.features import penultimate
from faultdiag.training.batches import Batch, BatchSource
from faultdiag.training.schedules import learning_rate, set_learning_rate
from faultdiag.training.state import TrainState

__all__ = ["LossTerm", "fit", "run_epoch", "score", "batch_bounds", "ema_decay", "update_ema"]

log = logging.getLogger(__name__)

POSTFIX_EVERY = 16
"""Batches between two updates of the progress bar's loss and accuracy (each waits for the device; the
last batch of an epoch updates it too)."""


class LossTerm(Protocol):
    """An extra loss on a training step: ``term(model, features (B, D), batch, progress) -> scalar``.

    ``features`` are the inputs of the model's final ``fc`` layer for ``batch`` (with gradients);
    ``progress`` runs from 0 to 1 over the training (for weight schedules).  A term may draw its
    own batches (e.g. unlabelled target windows) and run them through ``model``.
    """

    def __call__(self, model: nn.Module, features: torch.Tensor, batch: Batch, progress: float) -> torch.Tensor: ...


def batch_bounds(n: int, batch_size: int, world_size: int = 1) -> list[tuple[int, int]]:
    """Batch bounds; a trailing batch with fewer than two windows per rank is dropped (BatchNorm needs two)."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    short = bounds and bounds[-1][1] - bounds[-1][0] < 2 * world_size
    return bounds[:-1] if len(bounds) > 1 and short else bounds


def _step_loss(net: nn.Module, model: nn.Module, batch: Batch, extra: LossTerm | None, progress: float,
               scale: float | None, smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of one batch: cross-entropy (summed and scaled under DDP) plus the extra term."""
    with penultimate(model) if extra is not None else contextlib.nullcontext() as feats:
        logits = net(batch.x)
    if scale is None:
        loss = nn.functional.cross_entropy(logits, batch.y, label_smoothing=smoothing)
    else:
        loss = nn.functional.cross_entropy(logits, batch.y, reduction="sum", label_smoothing=smoothing) * scale
    if extra is not None:
        loss = loss + extra(model, feats[0], batch, progress)
    return loss, logits


def ema_decay(step: int, decay: float) -> float:
    """The moving average's decay at optimiser step ``step`` (0-based): ``decay``, lower early on."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: dict[str, torch.Tensor], model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * weights`` for floating-point entries; others copied."""
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            ema[k].lerp_(v.detach(), 1.0 - decay)
        else:
            ema[k].copy_(v)


def run_epoch(net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer, source: BatchSource,
              cfg: TrainConfig, *, shuffle: torch.Generator, epoch: int, device: torch.device,
              ctx: DistContext = SINGLE, extra: LossTerm | None = None, desc: str = "",
              progress: bool = False, ema: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """One pass over ``source`` in a seeded random order; returns mean loss and accuracy.

    ``net`` is what trains (``model`` or its DDP wrapper); ``ema``, when given, is updated
    after every step (:func:`update_ema`, decay ``cfg.ema``).
    """
    from tqdm.auto import tqdm

    net.train()
    n = len(source)
    perm = torch.randperm(n, generator=shuffle).to(source.index_device)
    # running sums stay on the device (float64: the same figures as Python floats): no wait for the
    # device in the loop; the progress bar reads them every POSTFIX_EVERY batches, the epoch once
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    bounds = batch_bounds(n, cfg.batch_size, ctx.world_size)
    bar = tqdm(bounds, desc=f"{desc} epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False, unit="batch")
    for step, (start, stop) in enumerate(bar):
        b = source.batch(shard(perm[start:stop], ctx))
        batch = Batch(b.x.to(device), b.y.to(device), b.index)
        progress_frac = ((epoch - 1) + step / len(bounds)) / cfg.epochs
        scale = ctx.world_size / (stop - start) if ctx.enabled else None
        loss, logits = _step_loss(net, model, batch, extra, progress_frac, scale, cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        optimizer.step()
        if ema is not None:
            update_ema(ema, model, ema_decay((epoch - 1) * len(bounds) + step, cfg.ema))
        loss_sum += loss.detach().double() * ((stop - start) / ctx.world_size if ctx.enabled else len(batch.y))
        correct += (logits.argmax(1) == batch.y).sum()
        seen += len(batch.y)
        if progress and ((step + 1) % POSTFIX_EVERY == 0 or step + 1 == len(bounds)):
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", acc=f"{int(correct) / seen:.3f}", refresh=False)
    bar.close()
    if not torch.isfinite(loss_sum):
        raise ConfigError(f"Training diverged: the training loss is {float(loss_sum)} in epoch {epoch}; lower "
                          f"'train.lr' (now {cfg.lr}) or set 'train.grad_clip'.")
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], ctx, device)
    return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1)}


@torch.no_grad()
def score(model: nn.Module, source: BatchSource, batch_size: int, device: torch.device,
          ctx: DistContext = SINGLE) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode on ``source``, summed over ranks (NaN if empty)."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    for batch in source.scan(batch_size, ctx):
        logits = model(batch.x.to(device))
        y = batch.y.to(device)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    loss_sum, correct, n = all_reduce_sum([loss_sum, correct, n], ctx, device)
    return (loss_sum / n, correct / n) if n else (float("nan"), float("nan"))


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, train: BatchSource, val: BatchSource,
        cfg: TrainConfig, state: TrainState, *, shuffle: torch.Generator, device: torch.device,
        net: nn.Module | None = None, ctx: DistContext = SINGLE, extra: LossTerm | None = None,
        on_epoch: Callable[[TrainState, bool], None] | None = None, desc: str = "", progress: bool = False) -> TrainState:
    """Train until ``cfg.epochs`` or ``cfg.patience`` epochs without a better validation accuracy.

    Continues from ``state`` (epochs already done, best so far, history).  After each epoch the
    history gains a row (``epoch, lr, train_loss, train_acc, val_loss, val_acc, best, time_s``),
    the best weights are kept in ``state.best_state`` (ties broken by the lower validation loss),
    and ``on_epoch(state, improved)`` is called.  With ``cfg.ema`` > 0 the moving average of the
    weights (``state.ema``) is what is validated and kept.  Returns ``state``.
    """
    net = net if net is not None else model
    if cfg.ema > 0 and state.ema is None:
        state.ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    while not state.finished and state.epoch < cfg.epochs:
        t0 = time.perf_counter()
        lr = learning_rate(state.epoch, cfg)
        set_learning_rate(optimizer, lr)
        epoch = state.epoch + 1
        row = {"epoch": epoch, "lr": lr, **run_epoch(net, model, optimizer, train, cfg, shuffle=shuffle, epoch=epoch,
                                                      device=device, ctx=ctx, extra=extra, desc=desc, progress=progress,
                                                      ema=state.ema)}
        with _weights(model, state.ema):
            val_loss, val_acc = score(model, val, cfg.eval_batch_size, device, ctx)
            improved = len(val) == 0 or val_acc > state.best_acc or (val_acc == state.best_acc and val_loss < state.best_loss)
            if improved:
                state.best_epoch, state.best_acc, state.best_loss = epoch, val_acc, val_loss
                state.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        row.update(val_loss=val_loss, val_acc=val_acc, best=improved, time_s=round(time.perf_counter() - t0, 3))
        state.history.append(row)
        state.epoch = epoch
        state.finished = epoch >= cfg.epochs or (cfg.patience > 0 and epoch - state.best_epoch >= cfg.patience)
        log.info("epoch %d/%d lr %.3g train loss %.4f acc %.3f val loss %.4f acc %.3f%s", epoch, cfg.epochs, lr,
                 row["train_loss"], row["train_acc"], val_loss, val_acc, " *" if improved else "")
        if on_epoch is not None:
            on_epoch(state, improved)
    return state


@contextlib.contextmanager
def _weights(model: nn.Module, weights: dict[str, torch.Tensor] | None):
    """``model`` holds ``weights`` inside the block (its own restored after); no-op for None."""
    if weights is None:
        yield
        return
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(weights)
    try:
        yield
    finally:
        model.load_state_dict(own)
