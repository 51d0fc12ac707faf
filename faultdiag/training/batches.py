"""Where a training's batches come from: windows → (augment) → (noise) → model input.

A :class:`BatchSource` covers every case the fit loop meets with one interface: windows held in
memory or read lazily from an HDF5 cache, and clean, fixed (drawn once by seed), fresh (drawn
anew for every batch) or mixed-SNR noise (:func:`training_noise`).  Where nothing changes
between epochs (in memory, clean or fixed noise, no augmentation) the model input of the whole
split is computed once; otherwise batch by batch.

Everything a batch needs lives on the training device (``device``): windows held in memory are
moved there once, and the noise and augmentation generators are generators of that device, so on
a GPU a batch is cut, augmented, noised and transformed there without a copy from the host (windows
read lazily from a cache are copied batch by batch). On the CPU nothing changes; on a GPU the
redrawn noise follows the GPU's generator, so its numbers differ from a CPU run of the same seed.

Hooks: ``augment(raw (B, C, L), generator) -> raw`` runs on the raw windows of every training
batch before the noise (e.g. a random gain); extra loss terms on other batches (unlabelled target
windows) plug into the fit loop (:class:`faultdiag.training.loop.LossTerm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from faultdiag.config import NoiseConfig
from faultdiag.data.inputs import InputSpec
from faultdiag.data.noise import add_window_noise
from faultdiag.distributed import SINGLE, DistContext
from faultdiag.errors import ConfigError
from faultdiag.training.prepare import is_lazy
from faultdiag.training.seeds import derive_seed

__all__ = ["Batch", "BatchSource", "Augment", "training_noise", "check_lazy_noise"]

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Batch:
    """Model input ``x (B, C, L)``, labels ``y (B,)`` and the windows' indices in their source ``index (B,)``."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor


def training_noise(X: torch.Tensor, noise: NoiseConfig, groups: torch.Tensor | None,
                   generator: torch.Generator) -> torch.Tensor:
    """Raw windows ``X (N, C, L)`` with the noise ``noise.train`` asks for.

    ``clean``: unchanged.  ``fixed``/``fresh``: ``noise.kind`` at ``noise.train_snr_db``.
    ``mixed``: each window's SNR drawn uniformly from ``noise.train_snr_range_db``, then a share
    ``noise.clean_share`` of the windows (drawn at random) left clean.
    """
    if noise.train == "clean":
        return X
    if noise.train != "mixed":
        return add_window_noise(X, noise.train_snr_db, noise.kind, noise.per, groups, generator)
    lo, hi = noise.train_snr_range_db
    snr_db = lo + (hi - lo) * torch.rand(len(X), generator=generator, dtype=torch.float64)
    noisy = add_window_noise(X, snr_db.float(), noise.kind, noise.per, groups, generator)
    keep_clean = torch.rand(len(X), generator=generator) < noise.clean_share
    return torch.where(keep_clean[:, None, None], X, noisy)


def check_lazy_noise(noise: NoiseConfig, cache: str | None) -> None:
    """Windows read lazily from a cache get noise batch by batch: only per-window, redrawn noise."""
    if noise.train == "fixed" or (noise.train in ("fresh", "mixed") and noise.per == "recording"):
        raise ConfigError(f"Training from a cache (data.cache = {cache!r}) draws noise batch by batch: "
                          f"use noise.train = 'fresh', 'mixed' or 'clean' with noise.per = 'window'; got "
                          f"noise.train = {noise.train!r}, noise.per = {noise.per!r}.")


class BatchSource:
    """Labelled windows served as model-input batches.

    Args:
        windows: a :class:`~faultdiag.data.windows.WindowSet` (or a lazy cached one) with raw ``X (N, C, L)``.
        inputs: the :class:`~faultdiag.data.inputs.InputSpec` that makes model input of raw windows.
        noise: what noise to add (:func:`training_noise`); ``noise.train = "clean"`` for none.
        noise_seed: seed of the noise.
        redraw: ``True``: noise drawn anew for every batch from one generator that runs on across
            epochs (``generator``, saved for resuming); ``False``: noise fixed by ``noise_seed``,
            the same on every pass (validation, the DRSN paper's fixed training noise).
        augment: optional hook on the raw windows of every batch (before the noise).
        augment_seed: seed of the augmentation's generator.
        device: where the batches are made and served (default the CPU); windows held in memory are
            moved there once, and the generators are that device's.
    """

    def __init__(self, windows, inputs: InputSpec, *, noise: NoiseConfig, noise_seed: int, redraw: bool,
                 augment: Augment | None = None, augment_seed: int = 0, device: torch.device | str = "cpu") -> None:
        self.windows, self.inputs, self.noise, self.redraw, self.augment = windows, inputs, noise, redraw, augment
        self.noise_seed, self.device = noise_seed, torch.device(device)
        self.lazy = is_lazy(windows)
        self.y = torch.from_numpy(np.asarray(windows.y, dtype=np.int64)).to(self.device)
        self.groups = torch.from_numpy(np.asarray(windows.groups, dtype=np.int64)).to(self.device)
        self.generator = self._generator(noise_seed)
        self.augment_generator = self._generator(augment_seed)
        self._raw = None if self.lazy else torch.from_numpy(windows.X).to(self.device)
        self._x = None
        if not self.lazy and not redraw and augment is None and len(self.y):
            self._x = inputs.transform(training_noise(self._raw, noise, self.groups, self._generator(noise_seed)))
            self._raw = None  # served from _x from now on (on a GPU, the raw copy would hold memory for nothing)

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        return int(self.y.numel())

    @property
    def index_device(self) -> torch.device:
        """Where indices are best made: the CPU for windows read from a cache, else :attr:`device`."""
        return torch.device("cpu") if self.lazy else self.device

    def batch(self, idx: torch.Tensor) -> Batch:
        """The batch of windows ``idx (B,)`` (on any device) on :attr:`device`; redrawn noise advances
        :attr:`generator`."""
        idx = idx.to(self.index_device)
        if self._x is not None:
            return Batch(self._x[idx], self.y[idx], idx)
        return Batch(self._make(idx, self.generator, self.groups[idx]), self.y[idx], idx)

    def _make(self, idx: torch.Tensor, generator: torch.Generator, groups: torch.Tensor | None) -> torch.Tensor:
        """Model input of windows ``idx``; ``groups=None`` makes recording-level noise per window."""
        if self.lazy:
            raw = torch.from_numpy(self.windows.X[idx.numpy()]).to(self.device)
        else:
            raw = self._raw[idx]
        if self.augment is not None:
            raw = self.augment(raw, self.augment_generator)
        return self.inputs.transform(training_noise(raw, self.noise, groups, generator))

    def scan(self, batch_size: int, ctx: DistContext = SINGLE) -> Iterator[Batch]:
        """This rank's share of the windows in order (rank ``r`` of ``W`` takes ``r, r + W, ...``), in batches.

        Noise fixed by seed (``redraw=False``) is the same on every scan; windows read from a
        cache get it batch by batch, per window, from a generator re-seeded for every scan.
        """
        idx = torch.arange(ctx.rank, len(self), ctx.world_size, device=self.index_device)
        generator = self._generator(derive_seed(self.noise_seed, ctx.rank))
        for i in range(0, len(idx), batch_size):
            part = idx[i : i + batch_size]
            if self._x is not None:
                yield Batch(self._x[part], self.y[part], part)
            else:
                yield Batch(self._make(part, generator, None), self.y[part], part)
