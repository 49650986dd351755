import time

import numpy as np
import pytest

import sim
from sim.so101 import LIMITS, NAMES
from sim.tasks.layout import ENV_STATE_DIM
from vla_async.robot import Robot


def _virtual(task="reach_jump", seed=0, **kw):
    kw.setdefault("cameras", ())
    kw.setdefault("render", False)
    robot = sim.make_robot(task, mode="virtual", seed=seed, **kw)
    robot.connect()
    return robot


def test_spec_and_features():
    robot = _virtual(cameras=("front", "wrist"), render=True)
    spec = robot.spec
    assert isinstance(robot, Robot)
    assert spec.state_names == NAMES and spec.action_names == NAMES
    assert spec.stepwise_actions == ("gripper.pos",)
    assert spec.position_limits == LIMITS
    assert spec.environment_state_dim == ENV_STATE_DIM
    assert [c.name for c in spec.cameras] == ["front", "wrist"]
    assert set(robot.observation_features) == set(NAMES) | {"front", "wrist"}
    assert set(robot.action_features) == set(NAMES)
    for task in ("track", "pick_place"):
        assert _virtual(task).spec.environment_state_dim == spec.environment_state_dim


def test_bad_actions_rejected_or_clamped():
    robot = _virtual()
    with pytest.raises(ValueError, match="6 values"):
        robot.send_action(np.zeros(5))
    with pytest.raises(ValueError, match="non-finite.*elbow_flex"):
        robot.send_action(np.array([0, 0, np.nan, 0, 0, 0.5]))
    with pytest.raises(ValueError, match="non-finite"):
        robot.send_action(np.array([0, 0, 0, np.inf, 0, 0.5]))
    applied = robot.send_action(np.array([5.0, -5.0, 0.1, 0.2, 0.0, 2.0]))
    assert applied[0] == LIMITS[0][1] and applied[1] == LIMITS[1][0] and applied[5] == 1.0
    np.testing.assert_allclose(applied[2:5], [0.1, 0.2, 0.0])
    np.testing.assert_allclose(robot.commanded_action(), applied)


def test_servo_lag_state_trails_command():
    robot = _virtual()
    start = robot.get_observation(with_images=False).state.astype(float)
    target = start.copy()
    target[0] += 0.6
    robot.send_action(target)
    trail = []
    for _ in range(12):
        robot.step_tick()
        trail.append(robot.get_observation(with_images=False).state[0])
    trail = np.array(trail)
    assert trail[0] < start[0] + 0.3 * 0.6  # one tick later the joint is far from the command
    assert np.all(np.diff(trail) > -1e-6)  # it moves monotonically toward it
    assert abs(trail[-1] - target[0]) < 0.05  # and gets there


def test_virtual_time_is_deterministic_and_reset_restores():
    def run(robot):
        rng = np.random.default_rng(7)
        base = robot.get_observation(with_images=False).state.astype(float)
        states = []
        for _ in range(30):
            robot.send_action(base + rng.uniform(-0.3, 0.3, 6) * [1, 1, 1, 1, 1, 0])
            robot.step_tick()
            obs = robot.get_observation(with_images=False)
            states.append(np.concatenate([obs.state, obs.environment_state]))
        return np.array(states)

    a, b = _virtual("pick_place", seed=3), _virtual("pick_place", seed=3)
    first = run(a)
    np.testing.assert_array_equal(first, run(b))
    assert a.time_s == pytest.approx(1.0)
    fresh = _virtual("pick_place", seed=3).get_observation(with_images=False)
    a.reset(3)
    again = a.get_observation(with_images=False)
    assert a.time_s == 0.0
    np.testing.assert_array_equal(again.state, fresh.state)
    np.testing.assert_array_equal(again.environment_state, fresh.environment_state)
    np.testing.assert_array_equal(run(a), first)
    other = _virtual("pick_place", seed=4).get_observation(with_images=False)
    assert not np.array_equal(other.environment_state, fresh.environment_state)


def test_images_rendered_and_not_blank():
    robot = _virtual("pick_place", cameras=("front", "wrist"), render=True, image_size=(96, 128))
    obs = robot.get_observation()
    assert set(obs.images) == {"front", "wrist"}
    for image in obs.images.values():
        assert image.shape == (96, 128, 3) and image.dtype == np.uint8
        assert image.std() > 5.0  # not a flat colour
    assert not np.array_equal(obs.images["front"], obs.images["wrist"])
    before = obs.images["front"].copy()
    target = obs.state.astype(float)
    target[0] += 0.8
    robot.send_action(target)
    for _ in range(10):
        robot.step_tick()
    assert np.abs(robot.get_observation().images["front"].astype(int) - before).sum() > 0  # the arm moved on screen
    assert robot.get_observation(with_images=False).images == {}


@pytest.mark.timeout(60)
def test_realtime_world_advances_on_its_own_and_never_runs_ahead_of_the_wall_clock():
    robot = sim.make_robot("reach_jump", mode="realtime", cameras=(), render=False)
    robot.connect()
    try:
        with pytest.raises(RuntimeError, match="virtual"):
            robot.step_tick()
        target = robot.get_observation(with_images=False).state.astype(float)
        target[0] += 0.5
        robot.send_action(target)
        t0_sim, t0_wall = robot.time_s, time.monotonic()
        deadline = t0_wall + 20.0  # generous: other processes may load the CPU
        state = robot.get_observation(with_images=False).state
        while abs(state[0] - target[0]) >= 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)  # the caller only waits; the world must not wait for it
            state = robot.get_observation(with_images=False).state
        sim_elapsed, wall_elapsed = robot.time_s - t0_sim, time.monotonic() - t0_wall
        assert abs(state[0] - target[0]) < 0.05  # the arm reached the command without any call
        assert 0.0 < sim_elapsed <= wall_elapsed + 0.01  # the world advanced, never ahead of real time
    finally:
        robot.disconnect()
