"""Reading, writing, overriding and comparing run configurations.

One step, one precedence: command line (``--set section.key=value``) > file (or a saved config)
> defaults.  Unknown keys and wrong types are a :class:`~faultdiag.errors.ConfigError` naming
the file (or ``--set``), the key and the valid keys.  TOML is read with ``tomllib`` and written
with ``tomli-w``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Sequence

import tomli_w

from faultdiag.config.schema import SECTIONS, RunConfig
from faultdiag.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["read_toml", "load_config", "config_from_dict", "config_to_dict", "dumps_toml", "save_config", "replace_in",
           "parse_overrides", "training_key", "config_diff"]

_TOP_KEYS = ("seed", "device")
_TYPE_NAMES = {bool: "a bool", int: "an int", float: "a number", str: "a string"}
# Keys that do not change what a training learns: left out of training_key (sweep skipping, resume).
NEUTRAL_KEYS = ("sweep", "device", "train.threads", "train.eval_batch_size", "data.bearing")

Tree = dict[str, Any]  # {"seed": .., "device": .., "<section>": {key: value}}


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Convert ``value`` to annotation ``tp`` or raise ConfigError naming ``where`` and ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: the '{key}' key must be a list; got {value!r} ({type(value).__name__}).")
        return tuple(_coerce(v, args[0], f"{key}[{i}]", where) for i, v in enumerate(value))
    if isinstance(value, str) and tp is bool:
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif isinstance(value, str) and tp in (int, float):
        try:
            return tp(value)
        except ValueError:
            pass
    elif tp is bool and isinstance(value, bool):
        return value
    elif tp in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if tp is float or isinstance(value, int):
            return tp(value)
    elif tp is str and isinstance(value, str):
        return value
    elif tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}" if isinstance(value, float) else str(value)  # e.g. a domain value: load 1
    raise ConfigError(
        f"{where}: the '{key}' key must be {_TYPE_NAMES.get(tp, tp)}; got {value!r} ({type(value).__name__})."
    )


def _unknown(key: str, valid: Sequence[str], where: str, section: str | None) -> ConfigError:
    scope = f"in [{section}]" if section else "at the top level"
    return ConfigError(f"{where}: unknown key '{key}'; valid keys {scope}: {', '.join(valid)}.")


def _set(tree: Tree, key: str, value: Any, where: str) -> None:
    """Coerce and place one ``section.key`` (or top-level key) value into ``tree``."""
    section, _, name = key.partition(".")
    if not name:
        if key not in _TOP_KEYS:
            raise _unknown(key, [*_TOP_KEYS, *SECTIONS], where, None)
        tree[key] = _coerce(value, typing.get_type_hints(RunConfig)[key], key, where)
        return
    if section not in SECTIONS:
        raise _unknown(key, [*_TOP_KEYS, *SECTIONS], where, None)
    hints = typing.get_type_hints(SECTIONS[section])
    if name not in hints:
        raise _unknown(key, list(hints), where, section)
    tree.setdefault(section, {})[name] = _coerce(value, hints[name], key, where)


def _merge(tree: Tree, raw: dict[str, Any], where: str) -> None:
    for key, value in raw.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{key}' must be a table [{key}]; got {value!r}.")
            for name, v in value.items():
                _set(tree, f"{key}.{name}", v, where)
        else:
            _set(tree, key, value, where)


def _parse_value(text: str) -> Any:
    """A --set value: TOML syntax when it parses (numbers, bools, lists, quoted strings), else the raw text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    """``["section.key=value", ...]`` → ``[(key, value), ...]`` with values in TOML syntax."""
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set: an override must look like section.key=value; got {item!r}.")
        key, text = item.split("=", 1)
        pairs.append((key.strip(), _parse_value(text.strip())))
    return pairs


def _build(tree: Tree, where: str) -> RunConfig:
    try:
        sections = {name: cls(**tree.get(name, {})) for name, cls in SECTIONS.items()}
        return RunConfig(**sections, **{k: tree[k] for k in _TOP_KEYS if k in tree})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"The config file '{path}' does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.") from None


def _with_overrides(tree: Tree, where: str, overrides: Sequence[str]) -> RunConfig:
    for key, value in parse_overrides(overrides):
        _set(tree, key, value, "--set")
    if overrides:
        where += " with --set " + " ".join(overrides)
    return _build(tree, where)


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Build a :class:`RunConfig` from defaults, then the TOML file at ``path``, then ``overrides``.

    ``overrides``: strings ``section.key=value`` (``seed=3`` for top-level keys); values use TOML
    syntax (``train.lr=0.01``, ``sweep.snrs_db=[-4, 0, 4]``, ``sweep.models=resnet,drsn-cw``).
    """
    tree: Tree = {}
    if path is not None:
        _merge(tree, read_toml(path), str(path))
    return _with_overrides(tree, str(path) if path is not None else "defaults", overrides)


def config_from_dict(d: dict[str, Any], where: str = "saved config", overrides: Sequence[str] = ()) -> RunConfig:
    """Inverse of :func:`config_to_dict` (validated like :func:`load_config`), then ``overrides``."""
    tree: Tree = {}
    _merge(tree, d, where)
    return _with_overrides(tree, where, overrides)


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config as plain nested dicts and lists (JSON/TOML ready)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def replace_in(cfg: RunConfig, key: str, value: Any) -> RunConfig:
    """A copy of ``cfg`` with ``section.key`` (or a top-level key) set to ``value`` (coerced, validated)."""
    tree: Tree = {}
    _merge(tree, config_to_dict(cfg), "replace_in")
    _set(tree, key, value, "replace_in")
    return _build(tree, "replace_in")


def _drop_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    return d


def dumps_toml(cfg: RunConfig) -> str:
    """The config as TOML text that :func:`load_config` reads back to an equal config (None keys omitted)."""
    return tomli_w.dumps(_drop_none(config_to_dict(cfg)))


def save_config(cfg: RunConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as TOML, atomically."""
    from faultdiag.provenance import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(dumps_toml(cfg))
    return Path(path)


def training_key(cfg: RunConfig | dict[str, Any]) -> dict[str, Any]:
    """The parts of a config that determine what a training learns (``NEUTRAL_KEYS`` left out)."""
    d = config_to_dict(cfg) if isinstance(cfg, RunConfig) else json.loads(json.dumps(cfg))
    for key in NEUTRAL_KEYS:
        section, _, name = key.partition(".")
        if name:
            d.get(section, {}).pop(name, None)
        else:
            d.pop(section, None)
    return d


def config_diff(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"key: old -> new"`` for every training-relevant key that differs between two config dicts.

    Both are compared through :func:`training_key`.  A key absent from ``saved`` (an option added
    after it was written) counts as that option's default, which is what the older code did.
    """
    defaults = training_key(RunConfig())
    return _diff(_fill(training_key(saved), defaults), training_key(current))


def _fill(d: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    for k, v in defaults.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, dict) and isinstance(out[k], dict):
            out[k] = _fill(out[k], v)
    return out


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out
