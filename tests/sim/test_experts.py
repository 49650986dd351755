import numpy as np
import pytest

import sim
from sim.check_experts import run_expert_episode
from sim.experts import ARM_LAG_S, ExpertPolicy, flow, parse_instruction
from sim.kinematics import tool_position
from sim.tasks.layout import CUBE


@pytest.mark.parametrize("task", ["reach_jump", "track", "pick_place", "track_sweep"])
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


def _follow_expert(task: str, seed: int, ticks: int):
    """Run the sim arm on the expert's plan from its start state; (robot, command of the last tick, plan)."""
    robot = sim.make_robot(task, seed=seed, cameras=(), render=False)
    expert = ExpertPolicy(chunk_length=60)
    obs = robot.get_observation(with_images=False)
    plan = expert.plan(obs.state, obs.environment_state, robot.instruction)
    for k in range(ticks):
        robot.send_action(plan[k])
        robot.step_tick()
    return robot, plan[ticks - 1], plan


@pytest.mark.parametrize(("task", "seed"), [("reach_jump", 0), ("reach_jump", 3), ("pick_place", 1)])
def test_lag_compensated_estimate_finds_the_command_of_a_moving_arm(task, seed):
    """Mid-motion the measured arm trails its command by the servo lag; the estimate closes most of that gap."""
    robot, command, _ = _follow_expert(task, seed, 8)
    obs = robot.get_observation(with_images=False)
    expert = ExpertPolicy(lag_compensation_s=ARM_LAG_S)
    estimate = expert.lag_compensated(np.asarray(obs.state, float), obs.environment_state, robot.instruction, task)
    raw_gap = np.abs(obs.state[:5] - command[:5]).max()
    assert raw_gap > 0.05  # the arm is moving: a real lag to compensate
    assert np.abs(estimate[:5] - command[:5]).max() < 0.35 * raw_gap
    assert estimate[5] == pytest.approx(obs.state[5])  # the gripper is left as given


@pytest.mark.parametrize("task", ["reach_jump", "pick_place"])
def test_lag_compensated_plan_continues_the_command_from_the_measured_state(task):
    """Replanned from the measured state of an arm that follows the expert, the lag-compensated chunk starts
    where the commands were going (no step back by the lag); the plain expert steps back."""
    ticks = 8
    robot, _, plan = _follow_expert(task, 0, ticks)
    obs = robot.get_observation(with_images=False)
    plain = ExpertPolicy(chunk_length=10).plan(obs.state, obs.environment_state, robot.instruction)
    comp = ExpertPolicy(chunk_length=10, lag_compensation_s=ARM_LAG_S).plan(obs.state, obs.environment_state,
                                                                             robot.instruction)
    nxt = plan[ticks]  # the command the old plan would send next
    assert np.abs(comp[0, :5] - nxt[:5]).max() < 0.35 * np.abs(plain[0, :5] - nxt[:5]).max()


def test_lag_compensation_keeps_an_arm_at_its_goal_and_is_off_by_default():
    robot = sim.make_robot("reach_jump", seed=0, cameras=(), render=False)
    obs = robot.get_observation(with_images=False)
    at_goal = ExpertPolicy(chunk_length=150).plan(obs.state, obs.environment_state, robot.instruction)[-1]
    expert = ExpertPolicy(chunk_length=10, lag_compensation_s=ARM_LAG_S)
    settled = expert.lag_compensated(at_goal.astype(float), obs.environment_state, robot.instruction, "reach_jump")
    assert np.abs(settled - at_goal).max() < 1e-3
    plain = ExpertPolicy(chunk_length=10)
    assert plain.lag_compensation_s == 0.0
    np.testing.assert_array_equal(plain.plan(obs.state, obs.environment_state, robot.instruction),
                                  ExpertPolicy(chunk_length=10, lag_compensation_s=0.0).plan(
                                      obs.state, obs.environment_state, robot.instruction))
    for bad in (-0.1, float("nan"), 2.0):
        with pytest.raises(ValueError, match="lag_compensation_s"):
            ExpertPolicy(lag_compensation_s=bad)
