"""The bearing table and the three text forms of a bearing (name, geometry, orders)."""

import pytest

from faultdiag.bearing import BearingOrders, fault_frequencies
from faultdiag.bearings import KNOWN_BEARINGS, bearing_spec, describe_bearing, orders_from_hz, parse_bearing
from faultdiag.errors import ConfigError


def test_table_entries_reproduce_their_published_orders():
    # CWRU page (drive end; CWRU's BSF column is 2 x BSF) and Curtin's MB ER-16K read-me.
    de = KNOWN_BEARINGS["cwru-de"].orders()
    assert de["bpfo"] == pytest.approx(3.5848, rel=5e-4) and 2 * de["bsf"] == pytest.approx(4.7135, rel=5e-4)
    er = KNOWN_BEARINGS["mb-er16k"].orders()
    for key, value in {"ftf": 0.3969, "bpfo": 3.572, "bpfi": 5.428, "bsf": 2.32}.items():
        assert er[key] == pytest.approx(value, rel=2e-3)


@pytest.mark.parametrize("name", ["6205", "SKF 6205", "skf_6205", "de", "CWRU-DE"])
def test_names_and_aliases(name):
    assert parse_bearing(name) is KNOWN_BEARINGS["cwru-de"]


def test_geometry_in_mm_equals_the_same_geometry_in_inches():
    mm = parse_bearing("geometry:balls=9,ball_d=7.94,pitch_d=39.04")
    inch = KNOWN_BEARINGS["cwru-de"]
    for key, value in inch.orders().items():
        assert mm.orders()[key] == pytest.approx(value, rel=2e-3)
    angled = parse_bearing("geometry:n=16,d=0.331,pitch=2.815,angle=15.17")
    assert angled.orders()["bpfo"] > 16 / 2 * (1 - 0.331 / 2.815)  # cos < 1 raises BPFO


def test_orders_give_frequencies_proportional_to_speed():
    b = parse_bearing("orders:bpfo=3.58,bpfi=5.42,bsf=2.36,ftf=0.40")
    assert isinstance(b, BearingOrders)
    f = fault_frequencies(b, 25.0)
    assert f["bpfo_hz"] == pytest.approx(89.5) and f["ftf_hz"] == pytest.approx(10.0)
    back = orders_from_hz({k[:-3]: v for k, v in f.items()}, 25.0, "x")
    assert back.orders() == pytest.approx(b.orders())
    assert "BPFO 3.580" in describe_bearing(b)


@pytest.mark.parametrize("spec, match", [
    ("6204", "unknown bearing"), ("geometry:balls=9,ball_d=7.94", "pitch_d"), ("geometry:balls=8.5,d=1,pitch=5", "whole"),
    ("orders:bpfo=3,bpfi=5", "exactly"), ("orders:bpfo=x,bpfi=5,bsf=2,ftf=0.4", "key=number"),
    ("geometry:balls=9,ball_d=40,pitch_d=39", "smaller"), ("orders:bpfo=3,bpfi=5,bsf=2,ftf=1.2", "below 1"),
])
def test_bad_specs_are_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_bearing(spec)


def test_command_line_forms_build_one_spec():
    assert bearing_spec(orders="bpfo=3.58,bpfi=5.42,bsf=2.36,ftf=0.40") == "orders:bpfo=3.58,bpfi=5.42,bsf=2.36,ftf=0.40"
    assert bearing_spec(geometry="balls=9,ball_d=7.94,pitch_d=39.04").startswith("geometry:")
    assert bearing_spec() is None
    with pytest.raises(ConfigError, match="one of"):
        bearing_spec(name="6205", orders="bpfo=1,bpfi=2,bsf=1,ftf=0.4")
