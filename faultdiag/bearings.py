"""Which bearing: a small table of documented bearings, and the one text form that names any bearing.

A bearing for the envelope cross-check (:mod:`faultdiag.envelope`) is given as one string, the
value of the config key ``data.bearing`` and of ``diagnose --bearing`` (``--bearing-geometry`` and
``--bearing-orders`` build the same string):

- a name from :data:`KNOWN_BEARINGS` (case and ``-``/``_``/space ignored): ``6205``, ``cwru-de`` ...;
- ``geometry:balls=9,ball_d=7.94,pitch_d=39.04,angle=0``: number of rolling elements, rolling-element
  and pitch diameters in any one unit (only their ratio matters), contact angle in degrees (default 0);
- ``orders:bpfo=3.58,bpfi=5.42,bsf=2.36,ftf=0.40``: the fault frequencies as multiples of shaft
  speed, with ``bsf`` the once-per-revolution ball spin frequency (ball faults impact at 2 x BSF).

The table holds only geometries whose source is documented (below). Other designations (6204,
6306, 22220, NU210 ...) differ between makers in ball count and size, so they are not guessed:
take the geometry or the orders from your maker's data sheet or bearing calculator.

Sources: CWRU Bearing Data Center, bearing specifications page (SKF 6205-2RS JEM at the drive end,
SKF 6203-2RS JEM at the fan end; the derived multiples are tested against the page's table);
MFPT fault data set documentation (NICE bearing: 8 rollers, roller diameter 0.235 in, pitch
diameter 1.245 in, contact angle 0); Curtin University's SpectraQuest MFS measurements (MB ER-16K:
9 balls, 7.9375 mm on a 38.50 mm pitch diameter; published multiples FTF 0.3969, BPFO 3.572,
BPFI 5.428, BSF 2.32, which this geometry reproduces).
"""

from __future__ import annotations

import math
import re

from faultdiag.bearing import DRIVE_END_6205, FAN_END_6203, BearingGeometry, BearingOrders
from faultdiag.errors import ConfigError

__all__ = ["KNOWN_BEARINGS", "ALIASES", "Bearing", "parse_bearing", "bearing_spec", "describe_bearing"]

Bearing = BearingGeometry | BearingOrders

_MM_PER_IN = 25.4

KNOWN_BEARINGS: dict[str, Bearing] = {
    "cwru-de": DRIVE_END_6205,
    "cwru-fe": FAN_END_6203,
    "mfpt": BearingGeometry(n_balls=8, ball_diameter_in=0.235, pitch_diameter_in=1.245, contact_angle_deg=0.0,
                            name="NICE (MFPT test rig)"),
    "mb-er16k": BearingGeometry(n_balls=9, ball_diameter_in=7.9375 / _MM_PER_IN, pitch_diameter_in=38.50 / _MM_PER_IN,
                                contact_angle_deg=0.0, name="MB ER-16K (SpectraQuest MFS)"),
}
"""Documented bearings by name (sources in the module docstring)."""

ALIASES = {"de": "cwru-de", "6205": "cwru-de", "skf-6205": "cwru-de", "fe": "cwru-fe", "6203": "cwru-fe",
           "skf-6203": "cwru-fe", "nice": "mfpt", "er-16k": "mb-er16k", "er16k": "mb-er16k"}
"""Other names of table entries: ``6205``/``6203`` are the SKF geometries CWRU publishes (another maker's
6205 may differ by a few percent in ball size: pass its geometry when you know it)."""

_GEOMETRY_KEYS = {"balls": "balls", "n": "balls", "n_balls": "balls", "ball_d": "ball_d", "d": "ball_d",
                  "pitch_d": "pitch_d", "pitch": "pitch_d", "angle": "angle", "contact_angle": "angle"}
_ORDER_KEYS = ("bpfo", "bpfi", "bsf", "ftf")
FORMS = ("a name (" + ", ".join(sorted({*KNOWN_BEARINGS, *ALIASES})) + ")",
         "geometry:balls=N,ball_d=D1,pitch_d=D2[,angle=DEG]", "orders:bpfo=X,bpfi=X,bsf=X,ftf=X")


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def _pairs(text: str, where: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip().lower()] = float(value)
        except ValueError:
            raise ConfigError(f"The '{where}' value must be key=number pairs separated by commas; got {part!r} "
                              f"in {text!r}.") from None
    return out


def _geometry(text: str, where: str) -> BearingGeometry:
    raw = _pairs(text, where)
    unknown = [k for k in raw if k not in _GEOMETRY_KEYS]
    values = {_GEOMETRY_KEYS[k]: v for k, v in raw.items() if k in _GEOMETRY_KEYS}
    missing = [k for k in ("balls", "ball_d", "pitch_d") if k not in values]
    if unknown or missing:
        raise ConfigError(f"The '{where}' geometry must give balls, ball_d and pitch_d (angle optional, degrees); "
                          f"got {text!r}" + (f" (unknown keys {unknown})" if unknown else "") + ".")
    balls = values["balls"]
    if not float(balls).is_integer():
        raise ConfigError(f"The '{where}' geometry's 'balls' must be a whole number; got {balls!r}.")
    return BearingGeometry(n_balls=int(balls), ball_diameter_in=values["ball_d"], pitch_diameter_in=values["pitch_d"],
                           contact_angle_deg=values.get("angle", 0.0), name=f"geometry {text.strip()}")


def _orders(text: str, where: str) -> BearingOrders:
    values = _pairs(text, where)
    if sorted(values) != sorted(_ORDER_KEYS):
        raise ConfigError(f"The '{where}' orders must give exactly bpfo, bpfi, bsf and ftf (multiples of shaft "
                          f"speed); got {text!r}.")
    return BearingOrders(**values, name=f"orders {text.strip()}")


def parse_bearing(spec: str, where: str = "bearing") -> Bearing:
    """The bearing that ``spec`` names (see the module docstring for the three forms).

    Raises:
        ConfigError: an unknown name or a malformed geometry/orders string, naming ``where``.
    """
    if isinstance(spec, (BearingGeometry, BearingOrders)):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"The '{where}' parameter must be a bearing name or spec; got {spec!r}.")
    head, sep, rest = spec.strip().partition(":")
    if sep and head.strip().lower() == "geometry":
        return _geometry(rest, where)
    if sep and head.strip().lower() == "orders":
        return _orders(rest, where)
    key = _key(spec)
    key = ALIASES.get(key, key)
    if key.startswith("skf-") and ALIASES.get(key[4:]):
        key = ALIASES[key[4:]]
    if key in KNOWN_BEARINGS:
        return KNOWN_BEARINGS[key]
    raise ConfigError(f"The '{where}' parameter names an unknown bearing {spec!r}; give {', '.join(FORMS)}.")


def bearing_spec(name: str | None = None, geometry: str | None = None, orders: str | None = None) -> str | None:
    """One spec string from the three command-line forms (at most one may be given), checked by parsing."""
    given = [(flag, v) for flag, v in (("--bearing", name), ("--bearing-geometry", geometry),
                                       ("--bearing-orders", orders)) if v]
    if len(given) > 1:
        raise ConfigError(f"Give one of --bearing, --bearing-geometry, --bearing-orders; got {[f for f, _ in given]}.")
    if not given:
        return None
    flag, value = given[0]
    spec = value if flag == "--bearing" else f"{flag.rsplit('-', 1)[-1]}:{value}"
    parse_bearing(spec, flag)
    return spec


def describe_bearing(bearing: Bearing) -> str:
    """A short human description: the name and its BPFO/BPFI/BSF/FTF orders."""
    o = bearing.orders()
    return (f"{bearing.name} (BPFO {o['bpfo']:.3f}, BPFI {o['bpfi']:.3f}, BSF {o['bsf']:.3f}, "
            f"FTF {o['ftf']:.3f} x shaft)")


def orders_from_hz(freqs_hz: dict[str, float], shaft_hz: float, name: str) -> BearingOrders:
    """Fault frequencies in Hz at a known shaft speed → :class:`BearingOrders`."""
    if not (math.isfinite(shaft_hz) and shaft_hz > 0):
        raise ConfigError(f"The 'shaft_hz' parameter must be a positive number; got {shaft_hz!r}.")
    return BearingOrders(**{k: freqs_hz[k] / shaft_hz for k in _ORDER_KEYS}, name=name)
