"""Data side of training: a config's ``[data]`` and ``[frontend]`` → raw windows per split and the model's input spec.

:func:`prepare` loads recordings, splits them by time region into raw train/val/test windows
(never overlapping windows of one stretch in two splits), chooses the front end's band from the
clean training windows (when ``frontend.band_hz`` is not given) and fits the standardiser on the
front end's output of the training windows only; the result's
:class:`~faultdiag.data.inputs.InputSpec` turns raw (possibly noisy) windows into model input in
training, evaluation and diagnosis alike.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from faultdiag.config import FrontEndConfig, RunConfig
from faultdiag.data.inputs import InputSpec
from faultdiag.data.normalize import Standardizer
from faultdiag.data.windows import WindowSet, split_windows
from faultdiag.errors import ConfigError, DataError
from faultdiag.frontend import BandChoice, FrontEnd, choose_band
from faultdiag.frontend.band_select import class_subset

__all__ = ["Prepared", "prepare", "front_end", "domain_of", "signal_stats", "rms_stats", "is_lazy", "class_table"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Prepared:
    """Raw (un-normalised) windows of each split and how they become model input.

    ``train``/``val``/``test``: :class:`~faultdiag.data.windows.WindowSet` with ``X (N, C, L)`` (or,
    from an HDF5 cache, a lazy :class:`~faultdiag.data.cache.CachedWindowSet`).
    ``inputs``: geometry, front end and normalisation fitted on ``train`` only.
    ``signal_stats``: RMS statistics of the raw training windows (:func:`signal_stats`).
    ``band_choice``: how the front end's band was chosen (``None`` when given or not needed).
    ``target``: with ``data.domain`` set, the unlabelled pool of target-domain windows (the
    training regions of the test-domain recordings; their test regions are ``test``), else ``None``.
    """

    train: WindowSet
    val: WindowSet
    test: WindowSet
    inputs: InputSpec
    class_names: tuple[str, ...]
    fingerprint: dict[str, Any]
    signal_stats: dict[str, float]
    band_choice: BandChoice | None = None
    target: WindowSet | None = None


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


def front_end(fe: FrontEndConfig, train: Any, class_names: tuple[str, ...],
              fs_hz: float) -> tuple[FrontEnd, BandChoice | None]:
    """The front end of ``fe``; a band not given is chosen from the clean training windows ``train``
    (at most 256 windows per class, evenly spaced; the class named ``normal``, if any, is the fault-free one)."""
    if not fe.needs_band:
        return FrontEnd(kind=fe.kind, fs_hz=fs_hz), None
    if fe.band_hz:
        return FrontEnd(fe.kind, fe.band_hz[0], fe.band_hz[1], fe.order, fs_hz), None
    idx = class_subset(np.asarray(train.y), 256)
    normal = class_names.index("normal") if "normal" in class_names else None
    choice = choose_band(np.asarray(train.X[idx]), np.asarray(train.y)[idx], fs_hz, fe.method,
                         normal_label=normal, snr_db=fe.judge_snr_db, order=fe.order)
    log.info("front end %s: band %.0f-%.0f Hz chosen by %s on %d clean training windows", fe.kind,
             choice.low_hz, choice.high_hz, fe.method, idx.size)
    return FrontEnd(fe.kind, choice.low_hz, choice.high_hz, fe.order, fs_hz), choice


def prepare(cfg: RunConfig) -> Prepared:
    """Load the data of ``cfg.data``, split it by time region, set up the front end and fit the
    standardiser on the training windows.

    With ``data.cache`` set the windows stay in the HDF5 cache: ``X`` of each split is a lazy
    :class:`~faultdiag.data.cache.CachedWindows` and the standardiser is fitted in one streaming pass.
    """
    from faultdiag.data.datasets import load_dataset

    d = cfg.data
    if d.cache:
        return _prepare_cached(cfg)
    dataset = load_dataset(d)
    splits = _split(dataset.recordings, dataset.class_names, d)
    if len(splits["train"]) == 0:
        raise DataError(f"No training windows: recordings are too short for window_len={d.window_len} "
                        f"with split {list(d.split)}.")
    fe, choice = front_end(cfg.frontend, splits["train"], dataset.class_names, float(dataset.fs_hz))
    spec = InputSpec(float(dataset.fs_hz), d.window_len, d.hop, tuple(dataset.recordings[0].channels), "none", None, fe)
    if d.normalize == "global":
        standardizer = Standardizer(per_channel=True).fit(spec.features(splits["train"].X))
        spec = dataclasses.replace(spec, normalize="global", standardizer=standardizer)
    else:
        spec = dataclasses.replace(spec, normalize=d.normalize)
    return Prepared(train=splits["train"], val=splits["val"], test=splits["test"], inputs=spec,
                    class_names=dataset.class_names, fingerprint=dataset.fingerprint,
                    signal_stats=signal_stats(splits["train"].X), band_choice=choice, target=splits.get("target"))


def domain_of(rec: Any, attribute: str) -> str:
    """The domain value of a recording: its ``meta[attribute]`` as a string (``1.0`` reads as ``1``)."""
    if attribute not in rec.meta:
        raise DataError(f"The recording {rec.name} has no attribute {attribute!r} (data.domain); its attributes "
                        f"are {sorted(rec.meta)}.")
    value = rec.meta[attribute]
    return f"{value:g}" if isinstance(value, float) else str(value)


def _split(recordings: list, class_names: tuple[str, ...], d: Any) -> dict[str, WindowSet]:
    """Train/val/test windows; with ``d.domain``: train and val from the train-domain recordings, test
    from the test regions of the test-domain recordings, and their training regions as ``target``."""
    args = (d.window_len, d.hop, d.split, d.eval_hop)
    if d.domain is None:
        return split_windows(recordings, class_names, *args)
    source = [r for r in recordings if domain_of(r, d.domain) in d.train_domains]
    target = [r for r in recordings if domain_of(r, d.domain) in d.test_domains]
    for name, recs, values in (("train", source, d.train_domains), ("test", target, d.test_domains)):
        if not recs:
            found = sorted({domain_of(r, d.domain) for r in recordings})
            raise DataError(f"No recording has {d.domain} in data.{name}_domains = {list(values)}; the values "
                            f"found are {found}.")
    src, tgt = split_windows(source, class_names, *args), split_windows(target, class_names, *args)
    # target recordings are numbered after the source ones, so a group id names one recording
    shift = {k: dataclasses.replace(tgt[k], groups=tgt[k].groups + len(source)) for k in ("train", "test")}
    return {"train": src["train"], "val": src["val"], "test": shift["test"], "target": shift["train"]}


def _prepare_cached(cfg: RunConfig) -> Prepared:
    from faultdiag.data.cache import cached_splits, streaming_moments

    d = cfg.data
    if d.domain is not None:
        raise ConfigError(f"Domains (data.domain = {d.domain!r}) are not read from an HDF5 cache (data.cache); "
                          "train from the recordings themselves.")
    splits, info, class_names = cached_splits(d)
    if len(splits["train"]) == 0:
        raise DataError(f"No training windows in the cache '{d.cache}' for window_len={d.window_len} "
                        f"with split {list(d.split)}.")
    fe, choice = front_end(cfg.frontend, splits["train"], class_names, float(info.fs_hz))
    spec = InputSpec(float(info.fs_hz), d.window_len, d.hop, tuple(info.channels), "none", None, fe)
    mean, std, rms = streaming_moments(splits["train"].X, transform=spec.features)
    if d.normalize == "global":
        standardizer = Standardizer.from_dict({"per_channel": True, "eps": Standardizer().eps,
                                               "mean": mean.tolist(), "std": std.tolist()})
        spec = dataclasses.replace(spec, normalize="global", standardizer=standardizer)
    else:
        spec = dataclasses.replace(spec, normalize=d.normalize)
    fp = {**info.fingerprint, "classes": list(class_names), "cache": str(d.cache)}
    return Prepared(train=splits["train"], val=splits["val"], test=splits["test"], inputs=spec,
                    class_names=class_names, fingerprint=fp, signal_stats=rms_stats(rms), band_choice=choice)
