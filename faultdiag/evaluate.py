"""Scoring a trained model: logits, metrics, AdaBN, and accuracy at a list of SNRs.

Evaluation noise is always fixed by seed: the noise for (seed, kind, snr_db) comes from a
generator seeded by a hash of exactly those three values, so a number is repeatable and does
not depend on which other SNRs were evaluated or in which order. Noise is added to the *raw*
windows (SNR relative to the measured signal) and the result goes through the model's
:class:`~faultdiag.data.inputs.InputSpec`, the same path as training and diagnosis.
:func:`evaluate_checkpoint` scores a saved model on a config's data and writes the files of
``faultdiag evaluate``; :func:`score_training` the clean (or training-noise) test metrics that
``faultdiag train`` writes beside a fresh checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import nn

from faultdiag import validate
from faultdiag.config import NOISE_KINDS, NOISE_PER
from faultdiag.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
TIDY_COLUMNS = ("model", "protocol", "kind", "snr_db", "adabn", "seed", "accuracy", "balanced_accuracy", "macro_f1",
                "task", "adapt")


def _check_batch_size(batch_size: int) -> None:
    validate.positive_int("batch_size", batch_size)


def _check_x(X: Any) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        raise DataError(f"The 'X' parameter must be a torch.Tensor of windows (N, C, L); got {type(X).__name__}.")
    if X.ndim < 2 or X.shape[0] == 0:
        raise DataError(f"The 'X' parameter must be a non-empty batch (N, C, ...); got shape {tuple(X.shape)}.")
    return X


def _device(device: str | torch.device) -> torch.device:
    from faultdiag.training.run import resolve_device

    return device if isinstance(device, torch.device) else resolve_device(str(device))


@torch.inference_mode()
def predict_logits(model: nn.Module, X: torch.Tensor, batch_size: int = 512, device: str | torch.device = "cpu") -> torch.Tensor:
    """Logits of ``model`` (put in eval mode) on ``X`` in batches.

    Args:
        X: model input (N, C, L) (or (N, C, H, W) for 2-D models), already normalised.
    Returns:
        (N, K) float32 logits on the CPU.
    """
    _check_batch_size(batch_size)
    X = _check_x(X)
    device = _device(device)
    model.eval().to(device)
    out = [model(X[i:i + batch_size].to(device, torch.float32)).float() for i in range(0, len(X), batch_size)]
    return torch.cat(out).cpu()  # one copy back, not one per batch


def compute_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall and the confusion matrix.

    All from scikit-learn with ``labels = range(K)`` so every class appears even when absent
    (absent classes score 0 precision/recall via ``zero_division=0`` and are left out of
    balanced accuracy, which averages recall over classes present in ``y_true``).

    Returns:
        ``{"n", "accuracy", "balanced_accuracy", "macro_f1", "per_class": {name: {precision,
        recall, f1, support}}, "confusion": K×K list (rows true, columns predicted)}``.
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    k = len(class_names)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise DataError(f"The 'y_true' and 'y_pred' parameters must be non-empty and equally long; got {y_true.size} and {y_pred.size}.")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= k:
            raise DataError(f"The '{name}' parameter must hold class indices in [0, {k}); got values in [{y.min()}, {y.max()}].")
    labels = list(range(k))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        balanced = skm.balanced_accuracy_score(y_true, y_pred)
    return {
        "n": int(y_true.size),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            str(name): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        },
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


@torch.no_grad()
def adabn(model: nn.Module, X: torch.Tensor, batch_size: int = 256, device: str | torch.device = "cpu",
          seed: int = 0) -> nn.Module:
    """AdaBN (Li et al. 2016, used by WDCNN): re-estimate BatchNorm statistics on unlabelled ``X``.

    Returns a deep copy of ``model`` in eval mode whose BatchNorm ``running_mean``,
    ``running_var`` and ``num_batches_tracked`` are the cumulative average (``momentum=None``)
    over batches of ``X`` drawn in a seeded random order (batches of consecutive windows, which
    come from the same recording, would average within-recording variances and underestimate the
    population variance); every parameter and every other buffer is unchanged, and
    ``model`` itself is untouched. Only BatchNorm layers run in training mode while adapting
    (dropout etc. stay off).

    Args:
        X: unlabelled model input (N, C, L), N >= 2, e.g. the noisy test windows.
    """
    _check_batch_size(batch_size)
    X = _check_x(X)
    if len(X) < 2:
        raise DataError(f"The 'X' parameter must hold at least 2 windows to estimate BatchNorm statistics; got {len(X)}.")
    device = _device(device)
    adapted = copy.deepcopy(model).to(device).eval()
    bns = [m for m in adapted.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not bns:
        log.warning("adabn: the model has no BatchNorm layer with running statistics; nothing adapted")
        return adapted
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    # Near-equal batches, none of size 1 (BatchNorm on (N, C) features needs N >= 2).
    n_batches = max(1, min(-(-len(X) // batch_size), len(X) // 2))
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    for idx in torch.tensor_split(order, n_batches):
        adapted(X[idx].to(device, torch.float32))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    return adapted.eval()


_adapt_batchnorm = adabn  # evaluate_snrs has a flag named ``adabn``


def load_model(path: str | os.PathLike) -> tuple[nn.Module, Any]:
    """The trained model (eval mode, CPU) and the :class:`~faultdiag.checkpoint.Checkpoint` at ``path``."""
    from faultdiag.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    return ckpt.build_model(), ckpt


def noise_seed(seed: int, kind: str, snr_db: float) -> int:
    """A 63-bit seed derived from (seed, kind, snr_db) alone (stable across runs and platforms)."""
    text = f"faultdiag-eval|{int(seed)}|{kind}|{float(snr_db):.6f}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def _check_grid(kinds: Sequence[str], snrs_db: Sequence[float], split: str, per: str) -> None:
    validate.choice("per", per, NOISE_PER)
    validate.choice("split", split, ("train", "val", "test"))
    for kind in kinds:
        validate.choice("kinds", kind, NOISE_KINDS)
    for snr in snrs_db:
        if not isinstance(snr, (int, float)) or isinstance(snr, bool) or not np.isfinite(snr):
            raise ConfigError(f"The 'snrs_db' parameter must hold finite numbers; got {snr!r}.")


def noisy_inputs(prepared: Any, kind: str, snr_db: float | None, *, seed: int = 0, split: str = "test",
                 per: str = "window") -> torch.Tensor:
    """Model input of ``prepared.<split>`` with noise of ``kind`` at ``snr_db`` (``None``: clean), drawn from
    the generator seeded by ``(seed, kind, snr_db)``: the windows :func:`evaluate_snrs` scores."""
    from faultdiag.data.noise import add_window_noise

    windows = getattr(prepared, split)
    X_raw = torch.from_numpy(np.asarray(windows.X, dtype=np.float32))
    if snr_db is not None:
        groups = torch.from_numpy(np.asarray(windows.groups, dtype=np.int64))
        gen = torch.Generator().manual_seed(noise_seed(seed, kind, snr_db))
        X_raw = add_window_noise(X_raw, snr_db, kind, per, groups, gen)
    return prepared.inputs.transform(X_raw)


def evaluate_snrs(
    model: nn.Module,
    prepared: Any,
    *,
    split: str = "test",
    kinds: Sequence[str] = ("gaussian",),
    snrs_db: Sequence[float] = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0),
    seed: int = 0,
    adabn: bool = False,
    include_clean: bool = True,
    per: str = "window",
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> list[dict]:
    """Metrics of ``model`` on ``prepared.<split>`` with noise of each kind at each SNR.

    Args:
        prepared: a :class:`faultdiag.training.prepare.Prepared` (raw windows + the model's input spec).
        adabn: re-estimate BatchNorm statistics on each noisy (unlabelled) set before scoring.
        include_clean: also score the noise-free windows (row with ``kind="clean"``,
            ``snr_db=None``).
        per: SNR relative to each window's power, or to the mean power of its recording's
            windows (as in training, :func:`faultdiag.data.noise.add_window_noise`).
        device: ``auto`` | ``cpu`` | ``cuda`` or a ``torch.device``.
    Returns:
        One dict per condition (clean first, then kind-major, SNR-minor): ``kind``, ``snr_db``,
        ``adabn``, ``seed``, ``split`` and everything :func:`compute_metrics` returns.
    """
    _check_grid(kinds, snrs_db, split, per)
    windows = getattr(prepared, split)
    if len(windows.y) == 0:
        raise DataError(f"The '{split}' split has no windows to evaluate; check data.split and data.window_len.")
    conditions = ([("clean", None)] if include_clean else []) + [(k, float(s)) for k in kinds for s in snrs_db]
    results = []
    for kind, snr in conditions:
        X = noisy_inputs(prepared, kind, snr, seed=seed, split=split, per=per)
        scorer = _adapt_batchnorm(model, X, batch_size=batch_size, device=device) if adabn else model
        y_pred = predict_logits(scorer, X, batch_size=batch_size, device=device).argmax(dim=1).numpy()
        metrics = compute_metrics(windows.y, y_pred, prepared.class_names)
        results.append({"kind": kind, "snr_db": snr, "adabn": bool(adabn), "seed": int(seed), "split": split, **metrics})
        log.info("%s %s dB adabn=%s: accuracy %.4f", kind, snr, adabn, metrics["accuracy"])
    return results


def tidy(rows: Sequence[dict], model: str, protocol: str, *, task: str = "", adapt: str = "none") -> "pd.DataFrame":
    """Rows of :func:`evaluate_snrs` as the tidy results table (``TIDY_COLUMNS``; clean rows have NaN SNR;
    ``task``/``adapt``: the cross-domain task and adaptation method, ``""``/``"none"`` otherwise)."""
    import pandas as pd

    return pd.DataFrame([{"model": model, "protocol": protocol, "kind": r["kind"],
                          "snr_db": float("nan") if r["snr_db"] is None else float(r["snr_db"]),
                          "adabn": bool(r["adabn"]), "seed": int(r["seed"]),
                          **{m: float(r[m]) for m in ("accuracy", "balanced_accuracy", "macro_f1")},
                          "task": task, "adapt": adapt}
                         for r in rows], columns=list(TIDY_COLUMNS))


def score_training(result: Any, cfg: Any, out_dir: str | os.PathLike) -> list[dict]:
    """Test metrics of a fresh training (clean, plus its training noise if any) → ``out_dir/metrics.json``."""
    from faultdiag.config import config_to_dict
    from faultdiag.provenance import code_revision, write_json
    from faultdiag.training.prepare import class_table

    fixed_snr = cfg.noise.train in ("fixed", "fresh")
    rows = evaluate_snrs(result.model, result.prepared, kinds=(cfg.noise.kind,),
                         snrs_db=(cfg.noise.train_snr_db,) if fixed_snr else (), seed=cfg.seed, per=cfg.noise.per,
                         batch_size=cfg.train.eval_batch_size, device=cfg.device)
    write_json(os.path.join(out_dir, "metrics.json"), {
        "config": config_to_dict(cfg), "best_epoch": result.best_epoch, "data_fingerprint": result.prepared.fingerprint,
        "class_table": class_table(result.prepared), "code_revision": code_revision(), "test": rows})
    return rows


def prepared_for(ckpt: Any, cfg: Any) -> Any:
    """``cfg``'s data split as for training, turned into input with the checkpoint's own spec; classes must match."""
    import dataclasses

    from faultdiag.training.prepare import prepare

    prepared = prepare(cfg)
    if tuple(prepared.class_names) != tuple(ckpt.class_names):
        raise DataError(f"The checkpoint '{ckpt.path}' was trained on classes {list(ckpt.class_names)}; "
                        f"the config's data has {list(prepared.class_names)}.")
    if int(prepared.inputs.window_len) != int(ckpt.inputs.window_len):
        raise DataError(f"The checkpoint '{ckpt.path}' expects window_len {ckpt.inputs.window_len}; "
                        f"the config's data.window_len is {prepared.inputs.window_len}.")
    return dataclasses.replace(prepared, inputs=ckpt.inputs)


def load_ensemble(paths: Sequence[str | os.PathLike]) -> tuple[nn.Module, Any]:
    """One model, or the :class:`~faultdiag.models.ensemble.Ensemble` of several checkpoints trained on
    the same classes with the same input spec; returns it and the first checkpoint."""
    from faultdiag.models.ensemble import Ensemble

    loaded = [load_model(p) for p in paths]
    first = loaded[0][1]
    for _, ck in loaded[1:]:
        if ck.class_names != first.class_names or ck.inputs.to_key() != first.inputs.to_key():
            raise DataError(f"The checkpoints '{first.path}' and '{ck.path}' differ in classes or input spec; "
                            f"an ensemble needs models trained on the same input.")
    return (loaded[0][0] if len(loaded) == 1 else Ensemble([m for m, _ in loaded]).eval()), first


def evaluate_checkpoint(model_path: str | os.PathLike | Sequence[str | os.PathLike], cfg: Any,
                        out_dir: str | os.PathLike, *, kinds: Sequence[str], snrs_db: Sequence[float],
                        adabn: bool = False, split: str = "test") -> tuple["pd.DataFrame", list[dict]]:
    """Score the checkpoint at ``model_path`` (or the ensemble of several, mean probabilities) on
    ``cfg``'s data (each kind × SNR, clean, and with AdaBN if asked) and write ``evaluation.csv``,
    ``evaluation.json`` and ``accuracy_vs_snr.png`` to ``out_dir``.
    Returns the tidy table and the full rows of :func:`evaluate_snrs`."""
    from faultdiag import report
    from faultdiag.provenance import atomic_write, code_revision, write_json

    paths = [model_path] if isinstance(model_path, (str, os.PathLike)) else list(model_path)
    model, ckpt = load_ensemble(paths)
    prepared = prepared_for(ckpt, cfg)
    rows = []
    for with_adabn in (False, True) if adabn else (False,):
        rows += evaluate_snrs(model, prepared, split=split, kinds=kinds, snrs_db=snrs_db, seed=cfg.seed,
                              adabn=with_adabn, per=cfg.noise.per, batch_size=cfg.train.eval_batch_size,
                              device=cfg.device)
    df = tidy(rows, ckpt.model_name if len(paths) == 1 else f"{ckpt.model_name} ensemble of {len(paths)}", "evaluate")
    with atomic_write(os.path.join(out_dir, "evaluation.csv"), "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)
    write_json(os.path.join(out_dir, "evaluation.json"), {
        "checkpoints": [str(p) for p in paths], "checkpoint_revision": ckpt.revision, "code_revision": code_revision(),
        "split": split, "seed": cfg.seed, "data_fingerprint": prepared.fingerprint,
        "results": rows})
    report.plot_accuracy_vs_snr(df, os.path.join(out_dir, "accuracy_vs_snr.png"))
    return df, rows
