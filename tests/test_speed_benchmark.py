"""benchmarks/speed.py end to end at its smallest settings: the JSON it writes has every part and sane numbers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "speed.py"


def _load_speed():
    spec = importlib.util.spec_from_file_location("speed_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed_quick_writes_rows_for_every_variant(tmp_path):
    speed = _load_speed()
    out = tmp_path / "speed.json"
    speed.main(["--quick", "--skip-diagnose", "--skip-mnist", "--threads", "1", "--batch-sizes", "4",
                "--presets", "paper", "--models", "drsn-cw", "resnet", "--out", str(out)])
    result = json.loads(out.read_text())
    for key in ("machine", "versions", "revision", "arguments", "settings", "torch_threads",
                "load_avg_1min_before", "load_avg_1min_after", "signal_s_per_s_note", "hop"):
        assert key in result, key
    assert result["settings"]["batch_sizes"] == [4]
    assert result["hop"] == result["input"]["window_len"] == 2048
    assert "mnist_demo" not in result and "diagnose" not in result
    rows = result["presets"]
    variants = {(r["model"], r["phase"], r["variant"]) for r in rows}
    assert variants == {(m, p, v) for m in ("drsn-cw", "resnet")
                        for p, v in (("train", "eager"), ("infer", "eval"), ("infer", "folded"))}
    for row in rows:
        assert row["preset"] == "paper" and row["batch_size"] == 4
        for key in ("windows_per_s", "windows_per_s_best", "median_s", "min_s", "first_call_s"):
            assert math.isfinite(row[key]) and row[key] > 0, (row, key)
        assert row["windows_per_s_best"] >= row["windows_per_s"]
        if row["phase"] == "infer":
            assert math.isclose(row["signal_s_per_s"], row["windows_per_s"] * 2048 / 12000.0)


def test_keras_port_of_the_article_has_the_demo_models_parameters():
    from benchmarks.keras_seed import build_model as build_keras, import_keras
    from faultdiag.models.networks import build_model

    keras = import_keras()
    if keras is None:
        pytest.skip("Keras 3 with the PyTorch backend is not installed (pip install -e '.[bench]')")
    for name, shrinkage in (("drsn-cw", True), ("resnet", False)):
        ours = sum(p.numel() for p in build_model(name, dims=2, preset="seed-mnist", num_classes=10, seed=0).parameters())
        theirs = build_keras(keras, shrinkage=shrinkage)
        assert sum(int(math.prod(w.shape)) for w in theirs.trainable_weights) == ours, name
        assert theirs.output_shape == (None, 10)


def test_mnist_speed_ratio_is_per_round():
    from benchmarks import mnist_speed

    variants = ["eager", "fast"] + (["keras"] if mnist_speed.keras_available() else [])
    results = mnist_speed.measure(["resnet"], variants, n_images=200, rounds=2)
    for variant in variants:
        r = results[f"resnet/{variant}"]
        assert len(r["wall"]) == len(r["cpu"]) == 2 and all(v > 0 for v in r["wall"])
        if "keras" in variants and variant != "keras":
            keras_rates = results["resnet/keras"]["epoch_wall"]
            assert r["x_keras"] == [a / b for a, b in zip(r["wall"], keras_rates)]


def test_diagnose_speed_summary_ratios_pair_runs_of_the_same_round():
    from benchmarks.diagnose_speed import parse_config, summarize

    assert parse_config("t2") == (2, 1) and parse_config("j3") == (1, 3)
    rows = [{"preset": "paper", "case": "c", "config": c, "signal_s_per_s": v, "peak_rss_mb": 300.0,
             "wall_s": 1.0, "model_only_s": 0.5} for c, v in (("t1", 100.0), ("j2", 150.0), ("t1", 200.0), ("j2", 100.0))]
    summary = {s["config"]: s for s in summarize(rows, ["t1", "j2"])}
    assert summary["j2"]["ratio_to_t1"] == [1.5, 0.5] and summary["t1"]["signal_s_per_s_median"] == 150.0
    assert "ratio_to_t1" not in summary["t1"]
    assert summary["j2"]["outside_model_share_median"] == 0.5


def test_cells_loop_scores_every_cell_once_and_appends_as_it_goes(tmp_path, capsys):
    from benchmarks import cells

    seen = []

    def score(cell, prepared):
        seen.append((cell, prepared))
        return {"cell": str(cell)}, "prepared once"

    out = tmp_path / "rows.jsonl"
    rows = cells.main([str(tmp_path), "--models", "a", "b", "--seeds", "0", "2", "--out", str(out)], "test",
                      tmp_path / "unused.jsonl", score, lambda row: "scored " + row["cell"])
    expected = [tmp_path / "cells" / m / f"clean-seed{s}" for m in ("a", "b") for s in (0, 2)]
    assert [cell for cell, _ in seen] == expected
    assert [p for _, p in seen] == [None] + ["prepared once"] * 3     # the data prepared for the first cell only
    assert [json.loads(line)["cell"] for line in out.read_text().splitlines()] == [str(c) for c in expected]
    assert len(rows) == 4 and capsys.readouterr().out.count("scored ") == 4
