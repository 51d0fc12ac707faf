"""Streaming pieces of :mod:`faultdiag.diagnose`: resampling, windowing and signal checks block by block.

Memory stays bounded whatever the recording's length: the file is read in blocks
(:meth:`~faultdiag.data.readers.RecordingSource.iter_blocks`), resampled block by block, cut
into windows and reduced to running sums (votes, probability sums, RMS counts); no per-window
array outlives its batch.

Streaming resampling (:func:`resample_blocks`): ``scipy.signal.resample_poly`` is a linear FIR
filter (Kaiser window, ``10 * max(up, down)`` taps each side at the upsampled rate), so an output
sample depends only on the input samples within ``ceil(10 * max(up, down) / up)`` of it. Each
block is read with ``pad`` extra input samples on both sides (``pad`` a multiple of ``down``, at
least that reach), resampled whole, and only the outputs of its central span are kept. The
kept spans tile the output exactly, and every kept sample equals the one that
``resample_poly`` on the whole signal gives (up to float rounding), edges included: the first
and last blocks keep their outer edge, where both use the same zero padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from faultdiag.data.readers.source import RecordingSource
from faultdiag.data.resample import ResamplePlan, Resampler

FLAT_REL = 1e-6
"""A window is flat when its largest per-channel standard deviation is below this times the training median RMS."""

CLIP_SHARE = 1e-3
"""A channel is clipped when at least this share of its samples (and ``CLIP_MIN_COUNT``) sit on flat tops at its extreme value."""

CLIP_MIN_COUNT = 16

RMS_FAR_FACTOR = 2.0
"""A window's RMS is far outside training when below ``rms_min / factor`` or above ``rms_max * factor``."""


def resample_blocks(src: RecordingSource, rows: list[int], plan: ResamplePlan | None,
                    block_len: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(raw, out)``: consecutive source blocks ``raw (C, n)`` (no overlap, channels ``rows``)
    and the contiguous resampled stream ``out (C, m)`` float32 (see the module docstring).

    ``plan=None`` passes the blocks through. ``block_len`` is in source samples. The last item
    may have an empty ``raw``: the outputs that only the end of the signal determines.
    """
    resampler = Resampler(plan, len(rows)) if plan is not None else None
    for _, block in src.iter_blocks(block_len):
        if rows != list(range(block.shape[0])):
            block = block[rows]
        yield block, (block if resampler is None else resampler.feed(block))
    if resampler is not None:
        yield np.zeros((len(rows), 0), np.float32), resampler.flush()


def _plateau_count(raw: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Per channel, samples equal to ``value`` whose predecessor is too (a flat top, as clipping makes)."""
    at = raw == value[:, None]
    return (at[:, 1:] & at[:, :-1]).sum(axis=1)


@dataclass
class SignalChecks:
    """Running per-channel extremes on the raw signal, to flag clipping.

    Clipping shows as flat tops: runs of consecutive samples at the channel's maximum or minimum.
    A natural peak (of a sine, say) touches its extreme at isolated samples, which do not count.
    """

    n_samples: int = 0
    max_: np.ndarray | None = None
    min_: np.ndarray | None = None
    n_at_max: np.ndarray | None = None
    n_at_min: np.ndarray | None = None

    def update(self, raw: np.ndarray) -> None:
        """Fold in the next raw block ``(C, n)``."""
        if raw.shape[1] == 0:
            return
        self.n_samples += raw.shape[1]
        bmax, bmin = raw.max(axis=1), raw.min(axis=1)
        cmax, cmin = _plateau_count(raw, bmax), _plateau_count(raw, bmin)
        if self.max_ is None:
            self.max_, self.min_, self.n_at_max, self.n_at_min = bmax, bmin, cmax, cmin
            return
        self.n_at_max = np.where(bmax > self.max_, cmax, self.n_at_max + np.where(bmax == self.max_, cmax, 0))
        self.n_at_min = np.where(bmin < self.min_, cmin, self.n_at_min + np.where(bmin == self.min_, cmin, 0))
        self.max_, self.min_ = np.maximum(self.max_, bmax), np.minimum(self.min_, bmin)

    def clipped_share(self) -> float:
        """Largest share, over channels, of flat-top samples at the channel's max or min (0 if below CLIP_MIN_COUNT)."""
        if not self.n_samples or self.max_ is None:
            return 0.0
        at = np.maximum(self.n_at_max, self.n_at_min)
        at = np.where((self.max_ > self.min_) & (at >= CLIP_MIN_COUNT), at, 0)
        return float(at.max() / self.n_samples)


@dataclass
class WindowTally:
    """Running sums over a recording's windows: votes, probability sums, RMS and flatness counts.

    ``rms_range``: ``(rms_min, rms_max)`` of the training windows (``signal_stats``), or ``None``.
    """

    n_classes: int
    rms_range: tuple[float, float] | None = None
    flat_rms: float = 0.0
    n_windows: int = 0
    votes: np.ndarray = field(init=False)
    prob_sum: np.ndarray = field(init=False)
    rms_sum: float = 0.0
    n_rms_far: int = 0
    n_flat: int = 0
    scores: list = field(default_factory=list)  # feature-space scores of the windows (faultdiag.ood)

    def __post_init__(self) -> None:
        self.votes = np.zeros(self.n_classes, np.int64)
        self.prob_sum = np.zeros(self.n_classes, np.float64)

    def add_raw(self, X: np.ndarray) -> None:
        """Signal statistics of raw windows ``X (N, C, L)`` (the RMS as in ``train.signal_stats``)."""
        x64 = X.astype(np.float64, copy=False)
        rms = np.sqrt(np.mean(x64**2, axis=(1, 2)))
        self.rms_sum += float(rms.sum())
        self.n_flat += int((x64.std(axis=2).max(axis=1) <= self.flat_rms).sum())
        if self.rms_range is not None:
            lo, hi = self.rms_range
            self.n_rms_far += int(((rms < lo / RMS_FAR_FACTOR) | (rms > hi * RMS_FAR_FACTOR)).sum())

    def add_probs(self, probs: np.ndarray, scores: np.ndarray | None = None) -> None:
        """Class probabilities ``(N, K)`` of a batch, and its windows' feature-space scores ``(N,)``."""
        self.n_windows += probs.shape[0]
        self.votes += np.bincount(probs.argmax(axis=1), minlength=self.n_classes)
        self.prob_sum += probs.sum(axis=0, dtype=np.float64)
        if scores is not None:
            self.scores.append(np.asarray(scores, dtype=np.float32))


def iter_windows(chunks: Iterator[np.ndarray], window_len: int, hop: int, batch_size: int) -> Iterator[np.ndarray]:
    """Cut a contiguous stream of chunks ``(C, m)`` into batches of windows ``(n <= batch_size, C, L)``.

    Window ``i`` starts at stream sample ``i * hop``; a trailing part shorter than a window is dropped.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    buf: np.ndarray | None = None
    pending: list[np.ndarray] = []
    n_pending = skip = 0
    for chunk in chunks:
        if skip:  # hop > window_len: samples between windows not yet seen
            chunk, skip = chunk[:, skip:], max(0, skip - chunk.shape[1])
        buf = chunk if buf is None or buf.shape[1] == 0 else np.concatenate([buf, chunk], axis=1)
        if buf.shape[1] < window_len:
            continue
        n = (buf.shape[1] - window_len) // hop + 1
        frames = sliding_window_view(buf, window_len, axis=1)[:, ::hop][:, :n].transpose(1, 0, 2)
        for a in range(0, n, batch_size):
            pending.append(np.array(frames[a:a + batch_size]))
            n_pending += pending[-1].shape[0]
            if n_pending >= batch_size:
                batch = np.concatenate(pending) if len(pending) > 1 else pending[0]
                pending, n_pending = [batch[batch_size:]], batch.shape[0] - batch_size
                yield batch[:batch_size]
        skip = max(0, n * hop - buf.shape[1])
        buf = buf[:, n * hop:]
    if n_pending:
        yield np.concatenate(pending) if len(pending) > 1 else pending[0]


class Excerpt:
    """The first ``n`` samples of a 1-D stream."""

    def __init__(self, n: int) -> None:
        self.n, self.parts, self.have = n, [], 0

    def add(self, x: np.ndarray) -> None:
        if self.have < self.n:
            self.parts.append(np.array(x[: self.n - self.have], dtype=np.float32))
            self.have += self.parts[-1].size

    def full(self) -> bool:
        """Whether all ``n`` samples have arrived."""
        return self.have >= self.n

    def value(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
