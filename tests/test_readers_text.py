"""Text recordings as instruments write them: a preamble before the header, time columns in other
units, a sidecar JSON stating the rate of a headerless file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faultdiag.data.readers import open_recording, read_recording, sniff_format
from faultdiag.errors import ConfigError, DataError

N = 400


def _rows(fs_hz: float, unit_scale: float = 1.0, sep: str = ",") -> str:
    x = np.sin(np.arange(N) / 7.0)
    return "".join(f"{i / fs_hz / unit_scale:.9g}{sep}{v:.6f}{sep}{-v:.6f}\n" for i, v in enumerate(x))


PREAMBLE = ("Instrument: DAQ-9000, serial 1234\nDate: 2025-03-01 10:00:00\nSampling rate: 25600 Hz\n"
            "Comment: pump P-101, drive end\n\n")


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_preamble_is_detected_and_skipped(tmp_path, sep):
    path = tmp_path / "run.csv"
    path.write_text(PREAMBLE + sep.join(["time", "acc_x", "acc_y"]) + "\n" + _rows(25600, sep=sep))
    assert sniff_format(path) == "csv"
    rec = read_recording(path)
    assert rec.channels == ("acc_x", "acc_y") and rec.fs_hz == 25600 and rec.n_samples == N
    assert rec.meta["skipped_rows"] == 5  # 4 preamble lines and a blank one before the header
    np.testing.assert_allclose(rec.signal[0, :3], np.sin(np.arange(3) / 7.0), atol=1e-6)


def test_long_preamble_and_explicit_skip_rows(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("".join(f"# note {i}: value, other\n" for i in range(80)) + "t,a,b\n" + _rows(1000))
    assert read_recording(path).n_samples == N
    rec = read_recording(path, skip_rows=80)
    assert rec.channels == ("a", "b") and rec.fs_hz == 1000
    headerless = read_recording(path, skip_rows=81, fs_hz=1000)  # the header skipped too
    assert headerless.channels == ("ch0", "ch1", "ch2") and headerless.n_samples == N
    with pytest.raises(ConfigError, match="skip_rows"):
        read_recording(path, skip_rows=-1)


@pytest.mark.parametrize("name, scale", [("time_ms", 1e-3), ("t_us", 1e-6), ("Time [s]", 1.0), ("time (ns)", 1e-9),
                                          ("timestamp", 1.0)])
def test_time_columns_in_other_units(tmp_path, name, scale):
    path = tmp_path / "t.csv"
    path.write_text(f"{name},x,y\n" + _rows(48000, scale))
    rec = read_recording(path)
    assert rec.fs_hz == pytest.approx(48000, rel=1e-6) and rec.channels == ("x", "y")


def test_time_vector_in_ms_in_a_mat_file(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "m.mat", {"time_ms": np.arange(N) / 12.0, "acc": np.ones(N)})
    assert read_recording(tmp_path / "m.mat").fs_hz == pytest.approx(12000)


@pytest.mark.parametrize("side_name", ["run.csv.json", "run.json"])
def test_sidecar_json_gives_the_rate(tmp_path, side_name):
    path = tmp_path / "run.csv"
    path.write_text("".join(f"{v:.5f}\n" for v in np.sin(np.arange(N) / 5.0)))
    with pytest.raises(ConfigError, match=r"--fs-hz in diagnose and data inspect.*sidecar file"):
        read_recording(path)
    (tmp_path / side_name).write_text(json.dumps({"fs_hz": 8192, "rpm": 1480, "note": "x"}))
    src = open_recording(path)
    assert src.fs_hz == 8192 and src.meta["rpm"] == 1480 and side_name in src.meta["fs_source"]


def test_sidecar_that_contradicts_the_file_is_an_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("time,x\n" + "".join(f"{i / 1000},{i}\n" for i in range(50)))
    (tmp_path / "t.json").write_text('{"fs_hz": 2000}')
    with pytest.raises(DataError, match="says 2000 Hz"):
        read_recording(path)
    (tmp_path / "t.json").write_text('{"fs_hz": "fast"}')
    with pytest.raises(DataError, match="positive number"):
        read_recording(path)
