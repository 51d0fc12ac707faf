"""Bad-input battery: each case gives a clear message, a non-zero exit and no partial output."""

from __future__ import annotations

import os
import re

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from faultdiag.checkpoint import load_checkpoint, save_checkpoint
from faultdiag.cli import main
from faultdiag.errors import ConfigError
from faultdiag.preflight import check_free_space, check_output_dir, estimate_train_bytes

TINY = ["data.source=simulated", "data.sim_duration_s=1.0", "data.loads=[0]", "data.window_len=256",
        "data.hop=256", "model.widths=[4, 4]", "model.units=[1, 1]", "model.stage_strides=[2, 2]",
        "model.stem_channels=4", "train.epochs=1", "train.batch_size=32", "train.threads=1", "device=cpu"]
FORMATS = ("csv", "mat5", "mat73", "hdf5", "npy", "npz")
SUFFIX = {"csv": ".csv", "mat5": ".mat", "mat73": ".mat", "hdf5": ".h5", "npy": ".npy", "npz": ".npz"}


def _sets(items):
    return [a for item in items for a in ("--set", item)]


def _valid(path, fmt, signal):
    if fmt == "csv":
        np.savetxt(path, signal.T, delimiter=",", header="DE", comments="")
    elif fmt == "mat5":
        scipy.io.savemat(path, {"DE": signal.T.astype(np.float64), "fs_hz": 12000.0})
    elif fmt in ("mat73", "hdf5"):
        with h5py.File(path, "w", userblock_size=512 if fmt == "mat73" else 0) as f:
            f.create_dataset("DE", data=signal[0])
            f.attrs["fs_hz"] = 12000.0
        if fmt == "mat73":
            with open(path, "r+b") as fh:
                fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116, b" "))
    elif fmt == "npy":
        np.save(path, signal)
    else:
        np.savez(path, DE=signal[0])


def _make(tmp_path, fmt, case):
    folder = tmp_path / "recs" / "normal"
    folder.mkdir(parents=True)
    path = folder / f"bad{SUFFIX[fmt]}"
    if case == "missing":
        return path
    _valid(path, fmt, np.random.default_rng(0).normal(size=(1, 4000)).astype(np.float32))
    data = path.read_bytes()
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif case == "corrupt":
        at = 512 if fmt == "mat73" else 0  # MAT 7.3: the HDF5 superblock follows a 512-byte text header
        path.write_bytes(data[:at] + bytes(b ^ 0x5A for b in data[at : at + 200]) + data[at + 200 :])
    return path


def _run(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "corrupt"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_recording_files(tmp_path, capsys, fmt, case):
    path = _make(tmp_path, fmt, case)
    out = tmp_path / "out"
    rc, text = _run(["train", "--out", str(out), *_sets([*TINY, "data.source=files", f'data.paths=["{path}"]'])], capsys)
    assert rc != 0, text
    assert "faultdiag: error:" in text and "bad" in text, text
    assert not out.exists()  # no partial output


@pytest.mark.parametrize("content, words", [
    (["0.1", "nan", "0.3"] * 200, "NaN|finite|nan"),
    (["0.1", "inf", "0.3"] * 200, "Inf|finite|inf"),
    (["0.1", "hello", "0.3"] * 200, "non-numeric value 'hello'"),
    (["0.1"] * 100, "window|short|samples"),
])
def test_bad_csv_contents(tmp_path, capsys, content, words):
    (tmp_path / "recs" / "normal").mkdir(parents=True)
    path = tmp_path / "recs" / "normal" / "bad.csv"
    rows = [f"{i / 12000:.8f},{v}" for i, v in enumerate(content)]
    path.write_text("time_s,DE\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    rc, text = _run(["train", "--out", str(out), *_sets([*TINY, "data.source=files", f'data.paths=["{path}"]',
                                                        "data.fs_hz=12000"])], capsys)
    assert rc != 0 and "faultdiag: error:" in text, text
    assert re.search(words, text), text
    assert not out.exists()


@pytest.mark.parametrize("items, code, words", [
    (["train.epochz=3"], 2, "unknown key 'train.epochz'; valid keys"),
    (["train.epochs=three"], 2, "must be an int"),
    (["data.window_len=[1, 2]"], 2, "must be an int"),
    (["model.name=resnet50"], 2, "resnet50"),
    (["data.split=[0.5, 0.5, 0.5]"], 2, "split"),
])
def test_bad_config_values(tmp_path, capsys, items, code, words):
    out = tmp_path / "out"
    rc, text = _run(["train", "--out", str(out), *_sets([*TINY, *items])], capsys)
    assert rc == code and words in text, text
    assert not out.exists()


def test_unknown_key_in_config_file_names_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nlearning_rate = 0.1\n", encoding="utf-8")
    rc, text = _run(["train", "--config", str(cfg), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and str(cfg) in text and "learning_rate" in text and "valid keys" in text, text


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    assert main(["train", "--out", str(out), "--no-progress", *_sets(TINY)]) == 0
    return out / "checkpoint.pt"


def test_checkpoint_of_a_different_model_is_refused(trained, tmp_path, capsys):
    ck = load_checkpoint(trained)
    other = tmp_path / "other.pt"
    model = ck.build_model()
    save_checkpoint(other, model=model, model_name="resnet", model_kwargs={**ck.model_kwargs, "widths": (8, 8)},
                    class_names=ck.class_names, inputs=ck.inputs, signal_stats=ck.signal_stats,
                    config=ck.config, metrics=ck.metrics)
    rec = tmp_path / "r.npy"
    np.save(rec, np.random.default_rng(0).normal(size=(1, 12000)).astype(np.float32))
    rc, text = _run(["diagnose", "--model", str(other), "--fs-hz", "12000", str(rec)], capsys)
    assert rc != 0 and "do not fit" in text, text
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    rc, text = _run(["diagnose", "--model", str(tmp_path / "foreign.pt"), str(rec)], capsys)
    assert rc != 0 and "not a faultdiag checkpoint" in text, text


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_damaged_checkpoint_is_detected(trained, tmp_path, capsys, how):
    data = trained.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(2048), "empty": b""}[how])
    rec = tmp_path / "r.npy"
    np.save(rec, np.zeros((1, 4096), np.float32))
    out = tmp_path / "res.csv"
    rc, text = _run(["diagnose", "--model", str(bad), "--csv", str(out), str(rec)], capsys)
    assert rc != 0 and "bad.pt" in text and ("corrupt" in text or "not a readable" in text), text
    assert not out.exists()


def test_odd_sampling_rate_is_resampled_and_an_absurd_one_refused(trained, tmp_path, capsys):
    rec = tmp_path / "odd.npy"
    np.save(rec, np.random.default_rng(0).normal(size=(1, 20000)).astype(np.float32))
    rc, text = _run(["diagnose", "--model", str(trained), "--fs-hz", "11025.123457", str(rec)], capsys)
    assert rc == 0, text
    rc, text = _run(["diagnose", "--model", str(trained), "--fs-hz", "1e9", str(rec)], capsys)
    assert rc != 0 and "resample" in text, text


def test_class_names_that_do_not_match_the_model(trained, tmp_path, capsys):
    rc, text = _run(["evaluate", "--model", str(trained), "--out", str(tmp_path / "ev"), "--snrs", "0",
                     "--set", "data.classes=[\"normal\", \"ball\"]"], capsys)
    assert rc != 0 and "classes" in text, text
    assert not (tmp_path / "ev").exists()


def test_resume_with_another_model_is_refused(trained, capsys):
    rc, text = _run(["train", "--resume", "--out", str(trained.parent), *_sets([*TINY, "model.name=resnet"])], capsys)
    assert rc == 2 and "differs" in text and "model.name" in text, text


def test_output_folder_under_a_regular_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, text = _run(["train", "--out", str(blocker / "run"), *_sets(TINY)], capsys)
    assert rc == 2 and "cannot be created" in text, text
    with pytest.raises(ConfigError, match="--out"):
        check_output_dir(blocker / "run")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            check_output_dir(ro)
    finally:
        ro.chmod(0o700)


def test_full_disk_fails_before_training(tmp_path, capsys, monkeypatch):
    with pytest.raises(ConfigError, match="Not enough disk space"):
        check_free_space(tmp_path, 1 << 60)
    assert estimate_train_bytes(1000, 10) > 4 * 1000 * 4  # weights, best, two Adam moments
    monkeypatch.setattr("faultdiag.preflight.free_bytes", lambda path: 1024)
    out = tmp_path / "out"
    rc, text = _run(["train", "--out", str(out), *_sets(TINY)], capsys)
    assert rc == 2 and "Not enough disk space" in text and "MiB free" in text, text
    assert not out.exists()
