"""Shaft speed from the spectrum within a given range: synthetic combs and the real HIT-SM / CWRU files."""

import re

import numpy as np
import pytest

from faultdiag.errors import ConfigError, DataError
from faultdiag.speed import MIN_SCORE_DB, estimate_shaft_speed


def _comb(f_hz, fs_hz=12000, seconds=8, harmonics=6, seed=0, noise=1.0):
    t = np.arange(int(fs_hz * seconds)) / fs_hz
    rng = np.random.default_rng(seed)
    x = sum(0.3 / k * np.sin(2 * np.pi * k * f_hz * t + k) for k in range(1, harmonics + 1))
    return x + noise * rng.standard_normal(t.size)


@pytest.mark.parametrize("rpm", [900.0, 1497.0, 1780.0])
def test_finds_a_shaft_comb_inside_the_range(rpm):
    e = estimate_shaft_speed(_comb(rpm / 60), 12000, (0.85 * rpm, 1.15 * rpm))
    assert e.rpm == pytest.approx(rpm, rel=0.005) and e.accepted
    assert "rpm" in e.describe()


def test_prefers_the_fundamental_to_its_harmonic_and_rejects_noise():
    x = _comb(20.0)
    assert estimate_shaft_speed(x, 12000, (1100, 2600)).rpm == pytest.approx(1200, rel=0.005)  # 2x also in range
    noise = np.random.default_rng(1).standard_normal(96000)
    e = estimate_shaft_speed(noise, 12000, (1000, 1400))
    assert not e.accepted and e.score_db < MIN_SCORE_DB


def test_bad_arguments():
    with pytest.raises(ConfigError, match="rpm_range"):
        estimate_shaft_speed(np.zeros(10000), 12000, (1800, 1700))
    with pytest.raises(DataError, match="needs at least"):
        estimate_shaft_speed(np.zeros(2000), 12000, (600, 700))


def test_real_files_within_15_percent_of_nominal(shared_data):
    """Six HIT-SM files (speed in the name) and three CWRU files (speed stored in the file)."""
    from faultdiag.data.readers import read_recording

    picks = [shared_data / "hitsm" / rig / f"{state}_{rpm}.mat" for rig, state, rpm in [
        ("spectraquest_mfs", "IR5", 600), ("spectraquest_mfs", "OR2", 900), ("spectraquest_mfs", "Normal", 1200),
        ("self_built", "OR8", 600), ("self_built", "IR2", 900), ("self_built", "Normal", 1200)]]
    picks += [shared_data / "cwru" / n for n in ("12k_Drive_End_IR007_1_106.mat", "12k_Drive_End_OR021@6_2_236.mat",
                                                   "12k_Drive_End_B014_3_188.mat")]
    if not all(p.is_file() for p in picks):
        pytest.skip("HIT-SM / CWRU files not in the shared data")
    for path in picks:
        hitsm = path.parent.parent.name == "hitsm"
        rec = read_recording(path, fs_hz=51200) if hitsm else read_recording(path)
        true = float(re.search(r"_(\d+)\.mat$", path.name).group(1)) if hitsm else float(np.ravel(rec.meta["rpm"])[0])
        nominal = true if hitsm else 1750.0
        e = estimate_shaft_speed(rec.signal[0, : int(10 * rec.fs_hz)], rec.fs_hz, (0.85 * nominal, 1.15 * nominal))
        assert e.rpm == pytest.approx(true, rel=0.02), path.name
        assert e.accepted
