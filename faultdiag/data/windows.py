"""Windows cut from recordings, and splits that never leak a sample across train/val/test.

Each recording ``(C, T)`` is cut in time into contiguous regions (``train``, ``val``, ``test``)
and every region is framed on its own, so no window straddles a region boundary and no sample
of a test window lies inside a training window of the same recording, whatever the hop.
Overlapping windows are never shuffled across splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"The '{name}' parameter must be a positive int; got {value!r}.")
    return int(value)


def frame(signal: np.ndarray | Recording, window_len: int, hop: int, *, name: str | None = None) -> np.ndarray:
    """Cut ``signal`` into windows of ``window_len`` samples every ``hop`` samples.

    Args:
        signal: array ``(C, T)`` (a 1-D array is taken as one channel) or a :class:`Recording`.
        window_len: samples per window ``L`` (> 0).
        hop: samples between the starts of consecutive windows (> 0); ``hop < window_len``
            overlaps windows, ``hop > window_len`` skips samples.
        name: recording name used in error messages (defaults to the recording's name).

    Returns:
        A read-only, zero-copy view ``(N, C, L)`` with ``N = (T - L) // hop + 1``; window ``n``
        starts at sample ``n * hop``. Trailing samples that do not fill a window are dropped.

    Raises:
        ConfigError: ``window_len`` or ``hop`` is not a positive int.
        DataError: the signal is not 1-D/2-D or is shorter than one window.
    """
    window_len = _check_positive_int("window_len", window_len)
    hop = _check_positive_int("hop", hop)
    if isinstance(signal, Recording):
        name = name or signal.name
        signal = signal.signal
    sig = np.asarray(signal)
    if sig.ndim == 1:
        sig = sig[None, :]
    label = name or "the signal"
    if sig.ndim != 2:
        raise DataError(f"Cannot frame {label}: expected shape (channels, samples); got {sig.shape}.")
    if sig.shape[1] < window_len:
        raise DataError(
            f"Cannot frame {label}: it has {sig.shape[1]} samples, fewer than one window "
            f"(window_len={window_len})."
        )
    view = sliding_window_view(sig, window_len, axis=1)[:, ::hop]  # (C, N, L), read-only
    return view.transpose(1, 0, 2)


def time_regions(
    n_samples: int,
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    window_len: int = 1,
    order: Sequence[str] = SPLITS,
) -> dict[str, tuple[int, int]]:
    """Split ``[0, n_samples)`` into contiguous time regions, one per name in ``order``.

    ``ratios[i]`` is the share of samples of region ``order[i]``; regions follow each other in
    time in that order. Boundaries are ``round(n_samples * cumsum(ratios))``.

    Args:
        n_samples: length ``T`` of the recording.
        ratios: non-negative shares summing to 1, one per name in ``order``. A zero share gives
            an empty region ``(b, b)``.
        window_len: every region with a positive share must hold at least one window.
        order: region names in time order (unique).

    Returns:
        ``{name: (start, stop)}`` half-open sample ranges covering ``[0, n_samples)``.

    Raises:
        ConfigError: bad ``ratios``, ``order`` or ``window_len``.
        DataError: a region with a positive share is shorter than ``window_len``.
    """
    window_len = _check_positive_int("window_len", window_len)
    n_samples = _check_positive_int("n_samples", n_samples)
    order = tuple(order)
    shares = np.asarray(ratios, dtype=float)
    if len(set(order)) != len(order) or not order:
        raise ConfigError(f"The 'order' parameter must hold unique region names; got {order!r}.")
    if shares.shape != (len(order),) or not np.isfinite(shares).all() or (shares < 0).any():
        raise ConfigError(
            f"The 'ratios' parameter must hold {len(order)} non-negative numbers (one per region "
            f"{order}); got {tuple(ratios)!r}."
        )
    if not math.isclose(shares.sum(), 1.0, abs_tol=1e-6):
        raise ConfigError(f"The 'ratios' parameter must sum to 1; got {tuple(ratios)!r} (sum {shares.sum():g}).")
    bounds = [0] + [int(round(c * n_samples)) for c in np.cumsum(shares)[:-1]] + [n_samples]
    regions = {name: (bounds[i], bounds[i + 1]) for i, name in enumerate(order)}
    for name, share in zip(order, shares):
        start, stop = regions[name]
        if share > 0 and stop - start < window_len:
            raise DataError(
                f"The '{name}' region (ratio {share:g}) of a {n_samples}-sample recording spans samples "
                f"[{start}, {stop}), {stop - start} samples, fewer than one window (window_len={window_len}); "
                "use a longer recording, a shorter window or a larger ratio."
            )
    return regions


@dataclass(frozen=True, eq=False)
class WindowSet:
    """Labelled windows with the recording and position each came from.

    Attributes:
        X: float32 ``(N, C, L)``.
        y: int64 ``(N,)`` class indices into ``class_names``.
        groups: int64 ``(N,)`` index of the source recording.
        starts: int64 ``(N,)`` first sample of each window within its recording.
        class_names: the class names, index ``k`` is class ``k``.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    starts: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        X = np.asarray(self.X, dtype=np.float32)
        if X.ndim != 3:
            raise DataError(f"A WindowSet's 'X' must be 3-D (N, C, L); got shape {X.shape}.")
        for field_name in ("y", "groups", "starts"):
            arr = np.asarray(getattr(self, field_name), dtype=np.int64)
            if arr.shape != (X.shape[0],):
                raise DataError(
                    f"A WindowSet's '{field_name}' must have shape ({X.shape[0]},) to match X; got {arr.shape}."
                )
            object.__setattr__(self, field_name, arr)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def subset(self, idx: np.ndarray | Sequence[int] | slice) -> "WindowSet":
        """Windows at ``idx`` (integer indices, boolean mask or slice)."""
        if not isinstance(idx, slice):
            idx = np.asarray(idx)
        return WindowSet(self.X[idx], self.y[idx], self.groups[idx], self.starts[idx], self.class_names)

    @staticmethod
    def concat(sets: Sequence["WindowSet"]) -> "WindowSet":
        """Join window sets that share ``class_names`` and window shape ``(C, L)``."""
        if not sets:
            raise DataError("WindowSet.concat needs at least one WindowSet; got none.")
        first = sets[0]
        for other in sets[1:]:
            if other.class_names != first.class_names or other.X.shape[1:] != first.X.shape[1:]:
                raise DataError(
                    "WindowSet.concat needs equal class_names and window shapes; got "
                    f"{first.class_names} {first.X.shape[1:]} and {other.class_names} {other.X.shape[1:]}."
                )
        return WindowSet(
            np.concatenate([s.X for s in sets]),
            np.concatenate([s.y for s in sets]),
            np.concatenate([s.groups for s in sets]),
            np.concatenate([s.starts for s in sets]),
            first.class_names,
        )


def _class_index(rec: Recording, class_names: tuple[str, ...]) -> int:
    if rec.label is None:
        raise DataError(f"The recording {rec.name} has no label; every recording to split needs one.")
    if rec.label not in class_names:
        raise DataError(
            f"The recording {rec.name} has label {rec.label!r}, which is not a known class; "
            f"known classes are {list(class_names)}."
        )
    return class_names.index(rec.label)


def _n_windows(n: int, window_len: int, hop: int) -> int:
    return 0 if n < window_len else (n - window_len) // hop + 1


def split_windows(
    recordings: Sequence[Recording],
    class_names: Sequence[str],
    window_len: int,
    hop: int,
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    eval_hop: int | None = None,
) -> dict[str, WindowSet]:
    """Frame every recording and split its windows by time region into train/val/test.

    Each recording is cut into contiguous regions by :func:`time_regions` (``ratios`` are the
    train, val, test shares in that time order) and each region is framed on its own: train
    with ``hop``, val and test with ``eval_hop`` (default ``window_len``: non-overlapping).

    Args:
        recordings: labelled recordings with equal channel counts; ``groups`` index this list.
        class_names: class names; ``y`` indexes them.
        window_len: samples per window ``L``.
        hop: hop of training windows.
        ratios: (train, val, test) shares of each recording's duration.
        eval_hop: hop of val/test windows; ``None`` means ``window_len``.

    Returns:
        ``{"train": WindowSet, "val": WindowSet, "test": WindowSet}``; ``X`` of each is one
        contiguous float32 array ``(N, C, L)``.

    Raises:
        DataError: unlabelled recording, unknown label, unequal channel counts, a region
            shorter than one window.
        ConfigError: bad ``window_len``, ``hop``, ``eval_hop`` or ``ratios``.
    """
    window_len = _check_positive_int("window_len", window_len)
    hops = {"train": _check_positive_int("hop", hop)}
    hops["val"] = hops["test"] = window_len if eval_hop is None else _check_positive_int("eval_hop", eval_hop)
    class_names = tuple(str(c) for c in class_names)
    recordings = list(recordings)
    if not recordings:
        raise DataError("split_windows needs at least one recording; got none.")
    n_channels = recordings[0].signal.shape[0]
    plans = []  # (recording index, class index, {split: (start, stop)})
    for i, rec in enumerate(recordings):
        if rec.signal.shape[0] != n_channels:
            raise DataError(
                f"All recordings must have the same number of channels; {rec.name} has "
                f"{rec.signal.shape[0]}, {recordings[0].name} has {n_channels}."
            )
        k = _class_index(rec, class_names)
        try:
            regions = time_regions(rec.n_samples, ratios, window_len, SPLITS)
        except DataError as err:
            raise DataError(f"Cannot split {rec.name}: {err}") from None
        plans.append((i, k, regions))
    return {split: _gather(recordings, plans, split, window_len, hops[split], class_names) for split in SPLITS}


def _gather(recordings, plans, split: str, window_len: int, hop: int, class_names) -> WindowSet:
    """Frame region ``split`` of every recording into one preallocated array."""
    counts = [_n_windows(reg[split][1] - reg[split][0], window_len, hop) for _, _, reg in plans]
    total = int(sum(counts))
    n_channels = recordings[0].signal.shape[0]
    X = np.empty((total, n_channels, window_len), dtype=np.float32)
    y = np.empty(total, dtype=np.int64)
    groups = np.empty(total, dtype=np.int64)
    starts = np.empty(total, dtype=np.int64)
    pos = 0
    for (i, k, regions), n in zip(plans, counts):
        if n == 0:
            continue
        start, stop = regions[split]
        X[pos : pos + n] = frame(recordings[i].signal[:, start:stop], window_len, hop, name=recordings[i].name)
        y[pos : pos + n] = k
        groups[pos : pos + n] = i
        starts[pos : pos + n] = start + hop * np.arange(n, dtype=np.int64)
        pos += n
    return WindowSet(X, y, groups, starts, class_names)


def group_kfold(
    groups: np.ndarray | Sequence[int], n_splits: int, seed: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds in which every group (recording or region id) lies in exactly one test fold.

    Groups are dealt, largest first, to the fold with the fewest items so far (as scikit-learn's
    ``GroupKFold``); with ``seed`` the order among equally large groups is shuffled.

    Args:
        groups: ``(N,)`` group id of each item.
        n_splits: number of folds (2 <= n_splits <= number of distinct groups).
        seed: ``None`` for a deterministic assignment, an int to shuffle ties.

    Returns:
        ``n_splits`` pairs ``(train_idx, test_idx)`` of sorted int64 indices into ``groups``.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise DataError(f"The 'groups' parameter must be 1-D (N,); got shape {groups.shape}.")
    ids, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or not 2 <= n_splits <= len(ids):
        raise ConfigError(
            f"The 'n_splits' parameter must be an int in [2, {len(ids)}] (the number of distinct groups); "
            f"got {n_splits!r}."
        )
    order = np.arange(len(ids))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(ids))
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of_group = np.empty(len(ids), dtype=np.int64)
    load = np.zeros(n_splits, dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    fold = fold_of_group[inverse]
    all_idx = np.arange(len(groups), dtype=np.int64)
    return [(all_idx[fold != f], all_idx[fold == f]) for f in range(n_splits)]
