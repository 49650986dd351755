"""Unit conversion of LeRobot joints from a calibration (pure numpy; LeRobot's own normalisation is
compared in tests/lerobot/test_lerobot_robot.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from robot_client.lerobot_units import UnitsError, joint_units


@dataclass
class Cal:
    range_min: int
    range_max: int


NAMES = ["a.pos", "b.pos", "gripper.pos"]
MOTORS = {"a": ("degrees", 4096), "b": ("range_m100_100", 4096), "gripper": ("range_0_100", 4096)}
CAL = {"a": Cal(1000, 3000), "b": Cal(1048, 3048), "gripper": Cal(2000, 3000)}


def test_radians_from_degrees_range_and_gripper() -> None:
    u = joint_units(MOTORS, CAL, NAMES, "radians")
    got = u.to_spec({"a.pos": 90.0, "b.pos": 50.0, "gripper.pos": 25.0})
    # b: +50 of -100..100 is a quarter of the 2000-tick range above mid = 500 ticks
    np.testing.assert_allclose(got, [math.pi / 2, 500 * 2 * math.pi / 4095, 0.25])
    half_a = 1000 * 2 * math.pi / 4095
    np.testing.assert_allclose(u.limits, [(-half_a, half_a), (-half_a, half_a), (0.0, 1.0)])
    assert u.stepwise == ("gripper.pos",)
    back = u.to_native(got)
    assert back == pytest.approx({"a.pos": 90.0, "b.pos": 50.0, "gripper.pos": 25.0})


def test_native_units_pass_through_with_calibrated_limits() -> None:
    u = joint_units(MOTORS, CAL, NAMES, "native")
    np.testing.assert_allclose(u.to_spec({"a.pos": 1.5, "b.pos": -3.0, "gripper.pos": 40.0}), [1.5, -3.0, 40.0])
    half_deg = 1000 * 360 / 4095
    np.testing.assert_allclose(u.limits, [(-half_deg, half_deg), (-100, 100), (0, 100)])


def test_order_follows_the_feature_names() -> None:
    u = joint_units(MOTORS, CAL, ["gripper.pos", "a.pos", "b.pos"], "native")
    np.testing.assert_allclose(u.to_spec({"a.pos": 1.0, "b.pos": 2.0, "gripper.pos": 3.0}), [3.0, 1.0, 2.0])


def test_missing_calibration_unknown_motor_and_mode_are_clear() -> None:
    with pytest.raises(UnitsError, match="no calibration for motor 'b'.*lerobot-calibrate"):
        joint_units(MOTORS, {"a": CAL["a"], "gripper": CAL["gripper"]}, NAMES, "radians")
    with pytest.raises(UnitsError, match="'c.pos' is not a motor"):
        joint_units(MOTORS, CAL, ["c.pos"], "native")
    with pytest.raises(UnitsError, match="mode 'velocity' is not supported"):
        joint_units({"a": ("velocity", 4096)}, CAL, ["a.pos"], "native")
    with pytest.raises(UnitsError, match="range_max 10 must exceed range_min 10"):
        joint_units(MOTORS, {**CAL, "a": Cal(10, 10)}, NAMES, "native")
