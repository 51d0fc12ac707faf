"""The bearing-vibration simulator: reproducibility, physics of the impact train, dataset layout."""

import time

import numpy as np
import pytest

from faultdiag.bearing import DRIVE_END_6205, fault_frequencies
from faultdiag.data.recording import Recording
from faultdiag.data.simulate import LOAD_RPM, SIM_CLASSES, simulate_recording, simulated_dataset
from faultdiag.errors import ConfigError

SHORT = dict(duration_s=1.0)


@pytest.mark.parametrize("fault", SIM_CLASSES)
def test_same_seed_identical_different_seed_different(fault):
    a = simulate_recording(fault, seed=5, **SHORT)
    b = simulate_recording(fault, seed=5, **SHORT)
    c = simulate_recording(fault, seed=6, **SHORT)
    np.testing.assert_array_equal(a.signal, b.signal)
    assert not np.allclose(a.signal, c.signal)


@pytest.mark.parametrize("fault", SIM_CLASSES)
def test_recording_layout(fault):
    rec = simulate_recording(fault, load_hp=2, fs_hz=12000, duration_s=0.5, seed=1)
    assert isinstance(rec, Recording)
    assert rec.signal.shape == (1, 6000) and rec.signal.dtype == np.float32
    assert rec.channels == ("DE",) and rec.label == fault and rec.fs_hz == 12000
    assert rec.meta["simulated"] is True and rec.meta["fault"] == fault and rec.meta["load_hp"] == 2
    assert rec.meta["rpm"] == pytest.approx(LOAD_RPM[2], rel=0.01)
    assert np.isfinite(rec.signal).all()


def test_ten_seconds_is_fast():
    simulate_recording("inner_race", seed=0)  # warm-up (imports, FFT plans)
    start = time.perf_counter()
    simulate_recording("inner_race", seed=1, duration_s=10.0)
    assert time.perf_counter() - start < 0.5  # about 0.03 s on an idle core; shared CI machines are slower


def _power(rec):
    return float(np.mean(rec.signal.astype(np.float64) ** 2))


def test_severity_raises_fault_energy_and_normal_ignores_it():
    power = [_power(simulate_recording("outer_race", severity=s, seed=3, **SHORT)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert power == sorted(power) and power[-1] > 2 * power[0]
    n1 = simulate_recording("normal", severity=0.5, seed=3, **SHORT)
    n2 = simulate_recording("normal", severity=2.0, seed=3, **SHORT)
    np.testing.assert_array_equal(n1.signal, n2.signal)
    assert n1.meta["severity"] == 0.0


@pytest.mark.parametrize("fault", ["outer_race", "inner_race", "ball"])
def test_faults_are_impulsive_normal_is_gaussian(fault):
    def kurtosis(rec):
        x = rec.signal[0].astype(np.float64)
        x = x - x.mean()
        return float(np.mean(x**4) / np.mean(x**2) ** 2)

    normal = kurtosis(simulate_recording("normal", seed=2, duration_s=2.0))
    faulty = kurtosis(simulate_recording(fault, severity=1.5, seed=2, duration_s=2.0))
    assert abs(normal - 3.0) < 0.3
    assert faulty > normal + 0.3


def test_impact_rate_follows_kinematics():
    """The squared-signal autocorrelation peaks at the impact period 1 / BPFO."""
    rec = simulate_recording("outer_race", severity=2.0, load_hp=0, seed=4, duration_s=2.0)
    x = rec.signal[0].astype(np.float64)
    e = x**2 - np.mean(x**2)
    ac = np.fft.irfft(np.abs(np.fft.rfft(e, 2 * e.size)) ** 2)[: e.size]
    bpfo = fault_frequencies(DRIVE_END_6205, rec.meta["shaft_hz"])["bpfo_hz"]
    lag_lo, lag_hi = int(12000 / bpfo * 0.7), int(12000 / bpfo * 1.3)
    lag = lag_lo + int(np.argmax(ac[lag_lo:lag_hi]))
    assert 12000 / lag == pytest.approx(bpfo, rel=0.03)
    assert rec.meta["fault_hz"] == pytest.approx(bpfo)


def test_dataset_layout_and_independent_seeds():
    recs = simulated_dataset(seed=0, duration_s=0.25, loads=(0, 3), severities=(0.5, 1.0))
    assert len(recs) == len(SIM_CLASSES) * 2 * 2
    assert [r.label for r in recs[::4]] == list(SIM_CLASSES)
    assert {r.meta["load_hp"] for r in recs} == {0, 3}
    assert all(r.channels == ("DE",) and r.meta["simulated"] for r in recs)
    assert len({r.meta["seed"] for r in recs}) == len(recs)
    # a recording does not depend on which other recordings are requested
    one = simulated_dataset(seed=0, duration_s=0.25, loads=(3,), severities=(1.0,), classes=("ball",))[0]
    same = next(r for r in recs if r.label == "ball" and r.meta["load_hp"] == 3 and r.meta["nominal_severity"] == 1.0)
    np.testing.assert_array_equal(one.signal, same.signal)
    other = simulated_dataset(seed=1, duration_s=0.25, loads=(3,), severities=(1.0,), classes=("ball",))[0]
    assert not np.allclose(one.signal, other.signal)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(fault="cracked"), "fault"),
        (dict(fault="ball", severity=-1.0), "severity"),
        (dict(fault="ball", load_hp=5), "load_hp"),
        (dict(fault="ball", fs_hz=4000), "fs_hz"),
        (dict(fault="ball", duration_s=0), "duration_s"),
        (dict(fault="ball", seed=-2), "seed"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs, name):
    fault = kwargs.pop("fault")
    with pytest.raises(ConfigError, match=name):
        simulate_recording(fault, **kwargs)
