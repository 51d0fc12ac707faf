"""Fit loop: config → windows → (noise) → model input → trained model, checkpoints and a log.

Data flow: :func:`prepare` loads recordings, splits them by time region into raw train/val/test
windows and fits the standardiser on the training windows only.  :func:`to_model_input` is the
one function that turns raw (possibly noisy) windows into model input; evaluation and diagnosis
use it too.  :func:`train_model` runs the epochs, keeps the best-validation weights in
``checkpoint.pt`` and everything needed to resume in ``last.pt``.

Randomness: all of it flows from ``cfg.seed`` through dedicated ``torch.Generator`` objects
(weight init, shuffling, training noise, validation noise), so the same seed gives the same
numbers, and a run resumed from ``last.pt`` gives the same result as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from faultdiag.checkpoint import load_torch_file, save_checkpoint
from faultdiag.config import RunConfig, config_to_dict, save_config
from faultdiag.data.noise import add_noise
from faultdiag.data.windows import WindowSet, split_windows
from faultdiag.distributed import (SINGLE, DistContext, all_gather_object, all_reduce_sum, check_batch_size,
                                   init_from_env, shard, shutdown, wrap_model)
from faultdiag.errors import ConfigError, DataError
from faultdiag.preflight import check_free_space, check_output_dir, estimate_train_bytes
from faultdiag.provenance import atomic_write
from faultdiag.schedules import learning_rate, make_optimizer, set_learning_rate

log = logging.getLogger(__name__)

# Tags that derive independent seeds from cfg.seed, one per source of randomness.
_INIT, _SHUFFLE, _TRAIN_NOISE, _VAL_NOISE = 0, 1, 2, 3
# Config keys that may differ between an interrupted run and its resumption.
_RESUME_FREE = ("device", "train.threads", "train.eval_batch_size", "sweep")


@dataclass(frozen=True, eq=False)
class Prepared:
    """Raw (un-normalised) windows of each split and what is needed to turn them into model input.

    ``train``/``val``/``test``: :class:`~faultdiag.data.windows.WindowSet` with ``X (N, C, L)``.
    ``standardizer``: fitted on ``train.X`` only (``None`` for ``normalize`` = window / none).
    ``signal_stats``: RMS statistics of the raw training windows.
    """

    train: WindowSet
    val: WindowSet
    test: WindowSet
    standardizer: Any
    class_names: tuple[str, ...]
    fs_hz: float
    window_len: int
    hop: int
    channels: tuple[str, ...]
    fingerprint: dict[str, Any]
    signal_stats: dict[str, float]
    normalize: str = "global"

    def normalizer_dict(self) -> dict[str, Any]:
        """``{"normalize": ..., "standardizer": to_dict() or None}`` as stored in checkpoints."""
        std = self.standardizer.to_dict() if self.standardizer is not None else None
        return {"normalize": self.normalize, "standardizer": std}


@dataclass(frozen=True, eq=False)
class TrainResult:
    """``model``: best-validation weights, eval mode. ``history``: one dict per epoch (as in train_log.csv)."""

    model: nn.Module
    checkpoint_path: Path
    history: list[dict[str, Any]]
    prepared: Prepared
    best_epoch: int


def derive_seed(seed: int, tag: int) -> int:
    """An independent 63-bit seed for source ``tag`` of run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, tag]).generate_state(2, np.uint32).astype(np.uint64)
               .dot(np.array([1 << 31, 1], dtype=np.uint64)))


def signal_stats(X: np.ndarray) -> dict[str, float]:
    """RMS statistics of raw windows ``X (N, C, L)``: min, 5th percentile, median, 95th percentile, max."""
    return rms_stats(np.sqrt(np.mean(np.asarray(X, dtype=np.float64) ** 2, axis=(1, 2))))


def rms_stats(rms: np.ndarray) -> dict[str, float]:
    """:func:`signal_stats` from the RMS of each window ``(N,)``."""
    q = np.percentile(rms, [0, 5, 50, 95, 100]) if rms.size else [float("nan")] * 5
    return {"rms_min": float(q[0]), "rms_p05": float(q[1]), "rms_median": float(q[2]),
            "rms_p95": float(q[3]), "rms_max": float(q[4]), "n_windows": int(rms.size)}


def prepare(cfg: RunConfig) -> Prepared:
    """Load the data of ``cfg.data``, split it by time region, fit the standardiser on train windows.

    With ``data.cache`` set the windows stay in the HDF5 cache: ``X`` of each split is a lazy
    :class:`~faultdiag.data.cache.CachedWindows` and the standardiser is fitted in one streaming pass.
    """
    from faultdiag.data.datasets import load_dataset
    from faultdiag.data.normalize import Standardizer

    d = cfg.data
    if d.cache:
        return _prepare_cached(cfg)
    dataset = load_dataset(d)
    splits = split_windows(dataset.recordings, dataset.class_names, d.window_len, d.hop, d.split, d.eval_hop)
    if len(splits["train"]) == 0:
        raise DataError(f"No training windows: recordings are too short for window_len={d.window_len} "
                        f"with split {list(d.split)}.")
    standardizer = Standardizer(per_channel=True).fit(splits["train"].X) if d.normalize == "global" else None
    return Prepared(
        train=splits["train"], val=splits["val"], test=splits["test"], standardizer=standardizer,
        class_names=dataset.class_names, fs_hz=float(d.fs_hz), window_len=d.window_len, hop=d.hop,
        channels=tuple(dataset.recordings[0].channels), fingerprint=dataset.fingerprint,
        signal_stats=signal_stats(splits["train"].X), normalize=d.normalize,
    )


def _prepare_cached(cfg: RunConfig) -> Prepared:
    from faultdiag.data.cache import cached_splits, streaming_moments
    from faultdiag.data.normalize import Standardizer

    d = cfg.data
    splits, info, class_names = cached_splits(d)
    if len(splits["train"]) == 0:
        raise DataError(f"No training windows in the cache '{d.cache}' for window_len={d.window_len} "
                        f"with split {list(d.split)}.")
    mean, std, rms = streaming_moments(splits["train"].X)
    standardizer = None
    if d.normalize == "global":
        standardizer = Standardizer.from_dict({"per_channel": True, "eps": Standardizer().eps,
                                               "mean": mean.tolist(), "std": std.tolist()})
    fp = {**info.fingerprint, "classes": list(class_names), "cache": str(d.cache)}
    return Prepared(train=splits["train"], val=splits["val"], test=splits["test"], standardizer=standardizer,
                    class_names=class_names, fs_hz=float(d.fs_hz), window_len=d.window_len, hop=d.hop,
                    channels=info.channels, fingerprint=fp, signal_stats=rms_stats(rms), normalize=d.normalize)


def _is_lazy(ws: Any) -> bool:
    return not isinstance(ws.X, np.ndarray)


def _check_lazy_noise(cfg: RunConfig) -> None:
    """Windows read lazily from a cache get noise batch by batch: only per-window, fresh noise."""
    if cfg.noise.train == "fixed" or (cfg.noise.train == "fresh" and cfg.noise.per == "recording"):
        raise ConfigError(f"Training from a cache (data.cache = {cfg.data.cache!r}) draws noise batch by batch: "
                          f"use noise.train = 'fresh' or 'clean' with noise.per = 'window'; got noise.train = "
                          f"{cfg.noise.train!r}, noise.per = {cfg.noise.per!r}.")


def _standardizer(norm: Any) -> Any:
    """The fitted Standardizer of a Prepared, a Standardizer, a checkpoint normalizer dict or a Standardizer dict."""
    from faultdiag.data.normalize import Standardizer

    if isinstance(norm, Prepared):
        norm = norm.standardizer
    if isinstance(norm, dict):
        norm = norm.get("standardizer") if "normalize" in norm else norm
        norm = Standardizer.from_dict(norm) if norm is not None else None
    if norm is None or not hasattr(norm, "mean_"):
        raise ConfigError("normalize='global' needs a fitted standardizer; got none.")
    return norm


def to_model_input(X_raw: np.ndarray | torch.Tensor, prepared_or_normalizer: Any, normalize: str | None = None) -> torch.Tensor:
    """Raw windows ``(N, C, L)`` (after noise) → float32 model input ``(N, C, L)``.

    ``normalize``: ``global`` → ``(x − mean_c) / std_c`` with the training standardiser;
    ``window`` → z-score of each window and channel over time; ``none`` → unchanged.
    ``prepared_or_normalizer``: a :class:`Prepared`, a Standardizer, the checkpoint's
    ``normalizer`` dict, or ``None`` (window/none).  ``normalize=None`` takes it from a
    Prepared or a checkpoint normalizer dict.
    """
    if normalize is None:
        norm = prepared_or_normalizer
        normalize = norm.normalize if isinstance(norm, Prepared) else (norm or {}).get("normalize", "global")
    x = torch.as_tensor(X_raw)
    x = x.float() if x.dtype != torch.float32 else x
    if x.ndim != 3:
        raise DataError(f"Model input windows must be 3-D (N, C, L); got shape {tuple(x.shape)}.")
    if normalize == "global":
        return _standardizer(prepared_or_normalizer).transform(x)
    if normalize == "window":
        mu = x.mean(dim=-1, keepdim=True)
        sd = x.std(dim=-1, keepdim=True, unbiased=False)
        return (x - mu) / sd.clamp_min(1e-12)
    if normalize == "none":
        return x
    raise ConfigError(f"The 'normalize' parameter must be 'global', 'window' or 'none'; got {normalize!r}.")


def add_window_noise(X: torch.Tensor, snr_db: float, kind: str, per: str, groups: torch.Tensor | None,
                     generator: torch.Generator) -> torch.Tensor:
    """Noise at ``snr_db`` on raw windows ``(N, C, L)``.

    ``per="window"``: the SNR holds in every window.  ``per="recording"``: the noise power of
    every window is set by the mean power of all windows of its recording (``groups``), so quiet
    windows of a recording get relatively more noise, as with noise added to the whole recording.
    """
    if per == "window" or groups is None:
        return add_noise(X, snr_db, kind=kind, per="window", generator=generator)
    p_win = X.double().pow(2).mean(dim=(1, 2))
    p_rec = torch.zeros(int(groups.max()) + 1, dtype=torch.float64).index_add_(0, groups, p_win)
    p_rec /= torch.bincount(groups, minlength=p_rec.numel()).clamp_min(1)
    ratio = (p_win / p_rec[groups]).clamp_min(1e-12)
    return add_noise(X, (snr_db + 10.0 * torch.log10(ratio)).float(), kind=kind, per="window", generator=generator)


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


@dataclass
class _State:
    """What the loop carries from epoch to epoch (saved in last.pt)."""

    epoch: int = 0  # epochs completed
    best_epoch: int = 0
    best_acc: float = -1.0
    best_loss: float = float("inf")
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] | None = None
    finished: bool = False


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


def _write_log(path: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())


def _save_last(path: Path, cfg: RunConfig, model, optimizer, gens: dict, state: _State, ctx: DistContext = SINGLE) -> None:
    """Rank 0 writes the training state; every rank's noise generator state is gathered into it."""
    noise_states = all_gather_object(gens["noise"].get_state(), ctx)
    if not ctx.is_main:
        return
    payload = {
        "format": "faultdiag-train-state", "config": config_to_dict(cfg), "epoch": state.epoch,
        "best_epoch": state.best_epoch, "best_acc": state.best_acc, "best_loss": state.best_loss,
        "best_state": state.best_state, "history": state.history, "finished": state.finished,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "world_size": ctx.world_size,
        "rng": {"shuffle": gens["shuffle"].get_state(), "noise": noise_states[0], "noise_ranks": noise_states,
                "torch": torch.get_rng_state()},
    }
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)


def _config_diff(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(saved) | set(current)):
        a, b, name = saved.get(k), current.get(k), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _config_diff(a, b, f"{name}.")
        elif a != b and name not in _RESUME_FREE and name.split(".")[0] not in _RESUME_FREE:
            keys.append(f"{name}: {a!r} -> {b!r}")
    return keys


def _restore(path: Path, cfg: RunConfig, model, optimizer, gens: dict, device: torch.device,
             ctx: DistContext = SINGLE) -> _State:
    raw = load_torch_file(path, map_location="cpu")
    if not isinstance(raw, dict) or raw.get("format") != "faultdiag-train-state":
        raise DataError(f"The file '{path}' is not a faultdiag training state (last.pt).")
    diff = _config_diff(raw["config"], config_to_dict(cfg))
    if diff:
        raise ConfigError(f"Cannot resume from '{path}': the config differs from the interrupted run's "
                          f"({'; '.join(diff)}). Use the same config or a new --out folder.")
    if int(raw.get("world_size", 1)) != ctx.world_size:
        raise ConfigError(f"Cannot resume from '{path}': it was written by {raw.get('world_size', 1)} process(es), "
                          f"this run has {ctx.world_size}. Resume with the same number of processes.")
    try:
        model.load_state_dict(raw["model"])
        optimizer.load_state_dict(raw["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise DataError(f"The training state '{path}' does not fit this model: {str(exc).splitlines()[0]}") from None
    gens["shuffle"].set_state(raw["rng"]["shuffle"])
    gens["noise"].set_state(raw["rng"].get("noise_ranks", [raw["rng"]["noise"]])[ctx.rank])
    torch.set_rng_state(raw["rng"]["torch"])
    log.info("resuming %s after epoch %d", path.parent, raw["epoch"])
    return _State(epoch=raw["epoch"], best_epoch=raw["best_epoch"], best_acc=raw["best_acc"],
                  best_loss=raw["best_loss"], best_state=raw["best_state"], history=raw["history"],
                  finished=raw["finished"])


def _save_best(path: Path, model, build_kwargs, cfg: RunConfig, prepared: Prepared, metrics: dict) -> None:
    save_checkpoint(
        path, model=model, model_name=cfg.model.name, model_kwargs=build_kwargs,
        class_names=prepared.class_names, fs_hz=prepared.fs_hz, window_len=prepared.window_len,
        hop=prepared.hop, channels=prepared.channels, normalizer=prepared.normalizer_dict(),
        signal_stats=prepared.signal_stats, config=config_to_dict(cfg),
        metrics={**metrics, "data_fingerprint": prepared.fingerprint},
    )


def _remove_stale_temps(out_dir: Path) -> None:
    """Delete temporary files an atomic write left behind when its process was killed."""
    for name in ("checkpoint.pt", "last.pt", "train_log.csv", "config.toml", "metrics.json"):
        for tmp in out_dir.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


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
