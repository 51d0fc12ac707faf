"""The residual unit shared by DRSN-CW, DRSN-CS, ResNet and the plain ConvNet baseline.

Pre-activation unit of the DRSN paper (Zhao et al. 2019, Fig. 2 and 4) and the article's Keras
code::

    x -> BN -> ReLU -> Conv(k, stride s) -> BN -> ReLU -> Conv(k) -> [Shrinkage] -> (+) -> y
    |                                                                             ^
    +------------- identity: x[..., ::s], zero-padded on the channel axis --------+

Convolutions keep their bias as in Keras (with the conv bias ``b`` and the threshold ``tau``
the dead zone is ``[b - tau, b + tau]``).  Padding reproduces Keras ``padding='same'``: the
output length is ``ceil(L / s)`` for every ``L``, ``s`` and ``k`` (TensorFlow pads the odd extra
sample on the right), so the identity ``x[..., ::s]`` (Keras ``AveragePooling(pool_size=1,
strides=s)``) always has the residual's length.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from faultdiag.errors import ConfigError
from faultdiag.models.shrinkage import SHRINKAGE_MODES, Shrinkage

SHORTCUTS = ("pad", "conv", None)

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


def conv_same(dims: int, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
              conv_cls: type | None = None) -> nn.Module:
    """A convolution with Keras ``'same'`` padding: output length ``ceil(L / stride)`` per axis.

    Odd kernels pad ``(k - 1) / 2`` on both sides inside the conv (what TensorFlow does too when
    ``L`` and ``k`` make the total padding even).  Even kernels need one more sample on the right,
    so they get an explicit ``ConstantPad`` before an unpadded conv (module ``[1]`` holds it).
    ``conv_cls``: the convolution class (default ``nn.Conv1d``/``nn.Conv2d``; e.g. one that drops
    kernel weights while training).
    """
    conv_cls = conv_cls or _CONV[dims]
    if kernel_size % 2 == 1:
        return conv_cls(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
    left, right = (kernel_size - 1) // 2, kernel_size // 2
    pad_cls = nn.ConstantPad1d if dims == 1 else nn.ConstantPad2d
    padding = (left, right) if dims == 1 else (left, right, left, right)
    return nn.Sequential(pad_cls(padding, 0.0), conv_cls(in_channels, out_channels, kernel_size, stride=stride))


_KERAS_TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def keras_he_normal_(weight: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Keras ``he_normal`` in place, with ``torch.nn.init.trunc_normal_``.

    Keras draws from a normal truncated at two standard deviations, with the underlying std
    ``sqrt(2 / fan_in) / 0.8796...`` so that the drawn weights have std ``sqrt(2 / fan_in)``
    (``fan_in`` = input channels x kernel taps, or input features).  torch's bounds are absolute,
    hence ``a, b = -2 sigma, 2 sigma``.
    """
    sigma = (2.0 / weight[0].numel()) ** 0.5 / _KERAS_TRUNC_STD
    return nn.init.trunc_normal_(weight, 0.0, sigma, -2.0 * sigma, 2.0 * sigma, generator=generator)


def pad_channels(x: torch.Tensor, out_channels: int) -> torch.Tensor:
    """Zero-pad ``x`` ``(N, C, *spatial)`` to ``(N, out_channels, *spatial)`` on the channel axis.

    The padding is split between both sides like the article's ``pad_backend``
    (``(out - in) // 2`` before); an odd growth puts the extra channel after, so the original
    channels sit unchanged in the middle.
    """
    growth = out_channels - x.shape[1]
    before = growth // 2
    after = growth - before
    pad = [0, 0] * (x.dim() - 2) + [before, after]
    return F.pad(x, pad)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"The '{name}' parameter must be a positive int; got {value!r}.")


def _check_unit_args(in_channels, out_channels, stride, dims, kernel_size, shrinkage, shortcut) -> None:
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("stride", stride), ("kernel_size", kernel_size)):
        _check_positive_int(name, value)
    if dims not in (1, 2):
        raise ConfigError(f"The 'dims' parameter must be 1 or 2; got {dims!r}.")
    if shrinkage is not None and shrinkage not in SHRINKAGE_MODES:
        raise ConfigError(f"The 'shrinkage' parameter must be one of {(None,) + SHRINKAGE_MODES}; got {shrinkage!r}.")
    if shortcut not in SHORTCUTS:
        raise ConfigError(f"The 'shortcut' parameter must be one of {SHORTCUTS}; got {shortcut!r}.")
    if shortcut == "pad" and out_channels < in_channels:
        raise ConfigError(
            "The 'out_channels' parameter must be >= 'in_channels' with the zero-padding shortcut; "
            f"got out_channels={out_channels}, in_channels={in_channels}."
        )


class ResidualUnit(nn.Module):
    """One (shrinkage) residual unit.

    Args:
        in_channels, out_channels: channels of the input and output.
        stride: subsampling factor of the first conv and of the identity.
        dims: 1 for signals ``(N, C, L)``, 2 for images ``(N, C, H, W)``.
        kernel_size: width of both convolutions.
        shrinkage: ``None`` (ResNet unit), ``"cw"`` or ``"cs"`` (DRSN unit).
        shortcut: ``"pad"`` (subsample + zero-pad channels, the paper's and article's choice),
            ``"conv"`` (1x1 conv with the stride, an option), or ``None`` (no identity: the
            plain ConvNet baseline).
        bn_momentum, bn_eps: of every BatchNorm (PyTorch convention).

    Shapes: ``(N, in_channels, L)`` -> ``(N, out_channels, ceil(L / stride))`` (per axis in 2-D).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        dims: int = 1,
        kernel_size: int = 3,
        shrinkage: Optional[str] = None,
        shortcut: Optional[str] = "pad",
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ):
        super().__init__()
        _check_unit_args(in_channels, out_channels, stride, dims, kernel_size, shrinkage, shortcut)
        bn = _BN[dims]
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.shortcut = shortcut
        self._shortcut_kind: str = "none" if shortcut is None else shortcut  # a str for TorchScript
        self.bn1 = bn(in_channels, eps=bn_eps, momentum=bn_momentum)
        self.conv1 = conv_same(dims, in_channels, out_channels, kernel_size, stride)
        self.bn2 = bn(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.conv2 = conv_same(dims, out_channels, out_channels, kernel_size)
        self.relu = nn.ReLU(inplace=True)
        self.shrink = (
            Shrinkage(out_channels, shrinkage, bn_momentum=bn_momentum, bn_eps=bn_eps)
            if shrinkage is not None else nn.Identity()
        )
        self.proj = _CONV[dims](in_channels, out_channels, 1, stride=stride) if shortcut == "conv" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C_in, *spatial) -> (N, C_out, *ceil(spatial / stride))
        r = self.conv1(self.relu(self.bn1(x)))
        r = self.conv2(self.relu(self.bn2(r)))
        r = self.shrink(r)
        if self._shortcut_kind == "none":
            return r
        return r + self._identity(x)

    def _identity(self, x: torch.Tensor) -> torch.Tensor:
        if self._shortcut_kind == "conv":
            return self.proj(x)
        if self.stride > 1:
            x = x[:, :, :: self.stride] if x.dim() == 3 else x[:, :, :: self.stride, :: self.stride]
        if self.out_channels != self.in_channels:
            x = pad_channels(x, self.out_channels)
        return x
