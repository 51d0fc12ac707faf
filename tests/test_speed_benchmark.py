"""benchmarks/speed.py end to end at its smallest settings: the JSON it writes has every part and sane numbers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

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
