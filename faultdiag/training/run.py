"""One training run: config → prepared windows → batch sources → fit loop → checkpoint and logs.

:func:`train_model` writes ``config.toml`` (the resolved config), ``checkpoint.pt`` (best
validation weights, :mod:`faultdiag.checkpoint`), ``last.pt`` (what ``resume=True`` continues
from, :mod:`faultdiag.training.state`) and ``train_log.csv`` (one row per epoch).

Randomness: all of it flows from ``cfg.seed`` through dedicated generators (weight init,
shuffling, training noise, validation noise, augmentation; :mod:`faultdiag.training.seeds`), so
the same seed gives the same numbers and a resumed run the same result as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from faultdiag.checkpoint import save_checkpoint
from faultdiag.config import RunConfig, config_to_dict, save_config
from faultdiag.distributed import DistContext, check_batch_size, init_from_env, shutdown, wrap_model
from faultdiag.errors import ConfigError
from faultdiag.preflight import check_free_space, check_output_dir, estimate_train_bytes
from faultdiag.training import seeds
from faultdiag.training.augment import from_config as augment_from_config
from faultdiag.training.batches import Augment, BatchSource, check_lazy_noise
from faultdiag.training.loop import LossTerm, fit
from faultdiag.training.prepare import Prepared, front_end, is_lazy, prepare
from faultdiag.training.schedules import make_optimizer
from faultdiag.training.state import Generators, TrainState, remove_stale_temps, restore, save_last, write_log

__all__ = ["TrainResult", "train_model", "resolve_device", "build_for"]

log = logging.getLogger(__name__)


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
        torch.manual_seed(seeds.derive_seed(seed, seeds.INIT))
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


def _stem_band(cfg: RunConfig, prepared: Prepared) -> list[float]:
    """The band a sinc stem starts from: ``model.stem_band_hz``, the front end's, or one chosen now."""
    if cfg.model.stem_band_hz:
        return list(cfg.model.stem_band_hz)
    fe = prepared.inputs.front_end
    if fe.low_hz is not None:
        return [fe.low_hz, fe.high_hz]
    chosen, _ = front_end(dataclasses.replace(cfg.frontend, kind="bandpass"), prepared.train, prepared.class_names,
                          prepared.inputs.fs_hz)
    return [chosen.low_hz, chosen.high_hz]


def build_for(cfg: RunConfig, prepared: Prepared) -> tuple[nn.Module, dict[str, Any]]:
    """The untrained model of ``cfg.model`` for ``prepared``'s input and classes, and its build keywords."""
    from faultdiag.models.networks import build_model

    kwargs = dict(dims=1, in_channels=len(prepared.inputs.channels), num_classes=len(prepared.class_names),
                  seed=seeds.derive_seed(cfg.seed, seeds.INIT), **cfg.model.model_kwargs())
    if cfg.model.stem == "sinc":
        kwargs.update(fs_hz=prepared.inputs.fs_hz, stem_band_hz=_stem_band(cfg, prepared))
    model = build_model(cfg.model.name, **kwargs)
    build_kwargs = dict(getattr(model, "build_kwargs", None) or kwargs)
    build_kwargs.pop("name", None)
    return model, build_kwargs


def _sources(cfg: RunConfig, prepared: Prepared, ctx: DistContext, augment: Augment | None,
             device: torch.device) -> tuple[BatchSource, BatchSource]:
    """Training and validation batch sources on ``device``: validation noise is the training noise, fixed by seed."""
    noise, redraw = cfg.noise, cfg.noise.train in ("fresh", "mixed")
    train_seed = seeds.derive_seed(cfg.seed, seeds.TRAIN_NOISE)
    if redraw and ctx.rank > 0:  # each rank draws its own noise for its shard
        train_seed = seeds.derive_seed(train_seed, ctx.rank)
    train = BatchSource(prepared.train, prepared.inputs, noise=noise, noise_seed=train_seed, redraw=redraw,
                        augment=augment, augment_seed=seeds.derive_seed(cfg.seed, seeds.AUGMENT), device=device)
    val = BatchSource(prepared.val, prepared.inputs, noise=noise, redraw=False,
                      noise_seed=seeds.derive_seed(cfg.seed, seeds.VAL_NOISE), device=device)
    return train, val


def _adaptation(cfg: RunConfig, prepared: Prepared, model: nn.Module, ctx: DistContext,
                device: torch.device) -> LossTerm:
    """The ``[adapt]`` loss on batches of the unlabelled target windows of ``prepared``."""
    from faultdiag.config import NoiseConfig
    from faultdiag.training.adaptation import DomainAdaptation

    if prepared.target is None:
        raise ConfigError(f"adapt.method = {cfg.adapt.method!r} needs target-domain windows: set data.domain, "
                          f"data.train_domains and data.test_domains.")
    if ctx.enabled:
        raise ConfigError("Domain adaptation (adapt.method) runs in one process; launch without torchrun.")
    target = BatchSource(prepared.target, prepared.inputs, noise=NoiseConfig(), noise_seed=0, redraw=False,
                         device=device)
    return DomainAdaptation(cfg.adapt, target, model.fc.in_features, seeds.derive_seed(cfg.seed, seeds.TARGET))


def train_model(cfg: RunConfig, out_dir: str | os.PathLike, *, prepared: Prepared | None = None,
                resume: bool = False, progress: bool = True,
                on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
                augment: Augment | None = None, extra_loss: LossTerm | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` and keep the best-validation-accuracy weights.

    Training noise follows ``cfg.noise`` (clean, fixed by seed, fresh every batch, or mixed SNRs);
    validation windows get the same noise, fixed by seed.  ``augment`` (default: the one
    ``cfg.train`` asks for, :func:`faultdiag.training.augment.from_config`) and ``extra_loss`` are the
    hooks of :class:`~faultdiag.training.batches.BatchSource` and
    :class:`~faultdiag.training.loop.LossTerm`.  ``on_epoch_end(row)`` is called after each
    epoch's files are written.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel,
    each rank trains on its shard of every batch (:mod:`faultdiag.distributed`), metrics are
    summed over ranks and only rank 0 writes files.  Before any data is loaded the output folder
    is checked for writability, and before the first epoch the disk for free space.
    """
    out_dir = Path(out_dir)
    ctx, device = init_from_env(resolve_device(cfg.device))
    created = not out_dir.exists()
    try:
        check_batch_size(cfg.train.batch_size, ctx)
        if ctx.is_main:
            check_output_dir(out_dir)
        prepared = prepared if prepared is not None else prepare(cfg)
        augment = augment if augment is not None else augment_from_config(cfg.train)
        if is_lazy(prepared.train):
            check_lazy_noise(cfg.noise, cfg.data.cache)
        with _deterministic(cfg.seed, cfg.train.threads, device):
            return _train(cfg, out_dir, prepared, resume, progress and ctx.is_main, on_epoch_end,
                          augment, extra_loss, ctx, device)
    except BaseException:
        if created and ctx.is_main and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a run that failed before writing anything leaves nothing behind
        raise
    finally:
        shutdown(ctx)


def _train(cfg: RunConfig, out_dir: Path, prepared: Prepared, resume: bool, progress: bool,
           on_epoch_end: Callable | None, augment: Augment | None, extra_loss: LossTerm | None,
           ctx: DistContext, device: torch.device) -> TrainResult:
    ckpt_path, last_path = out_dir / "checkpoint.pt", out_dir / "last.pt"
    model, build_kwargs = build_for(cfg, prepared)
    model.to(device)
    if ctx.is_main:
        n_values = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
        check_free_space(out_dir, estimate_train_bytes(n_values, cfg.train.epochs, cfg.train.optimizer), "the training")
    net = wrap_model(model, ctx, device)
    train, val = _sources(cfg, prepared, ctx, augment, device)
    if extra_loss is None and cfg.adapt.method != "none":
        extra_loss = _adaptation(cfg, prepared, model, ctx, device)
    params = [*model.parameters(), *(extra_loss.parameters() if isinstance(extra_loss, nn.Module) else [])]
    optimizer = make_optimizer(params, cfg.train)
    gens = Generators(shuffle=torch.Generator().manual_seed(seeds.derive_seed(cfg.seed, seeds.SHUFFLE)),
                      noise=train.generator, augment=train.augment_generator,
                      target=getattr(extra_loss, "generator", None))
    extra_module = extra_loss.to(device) if isinstance(extra_loss, nn.Module) else None
    if resume and last_path.is_file():
        state = restore(last_path, cfg, model, optimizer, gens, ctx, extra=extra_module)
    else:
        if resume:
            log.info("no %s to resume from; starting afresh", last_path)
        state = TrainState(history=[])
    if ctx.is_main:
        remove_stale_temps(out_dir)
        save_config(cfg, out_dir / "config.toml")
        if prepared.band_choice is not None:
            write_band_choice(prepared, out_dir)

    def on_epoch(st: TrainState, improved: bool) -> None:
        if ctx.is_main and (improved or st.finished):
            _save_best(ckpt_path, model, st, build_kwargs, cfg, prepared)
        if ctx.is_main:
            write_log(out_dir / "train_log.csv", st.history)
        save_last(last_path, cfg, model, optimizer, gens, st, ctx, extra=extra_module)
        if on_epoch_end is not None:
            on_epoch_end(st.history[-1])

    fit(model, optimizer, train, val, cfg.train, state, shuffle=gens.shuffle, device=device, net=net, ctx=ctx,
        extra=extra_loss, on_epoch=on_epoch, desc=cfg.model.name, progress=progress)
    model.load_state_dict(state.best_state)
    model.eval()
    if ctx.is_main:  # the final checkpoint gains the density of its penultimate features (faultdiag.ood)
        _save_best(ckpt_path, model, state, build_kwargs, cfg, prepared, ood=_fit_ood(model, prepared))
    return TrainResult(model=model, checkpoint_path=ckpt_path, history=state.history, prepared=prepared,
                       best_epoch=state.best_epoch)


def write_band_choice(prepared: Prepared, out_dir: Path) -> None:
    """``band_choice.json`` (the chosen band and every candidate's score) and ``band_choice.png``
    (the band over the mean spectra of the clean training windows of each class)."""
    from faultdiag.frontend.band_select import class_subset
    from faultdiag.frontend.plot import plot_band_choice
    from faultdiag.provenance import write_json

    choice = prepared.band_choice
    write_json(out_dir / "band_choice.json", choice.to_dict())
    idx = class_subset(prepared.train.y, 256)
    plot_band_choice(choice, prepared.train.X[idx], choice.fs_hz, out_dir / "band_choice.png",
                     y=prepared.train.y[idx], class_names=prepared.class_names)


def _fit_ood(model: nn.Module, prepared: Prepared, per_class: int = 512) -> dict[str, Any] | None:
    """The density of the best model's penultimate features on clean training windows (at most
    ``per_class`` per class, evenly spaced), calibrated on (up to 4096) clean validation windows so
    that about 5 % of in-distribution windows exceed its threshold; ``None`` with too few windows."""
    from faultdiag.frontend.band_select import class_subset
    from faultdiag.ood import FeatureDensity, penultimate_features

    idx = class_subset(np.asarray(prepared.train.y), per_class)
    val_idx = np.linspace(0, len(prepared.val) - 1, min(len(prepared.val), 4096)).round().astype(np.int64)
    if len(val_idx) < 20 or len(np.unique(prepared.train.y[idx])) < 1:
        log.warning("too few validation windows (%d) to calibrate the out-of-distribution score", len(val_idx))
        return None
    feats = penultimate_features(model, prepared.inputs.transform(prepared.train.X[idx]))
    val_feats = penultimate_features(model, prepared.inputs.transform(prepared.val.X[np.unique(val_idx)]))
    density = FeatureDensity().fit(feats.numpy(), np.asarray(prepared.train.y)[idx]).calibrate(val_feats.numpy())
    return density.to_dict()


def _save_best(path: Path, model: nn.Module, state: TrainState, build_kwargs: dict[str, Any], cfg: RunConfig,
               prepared: Prepared, ood: dict[str, Any] | None = None) -> None:
    """Write the best weights so far (the model's current weights are put back afterwards)."""
    current = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state.best_state)
    row = state.history[state.best_epoch - 1]
    metrics = {"best_epoch": state.best_epoch, "val_accuracy": row["val_acc"], "val_loss": row["val_loss"],
               "train_accuracy": row["train_acc"], "train_loss": row["train_loss"],
               "epochs_run": state.epoch, "finished": state.finished, "data_fingerprint": prepared.fingerprint}
    save_checkpoint(path, model=model, model_name=cfg.model.name, model_kwargs=build_kwargs,
                    class_names=prepared.class_names, inputs=prepared.inputs, signal_stats=prepared.signal_stats,
                    config=config_to_dict(cfg), metrics=metrics, ood=ood)
    model.load_state_dict(current)
