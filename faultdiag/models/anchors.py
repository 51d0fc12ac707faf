"""WDCNN and TICNN: the wide-first-kernel CNN anchors of the anti-noise bearing-fault literature.

Both are one network, :class:`WideKernelCNN` (1-D, input ``(N, C, L)``, the papers' ``L = 2048``)::

    conv1 (16 kernels x 64 taps, stride s, pad p) -> BN -> ReLU -> max-pool 2
    -> [conv 3 taps (w_i) -> BN -> ReLU -> max-pool 2]  for every width but the last
    -> conv 3 taps, no padding (64) -> BN -> ReLU -> max-pool to 3 -> flatten (64 x 3 = 192)
    -> Linear 100 -> BN -> ReLU -> ``fc``: Linear K

``wdcnn`` -- Zhang, Peng, Li, Chen, Zhang, Sensors 17(2):425, 2017, Table 1: ``s = 16``,
widths 32, 64, 64, 64.  Feature map per layer for ``L = 2048`` (length x channels):
conv1 128x16, pool1 64x16, conv2 64x32, pool2 32x32, conv3 32x64, pool3 16x64, conv4 16x64,
pool4 8x64, conv5 6x64 (unpadded), pool5 3x64.

``ticnn`` -- Zhang, Li, Peng, Chen, Zhang, Mech. Syst. Signal Process. 100:439-453, 2018
(WDCNN with "training interference"): ``s = 8`` and one more 3-tap block, widths 32, 64, 64, 64,
64: conv1 256x16, pool1 128x16, conv2 128x32, pool2 64x32, conv3 64x64, pool3 32x64, conv4
32x64, pool4 16x64, conv5 16x64, pool5 8x64, conv6 6x64 (unpadded), pool6 3x64.  Its first
convolution drops kernel weights while training (:class:`KernelDropoutConv1d`, rate
``kernel_dropout``, default ``TICNN_KERNEL_DROPOUT`` = 0.5).  The paper's other interferences --
very small mini-batches and an ensemble of TICNNs -- are training and evaluation settings, not
part of this module: set ``train.batch_size`` and train several seeds.  To confirm in the
paper's Section 3 before a config quotes them (its text was not at hand when this was written;
the table above and the 0.5 rate agree with public re-implementations): the kernel-dropout rate
(fixed, or varied during training), the mini-batch size, and the ensemble's size and vote.

Choices the papers leave open (ours):

* Padding: symmetric, ``p = 24`` (WDCNN) and ``p = 28`` (TICNN) on conv1 and 1 on the padded
  3-tap convolutions -- TensorFlow ``'same'`` for ``L = 2048``, which gives the tables' lengths.
* Other input lengths: the last pooling is ``AdaptiveMaxPool1d(3)``.  On the 6-sample map of a
  2048 input it is exactly the papers' max-pool 2 (bins [0,2), [2,4), [4,6)), so the paper's
  network is unchanged; for any ``L >= model.min_input_len`` (768 for both) the flattened map
  stays 192 long, so the same weights (and checkpoint) serve every window length.  Longer windows
  pool wider bins (4096: the last conv gives 14 samples, bins [0,5), [4,10), [9,14)); windows
  under 2048 give a last map under 6 samples whose bins overlap (1024: 2 samples -> [x0,
  max(x0, x1), x1]).  The alternative, an ``input_len`` keyword sizing the FC, would need the
  window length passed through the trainer and tie each checkpoint to one length.
* Convolutions and linear layers keep their bias (TensorFlow's default); weights He-normal in
  Keras' truncated form (:func:`~faultdiag.models.blocks.keras_he_normal_`, as the rest of the
  zoo), biases 0, BatchNorm weight 1, bias 0, PyTorch momentum 0.1 and eps 1e-5.
* ``stem_dropout`` (both, default 0): inverted dropout on conv1's outputs while training, the
  same option as the shrinkage networks' (a sweep can set it for every model).  It is not the
  paper's TICNN interference, which drops weights (below).

Kernel dropout (TICNN): dropout on the first layer's kernel weights, not on its outputs.  While
training, each weight of conv1 (``16 x C x 64``) is zeroed with probability ``p`` and the kept
ones scaled by ``1 / (1 - p)``, one mask per forward pass (one mini-batch), drawn from torch's
global RNG like ``nn.Dropout``; in eval mode conv1 uses all its weights.  An output
``y[t] = sum_k m_k w_k x[s t + k]`` then sees the input only through the taps a mask keeps: a
randomly corrupted view of the raw signal.  (One public re-implementation instead drops whole
tap positions, the same ones in all 16 kernels; the per-weight mask is our reading.)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from faultdiag import validate
from faultdiag.errors import ConfigError, DataError
from faultdiag.models.blocks import _check_positive_int, keras_he_normal_

ANCHOR_NAMES = ("wdcnn", "ticnn")
STEM_CHANNELS, STEM_KERNEL, HIDDEN_UNITS, LAST_LEN = 16, 64, 100, 3
TICNN_KERNEL_DROPOUT = 0.5
# name -> conv1 stride, conv1 padding (each side), widths of the 3-tap convolutions
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "wdcnn": dict(stem_stride=16, stem_padding=24, widths=(32, 64, 64, 64)),
    "ticnn": dict(stem_stride=8, stem_padding=28, widths=(32, 64, 64, 64, 64)),
}
# Keywords build_model accepts for each anchor (besides the name).
ANCHOR_KEYWORDS = {
    "wdcnn": ("dims", "in_channels", "num_classes", "preset", "stem_dropout", "seed"),
    "ticnn": ("dims", "in_channels", "num_classes", "preset", "stem_dropout", "kernel_dropout", "kernel_dropout_masks",
              "seed"),
}


KERNEL_DROPOUT_MASKS = ("batch", "window")


class KernelDropoutConv1d(nn.Conv1d):
    """``nn.Conv1d`` whose weights are dropped while training (DropConnect on the kernels).

    Training: ``conv(x, w * m / (1 - p))`` with ``m ~ Bernoulli(1 - p)`` per weight, one mask per
    call (``masks="batch"``) or one per window of the batch (``masks="window"``: every window seen
    through its own corrupted kernels, computed as a convolution grouped by window); eval mode or
    ``p = 0``: a plain convolution.  ``x (N, C_in, L) -> (N, C_out, L')``.
    """

    def __init__(self, *args: Any, p: float = 0.0, masks: str = "batch", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.p = float(p)
        validate.choice("kernel_dropout_masks", masks, KERNEL_DROPOUT_MASKS)
        if masks == "window" and (self.groups != 1 or self.padding_mode != "zeros" or isinstance(self.padding, str)):
            raise ConfigError("Kernel dropout with one mask per window needs a plain convolution (groups 1, zero "
                              f"padding given in samples); got groups={self.groups}, padding={self.padding!r}, "
                              f"padding_mode={self.padding_mode!r}.")
        self.masks = masks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return super().forward(x)
        if self.masks == "batch":
            keep = torch.empty_like(self.weight).bernoulli_(1.0 - self.p)   # (C_out, C_in, K)
            return self._conv_forward(x, self.weight * keep / (1.0 - self.p), self.bias)
        n, c_in, length = x.shape
        keep = self.weight.new_empty((n, *self.weight.shape)).bernoulli_(1.0 - self.p)  # (N, C_out, C_in, K)
        weight = (self.weight * keep / (1.0 - self.p)).reshape(n * self.out_channels, c_in, -1)
        bias = self.bias.repeat(n) if self.bias is not None else None
        out = F.conv1d(x.reshape(1, n * c_in, length), weight, bias, self.stride, self.padding, self.dilation, groups=n)
        return out.view(n, self.out_channels, -1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}" + (", masks='window'" if self.masks == "window" else "")


def layer_lengths(input_len: int, stem_stride: int, stem_padding: int, n_blocks: int) -> list[int]:
    """Feature-map length after each conv and pool (conv1, pool1, conv2, ...) for ``input_len``."""
    n = (input_len + 2 * stem_padding - STEM_KERNEL) // stem_stride + 1
    lengths = [n, n // 2]
    for i in range(n_blocks):
        last = i == n_blocks - 1
        conv = lengths[-1] - 2 if last else lengths[-1]
        lengths += [conv, (LAST_LEN if conv >= 1 else 0) if last else conv // 2]
    return lengths


class WideKernelCNN(nn.Module):
    """WDCNN / TICNN (see the module docstring): ``(N, in_channels, L) -> logits (N, num_classes)``.

    ``model.features(x)`` gives the last map ``(N, 64, 3)``; ``model.fc`` is the final
    ``Linear(100, num_classes)`` and its input the penultimate feature vector ``(N, 100)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, stem_stride: int = 16,
                 stem_padding: int = 24, widths: Sequence[int] = (32, 64, 64, 64), kernel_dropout: float = 0.0,
                 stem_dropout: float = 0.0, kernel_dropout_masks: str = "batch",
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("num_classes", num_classes)
        _check_rate("kernel_dropout", kernel_dropout)
        _check_rate("stem_dropout", stem_dropout)
        self.min_input_len = next(n for n in range(1, 1 << 16)
                                  if min(layer_lengths(n, stem_stride, stem_padding, len(widths))) >= 1)
        layers: list[tuple[str, nn.Module]] = [
            ("conv1", KernelDropoutConv1d(in_channels, STEM_CHANNELS, STEM_KERNEL, stride=stem_stride,
                                          padding=stem_padding, p=kernel_dropout, masks=kernel_dropout_masks))]
        if stem_dropout > 0:
            layers.append(("drop1", nn.Dropout(stem_dropout)))
        layers += _bn_relu_pool(1, STEM_CHANNELS, nn.MaxPool1d(2))
        channels = STEM_CHANNELS
        for i, width in enumerate(widths, start=2):
            last = i == len(widths) + 1
            layers.append((f"conv{i}", nn.Conv1d(channels, width, 3, padding=0 if last else 1)))
            layers += _bn_relu_pool(i, width, nn.AdaptiveMaxPool1d(LAST_LEN) if last else nn.MaxPool1d(2))
            channels = width
        self.features = nn.Sequential(OrderedDict(layers))
        self.hidden = nn.Sequential(nn.Linear(channels * LAST_LEN, HIDDEN_UNITS),
                                    nn.BatchNorm1d(HIDDEN_UNITS), nn.ReLU(inplace=True))
        self.fc = nn.Linear(HIDDEN_UNITS, num_classes)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Conv1d, nn.Linear)):
                    keras_he_normal_(m.weight, generator)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.dim() != 3 or x.shape[-1] < self.min_input_len):
            raise DataError(f"The input must have shape (N, C, L) with L >= {self.min_input_len}; "
                            f"got {tuple(x.shape)}.")
        z = self.features(x).flatten(1)    # (N, 64 * 3)
        return self.fc(self.hidden(z))     # (N, 100) -> (N, K)


def _bn_relu_pool(i: int, channels: int, pool: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(f"bn{i}", nn.BatchNorm1d(channels)), (f"relu{i}", nn.ReLU(inplace=True)), (f"pool{i}", pool)]


def _check_rate(name: str, p: object) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ConfigError(f"The '{name}' parameter must be a number in [0, 1); got {p!r}.")


def build_anchor(name: str, **kwargs: Any) -> WideKernelCNN:
    """Build ``"wdcnn"`` or ``"ticnn"`` (called by :func:`faultdiag.models.networks.build_model`).

    Keywords (``ANCHOR_KEYWORDS``): ``dims`` (must be 1), ``in_channels`` (1), ``num_classes``
    (10), ``preset`` (None or ``"paper"``: the one architecture), ``stem_dropout`` (0),
    ``kernel_dropout`` (TICNN only; ``TICNN_KERNEL_DROPOUT``), ``kernel_dropout_masks`` (TICNN only:
    ``"batch"``, the default, or ``"window"``, see :class:`KernelDropoutConv1d`) and ``seed`` (initial weights;
    default: torch's global RNG).  ``model.build_kwargs`` rebuilds the model.

    Raises:
        ConfigError: a keyword that does not apply to ``name``, or an invalid value.
    """
    if name not in ANCHOR_NAMES:
        raise ConfigError(f"The 'name' parameter must be one of {ANCHOR_NAMES}; got {name!r}.")
    valid = ANCHOR_KEYWORDS[name]
    bad = sorted(set(kwargs) - set(valid))
    if bad:
        raise ConfigError(f"The keyword(s) {bad} do not apply to {name!r} (its layers are the paper's); "
                          f"valid keywords for {name!r} are {valid}.")
    if kwargs.get("preset") not in (None, "paper"):
        raise ConfigError(f"The 'preset' parameter must be None or 'paper' for {name!r} (it has one "
                          f"architecture, the paper's); got {kwargs['preset']!r}.")
    if kwargs.get("dims", 1) != 1:
        raise ConfigError(f"The 'dims' parameter must be 1 for {name!r} (a 1-D network); got {kwargs['dims']!r}.")
    resolved: dict[str, Any] = {"dims": 1, "in_channels": 1, "num_classes": 10, "stem_dropout": 0.0}
    if name == "ticnn":
        resolved["kernel_dropout"] = TICNN_KERNEL_DROPOUT
    resolved.update({k: v for k, v in kwargs.items() if k not in ("preset", "seed")})
    seed = kwargs.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"The 'seed' parameter must be an int or None; got {seed!r}.")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    arch = {k: v for k, v in resolved.items() if k != "dims"}
    model = WideKernelCNN(**ARCHITECTURES[name], **arch, generator=generator)
    model.build_kwargs = {"name": name, **resolved, "seed": seed}
    return model
