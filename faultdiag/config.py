"""Run configuration: frozen dataclasses loaded from TOML with ``--set`` overrides.

One step, one precedence: command line (``--set section.key=value``) > file > defaults.
Unknown keys and wrong types are a :class:`~faultdiag.errors.ConfigError` naming the file
(or ``--set``), the key and the valid keys.  Sections: ``[data]``, ``[noise]``, ``[model]``,
``[train]``, ``[sweep]``; ``seed`` and ``device`` sit at the top level.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from faultdiag.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _default_cwru_dir() -> str:
    return os.environ.get("FAULTDIAG_CWRU_DIR", "data/cwru")


@dataclass(frozen=True)
class DataConfig:
    """Where recordings come from and how they become windows.

    ``source``: ``simulated`` (the bearing simulator), ``cwru`` (the CWRU .mat files in
    ``data_dir``) or ``files`` (``paths``; labels from the ``labels`` CSV with columns
    ``file,label`` or else from each file's parent folder name); ``source_fs_hz``: the sampling
    rate of those files that state none (CSV without a time column, bare ``.npy``; None = such a
    file is an error), every file then resampled to ``fs_hz``.  ``classes`` empty = all of the
    source's classes.  ``hop`` is the training hop; ``eval_hop`` (None = ``window_len``) the hop of
    validation and test windows.  ``split``: time-region ratios (train, val, test) of every
    recording.  ``normalize``: ``global`` (per-channel standardiser fitted on training windows),
    ``window`` (z-score of each window) or ``none``.  ``cache``: an HDF5 cache written by
    ``faultdiag data cache``; when set, recordings come from it (not from ``source``) and
    training reads windows from it lazily, batch by batch.
    """

    source: str = "simulated"
    paths: tuple[str, ...] = ()
    labels: str | None = None
    data_dir: str = field(default_factory=_default_cwru_dir)
    classes: tuple[str, ...] = ()
    loads: tuple[int, ...] = (0, 1, 2, 3)
    channel: str = "DE"
    fs_hz: float = 12000.0
    source_fs_hz: float | None = None
    window_len: int = 2048
    hop: int = 256
    eval_hop: int | None = None
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    normalize: str = "global"
    sim_duration_s: float = 10.0
    sim_seed: int = 0
    cache: str | None = None

    def __post_init__(self) -> None:
        _choice(self, "source", ("simulated", "cwru", "files"))
        _choice(self, "normalize", ("global", "window", "none"))
        for name in ("window_len", "hop"):
            _positive(self, name)
        if self.eval_hop is not None:
            _positive(self, "eval_hop")
        _positive(self, "fs_hz")
        if self.source_fs_hz is not None:
            _positive(self, "source_fs_hz")
        _positive(self, "sim_duration_s")
        if len(self.split) != 3 or min(self.split) < 0 or not math.isclose(sum(self.split), 1.0, abs_tol=1e-6):
            raise ConfigError(
                f"The 'data.split' parameter must be three non-negative ratios (train, val, test) "
                f"summing to 1; got {list(self.split)}."
            )
        if self.source == "files" and not self.paths and not self.cache:
            raise ConfigError("The 'data.paths' parameter must name at least one file or folder when source = 'files'; got [].")


@dataclass(frozen=True)
class NoiseConfig:
    """Noise added to training windows.

    ``train``: ``clean`` (none), ``fixed`` (drawn once, seeded, as in the DRSN paper) or
    ``fresh`` (drawn anew for every batch, i.e. augmentation), at ``train_snr_db``.
    ``per``: SNR measured per ``window`` or per ``recording``.
    Evaluation noise is always fixed by seed (see :mod:`faultdiag.evaluate`).
    """

    kind: str = "gaussian"
    train: str = "clean"
    train_snr_db: float | None = None
    per: str = "window"

    def __post_init__(self) -> None:
        _choice(self, "kind", ("gaussian", "laplacian", "pink"))
        _choice(self, "train", ("clean", "fixed", "fresh"))
        _choice(self, "per", ("window", "recording"))
        if self.train != "clean" and self.train_snr_db is None:
            raise ConfigError(
                f"The 'noise.train_snr_db' parameter must be a number when noise.train = '{self.train}'; got None."
            )


@dataclass(frozen=True)
class ModelConfig:
    """Network name (``drsn-cw``, ``drsn-cs``, ``resnet``, ``convnet``), preset and overrides (None = preset's)."""

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

    def __post_init__(self) -> None:
        _choice(self, "optimizer", ("adam", "sgd"))
        _choice(self, "schedule", ("constant", "step", "cosine"))
        for name in ("lr", "epochs", "batch_size", "eval_batch_size", "gamma"):
            _positive(self, name)
        for name in ("momentum", "weight_decay", "patience", "grad_clip", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"The 'train.{name}' parameter must be >= 0; got {getattr(self, name)!r}.")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ConfigError(f"The 'train.milestones' parameter must be fractions in (0, 1); got {list(self.milestones)}.")


@dataclass(frozen=True)
class SweepConfig:
    """The grid ``models × kinds × snrs_db × seeds`` (× ``adabn``) under a ``protocol``:
    ``train-clean`` (train once on clean windows, test at each SNR) or ``matched`` (train and
    test at each SNR, the DRSN paper)."""

    models: tuple[str, ...] = ("drsn-cw", "resnet")
    kinds: tuple[str, ...] = ("gaussian",)
    snrs_db: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    seeds: tuple[int, ...] = (0,)
    protocol: str = "train-clean"
    adabn: tuple[bool, ...] = (False,)

    def __post_init__(self) -> None:
        _choice(self, "protocol", ("train-clean", "matched"))
        for kind in self.kinds:
            if kind not in ("gaussian", "laplacian", "pink"):
                raise ConfigError(f"The 'sweep.kinds' parameter must hold 'gaussian', 'laplacian' or 'pink'; got {kind!r}.")
        for name in ("models", "kinds", "snrs_db", "seeds", "adabn"):
            if not getattr(self, name):
                raise ConfigError(f"The 'sweep.{name}' parameter must not be empty; got [].")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``."""

    data: DataConfig = field(default_factory=DataConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        _choice(self, "device", ("auto", "cpu", "cuda"))


SECTIONS: dict[str, type] = {
    "data": DataConfig, "noise": NoiseConfig, "model": ModelConfig, "train": TrainConfig, "sweep": SweepConfig,
}
_TOP_KEYS = ("seed", "device")


def _section_name(obj: Any) -> str:
    return next((k for k, v in SECTIONS.items() if isinstance(obj, v)), "")


def _choice(obj: Any, name: str, choices: Sequence[str]) -> None:
    value = getattr(obj, name)
    if value not in choices:
        prefix = _section_name(obj)
        key = f"{prefix}.{name}" if prefix else name
        raise ConfigError(f"The '{key}' parameter must be one of {', '.join(map(repr, choices))}; got {value!r}.")


def _positive(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if not value > 0:
        raise ConfigError(f"The '{_section_name(obj)}.{name}' parameter must be positive; got {value!r}.")


# ---------------------------------------------------------------------------------------------
# Type coercion (TOML / --set values onto the dataclass annotations)

_TYPE_NAMES = {bool: "a bool", int: "an int", float: "a number", str: "a string"}


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Convert ``value`` to annotation ``tp`` or raise ConfigError naming ``where`` and ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, inner[0], key, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: the '{key}' key must be a list; got {value!r} ({type(value).__name__}).")
        return tuple(_coerce(v, args[0], f"{key}[{i}]", where) for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(
        f"{where}: the '{key}' key must be {_TYPE_NAMES.get(tp, tp)}; got {value!r} ({type(value).__name__})."
    )


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown(key: str, valid: Sequence[str], where: str, section: str | None) -> ConfigError:
    scope = f"in [{section}]" if section else "at the top level"
    return ConfigError(f"{where}: unknown key '{key}'; valid keys {scope}: {', '.join(valid)}.")


def _parse_value(text: str) -> Any:
    """A --set value: TOML syntax when it parses (numbers, bools, lists, quoted strings), else the raw text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply(tree: dict[str, dict[str, Any]], top: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Coerce and place one ``section.key`` (or top-level key) value into the raw trees."""
    parts = key.split(".")
    if len(parts) == 1:
        if parts[0] not in _TOP_KEYS:
            raise _unknown(key, [*_TOP_KEYS, *SECTIONS], where, None)
        top[parts[0]] = _coerce(value, _hints(RunConfig)[parts[0]], key, where)
        return
    section, name = parts[0], ".".join(parts[1:])
    if section not in SECTIONS:
        raise _unknown(key, [*_TOP_KEYS, *SECTIONS], where, None)
    hints = _hints(SECTIONS[section])
    if name not in hints:
        raise _unknown(key, list(hints), where, section)
    tree.setdefault(section, {})[name] = _coerce(value, hints[name], key, where)


def _read_toml(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"The config file '{path}' does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.") from None


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Build a :class:`RunConfig` from defaults, then the TOML file at ``path``, then ``overrides``.

    ``overrides``: strings ``section.key=value`` (``seed=3`` for top-level keys); values use TOML
    syntax (``train.lr=0.01``, ``sweep.snrs_db=[-4, 0, 4]``, ``sweep.models=resnet,drsn-cw``).
    """
    tree: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(path)
        for key, value in raw.items():
            if key in SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{path}: '{key}' must be a table [{key}]; got {value!r}.")
                for name, v in value.items():
                    _apply(tree, top, f"{key}.{name}", v, str(path))
            else:
                _apply(tree, top, key, value, str(path))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set: an override must look like section.key=value; got {item!r}.")
        key, text = item.split("=", 1)
        _apply(tree, top, key.strip(), _parse_value(text.strip()), "--set")
    where = str(path) if path is not None else "defaults"
    if overrides:
        where += " with --set " + " ".join(overrides)
    try:
        sections = {name: cls(**tree.get(name, {})) for name, cls in SECTIONS.items()}
        return RunConfig(**sections, **top)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config as plain nested dicts and lists (JSON/TOML ready)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_from_dict(d: dict[str, Any], where: str = "saved config") -> RunConfig:
    """Inverse of :func:`config_to_dict` (with the same validation as :func:`load_config`)."""
    tree: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in d.items():
        if key in SECTIONS:
            for name, v in value.items():
                _apply(tree, top, f"{key}.{name}", v, where)
        else:
            _apply(tree, top, key, value, where)
    try:
        return RunConfig(**{n: c(**tree.get(n, {})) for n, c in SECTIONS.items()}, **top)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def replace_in(cfg: RunConfig, key: str, value: Any) -> RunConfig:
    """A copy of ``cfg`` with ``section.key`` (or a top-level key) set to ``value`` (coerced, validated)."""
    tree: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    _apply(tree, top, key, value, "replace_in")
    try:
        if top:
            return dataclasses.replace(cfg, **top)
        (section, changes), = tree.items()
        return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})
    except ConfigError as exc:
        raise ConfigError(f"replace_in: {exc}") from None


def dumps_toml(cfg: RunConfig) -> str:
    """The config as TOML text that :func:`load_config` reads back to an equal config (None keys omitted)."""
    d = config_to_dict(cfg)
    lines = [f"{k} = {json.dumps(d[k])}" for k in _TOP_KEYS]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in d[section].items() if v is not None]
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    return json.dumps(v)


def save_config(cfg: RunConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as TOML, atomically."""
    from faultdiag.provenance import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(dumps_toml(cfg))
    return Path(path)
