"""diagnose on data that is not CWRU: no stated rate, per-file speed and labels from an --info CSV,
any bearing, speed estimated within a range, true labels from the training layout, summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import savemat

from faultdiag.cli import main
from faultdiag.config import load_config
from faultdiag.data.readers import write_recording
from faultdiag.data.simulate import simulate_recording
from faultdiag.diagnose import diagnose, summarize
from faultdiag.training import train_model

CLASSES = ("normal", "inner_race", "outer_race")
TINY = ["data.window_len=1024", "data.hop=512", "model.preset=wide", "train.epochs=4", "train.batch_size=32",
        "train.lr=0.01", "train.threads=1", "device=cpu"]


@pytest.fixture(scope="module")
def files_model(tmp_path_factory):
    """A model trained on simulated recordings written as files in class folders (data.source = files)."""
    root = tmp_path_factory.mktemp("train_files")
    for cls in CLASSES:
        for seed in (1, 2):
            rec = simulate_recording(cls, load_hp=0, duration_s=4, seed=seed)
            (root / cls).mkdir(exist_ok=True)
            write_recording(rec, root / cls / f"{cls}_{seed}.h5")
    out = tmp_path_factory.mktemp("files_model")
    train_model(load_config(None, ["data.source=files", f'data.paths=["{root}"]', *TINY]), out, progress=False)
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def new_files(tmp_path_factory):
    """Unseen recordings (load 1): class folders of headerless CSVs (no rate), and their true speeds."""
    root = tmp_path_factory.mktemp("week")
    rpms = {}
    for cls in CLASSES:
        rec = simulate_recording(cls, load_hp=1, duration_s=3, seed=100)
        (root / cls).mkdir()
        np.savetxt(root / cls / f"{cls}.csv", rec.signal[0], fmt="%.6f")
        rpms[cls] = rec.meta["rpm"]
    return root, rpms


def test_no_rate_no_bearing_no_speed_are_said_not_silent(files_model, new_files):
    root, _ = new_files
    df = diagnose(files_model, [root])
    assert df["error"].isna().all() and (df["fs_hz"] == 12000).all()
    assert df["envelope_note"].str.contains("read at the model's 12000 Hz").all()
    assert df["envelope_note"].str.contains("no bearing").all() and (df["agreement"] == "n/a").all()
    assert list(df["true"]) == list(df["file"].map(lambda f: f.split("/")[-2]))  # the training layout's rule
    summary = summarize(df, df.attrs["class_names"])
    assert summary["n_files"] == 3 and sum(map(sum, summary["confusion"])) == 3


def test_info_csv_gives_speed_and_labels_and_the_check_runs(files_model, new_files, tmp_path):
    root, rpms = new_files
    info = root / "info.csv"  # inside the data folder: a file table, not a recording
    info.write_text("file,rpm,label\n" + "".join(f"{c}/{c}.csv,{rpms[c]:.1f},{c}\n" for c in CLASSES))
    df = diagnose(files_model, [root], info=info, bearing="6205").set_index("true")
    assert len(df) == 3 and set(df["rpm_source"]) == {"--info"}
    assert df.loc["inner_race", "envelope_fault"] == "inner_race" and df.loc["outer_race", "envelope_fault"] == "outer_race"
    orders = diagnose(files_model, [root], info=info, bearing="orders:bpfo=3.5848,bpfi=5.4152,bsf=2.357,ftf=0.3983")
    assert list(orders["envelope_fault"]) == list(df.reset_index()["envelope_fault"])


def test_speed_estimated_within_a_range(files_model, new_files):
    root, rpms = new_files
    df = diagnose(files_model, [root / "outer_race"], bearing="6205", rpm_range=(1500, 2000))
    assert df["rpm_source"].item().startswith("spectrum estimate")
    assert df["rpm"].item() == pytest.approx(rpms["outer_race"], rel=0.02)
    assert df["envelope_fault"].item() == "outer_race"


def test_bearing_frequencies_read_from_the_file(files_model, tmp_path):
    rec = simulate_recording("outer_race", load_hp=2, duration_s=5, seed=7)
    shaft_hz = rec.meta["rpm"] / 60
    orders = {"BPFO": 3.5848, "BPFI": 5.4152, "BSF": 2.357, "FTF": 0.3983}
    savemat(tmp_path / "pump.mat", {"acc": rec.signal[0], "fs": 12000.0, **{k: v * shaft_hz for k, v in orders.items()}})
    row = diagnose(files_model, [tmp_path / "pump.mat"]).iloc[0]
    assert row["bearing"].startswith("orders ") and row["rpm"] == pytest.approx(rec.meta["rpm"], rel=1e-3)
    assert row["envelope_fault"] == "outer_race"


def test_cli_true_column_summary_and_json(files_model, new_files, capsys):
    root, rpms = new_files
    info = root / "info.csv"
    info.write_text("file,rpm\n" + "".join(f"{c}/{c}.csv,{rpms[c]:.1f}\n" for c in CLASSES))
    args = ["diagnose", "--model", str(files_model), str(root), "--info", str(info), "--bearing", "6205", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["file", "true", "predicted"]
    assert "accuracy on the 3 file(s) with a known label" in out and "confusion (rows: true label" in out
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["n_files"] == 3 and len(data["recordings"]) == 3
    assert main([*args[:4], "--bearing", "6205", "--bearing-orders", "bpfo=1,bpfi=2,bsf=1,ftf=0.4"]) == 2
    assert main([*args[:4], "--rpm-range", "fast"]) == 2
    capsys.readouterr()
