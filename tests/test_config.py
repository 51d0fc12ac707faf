"""Run configuration: defaults, TOML files, --set overrides, errors that name file, key and valid keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultdiag.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    dumps_toml,
    load_config,
    replace_in,
    save_config,
)
from faultdiag.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_frozen_and_complete():
    cfg = load_config(None)
    assert cfg == RunConfig()
    assert cfg.data.split == (0.7, 0.15, 0.15) and cfg.data.window_len == 2048
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]


def test_file_then_overrides_take_precedence(tmp_path):
    path = _write(tmp_path, 'seed = 1\n[train]\nlr = 0.1\nepochs = 5\n[sweep]\nsnrs_db = [-4, 0]\n')
    cfg = load_config(path, ["train.lr=0.01", "seed=7"])
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 5 and cfg.seed == 7
    assert cfg.sweep.snrs_db == (-4.0, 0.0) and all(isinstance(v, float) for v in cfg.sweep.snrs_db)


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("train.epochs=12", ("train", "epochs"), 12),
        ("train.lr=1", ("train", "lr"), 1.0),
        ("sweep.models=resnet,drsn-cw", ("sweep", "models"), ("resnet", "drsn-cw")),
        ('sweep.models=["convnet"]', ("sweep", "models"), ("convnet",)),
        ("sweep.adabn=[false, true]", ("sweep", "adabn"), (False, True)),
        ("data.eval_hop=none", ("data", "eval_hop"), None),
        ("data.eval_hop=512", ("data", "eval_hop"), 512),
        ("model.widths=[8, 16]", ("model", "widths"), (8, 16)),
        ("model.name=resnet", ("model", "name"), "resnet"),
        ("noise.train_snr_db=-3", ("noise", "train_snr_db"), -3.0),
    ],
)
def test_set_coerces_types(override, key, expected):
    cfg = load_config(None, [override])
    assert getattr(getattr(cfg, key[0]), key[1]) == expected


def test_unknown_key_in_file_names_file_key_and_valid_keys(tmp_path):
    path = _write(tmp_path, "[train]\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "train.learning_rate" in msg and "lr" in msg and "epochs" in msg


def test_unknown_section_and_top_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'optim'.*valid keys at the top level: seed, device, data"):
        load_config(_write(tmp_path, "[optim]\nlr = 1\n"))
    with pytest.raises(ConfigError, match=r"--set: unknown key 'sed'"):
        load_config(None, ["sed=3"])


def test_wrong_type_names_file_key_and_value(tmp_path):
    path = _write(tmp_path, '[train]\nepochs = "ten"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "'train.epochs'" in str(err.value) and "'ten'" in str(err.value)
    with pytest.raises(ConfigError, match=r"'train.batch_size' key must be an int; got 1.5"):
        load_config(None, ["train.batch_size=1.5"])
    with pytest.raises(ConfigError, match="must be a bool"):
        load_config(None, ["sweep.adabn=[1]"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("data.source=s3", "'data.source' parameter must be one of"),
        ("data.split=[0.5, 0.5, 0.5]", "summing to 1"),
        ("train.epochs=0", "'train.epochs' parameter must be positive"),
        ("noise.train=fixed", "'noise.train_snr_db' parameter must be a number"),
        ("sweep.kinds=[brown]", "'sweep.kinds'"),
        ("device=tpu", "'device' parameter must be one of"),
        ("train.milestones=[0.4, 1.2]", "fractions in (0, 1)"),
    ],
)
def test_invalid_values_are_config_errors(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert fragment in str(err.value) and "--set" in str(err.value)


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[train\n"))


def test_toml_and_dict_round_trip(tmp_path):
    cfg = load_config(None, ["model.widths=[4, 8]", "noise.train=fresh", "noise.train_snr_db=2", "seed=5",
                             "data.classes=[a, b]", "sweep.adabn=[false, true]"])
    assert load_config(save_config(cfg, tmp_path / "config.toml")) == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert "[model]" in dumps_toml(cfg)


def test_replace_in_coerces_and_validates():
    cfg = RunConfig()
    new = replace_in(cfg, "noise.train_snr_db", 3)
    assert new.noise.train_snr_db == 3.0 and cfg.noise.train_snr_db is None
    assert replace_in(cfg, "seed", 4).seed == 4
    with pytest.raises(ConfigError):
        replace_in(cfg, "train.nope", 1)
    with pytest.raises(ConfigError):
        replace_in(cfg, "train.epochs", -1)


def test_model_kwargs_only_overrides_set():
    assert ModelConfig().model_kwargs() == {"preset": "paper"}
    assert ModelConfig(widths=(4, 8), kernel_size=5).model_kwargs() == {"preset": "paper", "widths": (4, 8), "kernel_size": 5}


def test_direct_construction_is_validated():
    with pytest.raises(ConfigError):
        DataConfig(normalize="minmax")
    with pytest.raises(ConfigError):
        TrainConfig(optimizer="rmsprop")


@pytest.mark.parametrize("name", ["quickstart", "cwru_wdcnn", "cwru_paper"])
def test_shipped_configs_load(name):
    path = REPO / "configs" / f"{name}.toml"
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    cfg = load_config(path)
    assert cfg.sweep.models and cfg.sweep.snrs_db
