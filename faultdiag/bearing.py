"""Rolling-element bearing kinematics: geometry and characteristic fault frequencies.

A localised fault on a race or a ball produces a train of impacts whose rate is fixed by the
bearing geometry and the shaft speed (assuming rolling without slip; real bearings slip by
1-2 %). With ``n`` balls of diameter ``d`` on a pitch diameter ``D`` and contact angle ``phi``,
shaft (inner-race) frequency ``f_r`` and a stationary outer race::

    FTF  = f_r / 2 * (1 - d/D cos phi)                      cage (fundamental train) frequency
    BPFO = n f_r / 2 * (1 - d/D cos phi)                    ball pass frequency, outer race
    BPFI = n f_r / 2 * (1 + d/D cos phi)                    ball pass frequency, inner race
    BSF  = D f_r / (2 d) * (1 - (d/D cos phi) ** 2)         ball spin frequency

``BSF`` here is the *once-per-revolution* ball spin frequency (the textbook convention, e.g.
Randall & Antoni, MSSP 25 (2011) 485-520). A spall on a ball strikes both races once per spin
revolution, so ball faults show impacts at ``2 x BSF``; the CWRU Bearing Data Center table lists
that doubled value as its "BSF" (4.7135 x shaft speed for the drive-end 6205).

The CWRU test rig geometry (Case Western Reserve University Bearing Data Center, bearing
specifications page): drive end SKF 6205-2RS JEM, 9 balls, d = 0.3126 in, D = 1.537 in; fan end
SKF 6203-2RS JEM, 8 balls, d = 0.2656 in, D = 1.122 in; deep-groove bearings, contact angle 0.
With these, the drive-end multiples of shaft speed are BPFI 5.4152, BPFO 3.5848, FTF 0.39828,
2 x BSF 4.7135, as CWRU publishes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from faultdiag.errors import ConfigError

__all__ = ["BearingGeometry", "BearingOrders", "DRIVE_END_6205", "FAN_END_6203", "fault_frequencies"]


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"The '{name}' parameter must be a positive finite number; got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class BearingGeometry:
    """Geometry of a rolling-element bearing.

    Attributes:
        n_balls: number of rolling elements (>= 1).
        ball_diameter_in: rolling-element diameter ``d`` in inches.
        pitch_diameter_in: pitch diameter ``D`` in inches; must exceed ``d``.
        contact_angle_deg: contact angle ``phi`` in degrees, in ``[0, 90)``.
        name: a short label, e.g. ``"SKF 6205-2RS JEM"``.
    """

    n_balls: int
    ball_diameter_in: float
    pitch_diameter_in: float
    contact_angle_deg: float = 0.0
    name: str = "bearing"

    def __post_init__(self) -> None:
        if isinstance(self.n_balls, bool) or not isinstance(self.n_balls, int) or self.n_balls < 1:
            raise ConfigError(f"The 'n_balls' parameter must be a positive int; got {self.n_balls!r}.")
        d = _positive("ball_diameter_in", self.ball_diameter_in)
        pitch = _positive("pitch_diameter_in", self.pitch_diameter_in)
        if d >= pitch:
            raise ConfigError(
                f"The 'ball_diameter_in' parameter must be smaller than 'pitch_diameter_in' ({pitch:g}); got {d:g}."
            )
        angle = self.contact_angle_deg
        if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not 0 <= angle < 90:
            raise ConfigError(f"The 'contact_angle_deg' parameter must be a number in [0, 90); got {angle!r}.")

    @property
    def ratio(self) -> float:
        """``d / D * cos(phi)``, the dimensionless ratio every fault frequency depends on."""
        return self.ball_diameter_in / self.pitch_diameter_in * math.cos(math.radians(self.contact_angle_deg))

    def orders(self) -> dict[str, float]:
        """The fault frequencies as multiples of shaft speed: ``{"bpfi", "bpfo", "bsf", "ftf"}`` (formulas above)."""
        r, n = self.ratio, self.n_balls
        return {"bpfi": n / 2.0 * (1.0 + r), "bpfo": n / 2.0 * (1.0 - r),
                "bsf": self.pitch_diameter_in / (2.0 * self.ball_diameter_in) * (1.0 - r * r), "ftf": (1.0 - r) / 2.0}


@dataclass(frozen=True)
class BearingOrders:
    """A bearing known only by its fault frequencies as multiples of shaft speed ("orders").

    Manufacturers' calculators and data-set documentation often give these instead of the geometry.
    ``bsf`` is the once-per-revolution ball spin frequency (a ball fault impacts at ``2 x bsf``).
    """

    bpfo: float
    bpfi: float
    bsf: float
    ftf: float
    name: str = "bearing"

    def __post_init__(self) -> None:
        for key in ("bpfo", "bpfi", "bsf", "ftf"):
            _positive(key, getattr(self, key))
        if not self.ftf < 1:
            raise ConfigError(f"The 'ftf' parameter (cage frequency in orders of shaft speed) must be below 1; "
                              f"got {self.ftf!r}.")

    def orders(self) -> dict[str, float]:
        return {"bpfi": float(self.bpfi), "bpfo": float(self.bpfo), "bsf": float(self.bsf), "ftf": float(self.ftf)}


DRIVE_END_6205 = BearingGeometry(
    n_balls=9, ball_diameter_in=0.3126, pitch_diameter_in=1.537, contact_angle_deg=0.0, name="SKF 6205-2RS JEM"
)
"""Drive-end bearing of the CWRU test rig."""

FAN_END_6203 = BearingGeometry(
    n_balls=8, ball_diameter_in=0.2656, pitch_diameter_in=1.122, contact_angle_deg=0.0, name="SKF 6203-2RS JEM"
)
"""Fan-end bearing of the CWRU test rig."""


def fault_frequencies(geometry: BearingGeometry | BearingOrders, shaft_hz: float) -> dict[str, float]:
    """Characteristic fault frequencies of ``geometry`` at shaft speed ``shaft_hz``.

    Args:
        geometry: the bearing, by its geometry or by its fault frequencies in orders of shaft speed.
        shaft_hz: shaft (inner-race) rotation frequency in Hz, ``rpm / 60``; outer race fixed.

    Returns:
        ``{"bpfi_hz", "bpfo_hz", "bsf_hz", "ftf_hz"}``. ``bsf_hz`` is the once-per-revolution
        ball spin frequency; ball faults impact at ``2 * bsf_hz`` (CWRU's tabulated "BSF").

    Example: the CWRU drive end at 1797 rpm (29.95 Hz) gives BPFI 162.19, BPFO 107.36,
    FTF 11.93 and BSF 70.58 Hz (2 x BSF = 141.17 Hz).
    """
    if not isinstance(geometry, (BearingGeometry, BearingOrders)):
        raise ConfigError(f"The 'geometry' parameter must be a BearingGeometry or BearingOrders; "
                          f"got {type(geometry).__name__}.")
    fr = _positive("shaft_hz", shaft_hz)
    return {f"{key}_hz": order * fr for key, order in geometry.orders().items()}
