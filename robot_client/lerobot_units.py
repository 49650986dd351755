"""Joint units of a LeRobot arm ↔ the units of the robot spec the policy sees, from the arm's calibration.

LeRobot's motor buses report each motor in one of three normalisation modes (motors_bus.MotorNormMode):
  degrees         (raw − mid)·360/(resolution − 1), mid the middle of the calibrated range;
  range_m100_100  the calibrated range mapped to −100…100 (sign flipped by drive_mode);
  range_0_100     the calibrated range mapped to 0…100 (grippers).
With `units="radians"` the spec shows arm joints in radians about the same mid
((raw − mid)·2π/(resolution − 1)) and 0…100 joints as 0…1; with `units="native"` it shows LeRobot's values.
Either way the map is one scale per joint, and the position limits are the calibrated range.
Plain data in, numpy out: no LeRobot import here (tested against LeRobot's own normalisation in its lane).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

Units = Literal["native", "radians"]
NORM_MODES = ("degrees", "range_m100_100", "range_0_100")


class MotorCalibrationLike(Protocol):
    range_min: int
    range_max: int


class UnitsError(ValueError):
    """The calibration or the motor table cannot give a unit conversion."""


@dataclass(frozen=True)
class JointUnits:
    """`ours = native · scale` per joint (spec order); limits in the spec's units."""

    names: tuple[str, ...]  # feature names, e.g. "shoulder_pan.pos"
    scale: np.ndarray
    limits: tuple[tuple[float, float], ...]
    stepwise: tuple[str, ...]  # range_0_100 joints (grippers): open/closed, never blended

    def to_spec(self, native: Mapping[str, float]) -> np.ndarray:
        """LeRobot's feature dict → a vector in spec order and units (KeyError names a missing joint)."""
        return np.fromiter((native[n] for n in self.names), dtype=np.float64, count=len(self.names)) * self.scale

    def to_native(self, values: np.ndarray) -> dict[str, float]:
        """A vector in spec order and units → LeRobot's action dict."""
        native = np.asarray(values, dtype=np.float64) / self.scale
        return {n: float(v) for n, v in zip(self.names, native, strict=True)}


def joint_units(motors: Mapping[str, tuple[str, int]], calibration: Mapping[str, MotorCalibrationLike],
                feature_names: Sequence[str], units: Units) -> JointUnits:
    """`motors`: motor name → (norm mode, model resolution); `feature_names`: "<motor>.pos" in the
    robot's action order. Raises UnitsError naming the joint when a mode or a calibration is missing."""
    scales, limits, stepwise = [], [], []
    for feature in feature_names:
        motor = feature.removesuffix(".pos")
        if motor not in motors:
            raise UnitsError(f"action {feature!r} is not a motor of this robot (motors: {sorted(motors)})")
        mode, resolution = motors[motor]
        cal = calibration.get(motor)
        if cal is None:
            raise UnitsError(f"no calibration for motor {motor!r}: calibrate the arm first "
                             f"(lerobot-calibrate --robot.type=... --robot.id=...)")
        native_lo, native_hi, to_rad = _native_range(motor, mode, cal, resolution)
        scale = 1.0 if units == "native" else to_rad
        scales.append(scale)
        limits.append((native_lo * scale, native_hi * scale))
        if mode == "range_0_100":
            stepwise.append(feature)
    return JointUnits(tuple(feature_names), np.asarray(scales, dtype=np.float64), tuple(limits), tuple(stepwise))


def _native_range(motor: str, mode: str, cal: MotorCalibrationLike, resolution: int) -> tuple[float, float, float]:
    """(low, high) in LeRobot's units and the factor to radians (or to 0…1 for range_0_100)."""
    lo, hi = int(cal.range_min), int(cal.range_max)
    if hi <= lo:
        raise UnitsError(f"calibration of motor {motor!r}: range_max {hi} must exceed range_min {lo}")
    rad_per_tick = 2.0 * math.pi / (int(resolution) - 1)
    if mode == "degrees":
        half = (hi - lo) / 2.0 * 360.0 / (int(resolution) - 1)
        return -half, half, math.pi / 180.0
    if mode == "range_m100_100":
        return -100.0, 100.0, (hi - lo) / 2.0 * rad_per_tick / 100.0
    if mode == "range_0_100":
        return 0.0, 100.0, 0.01
    raise UnitsError(f"motor {motor!r}: normalisation mode {mode!r} is not supported; known: {', '.join(NORM_MODES)}")
