import numpy as np
import pytest

import sim
from sim.check_experts import run_expert_episode
from sim.experts import ExpertPolicy, flow, parse_instruction
from sim.kinematics import tool_position
from sim.tasks.layout import CUBE


@pytest.mark.parametrize("task", ["reach_jump", "track", "pick_place"])
def test_expert_succeeds_at_zero_latency(task):
    results = [run_expert_episode(task, seed) for seed in (0, 1, 2, 3, 4)]
    assert all(r.success for r in results), [(r.seed, r.metrics) for r in results]


def test_flow_is_memoryless():
    q, goal = np.array([0.0, 1.0, -0.5, 0.2, 0.0]), np.array([1.5, 0.2, 0.4, -0.3, 0.1])
    dt = 1 / 30
    two_steps = flow(flow(q, goal, dt), goal, dt)
    np.testing.assert_allclose(two_steps, flow(q, goal, 2 * dt), atol=1e-12)
    assert np.max(np.abs(flow(q, goal, dt) - q)) <= 2.5 * dt + 1e-12  # joint speed bound


@pytest.mark.parametrize("task", ["reach_jump", "pick_place"])
def test_chunks_planned_from_rolled_forward_state_line_up(task):
    robot = sim.make_robot(task, seed=2, cameras=(), render=False)
    expert = ExpertPolicy(chunk_length=50)
    obs = robot.get_observation(with_images=False)
    first = expert.plan(obs.state, obs.environment_state, robot.instruction)
    for d in (3, 8, 15):
        later = expert.plan(first[d - 1], obs.environment_state, robot.instruction)
        np.testing.assert_allclose(later[: 50 - d], first[d:], atol=2e-5)


def test_stale_state_gives_a_different_plan():
    robot = sim.make_robot("reach_jump", seed=1, cameras=(), render=False)
    expert = ExpertPolicy(chunk_length=20)
    obs = robot.get_observation(with_images=False)
    chunk = expert.plan(obs.state, obs.environment_state, robot.instruction)
    stale = expert.plan(obs.state, obs.environment_state, robot.instruction)  # replanned from the old state
    np.testing.assert_array_equal(chunk, stale)
    assert np.abs(chunk[0] - chunk[10]).max() > 0.1  # the plan moves the arm, so a stale start is misaligned


def test_instruction_decides_which_cube():
    robot = sim.make_robot("pick_place", seed=0, cameras=(), render=False)
    obs = robot.get_observation(with_images=False)
    expert = ExpertPolicy(chunk_length=40)
    for colour in ("red", "blue"):
        plan = expert.plan(obs.state, obs.environment_state, f"pick up the {colour} cube and put it in the green zone")
        other = "blue" if colour == "red" else "red"
        tools = np.array([tool_position(q) for q in plan])
        named = obs.environment_state[CUBE[f"cube_{colour}"]][:3]
        wrong = obs.environment_state[CUBE[f"cube_{other}"]][:3]
        assert np.linalg.norm(tools - named, axis=1).min() < 0.01  # goes down to the named cube
        assert np.linalg.norm(tools - wrong, axis=1).min() > 0.03  # never to the other one


def test_parse_instruction():
    assert parse_instruction("Pick up the BLUE cube and put it in the yellow zone") == ("cube_blue", "zone_yellow")
    with pytest.raises(ValueError, match="name a cube"):
        parse_instruction("do something")


def test_plan_rejects_bad_state():
    robot = sim.make_robot("track", cameras=(), render=False)
    env = robot.get_observation(with_images=False).environment_state
    with pytest.raises(ValueError, match="6 finite"):
        ExpertPolicy().plan(np.array([0.0, np.nan, 0, 0, 0, 0]), env, robot.instruction)


def test_exec_offset_plans_for_the_execution_time():
    """Planned with offset δ from an observation captured at t, a track chunk is (nearly) the chunk
    planned from an observation captured at t + δ: the expert acts for when its chunk executes.
    Without the offset it plans for the capture time, and the gap is the target's motion over δ."""
    fps, ticks = 30.0, 6  # δ = 0.2 s
    with_offset, without = [], []
    for seed in range(4):
        robot = sim.make_robot("track", seed=seed, cameras=(), render=False)
        for _ in range(45):
            robot.step_tick()
        obs = robot.get_observation(with_images=False)
        for _ in range(ticks):
            robot.step_tick()
        env_later = robot.get_observation(with_images=False).environment_state
        expert = ExpertPolicy(chunk_length=12, fps=fps)
        # the first δ of actions: what runs before the next chunk takes over (later ones extrapolate further)
        truth = expert.plan(obs.state, env_later, robot.instruction)[:ticks]
        shifted = expert.plan(obs.state, obs.environment_state, robot.instruction, ticks / fps)[:ticks]
        with_offset.append(np.abs(shifted - truth).mean())
        without.append(np.abs(expert.plan(obs.state, obs.environment_state, robot.instruction)[:ticks] - truth).mean())
    assert np.mean(with_offset) < 0.5 * np.mean(without), (with_offset, without)


def test_exec_offset_changes_nothing_for_static_goals_and_is_checked():
    robot = sim.make_robot("pick_place", seed=0, cameras=(), render=False)
    obs = robot.get_observation(with_images=False)
    expert = ExpertPolicy(chunk_length=20)
    base = expert.plan(obs.state, obs.environment_state, robot.instruction)
    np.testing.assert_array_equal(base, expert.plan(obs.state, obs.environment_state, robot.instruction, 0.4))
    with pytest.raises(ValueError, match="exec_offset_s"):
        expert.plan(obs.state, obs.environment_state, robot.instruction, float("nan"))
