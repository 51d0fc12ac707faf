"""Additive noise at a target signal-to-noise ratio, on torch tensors or numpy arrays.

Time is the last axis ``(..., T)``; every leading index (each channel of each window) is one
"window". ``SNR_dB = 10 * log10(P_signal / P_noise)`` with ``P = mean(x ** 2)`` over time.
The drawn noise is rescaled to the exact target power, so the realised SNR equals the target
(up to float rounding), not only in expectation.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
from torch import nn

from faultdiag.config.schema import NOISE_KINDS, NOISE_PER
from faultdiag.errors import ConfigError, DataError


Array = Union[torch.Tensor, np.ndarray]
GeneratorLike = Union[torch.Generator, np.random.Generator, int, None]


def _to_torch(x: Array, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``x`` as a floating tensor (sharing memory for numpy) and whether it was numpy."""
    is_numpy = isinstance(x, np.ndarray)
    if is_numpy and (not x.flags.writeable or any(st < 0 for st in x.strides)):
        x = np.array(x)  # torch.from_numpy refuses negative strides and warns on read-only views
    t = torch.from_numpy(x) if is_numpy else x
    if not isinstance(t, torch.Tensor):
        raise DataError(f"The '{name}' parameter must be a torch.Tensor or numpy array; got {type(x).__name__}.")
    if not t.is_floating_point():
        raise DataError(f"The '{name}' parameter must hold floating-point values; got dtype {t.dtype}.")
    if t.ndim == 0 or t.shape[-1] == 0:
        raise DataError(f"The '{name}' parameter must have a non-empty time axis (..., T); got shape {tuple(t.shape)}.")
    return t, is_numpy


def _back(t: torch.Tensor, like: Array, is_numpy: bool) -> Array:
    if is_numpy:
        return t.detach().cpu().numpy().astype(like.dtype, copy=False)
    return t.to(like.dtype)


def _draw(kind: str, shape: tuple[int, ...], dtype, device, generator: GeneratorLike) -> torch.Tensor:
    """Draw white noise of ``kind`` (gaussian or laplacian, unit scale) as a tensor on ``device``."""
    if isinstance(generator, np.random.Generator):
        if kind == "laplacian":
            arr = generator.laplace(size=shape)
        else:
            arr = generator.standard_normal(size=shape)
        return torch.from_numpy(arr).to(device=device, dtype=dtype)
    gen_device = generator.device if isinstance(generator, torch.Generator) else device
    if kind == "laplacian":  # inverse CDF of Laplace(0, 1); the clamp keeps rand() == 0 finite
        u = torch.rand(shape, dtype=dtype, device=gen_device, generator=generator) - 0.5
        noise = -torch.sign(u) * torch.log1p((-2.0 * u.abs()).clamp_min(-1.0 + torch.finfo(dtype).eps))
    else:
        noise = torch.randn(shape, dtype=dtype, device=gen_device, generator=generator)
    return noise.to(device)


def _pink(white: torch.Tensor) -> torch.Tensor:
    """Shape white noise ``(..., T)`` to a 1/f power spectrum; the mean (DC bin) is set to 0."""
    T = white.shape[-1]
    spec = torch.fft.rfft(white, dim=-1)
    k = torch.arange(spec.shape[-1], device=white.device, dtype=white.dtype)
    gain = torch.where(k > 0, k.clamp(min=1).rsqrt(), torch.zeros_like(k))  # amplitude ~ f^-1/2
    return torch.fft.irfft(spec * gain, n=T, dim=-1)


def _generator_for(x_is_numpy: bool, generator: GeneratorLike, device) -> torch.Generator | np.random.Generator | None:
    if generator is None or isinstance(generator, (torch.Generator, np.random.Generator)):
        if isinstance(generator, np.random.Generator) and not x_is_numpy:
            raise ConfigError(
                "The 'generator' parameter must be a torch.Generator (or int seed) for torch input; "
                "got a numpy Generator."
            )
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        if x_is_numpy:
            return np.random.default_rng(int(generator))
        return torch.Generator(device=device).manual_seed(int(generator))
    raise ConfigError(
        f"The 'generator' parameter must be a torch.Generator, numpy Generator, int seed or None; got {generator!r}."
    )


def _check_finite(snr: torch.Tensor, snr_db) -> None:
    """ConfigError if ``snr`` holds a non-finite value. A tensor given on another device than the CPU is
    not read: that would make the host wait for the device on every training batch (training draws
    those SNRs itself, from a range the config checks)."""
    if isinstance(snr_db, torch.Tensor) and snr_db.device.type != "cpu":
        return
    if not bool(torch.isfinite(snr).all()):
        raise ConfigError(f"The 'snr_db' parameter must be finite; got {snr_db!r}.")


def _snr_tensor(snr_db, x: torch.Tensor, per: str, dtype) -> torch.Tensor:
    """``snr_db`` as a tensor ``(..., 1)`` aligned from the left with ``x.shape[:-1]``."""
    try:
        value = np.array(snr_db) if isinstance(snr_db, np.ndarray) else snr_db  # copy: may be read-only
        snr = torch.as_tensor(value, dtype=dtype, device=x.device)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"The 'snr_db' parameter must be a number or a numeric array; got {snr_db!r}.") from None
    lead = tuple(x.shape[:-1])
    if snr.numel() == 0:
        raise ConfigError(f"The 'snr_db' parameter must be finite; got {snr_db!r}.")
    _check_finite(snr, snr_db)
    if per == "recording" and snr.numel() != 1:
        raise ConfigError(
            f"The 'snr_db' parameter must be one number when per='recording'; got shape {tuple(snr.shape)}."
        )
    if snr.numel() == 1:
        return snr.reshape((1,) * x.ndim)
    ok = snr.ndim <= len(lead) and all(s in (1, d) for s, d in zip(snr.shape, lead))
    if not ok:
        raise ConfigError(
            f"The 'snr_db' parameter must broadcast to the leading dims {lead} of x (aligned from the left); "
            f"got shape {tuple(snr.shape)}."
        )
    return snr.reshape(tuple(snr.shape) + (1,) * (x.ndim - snr.ndim))


def add_noise(
    x: Array,
    snr_db: float | Array,
    kind: str = "gaussian",
    per: str = "window",
    generator: GeneratorLike = None,
) -> Array:
    """Add noise to ``x`` at signal-to-noise ratio ``snr_db``.

    ``y = x + n`` with ``mean(n**2) = mean(x**2) / 10**(snr_db / 10)`` exactly, the means taken
    over the time axis of each window (``per="window"``) or over the whole array
    (``per="recording"``).

    Args:
        x: signal ``(..., T)``, torch tensor (any device) or numpy float array.
        snr_db: target SNR in dB: a number, or an array/tensor whose shape is a prefix of
            ``x.shape[:-1]`` (aligned from the left, size-1 dims broadcast), e.g. ``(N,)`` for
            one SNR per window of ``(N, C, L)``. Must be one number for ``per="recording"``.
        kind: ``"gaussian"`` (white), ``"laplacian"`` (white, Laplace-distributed, excess
            kurtosis 3) or ``"pink"`` (1/f power spectrum, zero mean, shaped with ``torch.fft``).
        per: ``"window"`` or ``"recording"``.
        generator: the only source of randomness: ``torch.Generator``, ``numpy.random.Generator``
            (numpy input only), an int seed, or ``None`` (global torch RNG).

    Returns:
        ``x`` plus noise, same type, shape and dtype (and device) as ``x``. A window with zero
        power (all zeros) gets zero noise and is returned unchanged; NaN in ``x`` propagates.

    Raises:
        ConfigError: unknown ``kind``/``per``, non-finite or ill-shaped ``snr_db``, bad generator.
        DataError: ``x`` is not a floating array with a time axis.
    """
    if kind not in NOISE_KINDS:
        raise ConfigError(f"The 'kind' parameter must be one of {list(NOISE_KINDS)}; got {kind!r}.")
    if per not in NOISE_PER:
        raise ConfigError(f"The 'per' parameter must be one of {list(NOISE_PER)}; got {per!r}.")
    t, is_numpy = _to_torch(x, "x")
    work = t if t.dtype in (torch.float32, torch.float64) else t.float()
    gen = _generator_for(is_numpy, generator, work.device)
    snr = _snr_tensor(snr_db, work, per, work.dtype)
    noise = _draw("gaussian" if kind == "pink" else kind, tuple(work.shape), work.dtype, work.device, gen)
    if kind == "pink":
        noise = _pink(noise)
    dims = tuple(range(work.ndim)) if per == "recording" else (-1,)
    p_signal = work.pow(2).mean(dim=dims, keepdim=True)
    p_noise = noise.pow(2).mean(dim=dims, keepdim=True)
    target = p_signal * torch.pow(10.0, -snr / 10.0)
    scale = torch.sqrt(target / p_noise.clamp_min(torch.finfo(work.dtype).tiny))
    return _back(work + noise * scale, x, is_numpy)


def add_window_noise(X: torch.Tensor, snr_db: float | torch.Tensor, kind: str, per: str,
                     groups: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """Noise at ``snr_db`` on raw windows ``X (N, C, L)``, relative to each window or to its recording.

    ``per="window"``: the SNR holds in every window (and channel); ``snr_db`` may be ``(N,)``, one
    SNR per window.  ``per="recording"``: the noise power of every window is set by the mean power
    of all windows of its recording (``groups (N,)``), so quiet windows of a recording get
    relatively more noise, as with noise added to the whole recording.
    """
    if per == "window" or groups is None:
        return add_noise(X, snr_db, kind=kind, per="window", generator=generator)
    p_win = X.double().pow(2).mean(dim=(1, 2))
    p_rec = torch.zeros(int(groups.max()) + 1, dtype=torch.float64, device=X.device).index_add_(0, groups, p_win)
    p_rec /= torch.bincount(groups, minlength=p_rec.numel()).clamp_min(1)
    ratio = (p_win / p_rec[groups]).clamp_min(1e-12)
    return add_noise(X, (torch.as_tensor(snr_db, dtype=torch.float64) + 10.0 * torch.log10(ratio)).float(),
                     kind=kind, per="window", generator=generator)


def measure_snr_db(clean: Array, noisy: Array) -> Array:
    """Realised SNR in dB of each window: ``10 log10(mean(clean**2) / mean((noisy - clean)**2))``.

    Args:
        clean, noisy: ``(..., T)`` of equal shape, both numpy or both torch.

    Returns:
        ``(...)`` float64 (numpy) or a tensor of ``clean``'s dtype; ``+inf`` where the noise is
        zero, ``-inf`` where the clean window is zero, NaN where both are.
    """
    c, is_numpy = _to_torch(clean, "clean")
    n, _ = _to_torch(noisy, "noisy")
    if c.shape != n.shape:
        raise DataError(
            f"The 'clean' and 'noisy' arrays must have equal shapes; got {tuple(c.shape)} and {tuple(n.shape)}."
        )
    dtype = torch.float64 if is_numpy else c.dtype
    c, n = c.to(dtype), n.to(dtype=dtype, device=c.device)
    snr = 10.0 * torch.log10(c.pow(2).mean(-1) / (n - c).pow(2).mean(-1))
    return snr.cpu().numpy() if is_numpy else snr


def add_image_noise(x: Array, scale: float = 0.5, generator: GeneratorLike = None) -> Array:
    """The seed article's MNIST noise: ``x + scale * U[0, 1)`` on every pixel.

    Args:
        x: images scaled to [0, 1], any shape, numpy or torch.
        scale: noise amplitude (finite, >= 0); the article uses 0.5.
        generator: as in :func:`add_noise`.

    Returns:
        Same type, shape and dtype as ``x``. Note the noise has mean ``scale / 2``: it shifts
        the images as well as blurring them, exactly as in the article.
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0):
        raise ConfigError(f"The 'scale' parameter must be a finite number >= 0; got {scale!r}.")
    t, is_numpy = _to_torch(x, "x")
    work = t if t.dtype in (torch.float32, torch.float64) else t.float()
    gen = _generator_for(is_numpy, generator, work.device)
    if isinstance(gen, np.random.Generator):
        u = torch.from_numpy(gen.random(size=tuple(work.shape))).to(work.dtype)
    else:
        gen_device = gen.device if isinstance(gen, torch.Generator) else work.device
        u = torch.rand(tuple(work.shape), dtype=work.dtype, device=gen_device, generator=gen).to(work.device)
    return _back(work + scale * u, x, is_numpy)


class AddNoise(nn.Module):
    """``nn.Module`` wrapper of :func:`add_noise` for pipelines; noise is drawn afresh each call.

    Args:
        snr_db: a number, or a ``(low, high)`` pair: one SNR per example drawn uniformly from
            ``[low, high)`` dB (per leading index ``x.shape[0]``).
        kind, per: as in :func:`add_noise`.
        generator: optional ``torch.Generator``; ``None`` uses the global torch RNG.
    """

    def __init__(self, snr_db: float | tuple[float, float], kind: str = "gaussian", per: str = "window",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if kind not in NOISE_KINDS:
            raise ConfigError(f"The 'kind' parameter must be one of {list(NOISE_KINDS)}; got {kind!r}.")
        if isinstance(snr_db, (tuple, list)):
            if len(snr_db) != 2 or not all(math.isfinite(v) for v in snr_db) or snr_db[0] > snr_db[1]:
                raise ConfigError(f"The 'snr_db' parameter must be a number or a (low, high) pair; got {snr_db!r}.")
        elif not math.isfinite(snr_db):
            raise ConfigError(f"The 'snr_db' parameter must be finite; got {snr_db!r}.")
        if per not in NOISE_PER:
            raise ConfigError(f"The 'per' parameter must be one of {list(NOISE_PER)}; got {per!r}.")
        self.snr_db, self.kind, self.per, self.generator = snr_db, kind, per, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., T)`` → noisy ``x`` of the same shape."""
        snr = self.snr_db
        if isinstance(snr, (tuple, list)):
            gen_device = self.generator.device if self.generator is not None else x.device
            shape = tuple(x.shape[:1]) if x.ndim > 1 else ()
            u = torch.rand(shape, generator=self.generator, device=gen_device).to(x.device)
            snr = snr[0] + (snr[1] - snr[0]) * u
        return add_noise(x, snr, self.kind, self.per, self.generator)

    def extra_repr(self) -> str:
        return f"snr_db={self.snr_db}, kind={self.kind!r}, per={self.per!r}"
