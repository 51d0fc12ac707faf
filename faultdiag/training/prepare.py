"""Data side of training: a config's ``[data]`` → raw windows per split and the model's input spec.

:func:`prepare` loads recordings, splits them by time region into raw train/val/test windows
(never overlapping windows of one stretch in two splits) and fits the standardiser on the
training windows only; the result's :class:`~faultdiag.data.inputs.InputSpec` turns raw
(possibly noisy) windows into model input in training, evaluation and diagnosis alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from faultdiag.config import DataConfig, RunConfig
from faultdiag.data.inputs import InputSpec
from faultdiag.data.normalize import Standardizer
from faultdiag.data.windows import WindowSet, split_windows
from faultdiag.errors import DataError

__all__ = ["Prepared", "prepare", "signal_stats", "rms_stats", "is_lazy", "class_table"]


@dataclass(frozen=True, eq=False)
class Prepared:
    """Raw (un-normalised) windows of each split and how they become model input.

    ``train``/``val``/``test``: :class:`~faultdiag.data.windows.WindowSet` with ``X (N, C, L)`` (or,
    from an HDF5 cache, a lazy :class:`~faultdiag.data.cache.CachedWindowSet`).
    ``inputs``: geometry and normalisation fitted on ``train`` only.
    ``signal_stats``: RMS statistics of the raw training windows (:func:`signal_stats`).
    """

    train: WindowSet
    val: WindowSet
    test: WindowSet
    inputs: InputSpec
    class_names: tuple[str, ...]
    fingerprint: dict[str, Any]
    signal_stats: dict[str, float]


def signal_stats(X: np.ndarray) -> dict[str, float]:
    """RMS statistics of raw windows ``X (N, C, L)``: min, 5th percentile, median, 95th percentile, max."""
    return rms_stats(np.sqrt(np.mean(np.asarray(X, dtype=np.float64) ** 2, axis=(1, 2))))


def rms_stats(rms: np.ndarray) -> dict[str, float]:
    """:func:`signal_stats` from the RMS of each window ``(N,)``."""
    q = np.percentile(rms, [0, 5, 50, 95, 100]) if rms.size else [float("nan")] * 5
    return {"rms_min": float(q[0]), "rms_p05": float(q[1]), "rms_median": float(q[2]),
            "rms_p95": float(q[3]), "rms_max": float(q[4]), "n_windows": int(rms.size)}


def class_table(prepared: Prepared) -> list[dict[str, Any]]:
    """Per class: recordings and windows in each split (``recordings_train``, ``windows_train`` ...).

    A recording counts in a split when it gave that split a window (every recording is cut into
    time regions, so most count in all three). Pure: reads only ``y`` and ``groups``.
    """
    rows = []
    for k, name in enumerate(prepared.class_names):
        row: dict[str, Any] = {"class": name}
        for split in ("train", "val", "test"):
            ws = getattr(prepared, split)
            mine = np.asarray(ws.y) == k
            row[f"recordings_{split}"] = int(np.unique(np.asarray(ws.groups)[mine]).size)
            row[f"windows_{split}"] = int(mine.sum())
        rows.append(row)
    return rows


def is_lazy(ws: Any) -> bool:
    """True for windows read batch by batch from an HDF5 cache (not held in memory)."""
    return not isinstance(ws.X, np.ndarray)


def _input_spec(d: DataConfig, channels: tuple[str, ...], standardizer: Standardizer | None,
                fs_hz: float) -> InputSpec:
    return InputSpec(fs_hz=float(fs_hz), window_len=d.window_len, hop=d.hop, channels=channels,
                     normalize=d.normalize, standardizer=standardizer)


def prepare(cfg: RunConfig) -> Prepared:
    """Load the data of ``cfg.data``, split it by time region, fit the standardiser on train windows.

    With ``data.cache`` set the windows stay in the HDF5 cache: ``X`` of each split is a lazy
    :class:`~faultdiag.data.cache.CachedWindows` and the standardiser is fitted in one streaming pass.
    """
    from faultdiag.data.datasets import load_dataset

    d = cfg.data
    if d.cache:
        return _prepare_cached(d)
    dataset = load_dataset(d)
    splits = split_windows(dataset.recordings, dataset.class_names, d.window_len, d.hop, d.split, d.eval_hop)
    if len(splits["train"]) == 0:
        raise DataError(f"No training windows: recordings are too short for window_len={d.window_len} "
                        f"with split {list(d.split)}.")
    standardizer = Standardizer(per_channel=True).fit(splits["train"].X) if d.normalize == "global" else None
    return Prepared(train=splits["train"], val=splits["val"], test=splits["test"],
                    inputs=_input_spec(d, tuple(dataset.recordings[0].channels), standardizer, dataset.fs_hz),
                    class_names=dataset.class_names, fingerprint=dataset.fingerprint,
                    signal_stats=signal_stats(splits["train"].X))


def _prepare_cached(d: DataConfig) -> Prepared:
    from faultdiag.data.cache import cached_splits, streaming_moments

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
    return Prepared(train=splits["train"], val=splits["val"], test=splits["test"],
                    inputs=_input_spec(d, tuple(info.channels), standardizer, info.fs_hz), class_names=class_names,
                    fingerprint=fp, signal_stats=rms_stats(rms))
