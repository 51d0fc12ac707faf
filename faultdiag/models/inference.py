"""An inference-only copy of a trained :class:`~faultdiag.models.networks.ShrinkageNet`: fewer kernels, same outputs.

:func:`fold_for_inference` returns a new module (the trained model is not touched) that computes
what the eval-mode model computes, with less work per forward pass:

* in each :class:`~faultdiag.models.blocks.ResidualUnit` the BatchNorm after ``conv1``
  (``conv1 -> BN2``) is folded into ``conv1``'s weights and bias; ``BN1`` cannot fold (a ReLU and
  the identity path sit between it and any conv) and stays;
* in each threshold sub-network (the units' and the one after the stem, ``stem_shrinkage``)
  ``fc1 -> BN`` folds into ``fc1``; the stem's kernel dropout is off in eval mode, so its
  convolution is a plain one;
* max-pooling between stages (``downsample="maxpool"``) of a lifted 1-D map runs as the elementwise
  maximum of interleaved samples (:class:`_Pool`); in the ``fc`` head (``head="fc"``) the BatchNorm
  after the hidden linear layer folds into it;
* ReLUs, the soft threshold and the residual addition run in place on tensors the pass owns, and
  the zero-padding shortcut adds the (subsampled) identity into the middle channels instead of
  building a padded copy;
* 1-D networks run as 2-D ones on ``(N, C, 1, L)`` in ``channels_last`` memory format: oneDNN's
  convolutions with these few channels are about twice as fast that way than ``conv1d`` on
  ``(N, C, L)`` (measured on a 2-core AVX-512 Xeon, torch 2.13, 4 to 16 channels).

Folding uses the running statistics, so it is exact in eval mode only (up to float rounding:
``w' = w * gamma / sqrt(var + eps)``). Inference only: no gradients, no ``thresholds()``.

``dtype=torch.bfloat16`` runs the convolutions, BatchNorms, soft thresholds and residual additions
in bfloat16 (oneDNN's AVX-512 BF16 kernels where the CPU has them) and keeps in float32 what is
small and sensitive: the pooled ``mean |x|`` of each shrinkage unit, its threshold sub-network, the
global average pooling and the final linear layer.  The logits move by a few hundredths (bfloat16 keeps 8
bits of mantissa); :func:`bfloat16_supported` says whether the CPU runs it natively.  Two bfloat16
operations that PyTorch 2.13 runs on a slow path in this layout are avoided: the threshold is
broadcast into a tensor of the features' own shape and layout before it is subtracted, and the
zero-padded identity is built whole and added, not added into a channel slice.
"""

from __future__ import annotations

import copy
from typing import Callable, List

import torch
from torch import nn
from torch.nn import functional as F

from faultdiag.errors import ConfigError
from faultdiag.models.blocks import ResidualUnit
from faultdiag.models.networks import ShrinkageNet
from faultdiag.models.shrinkage import Shrinkage

__all__ = ["fold_for_inference", "InferenceNet", "bfloat16_supported", "check_precision", "autocast_forward",
           "DTYPES"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def bfloat16_supported() -> bool:
    """True when oneDNN runs bfloat16 convolutions natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def check_precision(precision: str) -> torch.dtype:
    """``"float32"`` or ``"bfloat16"`` as a dtype; bfloat16 only where the CPU runs it natively (ConfigError)."""
    if precision not in DTYPES:
        raise ConfigError(f"The 'precision' parameter must be one of {list(DTYPES)}; got {precision!r}.")
    if precision == "bfloat16" and not bfloat16_supported():
        raise ConfigError("The 'precision' parameter 'bfloat16' needs a CPU with native bfloat16 (AVX-512 BF16 or "
                          "AMX) for oneDNN; this one has none (it would be slower, not faster): use 'float32'.")
    return DTYPES[precision]


def autocast_forward(forward: Callable[[torch.Tensor], torch.Tensor],
                     dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward`` run under autocast to ``dtype``, its output back in float32."""
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=dtype):
            return forward(x).float()
    return run


def _bn_scale_shift(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with ``bn(x) = x * scale + shift`` per channel (eval mode, running statistics)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _last_conv(module: nn.Module) -> nn.Module:
    """The conv of a :func:`~faultdiag.models.blocks.conv_same` module (itself, or the conv after its pad)."""
    return module[-1] if isinstance(module, nn.Sequential) else module


@torch.no_grad()
def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    """``bn(layer(x))`` becomes ``layer(x)``: a conv's or linear layer's output channels rescaled in place."""
    scale, shift = _bn_scale_shift(bn)
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    layer.weight.mul_(scale.reshape(shape))
    layer.bias.copy_(layer.bias * scale + shift)


def _batch_norm(x: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """Eval-mode ``bn`` on any ``(N, C, ...)`` (a BatchNorm1d module refuses 4-D input)."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


class _Conv(nn.Module):
    """A ``conv_same`` module as a 2-D convolution; a 1-D one lifted to ``(N, C, 1, L)``, channels_last."""

    def __init__(self, module: nn.Module, lift: bool, dtype: torch.dtype = torch.float32):
        super().__init__()
        conv = _last_conv(module)
        self.pad: List[int] = list(module[0].padding) if isinstance(module, nn.Sequential) else []
        weight = conv.weight.detach()
        if lift:
            weight = weight[:, :, None, :]
            self.stride, self.padding = (1, conv.stride[0]), (0, conv.padding[0])
            self.pad = self.pad[:2]
        else:
            self.stride, self.padding = tuple(conv.stride), tuple(conv.padding)
        self.weight = nn.Parameter(weight.to(dtype).contiguous(memory_format=torch.channels_last), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().to(dtype), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, self.pad)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class _Shrink(nn.Module):
    """A :class:`~faultdiag.models.shrinkage.Shrinkage` on ``(N, C, H, W)`` with its estimator's BN folded into
    ``fc1``, the soft threshold in place on the tensor the pass owns."""

    def __init__(self, shrink: Shrinkage):
        super().__init__()
        self.estimator = shrink.estimator
        _fold_into(self.estimator.fc1, self.estimator.bn)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        est = self.estimator
        r_abs = r.abs()
        a = r_abs.mean(dim=(2, 3), dtype=torch.float32)                      # (N, C), float32 also for bfloat16 r
        alpha = torch.sigmoid(est.fc2(torch.relu_(est.fc1(a))))
        tau = alpha * a if est.mode == "cw" else alpha * a.mean(dim=1, keepdim=True)
        tau = tau.to(r.dtype)[:, :, None, None]
        if r.dtype != torch.float32:  # a broadcast bfloat16 subtraction is slow: the threshold in r's shape and layout
            tau = tau.expand_as(r).contiguous(memory_format=_layout(r))
        return r_abs.sub_(tau).relu_().copysign_(r)


class _Unit(nn.Module):
    """A ResidualUnit with BN2 folded into conv1 and everything after conv1 in place."""

    def __init__(self, unit: ResidualUnit, lift: bool, dtype: torch.dtype = torch.float32):
        super().__init__()
        _fold_into(_last_conv(unit.conv1), unit.bn2)
        self.bn1, self.conv1, self.conv2 = unit.bn1, _Conv(unit.conv1, lift, dtype), _Conv(unit.conv2, lift, dtype)
        self.shrink = _Shrink(unit.shrink) if isinstance(unit.shrink, Shrinkage) else None
        self.kind, self.lift = unit._shortcut_kind, lift
        self.proj = _Conv(unit.proj, lift, dtype) if self.kind == "conv" else unit.proj
        self.stride, self.c_in, self.c_out = unit.stride, unit.in_channels, unit.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.relu_(self.conv1(torch.relu_(_batch_norm(x, self.bn1))))               # BN2 folded into conv1
        r = self.conv2(r)
        if self.shrink is not None:
            r = self.shrink(r)
        if self.kind == "none":
            return r
        if self.kind == "conv":
            return r.add_(self.proj(x))
        if self.stride > 1:
            x = x[:, :, :, :: self.stride] if self.lift else x[:, :, :: self.stride, :: self.stride]
        before = (self.c_out - self.c_in) // 2
        if r.dtype != torch.float32 and before + self.c_in < self.c_out:  # bfloat16: a slice add is slow, pad whole
            x = F.pad(x, (0, 0, 0, 0, before, self.c_out - self.c_in - before)).contiguous(memory_format=_layout(r))
            return r.add_(x)
        r[:, before:before + self.c_in] += x                                # zero-padded identity, no copy
        return r


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        else torch.contiguous_format


class _Pool(nn.Module):
    """Max-pooling by ``stride`` (``ceil_mode``, as the model's) on ``(N, C, 1, L)`` (lifted 1-D) or ``(N, C, H, W)``.

    Lifted, it takes the elementwise maximum of the ``stride`` interleaved sample rows of the channels-last
    ``(N, L, C)`` view, the output channels-last again: the same values as ``max_pool2d`` with a ``(1, s)``
    kernel, which PyTorch 2.13 runs on a slow CPU path for this layout (``benchmarks/diagnose_speed.py``
    against the previous code: README, speed section).
    """

    def __init__(self, pool: nn.Module, lift: bool):
        super().__init__()
        self.stride = pool.stride if isinstance(pool.stride, int) else pool.stride[0]
        self.lift = lift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if not self.lift:
            return F.max_pool2d(x, (s, s), (s, s), ceil_mode=True)
        n, c, _, length = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(n, length, c)                  # a view for channels-last x
        whole = length // s * s
        out = rows[:, 0:whole:s]
        for k in range(1, s):
            out = torch.maximum(out, rows[:, k:whole:s])
        if whole < length:                                                  # ceil_mode: the partial last window
            out = torch.cat([out, rows[:, whole:].amax(1, keepdim=True)], 1)
        return out.reshape(n, 1, -1, c).permute(0, 3, 1, 2)


class _Head(nn.Module):
    """The ``fc`` head: adaptive max-pooling to ``bins``, flatten, Linear with its BatchNorm folded in, ReLU."""

    def __init__(self, hidden: nn.Sequential, lift: bool):
        super().__init__()
        pool, linear, bn = hidden[0], hidden[2], hidden[3]
        _fold_into(linear, bn)
        bins = pool.output_size if isinstance(pool.output_size, int) else pool.output_size[0]
        self.bins = (1, bins) if lift else (bins, bins)
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.adaptive_max_pool2d(x, self.bins).float().flatten(1)       # (N, C * bins), the model's order
        return torch.relu_(self.linear(z))


class InferenceNet(nn.Module):
    """The folded network (see the module docstring): ``(N, C_in, *spatial) -> logits (N, K)``."""

    def __init__(self, net: ShrinkageNet, channels_last: bool = True, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = dtype
        self.lift = isinstance(_last_conv(net.stem), nn.Conv1d)
        self.stem, self.bn, self.fc = _Conv(net.stem, self.lift, dtype), net.bn, net.fc
        self.stem_shrink = _Shrink(net.stem_shrink) if isinstance(net.stem_shrink, Shrinkage) else None
        self.units = nn.ModuleList(_Unit(u, self.lift, dtype) if isinstance(u, ResidualUnit) else _Pool(u, self.lift)
                                   for stage in net.stages for u in stage)
        self.head = _Head(net.hidden, self.lift) if net.head_kind == "fc" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C_in, L) or (N, C_in, H, W), float32
        x = x[:, :, None, :] if self.lift else x
        x = self.stem(x.to(self.dtype).contiguous(memory_format=self.memory_format))  # (N, C, 1 or H', L' or W')
        if self.stem_shrink is not None:
            x = self.stem_shrink(x)
        for unit in self.units:
            x = unit(x)
        x = torch.relu_(_batch_norm(x, self.bn))
        if self.head is not None:
            return self.fc(self.head(x))                                # (N, 100) -> (N, K) float32
        return self.fc(x.mean(dim=(2, 3), dtype=torch.float32))       # (N, K) float32


def fold_for_inference(net: ShrinkageNet, channels_last: bool = True, inplace: bool = False,
                       dtype: torch.dtype = torch.float32) -> InferenceNet:
    """An eval-mode, inference-only copy of ``net`` with BatchNorms folded (``net`` is left as it was).

    ``channels_last``: run convolutions in that memory format (1-D nets lifted to ``(N, C, 1, L)``).
    ``inplace=True`` reuses ``net``'s parameters (no copy; ``net`` must not be used afterwards).
    ``dtype``: ``torch.float32`` or ``torch.bfloat16`` (see the module docstring); input and logits
    are float32 either way.

    Its logits equal ``net.eval()(x)`` up to float rounding (tested to 1e-4 in float32). Use it under
    ``torch.inference_mode()`` or ``torch.no_grad()``.
    """
    if not isinstance(net, ShrinkageNet) or not net.foldable:
        raise TypeError(f"fold_for_inference expects a ShrinkageNet with a convolution stem; got {type(net).__name__}.")
    if dtype not in DTYPES.values():
        raise TypeError(f"fold_for_inference: 'dtype' must be one of {list(DTYPES.values())}; got {dtype!r}.")
    fast = InferenceNet((net if inplace else copy.deepcopy(net)).eval(), channels_last, dtype).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast
