"""HDF5 cache: same windows as in memory, lazy training, atomic writes, damage detected."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from faultdiag.cli import main
from faultdiag.config import load_config
from faultdiag.data.cache import build_cache, cached_splits, open_cache
from faultdiag.data.readers import write_recording
from faultdiag.data.simulate import simulate_recording
from faultdiag.errors import ConfigError, DataError
from faultdiag.training import prepare, train_model

BASE = ["data.source=simulated", "data.sim_duration_s=1.5", "data.loads=[0]", "data.window_len=256",
        "data.hop=128", "model.widths=[4, 8]", "model.units=[1, 1]", "model.stage_strides=[2, 2]",
        "model.stem_channels=4", "train.epochs=2", "train.batch_size=32", "train.lr=0.01", "train.threads=1",
        "device=cpu"]


@pytest.fixture(scope="module")
def cache_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache") / "sim.h5"
    return build_cache(load_config(None, BASE).data, path, chunk_len=1000)


def test_cached_windows_equal_in_memory_windows(cache_path):
    cfg = load_config(None, BASE)
    mem = prepare(cfg)
    lazy = prepare(load_config(None, [*BASE, f"data.cache={cache_path}"]))
    assert lazy.class_names == mem.class_names and lazy.inputs.channels == mem.inputs.channels
    for split in ("train", "val", "test"):
        a, b = getattr(mem, split), getattr(lazy, split)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.starts, b.starts)
        np.testing.assert_array_equal(a.X, np.asarray(b.X))
    idx = np.array([5, 0, 17, 5])  # any order, repeats
    np.testing.assert_array_equal(lazy.train.X[idx], mem.train.X[idx])
    np.testing.assert_allclose(lazy.inputs.standardizer.mean_, mem.inputs.standardizer.mean_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(lazy.inputs.standardizer.std_, mem.inputs.standardizer.std_, rtol=1e-6)
    assert lazy.signal_stats["rms_median"] == pytest.approx(mem.signal_stats["rms_median"], rel=1e-6)


def test_training_from_cache_matches_training_in_memory(cache_path, tmp_path):
    mem = train_model(load_config(None, BASE), tmp_path / "mem", progress=False)
    lazy = train_model(load_config(None, [*BASE, f"data.cache={cache_path}"]), tmp_path / "lazy", progress=False)
    for a, b in zip(mem.history, lazy.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_acc"] == pytest.approx(b["val_acc"], abs=0.02)


def test_cache_rejects_fixed_noise_and_wrong_rate(cache_path, tmp_path):
    cfg = load_config(None, [*BASE, f"data.cache={cache_path}", "noise.train=fixed", "noise.train_snr_db=0"])
    with pytest.raises(ConfigError, match="fresh"):
        train_model(cfg, tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="Hz"):
        cached_splits(load_config(None, [f"data.cache={cache_path}", "data.fs_hz=48000"]).data)


def test_cli_cache_from_files_and_classes(tmp_path):
    for fault in ("normal", "ball"):
        rec = simulate_recording(fault, severity=0 if fault == "normal" else 2, load_hp=0, duration_s=0.5, seed=1)
        (tmp_path / "rec" / fault).mkdir(parents=True)
        write_recording(rec, tmp_path / "rec" / fault / "a.csv")
    out = tmp_path / "out" / "files.h5"
    rc = main(["data", "cache", "--set", f"data.paths=[\"{tmp_path / 'rec'}\"]", "--set", "data.source=files",
               "--out", str(out)])
    assert rc == 0
    info = open_cache(out)
    assert info.class_names == ("ball", "normal") and sorted(info.labels) == ["ball", "normal"]
    assert [p.name for p in out.parent.iterdir()] == ["files.h5"]  # no temporary file left


def _damage(src, dst, how):
    data = src.read_bytes()
    if how == "truncated":
        dst.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        dst.write_bytes(b"")
    elif how == "garbage":
        dst.write_bytes(os.urandom(4096))
    elif how == "incomplete":
        dst.write_bytes(data)
        with h5py.File(dst, "r+") as f:
            f.attrs["complete"] = False


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "incomplete"])
def test_damaged_cache_is_a_clear_data_error(cache_path, tmp_path, how):
    bad = tmp_path / f"{how}.h5"
    _damage(cache_path, bad, how)
    with pytest.raises(DataError, match="cache"):
        open_cache(bad)


def test_corrupt_chunk_is_caught_by_its_checksum(cache_path, tmp_path):
    bad = tmp_path / "flipped.h5"
    bad.write_bytes(cache_path.read_bytes())
    with h5py.File(bad, "r") as f:
        offset = f["recordings/r000000"].id.get_chunk_info(0).byte_offset
    with open(bad, "r+b") as fh:  # flip bytes inside the first chunk of the first recording
        fh.seek(offset + 100)
        fh.write(bytes(b ^ 0xFF for b in fh.read(16)))
    splits, _, _ = cached_splits(load_config(None, [*BASE, f"data.cache={bad}"]).data)
    with pytest.raises(DataError, match="corrupt"):
        splits["train"].X[np.arange(4)]


def test_missing_cache_names_the_command_to_build_it(tmp_path):
    with pytest.raises(DataError, match="faultdiag data cache"):
        open_cache(tmp_path / "none.h5")
