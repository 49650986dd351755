import math

import numpy as np
import pytest

from sim.kinematics import PITCH_DOWN, roll_for_yaw, solve_ik, solve_reach, tool_position
from sim.physics import SimPhysics, substeps_for
from sim.so101 import LIMITS


def test_forward_kinematics_matches_mujoco():
    physics = SimPhysics(30.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = np.array([rng.uniform(lo, hi) for lo, hi in LIMITS])
        physics.set_joint_state(q)
        physics.forward()
        np.testing.assert_allclose(physics.tool_position(), tool_position(q), atol=1e-9)


def test_ik_round_trip_and_pitch():
    rng = np.random.default_rng(1)
    solved = 0
    for _ in range(200):
        x, y, z = rng.uniform(0.12, 0.28), rng.uniform(-0.2, 0.2), rng.uniform(0.0, 0.2)
        sol = solve_reach(x, y, z)
        if sol is None:
            continue
        solved += 1
        np.testing.assert_allclose(tool_position(sol), [x, y, z], atol=1e-9)
        assert all(lo <= v <= hi for v, (lo, hi) in zip(sol, LIMITS, strict=False))
    assert solved > 100
    down = solve_ik(0.2, 0.05, 0.02, PITCH_DOWN)
    assert down is not None
    assert math.isclose(down[1] + down[2] + math.pi / 2 + down[3], math.pi)


def test_unreachable_point_has_no_solution():
    assert solve_ik(0.6, 0.0, 0.05, PITCH_DOWN) is None


def test_roll_aligns_fingers_with_cube_faces():
    for pan in (-1.0, 0.0, 0.7):
        for yaw in (-0.7, 0.0, 0.3):
            roll = roll_for_yaw(pan, yaw)
            assert -math.pi / 4 - 1e-9 <= roll <= math.pi / 4 + 1e-9
            finger_axis = pan + math.pi / 2 - roll
            assert math.isclose(math.cos(4 * (finger_axis - yaw)), 1.0, abs_tol=1e-9)


def test_control_period_must_be_whole_number_of_steps():
    assert substeps_for(1 / 30, 1 / 600) == 20
    with pytest.raises(ValueError, match="whole number"):
        substeps_for(1 / 30, 0.002)
    with pytest.raises(ValueError, match="whole number"):
        SimPhysics(30.0, timestep_s=0.002)
    physics = SimPhysics(30.0)
    assert math.isclose(physics.substeps * physics.model.opt.timestep, 1 / 30)
    assert physics.model.opt.timestep <= 0.002
