"""The seed article's noisy-MNIST demo: DRSN-CW against ResNet, same protocol, fast on a CPU.

Protocol (the article's Keras programs, reproduced exactly unless an option says otherwise):

* images ``pixels / 255 + 0.5 * U[0, 1)`` per pixel, train and test, drawn once per seed;
* models ``build_model(name, dims=2, preset="seed-mnist", units=(units,))``;
* Adam, lr 1e-3, betas (0.9, 0.999), eps 1e-7 (Keras defaults; Keras adds eps to the
  bias-corrected ``sqrt(v)`` slightly differently, a difference far below the seed-to-seed spread);
* batch 100, 5 epochs, reshuffled every epoch, categorical cross-entropy;
* Keras ``l2(1e-4)`` on every Conv and Dense kernel (threshold sub-network included; no biases,
  no BatchNorm): the loss is ``CE + 1e-4 * sum(w**2)``.  Its gradient ``2e-4 * w`` is added to the
  kernels' gradients after ``backward`` (:func:`add_l2_grad_`), mathematically identical to
  back-propagating the penalty and cheaper; the penalty's value is still added to reported losses
  as Keras does;
* BatchNorm in train mode while training, eval mode for the final evaluation.

``precision = "bfloat16"`` (not the article's) trains in mixed precision: the training forward runs
under ``torch.autocast`` in bfloat16 (convolutions and the element-wise work after them; weights,
gradients, Adam and every evaluation stay float32), on a CPU with native bfloat16 only.

BatchNorm statistics for that evaluation (``bn_stats``): Keras' running averages (momentum 0.99)
lag far behind the weights after 5 short epochs, which costs DRSN-CW tens of accuracy points in
eval mode (measured: 24 % running-average vs 77 % population-statistics test accuracy after 2
epochs).  So by default (``"precise"``) the statistics are re-estimated once after training over
the (noisy, unlabelled) training images with the final weights -- "precise BatchNorm" -- and the
model is then scored in eval mode; ``"running"`` keeps the running averages.  Both are always
reported, and so is the accuracy with per-batch statistics (batches of 100), which is what the
article's Keras code actually computed: its learning phase is fixed to 1 before the model is built.

``run_demo`` returns every number (per-epoch history, final train/test loss and accuracy per
model and seed, mean/std over seeds, model differences) and prints nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from faultdiag.data.mnist import MnistData
from faultdiag.data.noise import add_image_noise
from faultdiag.evaluate import adabn
from faultdiag.mnist.config import DemoConfig
from faultdiag.models.inference import autocast_forward, check_precision
from faultdiag.models.networks import build_model

log = logging.getLogger(__name__)

Progress = Callable[[dict], None]


def noisy_images(images: np.ndarray, noise_scale: float, generator: torch.Generator) -> torch.Tensor:
    """``(N, 28, 28)`` uint8 -> ``(N, 1, 28, 28)`` float32 ``pixels / 255 + noise_scale * U[0, 1)``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0).unsqueeze(1)
    return add_image_noise(x, scale=noise_scale, generator=generator).contiguous()


def prepare_data(data: MnistData, noise_scale: float, seed: int, limit: Optional[int] = None) -> dict:
    """Noisy tensors ``x_train (N, 1, 28, 28)``, ``y_train (N,)`` int64, ``x_test``, ``y_test``.

    The train noise is drawn first, then the test noise, from one generator seeded with ``seed``.
    ``limit`` keeps the first ``limit`` images of each split.
    """
    generator = torch.Generator().manual_seed(seed)
    n_train = len(data.train_labels) if limit is None else min(limit, len(data.train_labels))
    n_test = len(data.test_labels) if limit is None else min(limit, len(data.test_labels))
    return {
        "x_train": noisy_images(data.train_images[:n_train], noise_scale, generator),
        "y_train": torch.from_numpy(data.train_labels[:n_train].astype(np.int64)),
        "x_test": noisy_images(data.test_images[:n_test], noise_scale, generator),
        "y_test": torch.from_numpy(data.test_labels[:n_test].astype(np.int64)),
    }


def regularized_kernels(model: nn.Module) -> list[nn.Parameter]:
    """The kernels Keras' ``l2`` is set on in the article: every conv and linear weight (no biases, no BN)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


def l2_penalty(kernels: Sequence[torch.Tensor], coef: float) -> torch.Tensor:
    """Keras' ``l2(coef)`` loss term ``coef * sum_k sum(w_k**2)`` (a scalar tensor)."""
    if not kernels:
        return torch.zeros(())
    return coef * torch.stack([(w * w).sum() for w in kernels]).sum()


def add_l2_grad_(kernels: Sequence[torch.Tensor], coef: float) -> None:
    """Add ``d(coef * sum w**2)/dw = 2 * coef * w`` to each kernel's ``.grad``, in one foreach call."""
    for w in kernels:
        if w.grad is None:
            w.grad = torch.zeros_like(w)
    with torch.no_grad():
        torch._foreach_add_([w.grad for w in kernels], list(kernels), alpha=2.0 * coef)


def make_optimizer(model: nn.Module, cfg: DemoConfig) -> torch.optim.Optimizer:
    """Adam with Keras' defaults; the fused CPU kernel where this torch has one."""
    kwargs = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps)
    try:
        return torch.optim.Adam(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), foreach=True, **kwargs)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                batch_size: int, l2: float, generator: torch.Generator,
                on_batch: Optional[Callable[[int, int], None]] = None,
                forward: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> dict:
    """One epoch of shuffled mini-batches, BatchNorm in train mode.

    Args: ``x (N, 1, 28, 28)`` float32, ``y (N,)`` int64; ``forward``: what computes the logits
    (default ``model``; e.g. a compiled ``model``).  Returns ``loss`` (mean over batches of
    cross-entropy + L2 penalty, Keras' progress-bar loss), ``ce``, ``acc``, ``seconds``, ``images_per_s``.
    """
    model.train()
    forward = forward if forward is not None else model
    kernels = regularized_kernels(model)
    n = len(y)
    order = torch.randperm(n, generator=generator)
    ce_sum, pen_sum = torch.zeros(()), torch.zeros(())
    correct = torch.zeros((), dtype=torch.int64)
    n_batches = math.ceil(n / batch_size)
    start_s = time.perf_counter()
    for b in range(n_batches):
        idx = order[b * batch_size:(b + 1) * batch_size]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        logits = forward(xb)                                       # (B, K)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            pen_sum += l2 * torch.stack(torch._foreach_norm(kernels)).square().sum()
            add_l2_grad_(kernels, l2)
            ce_sum += loss.detach()
            correct += (logits.argmax(1) == yb).sum()
        optimizer.step()
        if on_batch is not None:
            on_batch(b + 1, n_batches)
    seconds = time.perf_counter() - start_s
    return {"loss": float(ce_sum + pen_sum) / n_batches, "ce": float(ce_sum) / n_batches,
            "acc": int(correct) / n, "seconds": seconds, "images_per_s": n / seconds}


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, l2: float, batch_size: int = 1000,
             batch_stats: bool = False) -> dict:
    """Loss (mean cross-entropy + L2 penalty, as Keras' ``evaluate``), ``ce`` and ``acc``.

    BatchNorm in eval mode (running statistics), or with ``batch_stats`` normalised by each
    batch's own statistics (train mode on a copy, so the model's running statistics stay put):
    what the article's Keras code computes, its learning phase being fixed to 1 when the graph is built.
    """
    was_training = model.training
    if batch_stats:
        model = copy.deepcopy(model).train()
    else:
        model.eval()
    ce_sum, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start:start + batch_size])
        yb = y[start:start + batch_size]
        ce_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was_training)
    ce = ce_sum / len(y)
    penalty = float(l2_penalty(regularized_kernels(model), l2))
    return {"loss": ce + penalty, "ce": ce, "acc": correct / len(y)}


def training_forward(model: nn.Module, cfg: DemoConfig) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """What computes the training logits for ``cfg`` (``None``: ``model`` itself).

    Raises ConfigError for ``precision = "bfloat16"`` on a CPU without native bfloat16."""
    forward = _CompiledOrEager(model) if cfg.compile else None
    dtype = check_precision(cfg.precision)
    return forward if dtype == torch.float32 else autocast_forward(forward or model, dtype)


class _CompiledOrEager:
    """``torch.compile(model)`` for training forwards; plain ``model`` if compiling fails."""

    def __init__(self, model: nn.Module):
        self.model, self.compiled = model, torch.compile(model, dynamic=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as exc:  # inductor needs a C++ compiler; any failure -> eager
                log.warning("torch.compile failed (%s: %s); training in eager mode", type(exc).__name__, exc)
                self.compiled = None
        return self.model(x)


def train_model(name: str, data: dict, cfg: DemoConfig, seed: int, progress: Optional[Progress] = None) -> dict:
    """Build ``name`` with ``seed``, train it by the protocol, evaluate; returns history and final metrics."""
    model = build_model(name, dims=2, preset=cfg.preset, num_classes=10, units=[cfg.units], seed=seed)
    optimizer = make_optimizer(model, cfg)
    forward = training_forward(model, cfg)
    shuffle = torch.Generator().manual_seed(seed)
    history = []
    emit = progress or (lambda event: None)
    for epoch in range(1, cfg.epochs + 1):
        def on_batch(done: int, total: int, epoch: int = epoch) -> None:
            emit({"kind": "batch", "model": name, "seed": seed, "epoch": epoch, "batch": done, "batches": total})

        row = {"epoch": epoch, **train_epoch(model, optimizer, data["x_train"], data["y_train"],
                                             batch_size=cfg.batch_size, l2=cfg.l2, generator=shuffle,
                                             on_batch=on_batch if progress else None, forward=forward)}
        if cfg.eval_each_epoch:
            test = evaluate(model, data["x_test"], data["y_test"], l2=cfg.l2, batch_size=cfg.eval_batch_size)
            row.update({f"test_{k}": v for k, v in test.items()})
        history.append(row)
        log.info("%s seed %d epoch %d: %s", name, seed, epoch, row)
        emit({"kind": "epoch", "model": name, "seed": seed, "epochs": cfg.epochs, **row})
    running = model
    if cfg.bn_stats == "precise":  # population statistics of the final weights over the train images
        model = adabn(model, data["x_train"], batch_size=cfg.eval_batch_size)
    final = {split: evaluate(model, data[f"x_{split}"], data[f"y_{split}"], l2=cfg.l2,
                             batch_size=cfg.eval_batch_size) for split in ("train", "test")}
    final["test_running_stats"] = (final["test"] if running is model else
                                   evaluate(running, data["x_test"], data["y_test"], l2=cfg.l2,
                                            batch_size=cfg.eval_batch_size))
    final["test_batch_stats"] = evaluate(running, data["x_test"], data["y_test"], l2=cfg.l2,
                                         batch_size=cfg.batch_size, batch_stats=True)
    train_s = sum(r["seconds"] for r in history)
    return {"model": name, "seed": seed, "history": history, "final": final, "model_obj": model,
            "params": sum(p.numel() for p in model.parameters()),
            "train_seconds": train_s, "train_images_per_s": cfg.epochs * len(data["y_train"]) / train_s}


def _mean_std(values: Sequence[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n": len(arr)}


_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "test_running_stats_acc",
            "test_batch_stats_acc")


def _flat(run: dict) -> dict:
    return {f"{split}_{k}": run["final"][split][k]
            for split in ("train", "test", "test_running_stats", "test_batch_stats") for k in ("loss", "acc")}


def summarize(runs: Sequence[dict], models: Sequence[str]) -> tuple[dict, dict]:
    """Mean and std over seeds per model, and paired differences ``models[0] - other`` per metric."""
    by_model = {m: [_flat(r) for r in runs if r["model"] == m] for m in models}
    summary = {m: {k: _mean_std([row[k] for row in rows]) for k in _METRICS} for m, rows in by_model.items()}
    differences = {}
    for other in models[1:]:
        pairs = list(zip(by_model[models[0]], by_model[other]))
        differences[f"{models[0]} - {other}"] = {k: _mean_std([a[k] - b[k] for a, b in pairs]) for k in _METRICS}
    return summary, differences


def run_demo(data: MnistData, cfg: DemoConfig = DemoConfig(), progress: Optional[Progress] = None,
             keep_models: bool = False) -> dict:
    """Run the demo for seeds ``cfg.seed .. cfg.seed + n_seeds - 1``; every model sees the same noisy
    data, initial-weight seed and batch order within a seed.  Returns a JSON-ready dict (config,
    seeds, runs, summary, differences); with ``keep_models`` each run also holds its ``trained_model``.
    """
    old_threads = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    try:
        seeds = [cfg.seed + i for i in range(cfg.n_seeds)]
        runs = []
        for seed in seeds:
            tensors = prepare_data(data, cfg.noise_scale, seed, cfg.limit)
            for name in cfg.models:
                run = train_model(name, tensors, cfg, seed, progress)
                model = run.pop("model_obj")
                if keep_models:
                    run["trained_model"] = model
                runs.append(run)
    finally:
        torch.set_num_threads(old_threads)
    summary, differences = summarize(runs, cfg.models)
    return {"config": dataclasses.asdict(cfg), "seeds": seeds, "n_train": len(tensors["y_train"]),
            "n_test": len(tensors["y_test"]), "runs": runs, "summary": summary, "differences": differences}
