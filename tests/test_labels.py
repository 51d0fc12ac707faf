"""Labels from the layout (data.label_from), warnings on layouts whose labels look wrong, the labels
CSV inside the data folder, the data fingerprint, the training rate and keys a source does not use."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from faultdiag.config import DataConfig
from faultdiag.data.datasets import inapplicable_keys, load_dataset
from faultdiag.data.labels import label_warnings, parse_label_from
from faultdiag.data.readers import write_recording
from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError


def _write(root: Path, rel: str, fs_hz: float = 1000.0, channel: str = "acc", seed: int = 0, n: int = 3000) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    sig = np.random.default_rng(seed).standard_normal((1, n)).astype(np.float32)
    return write_recording(Recording(sig, fs_hz, (channel,)), path)


def _tree(root: Path, rels: list[str], **kw) -> Path:
    for i, rel in enumerate(rels):
        _write(root, rel, seed=i, **kw)
    return root


CLASS_RIG = ["IR/rigA/r1.h5", "IR/rigB/r2.h5", "OR/rigA/r3.h5", "OR/rigB/r4.h5", "normal/rigA/r5.h5", "normal/rigB/r6.h5"]


def _data(root, **kw) -> DataConfig:
    return DataConfig(source="files", paths=(str(root),), **kw)


@pytest.mark.parametrize("rule, expected", [
    ("parent", {"rigA", "rigB"}), ("folder:1", {"IR", "OR", "normal"}), ("folder:-2", {"IR", "OR", "normal"}),
    ("regex:^(?P<label>[^/]+)/", {"IR", "OR", "normal"}),
])
def test_label_rules_on_a_class_rig_file_layout(tmp_path, rule, expected):
    ds = load_dataset(_data(_tree(tmp_path / "d", CLASS_RIG), label_from=rule))
    assert set(ds.class_names) == expected and len(ds.recordings) == 6


def test_label_rule_errors(tmp_path):
    root = _tree(tmp_path / "d", ["a/x1.h5", "b/x2.h5"])
    with pytest.raises(DataError, match="folder:3"):
        load_dataset(_data(root, label_from="folder:3"))
    with pytest.raises(DataError, match="does not match"):
        load_dataset(_data(root, label_from=r"regex:^(\d+)_"))
    for bad in ("folder:0", "regex:(unclosed", "regex:nogroup", "csv", "name"):
        with pytest.raises(ConfigError, match="label_from"):
            parse_label_from(bad)
    with pytest.raises(ConfigError, match="label_from"):
        DataConfig(source="files", paths=("x",), label_from="filename")


def test_parent_labels_of_a_class_rig_layout_warn(tmp_path, caplog):
    """The issue's case: class/rig/file.mat labelled by the immediate parent (the rig)."""
    root = _tree(tmp_path / "d", ["IR/rigA/IR_1.h5", "IR/rigB/IR_1.h5", "OR/rigA/OR_1.h5", "OR/rigB/OR_1.h5"])
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(_data(root))
    assert ds.class_names == ("rigA", "rigB")
    text = caplog.text
    assert "occur under several labels" in text and "regex" in text
    assert "carry another class's name" not in text  # the names carry IR/OR, which are not labels here


def test_warning_when_names_carry_other_classes(tmp_path):
    entries = [(PurePosixPath(p), lab) for p, lab in [
        ("a/IR_1.mat", "OR"), ("a/OR_2.mat", "IR"), ("b/normal_3.mat", "IR"), ("b/IR_4.mat", "normal")]]
    warnings = label_warnings(entries, parse_label_from("parent"))
    assert any("carry another class's name" in w for w in warnings)
    right = [(PurePosixPath(f"x/{lab}_{i}.mat"), lab) for i, lab in enumerate(["IR", "OR", "normal", "IR"])]
    assert label_warnings(right, parse_label_from("parent")) == []


def test_warning_when_labels_also_name_folders_at_another_depth():
    entries = [(PurePosixPath(p), p.split("/")[1]) for p in
               ["IR/OR/1.mat", "OR/IR/2.mat", "IR/IR/3.mat", "OR/OR/4.mat"]]
    warnings = label_warnings(entries, parse_label_from("parent"))
    assert any("another depth" in w for w in warnings)
    assert any("two classes" in w for w in label_warnings([(PurePosixPath("a/1.mat"), "a")], parse_label_from("parent")))


def test_labels_csv_inside_the_data_folder_relative_paths(tmp_path):
    root = _tree(tmp_path / "d", ["x/same.h5", "y/same.h5", "x/other.h5"])
    csv = root / "labels.csv"
    csv.write_text("file,label\nx/same.h5,good\ny/same.h5,bad\nx/other.h5,bad\n")
    ds = load_dataset(_data(root, labels=str(csv)))
    assert sorted(r.label for r in ds.recordings) == ["bad", "bad", "good"]  # the CSV itself is no recording
    assert sorted(ds.fingerprint["files"]) == ["x/other.h5", "x/same.h5", "y/same.h5"]
    csv.write_text("file,label\nsame.h5,good\nother.h5,bad\n")
    with pytest.raises(DataError, match="several files have that name"):
        load_dataset(_data(root, labels=str(csv)))


def test_fingerprint_keeps_folders_with_the_same_file_names_apart(tmp_path):
    """Two rigs holding the same 21 names gave 21 fingerprint entries for 42 files before."""
    rels = [f"{rig}/{state}_{rpm}.h5" for rig in ("rig1", "rig2") for state in ("IR", "OR", "N") for rpm in (600, 900)]
    ds = load_dataset(_data(_tree(tmp_path / "d", rels), label_from=r"regex:/(?P<label>[A-Z]+)_"))
    assert len(ds.fingerprint["files"]) == len(rels) == 12
    moved = tmp_path / "elsewhere"
    (tmp_path / "d").rename(moved)
    assert load_dataset(_data(moved, label_from=r"regex:/(?P<label>[A-Z]+)_")).fingerprint["digest"] == ds.fingerprint["digest"]


def test_trains_at_the_data_rate_and_warns_when_resampling(tmp_path, caplog):
    root = _tree(tmp_path / "d", ["a/1.h5", "b/2.h5"], fs_hz=51200.0, n=8000)
    ds = load_dataset(_data(root))
    assert ds.fs_hz == 51200.0 and ds.recordings[0].fs_hz == 51200.0
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(_data(root, fs_hz=12800.0))
    assert ds.fs_hz == 12800.0 and "resampling 2 from 51200 Hz to 12800 Hz" in caplog.text
    _write(root, "b/3.h5", fs_hz=25600.0)
    with pytest.raises(ConfigError, match=r"different sampling rates \(1 at 25600 Hz, 2 at 51200 Hz\).*data.fs_hz"):
        load_dataset(_data(root))


def test_cache_refuses_files_at_different_rates_like_the_loader(tmp_path):
    from faultdiag.data.cache import build_cache

    root = _tree(tmp_path / "d", ["a/1.h5", "b/2.h5"], fs_hz=51200.0, n=8000)
    _write(root, "b/3.h5", fs_hz=25600.0)
    with pytest.raises(ConfigError, match=r"3\.h5' is at 25600 Hz, the files before it at 51200 Hz.*data\.fs_hz"):
        build_cache(_data(root), tmp_path / "c.h5")
    assert not (tmp_path / "c.h5").exists()
    build_cache(_data(root, fs_hz=12800.0), tmp_path / "c.h5")  # a rate to cache at: every file resampled to it
    assert (tmp_path / "c.h5").exists()


def test_channel_names_unified_and_keys_that_do_not_apply(tmp_path, caplog):
    root = tmp_path / "d"
    _write(root, "a/1.h5", channel="z10_1")
    _write(root, "b/2.h5", channel="VarName1", seed=1)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(_data(root, loads=(0, 1), channel="DE"))
    assert {r.channels for r in ds.recordings} == {("ch0",)}
    assert "data.loads = (0, 1) does not apply" in caplog.text and "has one channel" in caplog.text
    assert inapplicable_keys(DataConfig(source="cwru", paths=("x",))) and not inapplicable_keys(DataConfig())
    assert DataConfig(source="cwru").fs_hz == 12000.0 and DataConfig(source="files", paths=("x",)).fs_hz is None
