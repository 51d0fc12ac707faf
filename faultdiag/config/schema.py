"""The run configuration's schema: frozen dataclasses, one per TOML section, validated on creation.

Sections: ``[data]``, ``[noise]``, ``[model]``, ``[train]``, ``[sweep]``; ``seed`` and ``device``
sit at the top level.  Reading, writing and overriding them is :mod:`faultdiag.config.io`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from faultdiag import validate
from faultdiag.errors import ConfigError

NOISE_KINDS = ("gaussian", "laplacian", "pink")
NOISE_PER = ("window", "recording")
NOISE_MODES = ("clean", "fixed", "fresh", "mixed")
PROTOCOLS = ("train-clean", "matched", "train-mixed", "cross-domain")
ADAPT_METHODS = ("none", "coral", "mmd", "dann")


DATA_SOURCES = ("simulated", "cwru", "files", "hitsm")
SOURCE_DEFAULTS = {"fs_hz": 12000.0, "loads": (0, 1, 2, 3), "channel": "DE"}
"""What ``fs_hz``, ``loads`` and ``channel`` left unset mean for ``simulated`` and ``cwru`` (their documented
defaults); for ``files`` and ``hitsm`` unset means the data's own rate and channel(s)."""


def _default_cwru_dir() -> str:
    return os.environ.get("FAULTDIAG_CWRU_DIR", "data/cwru")


@dataclass(frozen=True)
class DataConfig:
    """Where recordings come from and how they become windows.

    ``source``: ``simulated`` (the bearing simulator), ``cwru`` (the CWRU .mat files in
    ``data_dir``), ``hitsm`` (the HIT-SM files in ``data_dir``, :mod:`faultdiag.data.hitsm`; ``rigs``
    and ``speeds_rpm`` pick, empty = all) or ``files`` (``paths``; labels as ``label_from`` says:
    ``parent``, ``folder:N``, ``regex:<pattern>`` or ``csv`` with the ``labels`` CSV, see
    :mod:`faultdiag.data.labels`). ``variable``/``skip_rows``: which signal of each file, lines
    of text preamble (None = detected). ``source_fs_hz``: the sampling rate of those files that
    state none (CSV without a time column, bare ``.npy``, no sidecar JSON; None = such a file is
    an error).  ``fs_hz``: the rate to train at; None = the data's own rate (all files must share
    it), 12 kHz for ``simulated``/``cwru``; other rates are resampled to it, with a warning.
    ``loads`` (simulated, cwru) and ``channel`` (cwru: ``DE``; files: None = all channels) are
    source keys; a key that does not apply to the source is warned about.  ``bearing``: the
    bearing for the envelope check (:mod:`faultdiag.bearings`), kept in the checkpoint.
    ``classes`` empty = all of the source's classes.  ``hop`` is the training hop; ``eval_hop``
    (None = ``window_len``) the hop of validation and test windows.  ``split``: time-region ratios (train, val, test) of every
    recording.  ``normalize``: ``global`` (per-channel standardiser fitted on training windows),
    ``window`` (z-score of each window) or ``none``.  ``cache``: an HDF5 cache written by
    ``faultdiag data cache``; when set, recordings come from it (not from ``source``) and
    training reads windows from it lazily, batch by batch.
    ``domain``: a recording attribute (``load_hp`` for CWRU, ``speed_rpm`` or ``rig`` for HIT-SM, a
    column of a labels CSV) whose values name domains; then training and validation windows come
    from recordings with ``train_domains`` and test windows from the test region of recordings
    with ``test_domains``, whose training region is the unlabelled target pool of adaptation
    (:mod:`faultdiag.training.adaptation`).  Values compare as strings.
    """

    source: str = "simulated"
    paths: tuple[str, ...] = ()
    labels: str | None = None
    data_dir: str = field(default_factory=_default_cwru_dir)
    classes: tuple[str, ...] = ()
    loads: tuple[int, ...] | None = None
    channel: str | None = None
    fs_hz: float | None = None
    source_fs_hz: float | None = None
    window_len: int = 2048
    hop: int = 256
    eval_hop: int | None = None
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    normalize: str = "global"
    sim_duration_s: float = 10.0
    sim_seed: int = 0
    cache: str | None = None
    domain: str | None = None
    train_domains: tuple[str, ...] = ()
    test_domains: tuple[str, ...] = ()
    label_from: str | None = None
    variable: str | None = None
    skip_rows: int | None = None
    rigs: tuple[str, ...] = ()
    speeds_rpm: tuple[int, ...] = ()
    bearing: str | None = None

    def __post_init__(self) -> None:
        _choice(self, "source", DATA_SOURCES)
        if self.source in ("simulated", "cwru"):
            for name, value in SOURCE_DEFAULTS.items():
                if getattr(self, name) is None:
                    object.__setattr__(self, name, value)
        _check_reading_keys(self)
        _choice(self, "normalize", ("global", "window", "none"))
        for name in ("window_len", "hop"):
            _positive(self, name)
        if self.eval_hop is not None:
            _positive(self, "eval_hop")
        if self.fs_hz is not None:
            _positive(self, "fs_hz")
        if self.source_fs_hz is not None:
            _positive(self, "source_fs_hz")
        _positive(self, "sim_duration_s")
        if len(self.split) != 3 or min(self.split) < 0 or not math.isclose(sum(self.split), 1.0, abs_tol=1e-6):
            raise ConfigError(
                f"The 'data.split' parameter must be three non-negative ratios (train, val, test) "
                f"summing to 1; got {list(self.split)}."
            )
        if self.domain is not None and not (self.train_domains and self.test_domains):
            raise ConfigError(f"The 'data.domain' parameter ({self.domain!r}) needs 'data.train_domains' and "
                              f"'data.test_domains' (the values of that attribute to train and to test on); got "
                              f"{list(self.train_domains)} and {list(self.test_domains)}.")
        if self.domain is None and (self.train_domains or self.test_domains):
            raise ConfigError("The 'data.train_domains' and 'data.test_domains' parameters need 'data.domain' (the "
                              "recording attribute they are values of, e.g. 'load_hp'); got None.")
        if set(self.train_domains) & set(self.test_domains):
            raise ConfigError(f"The 'data.train_domains' and 'data.test_domains' parameters must not share a value; "
                              f"got {list(self.train_domains)} and {list(self.test_domains)}.")
        if self.source == "files" and not self.paths and not self.cache:
            raise ConfigError("The 'data.paths' parameter must name at least one file or folder when source = 'files'; got [].")


@dataclass(frozen=True)
class NoiseConfig:
    """Noise added to training windows.

    ``train``: ``clean`` (none), ``fixed`` (drawn once, seeded, as in the DRSN paper), ``fresh``
    (drawn anew for every batch, i.e. augmentation) at ``train_snr_db``, or ``mixed``: fresh noise
    whose SNR is drawn per window uniformly from ``train_snr_range_db`` (dB), with a share
    ``clean_share`` of windows left clean, so that one model sees every level (the
    ``train-mixed`` protocol).  ``per``: SNR measured per ``window`` or per ``recording``.
    Evaluation noise is always fixed by seed (see :mod:`faultdiag.evaluate`).
    """

    kind: str = "gaussian"
    train: str = "clean"
    train_snr_db: float | None = None
    train_snr_range_db: tuple[float, ...] = (-6.0, 10.0)
    clean_share: float = 0.2
    per: str = "window"

    def __post_init__(self) -> None:
        _choice(self, "kind", NOISE_KINDS)
        _choice(self, "train", NOISE_MODES)
        _choice(self, "per", NOISE_PER)
        if self.train in ("fixed", "fresh") and self.train_snr_db is None:
            raise ConfigError(
                f"The 'noise.train_snr_db' parameter must be a number when noise.train = '{self.train}'; got None."
            )
        lo_hi = self.train_snr_range_db
        if len(lo_hi) != 2 or not all(math.isfinite(v) for v in lo_hi) or lo_hi[0] > lo_hi[1]:
            raise ConfigError(f"The 'noise.train_snr_range_db' parameter must be [low, high] in dB with low <= high; "
                              f"got {list(lo_hi)}.")
        validate.fraction("noise.clean_share", self.clean_share)


FRONT_END_KINDS = ("none", "bandpass", "spectrum", "envelope_spectrum")
BAND_METHODS = ("kurtogram", "fisher", "fisher_energy")


@dataclass(frozen=True)
class FrontEndConfig:
    """The signal-processing front end between raw (noisy) windows and the standardiser (:mod:`faultdiag.frontend`).

    ``kind``: ``none``; ``bandpass`` (zero-phase Butterworth of ``order``); ``spectrum`` (amplitude
    spectrum in dB); ``envelope_spectrum`` (envelope spectrum in dB of the band).  ``band_hz``:
    ``[low, high]`` in Hz, or empty = chosen from the clean training windows by ``method``
    (:func:`faultdiag.frontend.choose_band`, judged as if under white noise at ``judge_snr_db``;
    nothing noisy is seen).  The band is stored in the checkpoint, so evaluation and diagnosis
    filter exactly as training did.
    """

    kind: str = "none"
    band_hz: tuple[float, ...] = ()
    method: str = "kurtogram"
    order: int = 4
    judge_snr_db: float = 0.0

    def __post_init__(self) -> None:
        _choice(self, "kind", FRONT_END_KINDS)
        _choice(self, "method", BAND_METHODS)
        validate.positive_int("frontend.order", self.order)
        if self.band_hz and (len(self.band_hz) != 2 or not 0 < self.band_hz[0] < self.band_hz[1]):
            raise ConfigError(f"The 'frontend.band_hz' parameter must be [low, high] in Hz with 0 < low < high, "
                              f"or [] to choose the band from the training data; got {list(self.band_hz)}.")

    @property
    def needs_band(self) -> bool:
        return self.kind in ("bandpass", "envelope_spectrum")


@dataclass(frozen=True)
class ModelConfig:
    """Network name, preset and overrides (None = the preset's or the model's own).

    ``name``: ``drsn-cw``, ``drsn-cs``, ``resnet``, ``convnet`` (one network family with
    ``preset`` and the architecture overrides) or the anchors ``wdcnn``, ``ticnn`` (one
    architecture each; only ``stem_dropout`` and, for ``ticnn``, ``kernel_dropout`` and
    ``kernel_dropout_masks`` apply).  ``kernel_dropout_masks``: ``batch`` (default: one mask of the first
    convolution's weights per training batch) or ``window`` (one per window).
    ``stem``: ``conv`` (default) or ``sinc``, a learnable band-pass bank initialised to tile
    ``stem_band_hz`` (default: the front end's band, else one chosen like ``[frontend]`` would;
    ``stem_kernel`` must then resolve ``stem_channels`` sub-bands: ``>= stem_channels * fs / width``).
    ``stem_shrinkage``: a shrinkage unit (the model's CW/CS kind) right after the stem.
    ``downsample``: ``stride`` (the paper's: each stage's first unit subsamples with a strided
    convolution and a subsampled identity) or ``maxpool`` (max-pooling before each stage, its units
    at stride 1, the way WDCNN/TICNN subsample).  ``head``: ``gap`` (the paper's global average
    pooling -> Linear) or ``fc`` (max-pool to 3 bins -> Linear 100 -> BN -> ReLU -> Linear, WDCNN/TICNN's).
    """

    name: str = "drsn-cw"
    preset: str = "paper"
    widths: tuple[int, ...] | None = None
    units: tuple[int, ...] | None = None
    stage_strides: tuple[int, ...] | None = None
    kernel_size: int | None = None
    stem_kernel: int | None = None
    stem_stride: int | None = None
    stem_channels: int | None = None
    stem_dropout: float | None = None
    kernel_dropout: float | None = None
    kernel_dropout_masks: str | None = None
    stem: str | None = None
    stem_band_hz: tuple[float, ...] | None = None
    stem_shrinkage: bool | None = None
    downsample: str | None = None
    head: str | None = None

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``build_model(name, ...)``: the preset and every override set."""
        kwargs: dict[str, Any] = {"preset": self.preset}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name not in ("name", "preset") and value is not None:
                kwargs[f.name] = value
        return kwargs


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and fit loop.

    ``weight_decay`` is the optimiser's own L2 term (PyTorch's ``weight_decay`` of SGD/Adam,
    added to the gradient; not decoupled AdamW).  ``schedule``: ``constant``; ``step`` (the
    DRSN paper: lr × ``gamma`` at each fraction of ``epochs`` in ``milestones``, e.g. 0.1 →
    0.01 → 0.001 at 40 % / 80 %); ``cosine`` (to 0 at the last epoch).  ``patience``: early
    stopping after that many epochs without a better validation accuracy (0 = off).
    ``grad_clip``: max gradient norm (0 = off).  ``threads``: torch CPU threads (0 = default).
    ``gain_jitter``: scale each raw training window by a gain drawn log-uniformly from
    ``[1/gain_jitter, gain_jitter]`` (1 = off; :func:`faultdiag.training.augment.random_gain`).
    ``label_smoothing``: the training cross-entropy's target mixes the true class with the uniform
    distribution by this weight (PyTorch's ``label_smoothing``; 0 = off; validation loss unsmoothed).
    ``ema``: keep an exponential moving average of the weights (and BatchNorm statistics), updated
    after every optimiser step with decay ``min(ema, (1 + t) / (10 + t))`` at step ``t``; validation
    scores the average, and the kept (best-validation) weights are the average's (0 = off; e.g. 0.999).
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    milestones: tuple[float, ...] = (0.4, 0.8)
    gamma: float = 0.1
    epochs: int = 40
    batch_size: int = 64
    patience: int = 0
    grad_clip: float = 0.0
    threads: int = 0
    eval_batch_size: int = 512
    gain_jitter: float = 1.0
    label_smoothing: float = 0.0
    ema: float = 0.0

    def __post_init__(self) -> None:
        _choice(self, "optimizer", ("adam", "sgd"))
        _choice(self, "schedule", ("constant", "step", "cosine"))
        for name in ("lr", "epochs", "batch_size", "eval_batch_size", "gamma"):
            _positive(self, name)
        for name in ("momentum", "weight_decay", "patience", "grad_clip", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"The 'train.{name}' parameter must be >= 0; got {getattr(self, name)!r}.")
        if not self.gain_jitter >= 1:
            raise ConfigError(f"The 'train.gain_jitter' parameter must be >= 1 (1 = off); got {self.gain_jitter!r}.")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"The 'train.label_smoothing' parameter must be in [0, 1) (0 = off); "
                              f"got {self.label_smoothing!r}.")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"The 'train.ema' parameter must be in [0, 1) (0 = off); got {self.ema!r}.")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ConfigError(f"The 'train.milestones' parameter must be fractions in (0, 1); got {list(self.milestones)}.")


@dataclass(frozen=True)
class AdaptConfig:
    """Domain adaptation while training, on unlabelled target windows (``data.domain`` must be set).

    ``method``: ``none``, ``coral`` (Sun & Saenko 2016), ``mmd`` (multi-kernel MMD, Long et al.
    2015) or ``dann`` (domain-adversarial, Ganin et al. 2016), a loss on the penultimate features
    of each training batch and a batch of target windows, times ``weight`` (DANN's gradient
    reversal ramps up as ``2 / (1 + exp(-10 p)) - 1`` over training progress ``p``).
    """

    method: str = "none"
    weight: float = 1.0

    def __post_init__(self) -> None:
        _choice(self, "method", ADAPT_METHODS)
        validate.nonnegative_number("adapt.weight", self.weight)


@dataclass(frozen=True)
class SweepConfig:
    """The grid ``models × kinds × snrs_db × seeds`` (× ``adabn``) under a ``protocol``:
    ``train-clean`` (train once on clean windows, test at each SNR), ``matched`` (train and test
    at each SNR, the DRSN paper), ``train-mixed`` (train once with noise at SNRs drawn per window
    from ``noise.train_snr_range_db``, test at each SNR) or ``cross-domain`` (one training per
    model × task × adaptation method × seed; a task ``"A>B"`` trains on ``data.domain`` values A
    (comma-separated) and tests, clean, on B; ``adapt`` lists the ``[adapt]`` methods to compare)."""

    models: tuple[str, ...] = ("drsn-cw", "resnet")
    kinds: tuple[str, ...] = ("gaussian",)
    snrs_db: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    seeds: tuple[int, ...] = (0,)
    protocol: str = "train-clean"
    adabn: tuple[bool, ...] = (False,)
    tasks: tuple[str, ...] = ()
    adapt: tuple[str, ...] = ("none",)

    def __post_init__(self) -> None:
        _choice(self, "protocol", PROTOCOLS)
        for kind in self.kinds:
            validate.choice("sweep.kinds", kind, NOISE_KINDS)
        for method in self.adapt:
            validate.choice("sweep.adapt", method, ADAPT_METHODS)
        for task in self.tasks:
            parts = task.split(">")
            if len(parts) != 2 or not all(p.strip() for p in parts):
                raise ConfigError(f"The 'sweep.tasks' parameter must hold tasks like '1>2' or '0,1>3' "
                                  f"(train domains > test domains); got {task!r}.")
        if self.protocol == "cross-domain" and not self.tasks:
            raise ConfigError("The 'sweep.tasks' parameter must list tasks like '1>2' for protocol 'cross-domain'; got [].")
        for name in ("models", "kinds", "snrs_db", "seeds", "adabn"):
            if not getattr(self, name):
                raise ConfigError(f"The 'sweep.{name}' parameter must not be empty; got [].")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``."""

    data: DataConfig = field(default_factory=DataConfig)
    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        _choice(self, "device", ("auto", "cpu", "cuda"))


SECTIONS: dict[str, type] = {
    "data": DataConfig, "frontend": FrontEndConfig, "noise": NoiseConfig, "model": ModelConfig, "train": TrainConfig, "adapt": AdaptConfig,
    "sweep": SweepConfig,
}
_TOP_KEYS = ("seed", "device")


def _section_name(obj: Any) -> str:
    return next((k for k, v in SECTIONS.items() if isinstance(obj, v)), "")


def _key(obj: Any, name: str) -> str:
    prefix = _section_name(obj)
    return f"{prefix}.{name}" if prefix else name


def _choice(obj: Any, name: str, choices: Any) -> None:
    validate.choice(_key(obj, name), getattr(obj, name), choices)


def _check_reading_keys(d: DataConfig) -> None:
    """Syntax of ``label_from``, ``bearing`` and ``skip_rows`` (files are read later)."""
    from faultdiag.bearings import parse_bearing

    if d.skip_rows is not None and (isinstance(d.skip_rows, bool) or d.skip_rows < 0):
        raise ConfigError(f"The 'data.skip_rows' parameter must be an int >= 0; got {d.skip_rows!r}.")
    if d.label_from is not None:
        head = d.label_from.partition(":")[0].strip().lower()
        if head not in ("parent", "folder", "regex", "csv"):
            raise ConfigError(f"The 'data.label_from' parameter must be 'parent', 'folder:N', 'regex:<pattern>' or "
                              f"'csv'; got {d.label_from!r}.")
    if d.bearing is not None:
        parse_bearing(d.bearing, "data.bearing")


def _positive(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
        raise ConfigError(f"The '{_key(obj, name)}' parameter must be positive; got {value!r}.")
