"""DRSN-CW, DRSN-CS, ResNet and ConvNet: one network class, presets, one builder for the whole zoo.

``ShrinkageNet``: stem conv (-> dropout, if ``stem_dropout`` > 0) -> stages of :class:`~faultdiag.models.blocks.ResidualUnit` (the
first unit of each stage subsamples by the stage stride) -> BN -> ReLU -> global average
pooling -> Linear.  The four model names differ only in the unit's ``shrinkage`` and
``shortcut``:

============  ===========  ==========
name          shrinkage    shortcut
============  ===========  ==========
``drsn-cw``   ``"cw"``     ``"pad"``
``drsn-cs``   ``"cs"``     ``"pad"``
``resnet``    ``None``     ``"pad"``
``convnet``   ``None``     ``None``
============  ===========  ==========

Presets (``PRESETS``):

* ``paper`` -- Table II of Zhao et al. 2019 (1-D, input 1 x 2048): stem conv 4 kernels of width
  3, stride 2; three stages of 4 units with 4, 8 and 16 channels, the first unit of each
  stage with stride 2; BN, ReLU, GAP, Linear.  BatchNorm with PyTorch defaults.
* ``seed-mnist`` -- the article's Keras demo (2-D, input 1 x 28 x 28): conv 8 (3x3, stride 1)
  -> one unit of 8 channels with stride 2 -> BN -> ReLU -> GAP -> Linear; Keras BatchNorm
  semantics (momentum 0.99 = PyTorch 0.01, eps 1e-3).
* ``wide`` -- ours, not the paper's: a WDCNN-like wide first kernel (64 taps, stride 8; a wide
  first layer is known to help under heavy noise, Zhang et al., Sensors 2017) and three stages
  of 2 units with 16, 32 and 64 channels, for harder data such as CWRU under strong noise.

Any preset can be built in 1-D or 2-D (``dims``); kernels are square in 2-D.

Two options borrowed from the anti-noise anchors WDCNN / TICNN (ours, not the DRSN paper's):
``downsample="maxpool"`` subsamples each stage by max-pooling its input (kernel = stride, output
``ceil(L / stride)`` like the strided 'same' convolution it replaces) and runs all its units at
stride 1, instead of the first unit's strided convolution and decimated identity (the paper's
``"stride"``): the identity then carries each stretch's largest value rather than every other
sample.  ``head="fc"`` replaces global average pooling with WDCNN's head: max-pooling to 3 bins
per axis, Linear 100, BN, ReLU, then ``fc``.  Neither adds weights to the trunk.

``stem_dropout`` (default 0, off in every preset) zeroes each output of the stem convolution
with that probability while training (inverted dropout; the identity in eval mode).  It keeps
the network from leaning on any single band the first-layer filters pass, which makes a model
trained on clean signals degrade more gracefully under broadband noise -- the idea of dropout on
the first layer of Zhang et al.'s TICNN (Mech. Syst. Signal Process. 2018).  It has no weights, so
checkpoints and the folded inference model are the same with or without it.

``build_model`` also builds the two anchors of the anti-noise literature, ``wdcnn`` and
``ticnn`` (:mod:`faultdiag.models.anchors`): fixed architectures, 1-D only, no presets.
"""

from __future__ import annotations

from functools import partial
from typing import Any, List, Optional, Sequence

import torch
from torch import nn

from faultdiag import validate
from faultdiag.errors import ConfigError
from faultdiag.models.anchors import ANCHOR_KEYWORDS, ANCHOR_NAMES, KERNEL_DROPOUT_MASKS, KernelDropoutConv1d  # noqa: F401
from faultdiag.models.anchors import build_anchor  # noqa: F401 (re-exported)
from faultdiag.models.blocks import ResidualUnit, _check_positive_int, conv_same
from faultdiag.models.blocks import keras_he_normal_  # noqa: F401  (used below; its old home)
from faultdiag.models.shrinkage import Shrinkage, ThresholdEstimator
from faultdiag.models.sinc_stem import SincBandpass1d
from faultdiag.models.summary import model_summary  # noqa: F401  (part of this module's contract)

SHRINKAGE_NAMES = ("drsn-cw", "drsn-cs", "resnet", "convnet")  # ShrinkageNet, with PRESETS
MODEL_NAMES = SHRINKAGE_NAMES + ANCHOR_NAMES

# name -> (shrinkage, default shortcut)
_VARIANTS = {
    "drsn-cw": ("cw", "pad"),
    "drsn-cs": ("cs", "pad"),
    "resnet": (None, "pad"),
    "convnet": (None, None),
}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(dims=1, stem_channels=4, stem_kernel=3, stem_stride=2, widths=(4, 8, 16),
                  units=(4, 4, 4), stage_strides=(2, 2, 2), kernel_size=3, bn_momentum=0.1, bn_eps=1e-5),
    "seed-mnist": dict(dims=2, stem_channels=8, stem_kernel=3, stem_stride=1, widths=(8,),
                       units=(1,), stage_strides=(2,), kernel_size=3, bn_momentum=0.01, bn_eps=1e-3),
    "wide": dict(dims=1, stem_channels=16, stem_kernel=64, stem_stride=8, widths=(16, 32, 64),
                 units=(2, 2, 2), stage_strides=(2, 2, 2), kernel_size=3, bn_momentum=0.1, bn_eps=1e-5),
}

# Keywords build_model accepts for the ShrinkageNet family (besides the name); anchors: ANCHOR_KEYWORDS.
BUILD_KEYWORDS = ("dims", "in_channels", "num_classes", "preset", "widths", "units", "stage_strides",
                  "kernel_size", "stem_channels", "stem_kernel", "stem_stride", "stem_dropout", "shortcut",
                  "bn_momentum", "bn_eps", "stem", "stem_band_hz", "fs_hz", "stem_shrinkage", "kernel_dropout",
                  "kernel_dropout_masks", "downsample", "head", "seed")
STEMS = ("conv", "sinc")
DOWNSAMPLES = ("stride", "maxpool")
HEADS = ("gap", "fc")
HEAD_BINS, HEAD_UNITS = 3, 100   # the "fc" head: max-pool to 3 bins per axis, then Linear 100 (WDCNN/TICNN's head)

class ShrinkageNet(nn.Module):
    """A (shrinkage) residual network for signals ``(N, C, L)`` or images ``(N, C, H, W)``.

    Args:
        dims: 1 or 2.
        in_channels: C of the input.
        num_classes: K, the number of logits.
        stem_channels, stem_kernel, stem_stride: the first convolution.
        stem_dropout: probability in [0, 1) of zeroing each stem output while training (0: none).
        widths, units, stage_strides: per stage, its channels, number of units and the stride of
            its first unit (the other units have stride 1).
        kernel_size: of the units' convolutions.
        shrinkage: ``None``, ``"cw"`` or ``"cs"``; shortcut: ``"pad"``, ``"conv"`` or ``None``.
        bn_momentum, bn_eps: of every BatchNorm (PyTorch convention).
        downsample: ``"stride"`` (the paper's) or ``"maxpool"`` (see the module docstring).
        head: ``"gap"`` (global average pooling, the paper's) or ``"fc"`` (WDCNN's max-pool + Linear 100).
        generator: random source of the initial weights.

    ``forward``: ``(N, in_channels, *spatial)`` -> logits ``(N, num_classes)``.

    Weights as in the article's Keras code: convolutions and linear layers He-normal
    (Keras' truncated form, :func:`keras_he_normal_`), the thresholds' sigmoid layers
    Glorot-uniform, biases zero, BatchNorm weight 1 and bias 0.
    """

    def __init__(self, dims: int = 1, in_channels: int = 1, num_classes: int = 10, stem_channels: int = 4,
                 stem_kernel: int = 3, stem_stride: int = 2, widths: Sequence[int] = (4, 8, 16),
                 units: Sequence[int] = (4, 4, 4), kernel_size: int = 3, shrinkage: Optional[str] = "cw",
                 shortcut: Optional[str] = "pad", bn_momentum: float = 0.1, bn_eps: float = 1e-5,
                 stage_strides: Optional[Sequence[int]] = None, stem_dropout: float = 0.0,
                 stem: str = "conv", stem_band_hz: Optional[Sequence[float]] = None, fs_hz: Optional[float] = None,
                 stem_shrinkage: bool = False, kernel_dropout: float = 0.0, kernel_dropout_masks: str = "batch",
                 downsample: str = "stride", head: str = "gap", generator: Optional[torch.Generator] = None):
        super().__init__()
        stage_strides = tuple(stage_strides) if stage_strides is not None else (2,) * len(widths)
        _check_net_args(dims, in_channels, num_classes, stem_channels, stem_kernel, stem_stride,
                        widths, units, stage_strides)
        _check_bn_args(bn_momentum, bn_eps)
        _check_dropout(stem_dropout)
        validate.fraction("kernel_dropout", kernel_dropout)
        validate.choice("kernel_dropout_masks", kernel_dropout_masks, KERNEL_DROPOUT_MASKS)
        validate.choice("downsample", downsample, DOWNSAMPLES)
        validate.choice("head", head, HEADS)
        self.stem, channels = _make_stem(stem, dims, in_channels, stem_channels, stem_kernel, stem_stride,
                                         stem_band_hz, fs_hz, kernel_dropout, kernel_dropout_masks)
        if stem_shrinkage and shrinkage is None:
            raise ConfigError("The 'stem_shrinkage' parameter needs a shrinkage model (drsn-cw, drsn-cs); got a "
                              "model without shrinkage.")
        self.stem_shrink = (Shrinkage(channels, shrinkage, bn_momentum=bn_momentum, bn_eps=bn_eps)
                            if stem_shrinkage else nn.Identity())
        self.stem_drop = nn.Dropout(stem_dropout) if stem_dropout > 0 else nn.Identity()
        self.downsample, self.head_kind = downsample, head
        pool = downsample == "maxpool"
        stages: List[nn.Module] = []
        for width, n_units, stride in zip(widths, units, stage_strides):
            stage: List[nn.Module] = [_max_pool(dims, stride)] if pool and stride > 1 else []
            stage += [ResidualUnit(channels if i == 0 else width, width, stride=stride if i == 0 and not pool else 1,
                                   dims=dims, kernel_size=kernel_size, shrinkage=shrinkage, shortcut=shortcut,
                                   bn_momentum=bn_momentum, bn_eps=bn_eps) for i in range(n_units)]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.bn = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(channels, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)
        if head == "fc":   # (N, C, *bins) -> (N, C * bins) -> Linear 100 -> BN -> ReLU -> fc
            pool_cls = nn.AdaptiveMaxPool1d if dims == 1 else nn.AdaptiveMaxPool2d
            self.hidden = nn.Sequential(pool_cls(HEAD_BINS), nn.Flatten(1),
                                        nn.Linear(channels * HEAD_BINS ** dims, HEAD_UNITS),
                                        nn.BatchNorm1d(HEAD_UNITS, eps=bn_eps, momentum=bn_momentum), nn.ReLU(inplace=True))
            channels = HEAD_UNITS
        else:
            self.hidden = nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights(generator)

    def _init_weights(self, generator: Optional[torch.Generator]) -> None:
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                    keras_he_normal_(m.weight, generator)
                    nn.init.zeros_(m.bias)
            for m in self.modules():
                if isinstance(m, ThresholdEstimator):  # Keras Dense(sigmoid) default: glorot_uniform
                    nn.init.xavier_uniform_(m.fc2.weight, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C_in, *spatial)
        x = self.stem_drop(self.stem_shrink(self.stem(x)))  # (N, C_stem, *spatial / stem stride)
        x = self.stages(x)                              # (N, C_last, *spatial / total stride)
        x = self.relu(self.bn(x))
        if self.head_kind == "fc":
            return self.fc(self.hidden(x))              # (N, C_last * bins) -> (N, 100) -> (N, K)
        x = x.mean(dim=list(range(2, x.dim())))         # (N, C_last), global average pooling
        return self.fc(x)                               # (N, K)

    __jit_unused_properties__ = ["foldable"]  # TorchScript: a Python-side property only

    @property
    def foldable(self) -> bool:
        """True when :func:`~faultdiag.models.inference.fold_for_inference` can fold it (a convolution stem,
        with or without kernel dropout and shrinkage after it; not the sinc band-pass stem)."""
        return not isinstance(self.stem, SincBandpass1d)

    def thresholds(self) -> list[torch.Tensor]:
        """The thresholds of the last forward pass, one tensor per shrinkage unit in order:
        ``(N, C)`` for DRSN-CW, ``(N, 1)`` for DRSN-CS; empty for ResNet/ConvNet or before any pass."""
        return [m.last_tau for m in self.modules() if isinstance(m, Shrinkage) and m.last_tau is not None]


def _max_pool(dims: int, stride: int) -> nn.Module:
    """Max-pooling by ``stride`` with output length ``ceil(L / stride)`` per axis, as a strided 'same' conv gives."""
    return (nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(stride, stride, ceil_mode=True)


def _make_stem(stem: str, dims: int, in_channels: int, stem_channels: int, stem_kernel: int, stem_stride: int,
               stem_band_hz: Optional[Sequence[float]], fs_hz: Optional[float],
               kernel_dropout: float = 0.0, kernel_dropout_masks: str = "batch") -> tuple[nn.Module, int]:
    """The first layer and its output channels: a 'same' convolution (its kernel weights dropped with
    probability ``kernel_dropout`` while training, TICNN's idea; one mask per batch or, with
    ``kernel_dropout_masks = "window"``, per window), or a learnable band-pass bank
    (:class:`~faultdiag.models.sinc_stem.SincBandpass1d`, 1-D, initialised to tile ``stem_band_hz``)."""
    if stem not in STEMS:
        raise ConfigError(f"The 'stem' parameter must be one of {STEMS}; got {stem!r}.")
    if kernel_dropout and (stem != "conv" or dims != 1):
        raise ConfigError(f"The 'kernel_dropout' parameter applies to a 1-D convolution stem; got stem={stem!r}, dims={dims}.")
    if stem == "conv":
        conv_cls = partial(KernelDropoutConv1d, p=kernel_dropout, masks=kernel_dropout_masks) if kernel_dropout else None
        return conv_same(dims, in_channels, stem_channels, stem_kernel, stem_stride, conv_cls), stem_channels
    if dims != 1 or stem_band_hz is None or fs_hz is None or len(stem_band_hz) != 2:
        raise ConfigError(f"The sinc stem is 1-D and needs 'stem_band_hz' [low, high] and 'fs_hz'; got dims={dims}, "
                          f"stem_band_hz={stem_band_hz!r}, fs_hz={fs_hz!r}.")
    bank = SincBandpass1d(stem_channels, stem_kernel, fs_hz, stem_band_hz[0], stem_band_hz[1], stem_stride)
    return bank, in_channels * stem_channels


def _check_net_args(dims, in_channels, num_classes, stem_channels, stem_kernel, stem_stride,
                    widths, units, stage_strides) -> None:
    if dims not in (1, 2):
        raise ConfigError(f"The 'dims' parameter must be 1 or 2; got {dims!r}.")
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                        ("stem_channels", stem_channels), ("stem_kernel", stem_kernel),
                        ("stem_stride", stem_stride)):
        _check_positive_int(name, value)
    for name, seq in (("widths", widths), ("units", units), ("stage_strides", stage_strides)):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence) or len(seq) == 0:
            raise ConfigError(f"The '{name}' parameter must be a non-empty sequence of positive ints; got {seq!r}.")
        for value in seq:
            _check_positive_int(name, value)
    if not len(widths) == len(units) == len(stage_strides):
        raise ConfigError(
            "The 'widths', 'units' and 'stage_strides' parameters must have one entry per stage; "
            f"got {len(widths)}, {len(units)} and {len(stage_strides)} entries."
        )


def _check_bn_args(bn_momentum: float, bn_eps: float) -> None:
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0 < bn_momentum <= 1:
        raise ConfigError(f"The 'bn_momentum' parameter must be a number in (0, 1] (PyTorch convention: "
                          f"Keras momentum 0.99 is 0.01 here); got {bn_momentum!r}.")
    if isinstance(bn_eps, bool) or not isinstance(bn_eps, (int, float)) or not bn_eps > 0:
        raise ConfigError(f"The 'bn_eps' parameter must be a positive number; got {bn_eps!r}.")


def _check_dropout(p: float) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ConfigError(f"The 'stem_dropout' parameter must be a number in [0, 1); got {p!r}.")


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by name: a :class:`ShrinkageNet` from a preset, or an anchor.

    Args:
        name: one of ``MODEL_NAMES``.
        **kwargs: for ``SHRINKAGE_NAMES``, any of ``BUILD_KEYWORDS``: ``dims`` (default: the
            preset's), ``in_channels`` (1), ``num_classes`` (10), ``preset`` (None, the default,
            means ``"paper"`` for 1-D and ``"seed-mnist"`` for 2-D), the architecture fields of
            ``PRESETS``, ``stem_dropout`` (0), ``shortcut`` (``"pad"``, or ``"conv"``; the ConvNet
            has none) and ``seed`` (int, initial weights; default: torch's global RNG).  For
            ``"wdcnn"``/``"ticnn"``, the keywords of ``ANCHOR_KEYWORDS`` (see
            :func:`faultdiag.models.anchors.build_anchor`).

    Returns:
        The model, with ``model.build_kwargs`` (name + resolved keywords) such that
        ``build_model(**model.build_kwargs)`` rebuilds the same architecture.

    Raises:
        ConfigError: unknown name, keyword or preset, a keyword that does not apply to the
            model, or an invalid value.
    """
    if name not in MODEL_NAMES:
        raise ConfigError(f"The 'name' parameter must be one of {MODEL_NAMES}; got {name!r}.")
    if name in ANCHOR_NAMES:
        return build_anchor(name, **kwargs)
    unknown = sorted(set(kwargs) - set(BUILD_KEYWORDS))
    if unknown:
        raise ConfigError(f"Unknown build_model keyword(s) {unknown}; valid keywords are {BUILD_KEYWORDS}.")
    resolved = _resolve_kwargs(name, kwargs)
    seed = resolved.pop("seed")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    arch = {k: v for k, v in resolved.items() if k != "preset"}
    model = ShrinkageNet(shrinkage=_VARIANTS[name][0], generator=generator, **arch)
    model.build_kwargs = {"name": name, **resolved, "seed": seed}
    return model


def _resolve_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    preset = kwargs.get("preset")
    if preset is None:
        preset = "seed-mnist" if kwargs.get("dims") == 2 else "paper"
    if preset not in PRESETS:
        raise ConfigError(f"The 'preset' parameter must be one of {tuple(PRESETS)}; got {preset!r}.")
    resolved: dict[str, Any] = {"preset": preset, "in_channels": 1, "num_classes": 10, **PRESETS[preset]}
    resolved["shortcut"] = _VARIANTS[name][1]
    resolved["seed"] = None
    resolved.update({k: v for k, v in kwargs.items() if k != "preset"})
    if name == "convnet" and resolved["shortcut"] is not None:
        raise ConfigError(f"The 'shortcut' parameter must be None for 'convnet' (it has no identity path); "
                          f"got {resolved['shortcut']!r}.")
    if name != "convnet" and resolved["shortcut"] not in ("pad", "conv"):
        raise ConfigError(f"The 'shortcut' parameter must be 'pad' or 'conv' for {name!r}; got {resolved['shortcut']!r}.")
    if resolved.get("stem_band_hz") is not None:
        resolved["stem_band_hz"] = [float(v) for v in resolved["stem_band_hz"]]
    for key in ("widths", "units", "stage_strides"):  # lists: JSON- and checkpoint-friendly
        if isinstance(resolved[key], (tuple, list)):
            resolved[key] = list(resolved[key])
    return resolved
