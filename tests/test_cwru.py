"""CWRU catalogue, file names, variable quirks, sampling-rate inference and loading."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from faultdiag.data import cwru, cwru_catalogue
from faultdiag.errors import ConfigError, DataError

# The 12 kHz drive-end WDCNN set as listed in ../shared/data/MANIFEST.md (class -> numbers at 0..3 HP).
MANIFEST_12K_DE = {
    "IR007": (105, 106, 107, 108), "IR014": (169, 170, 171, 172), "IR021": (209, 210, 211, 212),
    "B007": (118, 119, 120, 121), "B014": (185, 186, 187, 188), "B021": (222, 223, 224, 225),
    "OR007@6": (130, 131, 132, 133), "OR014@6": (197, 198, 199, 200), "OR021@6": (234, 235, 236, 237),
}


def test_catalogue_covers_every_cwru_set():
    df = cwru_catalogue.catalogue()
    assert df.number.is_unique
    assert df.dataset.value_counts().to_dict() == {"12k_DE": 60, "48k_DE": 52, "12k_FE": 45, "normal": 4}
    normal = df[df.dataset == "normal"]
    assert list(normal.number) == [97, 98, 99, 100]
    assert set(normal.fs_hz) == {48000}  # MANIFEST note N1
    assert set(df.rpm) == {1797, 1772, 1750, 1730}
    assert not df.duplicated(["dataset", "class_name", "load_hp"]).any()
    de12 = df[df.dataset == "12k_DE"]
    for cls, numbers in MANIFEST_12K_DE.items():
        rows = de12[de12.class_name == cls].sort_values("load_hp")
        assert tuple(rows.number) == numbers and list(rows.load_hp) == [0, 1, 2, 3]
    assert set(df[df.dataset == "48k_DE"].fs_hz) == {48000}
    assert set(df[df.dataset == "12k_FE"].faulted_bearing) == {"FE"}


def test_catalogue_quirks_and_copy():
    assert cwru_catalogue.lookup(3001)["var_prefix"] == "X056" and cwru_catalogue.lookup(3008)["var_prefix"] == "X051"
    assert cwru_catalogue.lookup(174)["var_prefix"] == "X173"
    assert cwru_catalogue.lookup(217)["class_name"] == "IR021" and cwru_catalogue.lookup(217)["load_hp"] == 3
    assert cwru_catalogue.lookup(310)["load_hp"] == 0 and cwru_catalogue.lookup(309)["load_hp"] == 1
    entry = cwru_catalogue.lookup(97)
    assert entry["diameter_in"] is None and entry["or_position"] is None and entry["fs_hz"] == 48000
    df = cwru_catalogue.catalogue()
    df.loc[97, "fs_hz"] = 1  # a caller's edit does not reach the cache
    assert cwru_catalogue.lookup(97)["fs_hz"] == 48000
    with pytest.raises(DataError, match="12345"):
        cwru_catalogue.lookup(12345)


@pytest.mark.parametrize("number, expected", [
    (97, "normal"), (105, "IR007"), (3001, "IR028"), (3005, "B028"), (237, "OR021@6"), (144, "OR007@3"),
    (258, "OR021@12"), (313, "OR014@6"),
])
def test_class_name(number, expected):
    assert cwru_catalogue.class_name(cwru_catalogue.lookup(number)) == expected
    assert cwru_catalogue.class_name(cwru_catalogue.lookup(number), "fault") == cwru_catalogue.lookup(number)["fault"]


def test_class_name_rejects_unknown_scheme():
    with pytest.raises(ConfigError, match="scheme"):
        cwru_catalogue.class_name(cwru_catalogue.lookup(105), "foo")


@pytest.mark.parametrize("name, dataset, expected", [
    ("105.mat", "12k_DE", 105), ("data/IR007_0.mat", "12k_DE", 105), ("IR007_0.mat", "48k_DE", 109),
    ("12k_Drive_End_IR007_0_105.mat", "48k_DE", 105), ("normal_0_97.mat", "12k_DE", 97),
    ("Normal_0.mat", "12k_DE", 97), ("Normal_3.mat", "48k_DE", 100), ("OR021@6_3.mat", "12k_DE", 237),
    ("OR014@3_0.mat", "12k_FE", 310), ("OR014@3_0.mat", "12k_DE", None), ("48k_Drive_End_B007_2", "12k_DE", 124),
    ("12k_Fan_End_IR007_1.mat", "12k_DE", 279), ("readme.mat", "12k_DE", None),
])
def test_number_from_name(name, dataset, expected):
    assert cwru_catalogue.number_from_name(name, dataset) == expected


def _vars(prefix: int, n: int = 2048, channels=("DE", "FE", "BA"), rpm: float | None = 1790.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = {f"X{prefix:03d}_{c}_time": rng.standard_normal((n, 1)) for c in channels}
    if rpm is not None:
        out[f"X{prefix:03d}RPM"] = np.array([[rpm]])
    return out


def test_recording_from_variables_basic():
    variables = _vars(106, channels=("BA", "DE", "FE"))
    rec = cwru_catalogue.recording_from_variables("some/dir/12k_Drive_End_IR007_1_106.mat", variables)
    assert rec.channels == ("DE", "FE", "BA") and rec.signal.shape == (3, 2048) and rec.fs_hz == 12000
    np.testing.assert_allclose(rec.signal[0], variables["X106_DE_time"].ravel(), rtol=1e-6)
    assert rec.label == "IR007"
    assert rec.meta.items() >= {"cwru_number": 106, "fault": "inner_race", "diameter_in": 0.007, "load_hp": 1,
                                 "or_position": None, "dataset": "12k_DE", "rpm": 1790.0, "rpm_source": "file"}.items()


def test_recording_from_variables_quirks():
    # 99.mat holds X098 and X099 pairs: X099 is chosen; no RPM -> the catalogue's nominal value
    variables = {**_vars(98, channels=("DE", "FE"), seed=1), **_vars(99, channels=("DE", "FE"), rpm=None, seed=2)}
    rec = cwru_catalogue.recording_from_variables("99.mat", variables)
    assert rec.meta["var_prefix"] == "X099" and rec.meta["cwru_number"] == 99 and rec.fs_hz == 48000
    np.testing.assert_allclose(rec.signal[1], variables["X099_FE_time"].ravel(), rtol=1e-6)
    assert rec.meta["rpm"] == 1750 and rec.meta["rpm_source"] == "catalogue"
    # 3001-3008: X056.. prefix, DE only, the file name's number wins
    rec = cwru_catalogue.recording_from_variables("IR028_0.mat", _vars(56, channels=("DE",), rpm=None))
    assert (rec.meta["cwru_number"], rec.meta["var_prefix"], rec.label, rec.channels) == (3001, "X056", "IR028", ("DE",))
    # a lone prefix and an unnumbered name: the prefix gives the number
    assert cwru_catalogue.recording_from_variables("mystery.mat", _vars(130)).label == "OR007@6"
    # a renamed mirror's wrong number (N7): the variables win
    assert cwru_catalogue.recording_from_variables("12k_Fan_End_IR014_1_276.mat", _vars(275)).meta["cwru_number"] == 275
    # several prefixes and none matches the name: refuse
    with pytest.raises(DataError, match="several prefixes"):
        cwru_catalogue.recording_from_variables("105.mat", {**_vars(98), **_vars(99)})
    with pytest.raises(DataError, match="no CWRU signal"):
        cwru_catalogue.recording_from_variables("105.mat", {"foo": np.zeros(3)})


def test_real_files_read_with_their_quirks(cwru_dir: Path):
    files = sorted(cwru_dir.glob("*.mat"))
    assert len(files) == 61
    for path in files:
        rec = cwru_catalogue.recording_from_variables(path, loadmat(path))
        number = int(path.stem.rsplit("_", 1)[1])
        assert rec.meta["cwru_number"] == number, path.name
        expected_label = path.stem.split("_")[-3] if number != 97 else "normal"
        assert rec.label == expected_label, path.name
        assert rec.meta["load_hp"] == int(path.stem.split("_")[-2]), path.name
        if 3001 <= number <= 3008:
            assert rec.channels == ("DE",) and rec.meta["rpm_source"] == "catalogue"
            assert rec.meta["var_prefix"] == ("X%03d" % ((56 + number - 3001) if number <= 3004 else (48 + number - 3005)))
        else:
            assert rec.meta["rpm_source"] == "file" and abs(rec.meta["rpm"] - cwru_catalogue.lookup(number)["rpm"]) < 15
        assert rec.fs_hz == (48000 if number == 97 else 12000)


@pytest.mark.parametrize("fs_hz", [12000, 48000])
def test_infer_fs_hz_synthetic(fs_hz):
    rng = np.random.default_rng(0)
    t = np.arange(int(5 * fs_hz)) / fs_hz
    rpm = 1772.0
    x = sum(np.sin(2 * np.pi * k * rpm / 60 * t + k) for k in (1, 2, 3)) + 2 * rng.standard_normal(t.size)
    assert cwru.infer_fs_hz(x, rpm) == fs_hz


def test_infer_fs_hz_real(cwru_dir: Path):
    for name, expected in [("normal_0_97.mat", 48000), ("12k_Drive_End_IR007_0_105.mat", 12000),
                           ("12k_Drive_End_OR007@6_0_130.mat", 12000), ("12k_Drive_End_B014_3_188.mat", 12000),
                           ("12k_Drive_End_B028_3_3008.mat", 12000)]:  # no RPM variable: nominal speed
        rec = cwru_catalogue.recording_from_variables(cwru_dir / name, loadmat(cwru_dir / name))
        assert cwru.infer_fs_hz(rec.signal, rec.meta["rpm"]) == expected, name


def test_infer_fs_hz_validates():
    with pytest.raises(ConfigError, match="rpm"):
        cwru.infer_fs_hz(np.zeros(4096), -1)
    with pytest.raises(DataError, match="1024"):
        cwru.infer_fs_hz(np.zeros(10), 1797)


def _write(folder: Path, name: str, prefix: int, n: int, seed: int):
    savemat(folder / name, _vars(prefix, n=n, channels=("DE", "FE"), seed=seed))


def test_load_cwru_synthetic(tmp_path: Path, caplog):
    _write(tmp_path, "Normal_0.mat", 97, 4800, 0)          # 48 kHz baseline, 0.1 s
    sub = tmp_path / "sub"
    sub.mkdir()
    _write(sub, "12k_Drive_End_IR007_0_105.mat", 105, 1200, 1)
    _write(sub, "106.mat", 106, 1200, 2)
    _write(sub, "B007_1.mat", 119, 1200, 3)
    _write(tmp_path, "IR014_0.mat", 169, 1200, 4)         # not a requested class: ignored
    with caplog.at_level(logging.WARNING, logger="faultdiag.data.cwru"):
        recs = cwru.load_cwru(tmp_path, classes=("normal", "IR007", "B007"), loads=(0, 1))
    assert [r.meta["cwru_number"] for r in recs] == [97, 105, 106, 119]
    assert [r.label for r in recs] == ["normal", "IR007", "IR007", "B007"]
    assert all(r.fs_hz == 12000 and r.channels == ("DE",) for r in recs)
    assert recs[0].n_samples == 1200 and recs[0].meta["resampled_from_hz"] == 48000
    assert all(r.meta["cwru_normal_available"] == [97] for r in recs)
    assert re.search(r"'normal' at 1 HP is missing .*98\.mat", caplog.text)
    assert "'B007' at 0 HP" in caplog.text
    with pytest.raises(DataError, match=r"class 'OR007@6'.*130\.mat, 131\.mat"):
        cwru.load_cwru(tmp_path, classes=("normal", "OR007@6"), loads=(0, 1))
    with pytest.raises(ConfigError, match="IR099"):
        cwru.load_cwru(tmp_path, classes=("IR099",))


def test_load_cwru_real(cwru_dir: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="faultdiag.data.cwru"):
        recs = cwru.load_cwru(cwru_dir, loads=(0, 1))
    assert len(recs) == 1 + 9 * 2  # 98.mat is missing from ../shared/data
    assert sorted({r.label for r in recs}) == sorted(cwru_catalogue.WDCNN_CLASSES)
    normal = [r for r in recs if r.label == "normal"]
    assert len(normal) == 1 and normal[0].fs_hz == 12000 and abs(normal[0].n_samples - 243938 / 4) <= 1
    assert normal[0].meta["cwru_normal_available"] == [97]
    assert "98.mat" in caplog.text
