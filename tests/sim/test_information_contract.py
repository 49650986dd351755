"""The information contract (docs/metrics.md): every strategy's requests carry the same observation fields,
the offset only when the policy declares it, and the expert infers motion from frames, never from the task."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.eval import virtual_engine
from sim.eval.grid import EvalConfig, resolve_strategy
from sim.experts import ExpertPolicy, target_motion
from sim.tasks.layout import TARGET_POS, TARGET_PREV, TARGET_PREV2
from vla_async.config import InjectedLatencyConfig, strategy_names
from vla_async.messages import Observation
from vla_async.policy_input import policy_input

TASKS = ("reach_jump", "track", "pick_place")


def _request_fields(monkeypatch, task: str, strategy: str, latency_ms: float, exec_offset: bool) -> set:
    """The (field, shape) pairs of every PolicyInput the expert received in a short episode."""
    seen: set = set()
    real = ExpertPolicy.plan

    def spy(self, state, environment_state, instruction, exec_offset_s=0.0):
        seen.add(("state", np.shape(state)))
        seen.add(("environment_state", np.shape(environment_state)))
        seen.add(("instruction", instruction))
        seen.add(("exec_offset_sent", exec_offset_s != 0.0))
        return real(self, state, environment_state, instruction, exec_offset_s)

    monkeypatch.setattr(ExpertPolicy, "plan", spy)
    cfg = EvalConfig(strategies=[strategy])
    lat = InjectedLatencyConfig(distribution="constant", mean_ms=latency_ms, jitter_ms=0.0)
    virtual_engine.run_virtual_episode(task, resolve_strategy(cfg, strategy), lat, 1000, max_duration_s=1.5,
                                       policy_exec_offset=exec_offset)
    return seen


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("latency_ms", [100.0, 300.0])
def test_every_strategy_sends_the_same_fields(monkeypatch, task, latency_ms):
    fields = {name: _request_fields(monkeypatch, task, name, latency_ms, False) for name in strategy_names()}
    first = next(iter(fields.values()))
    assert ("exec_offset_sent", True) not in first
    for name, f in fields.items():
        assert f == first, (name, f ^ first)


def test_offset_follows_the_policy_not_the_strategy(monkeypatch):
    """Declared by the policy, the offset reaches it from a rollforward strategy; never when undeclared."""
    assert ("exec_offset_sent", True) in _request_fields(monkeypatch, "track", "vlash", 200.0, True)
    assert ("exec_offset_sent", True) not in _request_fields(monkeypatch, "track", "vlash", 200.0, False)


def test_policy_input_offset_only_for_declaring_policies():
    obs = Observation(request_id=0, tick=10, exec_tick=16, state=np.zeros(6, np.float32), task="t")
    assert policy_input(obs, 30.0).exec_offset_s == 0.0
    assert policy_input(obs, 30.0, policy=ExpertPolicy().spec()).exec_offset_s == 0.0
    assert policy_input(obs, 30.0, policy=ExpertPolicy(exec_offset=True).spec()).exec_offset_s == pytest.approx(0.2)


def test_track_motion_is_inferred_from_frames_only():
    """environment_state holds the last three target frames; the expert's finite differences match the
    path's true motion, and nothing in the vector is a velocity (a still target shows zero motion)."""
    robot = sim.make_robot("track", seed=1000, cameras=(), render=False)
    robot.reset(1000)
    for _ in range(20):
        robot.step_tick()
    env = robot.get_observation(with_images=False).environment_state.astype(np.float64)
    task = robot._world.task
    t, dt = robot.time_s, 1 / 30
    np.testing.assert_allclose(env[TARGET_POS], task.path(t), atol=1e-6)
    np.testing.assert_allclose(env[TARGET_PREV], task.path(t - dt), atol=1e-6)
    np.testing.assert_allclose(env[TARGET_PREV2], task.path(t - 2 * dt), atol=1e-6)
    v, _ = target_motion(env, dt)
    true_v = (task.path(t + 1e-4) - task.path(t - 1e-4)) / 2e-4
    assert np.linalg.norm(v - true_v) < 0.1 * np.linalg.norm(true_v) + 1e-3
    still = env.copy()
    still[TARGET_PREV] = still[TARGET_PREV2] = still[TARGET_POS]
    assert np.allclose(target_motion(still, dt), 0.0)


@pytest.mark.parametrize("task", ["pick_place_push", "reach_dodge"])
def test_feedback_tasks_change_the_scene_mid_motion_and_look_like_their_base_task(task):
    """The push / dodge happens during the episode (an event after start-up) and the policy is told the base task."""
    from sim.tasks.layout import POLICY_TASKS, TASK_ONE_HOT

    cfg = EvalConfig(strategies=["vlash_rail"])
    lat = InjectedLatencyConfig(distribution="constant", mean_ms=100.0, jitter_ms=0.0)
    log = virtual_engine.run_virtual_episode(task, resolve_strategy(cfg, "vlash_rail"), lat, 1000, max_duration_s=8.0)
    kinds = {"pick_place_push": "cube_pushed", "reach_dodge": "target_jump"}
    assert any(ev.kind == kinds[task] and ev.time_s > 0.3 for ev in log.events)
    robot = sim.make_robot(task, seed=1000, cameras=(), render=False)
    env = robot.get_observation(with_images=False).environment_state
    base = {"pick_place_push": "pick_place", "reach_dodge": "reach_jump"}[task]
    assert POLICY_TASKS[int(np.argmax(env[TASK_ONE_HOT]))] == base


def test_track_sweep_motion_is_a_function_of_where_the_target_is():
    """track_sweep's target circles one way at a constant angular speed: two episodes whose targets pass the
    same place move the same way there (what lets a one-frame policy aim ahead), and the policy is told `track`."""
    from sim.tasks import make_task
    from sim.tasks.layout import POLICY_TASKS, TASK_ONE_HOT

    a, b = make_task("track_sweep"), make_task("track_sweep")
    a._p, b._p = np.array([-0.9, 0.22, 0.12]), np.array([-0.5, 0.22, 0.12])
    # b starts where a is at t = 0.4 / OMEGA: from then on they coincide, velocity included
    shift = 0.4 / a.OMEGA
    for t in (0.0, 0.5, 1.7):
        np.testing.assert_allclose(a.path(t + shift), b.path(t), atol=1e-12)
        np.testing.assert_allclose(a.target_velocity(t + shift), b.target_velocity(t), atol=1e-6)
    speed = np.linalg.norm(a.target_velocity(1.0))
    assert speed == pytest.approx(a.OMEGA * 0.22, rel=1e-6)
    pans = [np.arctan2(*a.path(t)[1::-1]) for t in np.linspace(0, 3.5, 8)]
    assert np.all(np.diff(pans) > 0)  # one way only: no reversals
    robot = sim.make_robot("track_sweep", seed=1000, cameras=(), render=False)
    env = robot.get_observation(with_images=False).environment_state
    assert POLICY_TASKS[int(np.argmax(env[TASK_ONE_HOT]))] == "track"
