"""The per-class table of recordings and windows per split: computed, printed by train/sweep before
training, and kept in the result files."""

from __future__ import annotations

import json

import numpy as np

from faultdiag.cli import main
from faultdiag.config import load_config
from faultdiag.data.readers import write_recording
from faultdiag.data.recording import Recording
from faultdiag.cli.run import format_class_table
from faultdiag.training.prepare import class_table, prepare

TINY = ["data.window_len=256", "data.hop=256", "model.widths=[4, 4]", "model.units=[1, 1]",
        "model.stage_strides=[2, 2]", "model.stem_channels=4", "train.epochs=1", "train.batch_size=32",
        "train.threads=1", "device=cpu"]


def _layout(root, counts=(("IR", 2), ("OR", 1), ("normal", 3))):
    rng = np.random.default_rng(0)
    for cls, n in counts:
        for i in range(n):
            (root / "rig1" / cls).mkdir(parents=True, exist_ok=True)
            write_recording(Recording(rng.standard_normal((1, 5000)).astype(np.float32), 2560.0, ("acc",)),
                            root / "rig1" / cls / f"{cls}_{i}.h5")
    return root


def test_class_table_counts(tmp_path):
    cfg = load_config(None, ["data.source=files", f'data.paths=["{_layout(tmp_path / "d")}"]', "data.label_from=folder:2",
                             *TINY])
    prepared = prepare(cfg)
    rows = class_table(prepared)
    assert [r["class"] for r in rows] == ["IR", "OR", "normal"]
    assert [r["recordings_train"] for r in rows] == [2, 1, 3] and [r["recordings_test"] for r in rows] == [2, 1, 3]
    for split in ("train", "val", "test"):
        assert sum(r[f"windows_{split}"] for r in rows) == len(getattr(prepared, split))
    text = format_class_table(rows)
    assert text.splitlines()[0].startswith("class") and "total" in text.splitlines()[-1]


def test_train_and_sweep_print_and_store_it(tmp_path, capsys):
    root = _layout(tmp_path / "d")
    sets = [a for s in ["data.source=files", f'data.paths=["{root}"]', "data.label_from=folder:2", *TINY,
                        "sweep.models=[\"convnet\"]", "sweep.snrs_db=[0]"] for a in ("--set", s)]
    assert main(["train", "--out", str(tmp_path / "t"), "--no-progress", *sets]) == 0
    out = capsys.readouterr().out
    assert "data: 3 classes at 2560 Hz" in out and out.index("recordings (train/val/test)") < out.index("trained")
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert [r["class"] for r in metrics["class_table"]] == ["IR", "OR", "normal"]
    assert main(["sweep", "--out", str(tmp_path / "s"), "--no-progress", *sets]) == 0
    assert "recordings (train/val/test)" in capsys.readouterr().out
    sweep = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert sweep["class_table"] == metrics["class_table"]
