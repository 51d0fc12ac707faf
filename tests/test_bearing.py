"""Bearing kinematics against the multiples of shaft speed published by the CWRU Bearing Data Center."""

import math

import pytest

from faultdiag.bearing import DRIVE_END_6205, FAN_END_6203, BearingGeometry, fault_frequencies
from faultdiag.errors import ConfigError

# CWRU bearing specifications page, "Defect frequencies (multiple of running speed in Hz)";
# CWRU's BSF column is twice the once-per-revolution ball spin frequency.
CWRU_MULTIPLES = {
    "drive_end": (DRIVE_END_6205, {"bpfi": 5.4152, "bpfo": 3.5848, "ftf": 0.39828, "bsf2": 4.7135}),
    "fan_end": (FAN_END_6203, {"bpfi": 4.9469, "bpfo": 3.0530, "ftf": 0.3817, "bsf2": 3.9874}),
}


@pytest.mark.parametrize("end", sorted(CWRU_MULTIPLES))
def test_multiples_match_cwru_table(end):
    geometry, expected = CWRU_MULTIPLES[end]
    f = fault_frequencies(geometry, 1.0)
    assert f["bpfi_hz"] == pytest.approx(expected["bpfi"], rel=5e-4)
    assert f["bpfo_hz"] == pytest.approx(expected["bpfo"], rel=5e-4)
    assert f["ftf_hz"] == pytest.approx(expected["ftf"], rel=5e-4)
    assert 2 * f["bsf_hz"] == pytest.approx(expected["bsf2"], rel=5e-4)


def test_drive_end_at_1797_rpm():
    f = fault_frequencies(DRIVE_END_6205, 1797 / 60)
    assert f["bpfi_hz"] == pytest.approx(162.19, abs=0.01)
    assert f["bpfo_hz"] == pytest.approx(107.36, abs=0.01)
    assert f["ftf_hz"] == pytest.approx(11.93, abs=0.01)
    assert 2 * f["bsf_hz"] == pytest.approx(141.17, abs=0.01)


@pytest.mark.parametrize("shaft_hz", [5.0, 29.95, 120.0])
def test_kinematic_identities(shaft_hz):
    """BPFO + BPFI = n * f_r, BPFO = n * FTF, and every frequency scales linearly with speed."""
    g = DRIVE_END_6205
    f = fault_frequencies(g, shaft_hz)
    assert f["bpfo_hz"] + f["bpfi_hz"] == pytest.approx(g.n_balls * shaft_hz)
    assert f["bpfo_hz"] == pytest.approx(g.n_balls * f["ftf_hz"])
    unit = fault_frequencies(g, 1.0)
    assert all(f[k] == pytest.approx(shaft_hz * unit[k]) for k in f)


def test_contact_angle_reduces_ratio():
    g0 = BearingGeometry(9, 0.3126, 1.537, 0.0)
    g30 = BearingGeometry(9, 0.3126, 1.537, 30.0)
    assert g30.ratio == pytest.approx(g0.ratio * math.cos(math.radians(30)))
    assert fault_frequencies(g30, 10.0)["bpfi_hz"] < fault_frequencies(g0, 10.0)["bpfi_hz"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_balls=0, ball_diameter_in=0.3, pitch_diameter_in=1.5),
        dict(n_balls=9, ball_diameter_in=-0.3, pitch_diameter_in=1.5),
        dict(n_balls=9, ball_diameter_in=1.6, pitch_diameter_in=1.5),
        dict(n_balls=9, ball_diameter_in=0.3, pitch_diameter_in=1.5, contact_angle_deg=95),
    ],
)
def test_invalid_geometry_raises(kwargs):
    with pytest.raises(ConfigError):
        BearingGeometry(**kwargs)


@pytest.mark.parametrize("shaft_hz", [0.0, -1.0, float("nan")])
def test_invalid_shaft_speed_raises(shaft_hz):
    with pytest.raises(ConfigError, match="shaft_hz"):
        fault_frequencies(DRIVE_END_6205, shaft_hz)
