"""Readers: every format generated in tmp_path, sniffing by content, streaming, and bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from faultdiag.data.readers import source as readers_source, text as readers_csv
from faultdiag.data.readers import (
    find_recordings, open_recording, read_recording, sniff_format, write_recording,
)
from faultdiag.data.recording import Recording
from faultdiag.errors import ConfigError, DataError

FS_HZ = 12000.0


@pytest.fixture()
def rec() -> Recording:
    rng = np.random.default_rng(0)
    return Recording(rng.standard_normal((2, 1500)).astype(np.float32), FS_HZ, ("DE", "FE"), "IR007")


def write_mat73(path: Path, variables: dict) -> Path:
    """A MATLAB 7.3 file: 512-byte user block with the MATLAB header, arrays stored transposed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            if isinstance(value, str):
                ds = f.create_dataset(name, data=np.array([[ord(c)] for c in value], np.uint16))
                ds.attrs["MATLAB_class"] = np.bytes_("char")
            else:
                ds = f.create_dataset(name, data=np.atleast_2d(np.asarray(value, np.float64)).T)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + bytes(8) + b"\x00\x02IM")
    return path


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- round trips and formats ---------------------------------------------------------------

@pytest.mark.parametrize("ext,fmt", [(".csv", "csv"), (".mat", "mat5"), (".h5", "hdf5"), (".npz", "npz")])
def test_write_then_read_round_trip(tmp_path, rec, ext, fmt):
    path = write_recording(rec, tmp_path / f"r{ext}")
    assert sniff_format(path) == fmt
    back = read_recording(path)
    np.testing.assert_array_equal(back.signal, rec.signal)
    assert back.fs_hz == rec.fs_hz and back.channels == rec.channels
    assert back.label == (None if ext == ".csv" else "IR007")  # CSV has no place for a label
    assert back.meta["format"] == fmt and back.source == str(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # atomic write left no temp file


def test_sniff_by_content_not_extension(tmp_path, rec):
    csv_as_dat = write_csv(tmp_path / "a.dat", "time,x\n0,1\n0.001,2\n0.002,3\n")
    h5_as_bin = write_recording(rec, tmp_path / "b.h5").rename(tmp_path / "b.bin")
    npz_as_csv = write_recording(rec, tmp_path / "c.npz").rename(tmp_path / "c.csv")
    np.save(tmp_path / "d.npy", rec.signal)
    npy_as_txt = (tmp_path / "d.npy").rename(tmp_path / "d.txt")
    mat_as_h5 = write_recording(rec, tmp_path / "e.mat").rename(tmp_path / "e.h5")
    mat73 = write_mat73(tmp_path / "f.mat", {"x": np.arange(10.0), "fs": 100.0})
    got = [sniff_format(p) for p in (csv_as_dat, h5_as_bin, npz_as_csv, npy_as_txt, mat_as_h5, mat73)]
    assert got == ["csv", "hdf5", "npz", "npy", "mat5", "mat73"]
    assert read_recording(csv_as_dat).fs_hz == 1000.0
    np.testing.assert_array_equal(read_recording(h5_as_bin).signal, rec.signal)
    np.testing.assert_array_equal(read_recording(mat_as_h5).signal, rec.signal)


@pytest.mark.parametrize("text,kwargs,channels,fs_hz", [
    ("time,a,b\n0.0,1,2\n0.5,3,4\n1.0,5,6\n", {}, ("a", "b"), 2.0),
    ("1,2\n3,4\n5,6\n", {"fs_hz": 2.0}, ("ch0", "ch1"), 2.0),
    ("t\ta\tb\n0\t1\t2\n0.5\t3\t4\n1.0\t5\t6\n", {}, ("a", "b"), 2.0),
    ("a;b\n1,0;2\n3,0;4\n5,0;6\n", {"fs_hz": 2.0}, ("a", "b"), 2.0),
    ("  a   b\n 1  2\n 3  4\n 5  6\n", {"fs_hz": 2.0}, ("a", "b"), 2.0),
    ("secs,a,b\n0,1,2\n0.5,3,4\n1,5,6\n", {"time_column": "secs"}, ("a", "b"), 2.0),
    (",a,b\n0,1,2\n1,3,4\n2,5,6\n", {"fs_hz": 2.0}, ("a", "b"), 2.0),  # pandas index column skipped
    ("a,b\n1,2,\n3,4,\n5,6,\n", {"fs_hz": 2.0}, ("a", "b"), 2.0),  # rows end with a delimiter
    ("1,2,\n3,4,\n5,6,\n", {"fs_hz": 2.0}, ("ch0", "ch1"), 2.0),
])
def test_csv_dialects(tmp_path, text, kwargs, channels, fs_hz):
    rec = read_recording(write_csv(tmp_path / "r.csv", text), **kwargs)
    assert rec.channels == channels and rec.fs_hz == fs_hz
    np.testing.assert_array_equal(rec.signal, [[1, 3, 5], [2, 4, 6]])


def test_csv_time_column_rounded_stamps_give_exact_rate(tmp_path):
    fs_hz, n = 25600.0, 3000
    lines = [f"{i / fs_hz:.6f},{np.sin(i):.5f}" for i in range(n)]
    rec = read_recording(write_csv(tmp_path / "r.csv", "time_s,acc\n" + "\n".join(lines) + "\n"))
    assert rec.fs_hz == fs_hz and rec.n_samples == n and rec.meta["time_column"] == "time_s"


def test_mat5_generic_variables(tmp_path):
    t_len = 400
    x = np.arange(t_len, dtype=np.float64)
    savemat(tmp_path / "g.mat", {"x": x[:, None], "y": -x[None, :], "m": np.stack([x, 2 * x], 1), "Fs": 5000.0,
                                 "note": "hello"})
    rec = read_recording(tmp_path / "g.mat")
    assert rec.fs_hz == 5000.0 and rec.channels == ("x", "y", "m_0", "m_1")
    np.testing.assert_array_equal(rec.signal, np.stack([x, -x, x, 2 * x]))
    assert read_recording(tmp_path / "g.mat", channels=["m_1", "x"]).channels == ("m_1", "x")


def test_mat5_time_vector_gives_rate(tmp_path):
    savemat(tmp_path / "t.mat", {"t": np.arange(100) / 2048.0, "acc": np.ones(100)})
    rec = read_recording(tmp_path / "t.mat")
    assert rec.fs_hz == 2048.0 and rec.channels == ("acc",)


def test_mat73_transposed_layout(tmp_path):
    sig = np.random.default_rng(1).standard_normal((700, 2))  # MATLAB (T, C)
    path = write_mat73(tmp_path / "v73.mat", {"acc": sig, "fs": 10240.0, "label": "B014"})
    rec = read_recording(path)
    assert rec.fs_hz == 10240.0 and rec.channels == ("acc_0", "acc_1") and rec.label == "B014"
    np.testing.assert_allclose(rec.signal, sig.T.astype(np.float32))
    assert open_recording(path).n_samples == 700


def test_hdf5_groups_attributes_and_dataset_choice(tmp_path):
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.attrs["sampling_rate"] = 8000
        f.create_dataset("run1/vib", data=np.arange(50.0))
        f.create_dataset("run2/vib", data=np.arange(60.0))
        f["run2/vib"].attrs["fs_hz"] = 4000.0
    rec = read_recording(tmp_path / "g.h5", dataset="run1/vib")
    assert rec.fs_hz == 8000.0 and rec.channels == ("run1/vib",) and rec.n_samples == 50
    assert read_recording(tmp_path / "g.h5", dataset="/run2/vib").fs_hz == 4000.0
    with pytest.raises(DataError, match="different lengths"):
        read_recording(tmp_path / "g.h5")
    with pytest.raises(ConfigError, match="run3"):
        read_recording(tmp_path / "g.h5", dataset="run3")


@pytest.mark.parametrize("shape,channels", [((300,), ("ch0",)), ((3, 300), ("ch0", "ch1", "ch2")),
                                            ((300, 3), ("ch0", "ch1", "ch2"))])
def test_npy_layouts(tmp_path, shape, channels):
    arr = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    np.save(tmp_path / "a.npy", arr)
    rec = read_recording(tmp_path / "a.npy", fs_hz=100)
    assert rec.channels == channels and rec.n_samples == 300
    np.testing.assert_array_equal(rec.signal, np.atleast_2d(arr.T if shape == (300, 3) else arr))


def test_channel_selection_and_label(tmp_path, rec):
    path = write_recording(rec, tmp_path / "r.npz")
    got = read_recording(path, channels=["FE", "DE"], label="normal")
    assert got.channels == ("FE", "DE") and got.label == "normal"
    np.testing.assert_array_equal(got.signal, rec.signal[::-1])
    with pytest.raises(ConfigError, match=r"'BA'.*r\.npz"):
        read_recording(path, channels="BA")


# --- streaming ------------------------------------------------------------------------------

def _write_any(tmp_path: Path, rec: Recording, fmt: str) -> Path:
    if fmt == "npy":
        np.save(tmp_path / "r.npy", rec.signal)
        return tmp_path / "r.npy"
    if fmt == "mat73":
        return write_mat73(tmp_path / "r73.mat", {"DE": rec.signal[0], "FE": rec.signal[1], "fs_hz": rec.fs_hz})
    return write_recording(rec, tmp_path / f"r.{fmt}")


@pytest.mark.parametrize("fmt", ["csv", "mat", "h5", "npz", "npy", "mat73"])
@pytest.mark.parametrize("block_len,overlap", [(256, 0), (256, 100), (1000, 999), (4000, 10)])
def test_blocks_reassemble_signal(tmp_path, rec, monkeypatch, fmt, block_len, overlap):
    monkeypatch.setattr(readers_source, "MIN_CHUNK_LEN", 7)  # many chunk boundaries inside blocks
    src = open_recording(_write_any(tmp_path, rec, fmt), fs_hz=None if fmt != "npy" else FS_HZ)
    assert src.fs_hz == FS_HZ and len(src.channels) == 2
    assert src.n_samples == (None if fmt == "csv" else rec.n_samples)
    blocks = list(src.iter_blocks(block_len, overlap))
    hop = block_len - overlap
    assert [s for s, _ in blocks] == [k * hop for k in range(len(blocks))]
    for start, block in blocks:
        assert block.dtype == np.float32 and block.shape[1] <= block_len
        np.testing.assert_array_equal(block, rec.signal[:, start:start + block.shape[1]])
    assert all(b.shape[1] == block_len for _, b in blocks[:-1])
    assert blocks[-1][0] + blocks[-1][1].shape[1] == rec.n_samples
    assert len(blocks) == 1 or blocks[-2][0] + block_len < rec.n_samples  # last block adds samples


@pytest.mark.parametrize("block_len,overlap", [(0, 0), (10, 10), (10, -1), (2.5, 0)])
def test_bad_block_arguments(tmp_path, rec, block_len, overlap):
    src = open_recording(write_recording(rec, tmp_path / "r.npz"))
    with pytest.raises(ConfigError, match="block_len|overlap"):
        next(src.iter_blocks(block_len, overlap))


def test_streamed_nan_names_file_and_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(readers_source, "MIN_CHUNK_LEN", 10)
    monkeypatch.setattr(readers_csv, "_PROBE_ROWS", 20)  # the NaN lies beyond what open() reads
    rows = [f"{i / 100:.2f},{'nan' if i == 57 else i}" for i in range(80)]
    path = write_csv(tmp_path / "n.csv", "time,x\n" + "\n".join(rows) + "\n")
    src = open_recording(path)
    with pytest.raises(DataError, match=r"n\.csv.*sample 57"):
        list(src.iter_blocks(16))
    np.save(tmp_path / "i.npy", np.r_[np.zeros(30), np.inf, np.zeros(5)])
    with pytest.raises(DataError, match=r"i\.npy.*sample 30"):
        list(open_recording(tmp_path / "i.npy", fs_hz=1).iter_blocks(8, 4))


# --- bad input ------------------------------------------------------------------------------

def test_missing_empty_and_unknown_files(tmp_path):
    with pytest.raises(DataError, match="nope.csv.*does not exist"):
        read_recording(tmp_path / "nope.csv")
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(DataError, match="empty.mat.*empty"):
        read_recording(tmp_path / "empty.mat")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="blob.bin.*not a recognised"):
        sniff_format(tmp_path / "blob.bin")


def test_truncated_and_signal_less_mat(tmp_path, rec):
    full = write_recording(rec, tmp_path / "full.mat").read_bytes()
    (tmp_path / "cut.mat").write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match="cut.mat"):
        read_recording(tmp_path / "cut.mat")
    savemat(tmp_path / "nosig.mat", {"fs": 12000.0, "operator": "ana", "rpm": 1797})
    with pytest.raises(DataError, match=r"nosig.mat holds no numeric signal.*'fs', 'operator', 'rpm'"):
        read_recording(tmp_path / "nosig.mat")
    (tmp_path / "cut73.mat").write_bytes(b"MATLAB 7.3 MAT-file".ljust(600, b" "))
    with pytest.raises(DataError, match="cut73.mat.*truncated"):
        read_recording(tmp_path / "cut73.mat")


def test_csv_errors_name_file_column_and_row(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", "time,x,y\n0,1,2\n0.1,3,oops\n0.2,5,6\n")
    with pytest.raises(DataError, match=r"bad.csv: column 'y' holds the non-numeric value 'oops' at sample 1 \(line 3\)"):
        read_recording(bad)
    assert read_recording(bad, channels=["x"]).n_samples == 3  # the text column can be left out
    no_fs = write_csv(tmp_path / "nofs.csv", "x\n1\n2\n")
    with pytest.raises(ConfigError, match="nofs.csv.*fs_hz.*--fs-hz"):
        read_recording(no_fs)
    gap = write_csv(tmp_path / "gap.csv", "t,x\n0,1\n1,2\n2,3\n4,4\n5,5\n")
    with pytest.raises(DataError, match="gap.csv.*not uniformly sampled.*samples 2 and 3"):
        read_recording(gap)
    assert read_recording(gap, fs_hz=1.0).n_samples == 5  # fs_hz given: the caller vouches
    ragged = write_csv(tmp_path / "ragged.csv", "a,b\n1,2\n3,4,5\n6,7\n")
    with pytest.raises(DataError, match="ragged.csv.*line 3"):  # surplus field, never silently dropped
        read_recording(ragged, fs_hz=1.0)
    with pytest.raises(DataError, match="head.csv.*no samples"):
        read_recording(write_csv(tmp_path / "head.csv", "time,x\n"))


def test_zero_length_and_conflicting_rate(tmp_path, rec):
    np.save(tmp_path / "z.npy", np.zeros((2, 0)))
    with pytest.raises(DataError, match="z.npy.*no samples"):
        read_recording(tmp_path / "z.npy", fs_hz=1.0)
    path = write_recording(rec, tmp_path / "r.h5")
    with pytest.raises(ConfigError, match="r.h5.*12000"):
        read_recording(path, fs_hz=48000)
    with pytest.raises(ConfigError, match="fs_hz.*-1"):
        read_recording(path, fs_hz=-1)
    with pytest.raises(ConfigError, match="extension"):
        write_recording(rec, tmp_path / "r.wav")


# --- finding files --------------------------------------------------------------------------

def test_find_recordings(tmp_path):
    for rel in ["b/2.mat", "a.csv", "b/1.h5", ".hidden.csv", ".git/x.npy", "notes.md", "c/d/e.NPZ"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    extra = tmp_path / "notes.md"
    found = find_recordings([tmp_path, extra, tmp_path / "a.csv"])
    rel = [p.relative_to(tmp_path).as_posix() for p in found]
    assert rel == ["a.csv", "b/1.h5", "b/2.mat", "c/d/e.NPZ", "notes.md"]
    with pytest.raises(DataError, match="missing"):
        find_recordings([tmp_path / "missing"])
    (tmp_path / "void").mkdir()
    with pytest.raises(DataError, match="void"):
        find_recordings(tmp_path / "void")


# --- real data ------------------------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("faultdiag.data.cwru") is None,
                    reason="faultdiag.data.cwru (recording_from_variables) is not written yet")
def test_real_cwru_file(cwru_dir):
    rec = read_recording(cwru_dir / "12k_Drive_End_IR007_0_105.mat")
    assert rec.channels[0] == "DE" and rec.fs_hz == 12000.0 and rec.n_samples == 121265
    assert abs(float(rec.signal[0].std()) - 0.291) < 0.001  # MANIFEST: X105_DE_time std 0.291
    de = read_recording(cwru_dir / "12k_Drive_End_IR007_0_105.mat", channels="DE")
    blocks = list(open_recording(cwru_dir / "12k_Drive_End_IR007_0_105.mat", channels="DE").iter_blocks(50_000))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks], axis=1), de.signal)
