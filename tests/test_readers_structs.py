"""MAT structs and nested HDF5 groups: automatic choice of the signal and its rate, the 'variable'
option, and the shaft speed / bearing frequencies some files store (MFPT-like files written here)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from faultdiag.data.readers import open_recording, read_recording
from faultdiag.errors import ConfigError, DataError

RNG = np.random.default_rng(0)
GS = RNG.standard_normal((4000, 1))


def _mat73(path: Path, variables: dict) -> Path:
    """MATLAB 7.3 layout: 512-byte header, column-major arrays (stored transposed), structs as groups."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            ds = f.create_dataset(name, data=np.atleast_2d(np.asarray(value, np.float64)).T)
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) + b"\x00\x02IM")
    return path


def test_mfpt_like_struct_reads_without_options(tmp_path):
    """``bearing`` struct with gs (signal), sr (rate), load and rate (shaft Hz), as the MFPT files."""
    path = tmp_path / "baseline_1.mat"
    savemat(path, {"bearing": {"sr": 97656.0, "gs": GS, "load": 270.0, "rate": 25.0}})
    rec = read_recording(path)
    assert rec.channels == ("bearing.gs",) and rec.fs_hz == 97656.0
    np.testing.assert_allclose(rec.signal[0], GS[:, 0], rtol=1e-6)
    assert rec.meta["rpm"] == 1500.0 and "bearing.rate" in rec.meta["rpm_source"]


def test_nested_struct_and_variable_option(tmp_path):
    path = tmp_path / "run.mat"
    other = RNG.standard_normal(3000)
    savemat(path, {"data": {"acc": {"x": GS, "fs": 25600.0}, "tacho": other}, "note": "bench 3"})
    with pytest.raises(DataError, match=r"different lengths.*'variable' option"):
        read_recording(path)
    rec = read_recording(path, variable="data.acc.x")
    assert rec.channels == ("data.acc.x",) and rec.fs_hz == 25600.0  # the rate beside the signal
    with pytest.raises(ConfigError, match="signals are"):
        read_recording(path, variable="data.acc.y")


def test_rate_named_rate_only_when_it_looks_like_one(tmp_path):
    savemat(tmp_path / "a.mat", {"s": {"x": GS, "rate": 20000.0}})
    assert read_recording(tmp_path / "a.mat").fs_hz == 20000.0
    savemat(tmp_path / "b.mat", {"s": {"x": GS, "rate": 25.0}})
    with pytest.raises(ConfigError, match="does not state its sampling rate"):
        read_recording(tmp_path / "b.mat")


def test_mat73_struct_as_groups(tmp_path):
    path = _mat73(tmp_path / "v73.mat", {"bearing/gs": GS[:, 0], "bearing/sr": 48828.0, "bearing/rate": 25.0,
                                         "other/x": RNG.standard_normal(100)})
    with pytest.raises(DataError, match="different lengths"):
        open_recording(path)
    src = open_recording(path, variable="bearing.gs")
    assert src.channels == ("bearing/gs",) and src.fs_hz == 48828.0 and src.meta["rpm"] == 1500.0
    np.testing.assert_allclose(src.read().signal[0], GS[:, 0], rtol=1e-6)


@pytest.mark.parametrize("hz", [False, True])
def test_bearing_frequencies_stored_in_the_file(tmp_path, hz):
    orders = {"bpfo": 3.5848, "bpfi": 5.4152, "bsf": 2.3567, "ftf": 0.39828}
    shaft_hz = 29.95
    values = {k: v * shaft_hz for k, v in orders.items()} if hz else orders
    savemat(tmp_path / "f.mat", {"x": GS, "fs": 12000.0, "BPFO": values["bpfo"], "BPFI": values["bpfi"],
                                 "BSF": values["bsf"], "FTF": values["ftf"]})
    meta = read_recording(tmp_path / "f.mat").meta
    assert meta["bearing_orders"] == pytest.approx(orders, rel=1e-4)
    if hz:  # Hz values imply the shaft speed: FTF (BPFO + BPFI) / BPFO
        assert meta["rpm"] == pytest.approx(60 * shaft_hz, rel=1e-4)
    else:
        assert "rpm" not in meta


def test_variable_on_other_formats(tmp_path):
    np.savez(tmp_path / "a.npz", acc=GS[:, 0], mic=GS[:, 0] * 2, fs_hz=1000.0)
    assert read_recording(tmp_path / "a.npz", variable="mic").channels == ("mic",)
    (tmp_path / "b.csv").write_text("time_s,x,y\n" + "".join(f"{i / 1000},{i},{-i}\n" for i in range(50)))
    assert read_recording(tmp_path / "b.csv", variable="y").channels == ("y",)
    np.save(tmp_path / "c.npy", GS[:, 0])
    with pytest.raises(ConfigError, match="one unnamed array"):
        open_recording(tmp_path / "c.npy", fs_hz=1000, variable="x")
