"""End-to-end CLI: train → evaluate → sweep on a tiny simulated config, repeatability, config errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from faultdiag.cli import main

TINY_TOML = """
seed = 0
device = "cpu"

[data]
source = "simulated"
sim_duration_s = 1.5
loads = [0]
window_len = 256
hop = 256

[model]
name = "drsn-cw"
widths = [4, 4, 4]
units = [1, 1, 1]
stem_channels = 4
stem_kernel = 7

[train]
epochs = 1
batch_size = 32
threads = 1

[sweep]
models = ["drsn-cw", "resnet"]
kinds = ["gaussian"]
snrs_db = [-2.0, 4.0]
seeds = [0]
adabn = [false, true]
"""


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML, encoding="utf-8")
    return path


def test_train_evaluate_sweep_end_to_end(tiny_config, tmp_path, capsys):
    train_dir, sweep_dir = tmp_path / "train", tmp_path / "sweep"
    assert main(["train", "--config", str(tiny_config), "--out", str(train_dir), "--no-progress"]) == 0
    for name in ("checkpoint.pt", "last.pt", "train_log.csv", "metrics.json"):
        assert (train_dir / name).is_file(), name
    out = capsys.readouterr().out
    assert "clean" in out and str(train_dir / "checkpoint.pt") in out

    eval_dir = tmp_path / "eval"
    assert main(["evaluate", "--model", str(train_dir / "checkpoint.pt"), "--snrs", "0", "6", "--kinds", "gaussian",
                 "pink", "--adabn", "--out", str(eval_dir)]) == 0
    table = pd.read_csv(eval_dir / "evaluation.csv")
    assert len(table) == 2 * (1 + 2 * 2)  # (clean + 2 kinds x 2 SNRs) x (plain, AdaBN)
    assert table["accuracy"].between(0, 1).all()
    assert "+AdaBN" in capsys.readouterr().out

    # two checkpoints: their ensemble (mean probabilities); the same model twice scores as itself
    ens_dir = tmp_path / "ens"
    assert main(["evaluate", "--model", str(train_dir / "checkpoint.pt"), str(train_dir / "checkpoint.pt"),
                 "--snrs", "0", "--out", str(ens_dir)]) == 0
    ens = pd.read_csv(ens_dir / "evaluation.csv")
    assert set(ens["model"]) == {"drsn-cw ensemble of 2"} and "ensemble" in capsys.readouterr().out
    single = table[(~table["adabn"]) & (table["kind"].isin(["clean", "gaussian"])) & (table["snr_db"].fillna(0) == 0)]
    assert list(ens["accuracy"]) == list(single["accuracy"])

    assert main(["sweep", "--config", str(tiny_config), "--out", str(sweep_dir), "--no-progress"]) == 0
    results = pd.read_csv(sweep_dir / "results.csv")
    assert len(results) == 2 * 2 * (1 + 2)  # models x adabn x (clean + 2 SNRs)
    assert set(results.columns) >= {"model", "protocol", "kind", "snr_db", "adabn", "seed", "accuracy", "macro_f1"}
    for name in ("summary.csv", "summary.md", "summary.json", "accuracy_vs_snr.png", "sweep.json"):
        assert (sweep_dir / name).is_file(), name
    assert list(sweep_dir.glob("confusion_*.png"))
    prov = json.loads((sweep_dir / "sweep.json").read_text())
    assert prov["code_revision"] and prov["data_fingerprint"] and prov["config"]["sweep"]["snrs_db"] == [-2.0, 4.0]
    cell = json.loads((sweep_dir / "cells" / "resnet" / "clean-seed0" / "result.json").read_text())
    assert cell["seed"] == 0 and cell["data_fingerprint"] and cell["code_revision"]
    out = capsys.readouterr().out
    assert "-2 dB" in out and "4 dB" in out and "resnet +AdaBN" in out


def test_same_seed_gives_identical_metrics(tiny_config, tmp_path):
    args = ["--config", str(tiny_config), "--no-progress", "--set", "sweep.models=['resnet']"]
    assert main(["sweep", *args, "--out", str(tmp_path / "a")]) == 0
    assert main(["sweep", *args, "--out", str(tmp_path / "b")]) == 0
    a, b = pd.read_csv(tmp_path / "a" / "results.csv"), pd.read_csv(tmp_path / "b" / "results.csv")
    pd.testing.assert_frame_equal(a, b)
    ra = json.loads((tmp_path / "a" / "cells" / "resnet" / "clean-seed0" / "result.json").read_text())
    rb = json.loads((tmp_path / "b" / "cells" / "resnet" / "clean-seed0" / "result.json").read_text())
    assert [e["confusion"] for e in ra["evaluations"]] == [e["confusion"] for e in rb["evaluations"]]


@pytest.mark.parametrize("override, words", [
    ("train.epochz=3", ["train.epochz", "epochs"]),
    ("trian.epochs=3", ["trian.epochs", "train"]),
    ("train.epochs=three", ["train.epochs", "three"]),
    ("sweep.protocol=sideways", ["sweep.protocol", "sideways"]),
])
def test_config_errors_exit_2_and_name_the_key(tiny_config, tmp_path, capsys, override, words):
    code = main(["train", "--config", str(tiny_config), "--out", str(tmp_path / "x"), "--set", override])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("faultdiag: error:")
    for word in words:
        assert word in err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


def test_unknown_key_in_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlearning_rate = 0.1\n", encoding="utf-8")
    assert main(["sweep", "--config", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "learning_rate" in err and "lr" in err


def test_missing_checkpoint_is_a_data_error(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path / "nope.pt")]) == 1
    assert "nope.pt" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "sweep"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--config", "--out", "--set", "--seed", "--device", "--no-progress"):
        assert option in text
    assert ("--resume" in text) == (command != "evaluate")
