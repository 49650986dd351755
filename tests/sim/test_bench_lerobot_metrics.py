"""`vla-async bench lerobot`'s numbers from a robot's episode log (pure; the runs themselves are in the LeRobot lane,
tests/lerobot/test_bench_lerobot.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sim.lerobot_bench.compare import our_tick_log, seeds_from
from sim.lerobot_bench.metrics import Row, command_grid, episode_numbers, markdown_table

FPS = 30.0
NAMES = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]
SCALE = [math.pi / 180] * 5 + [0.01]


def log_from(times: np.ndarray, values: np.ndarray, **extra: object) -> dict:
    cmds = [[float(t), float(t), *map(float, v)] for t, v in zip(times, values, strict=True)]
    base = {"fps": FPS, "episode_s": 8.0, "complete": True, "sim_s": 8.0, "joint_names": NAMES,
            "to_policy_scale": SCALE, "reads": 10, "success": True, "progress": 0.75,
            "metrics": {"targets": 4.0, "hits": 3.0, "hit_fraction": 0.75, "mean_time_to_hit_s": 0.5},
            "commands": cmds}
    return {**base, **extra}


def ramp(n: int, jitter_s: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n commands at 30 Hz (optionally jittered), every joint moving at a constant 30 deg/s."""
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    times = k / FPS + rng.uniform(-jitter_s, jitter_s, n)
    return times, np.repeat((k * 1.0)[:, None], 6, axis=1)


def test_steady_loop_has_no_stalls_no_jerk_and_its_rate() -> None:
    times, values = ramp(240, jitter_s=0.004)
    ep = episode_numbers(log_from(times, values))
    assert ep.commands == 240 and ep.empty_periods == 0 and ep.hold_ticks is None
    assert ep.rate_hz == pytest.approx(30.0, rel=0.01)
    assert ep.rms_jerk == pytest.approx(0.0, abs=1e-6)  # constant velocity on the grid despite the jitter
    assert np.median(ep.gaps_ms) == pytest.approx(1000 / FPS, abs=5)
    assert ep.success and ep.hit_fraction == 0.75 and ep.mean_time_to_hit_s == 0.5


def test_a_queue_underrun_is_counted_held_and_jerky() -> None:
    times, values = ramp(240)
    gap = (times < 2.0) | (times >= 2.5)  # 15 periods with no command, then the arm's target jumps
    ep = episode_numbers(log_from(times[gap], values[gap]))
    assert ep.empty_periods == 15
    assert ep.rms_jerk > 100.0
    assert max(ep.gaps_ms) == pytest.approx(533.3, abs=1)
    assert ep.rate_hz < 29.0


def test_two_commands_in_a_period_keep_the_last_and_holds_are_reported() -> None:
    times = np.array([0.0, 1 / FPS, 1.4 / FPS, 2 / FPS])
    values = np.array([[0.0] * 6, [1.0] * 6, [2.0] * 6, [3.0] * 6])
    grid, held = command_grid(times, values, FPS)
    assert held == 0 and grid[:, 0].tolist() == [0.0, 2.0, 3.0]
    assert episode_numbers(log_from(times, values), hold_ticks=7).hold_ticks == 7


def test_gripper_steps_are_not_jerk() -> None:
    times, values = ramp(60)
    values[:, :5] = 0.0
    values[30:, 5] = 100.0  # the gripper snaps open: stepwise, excluded like the eval does
    assert episode_numbers(log_from(times, values)).rms_jerk == 0.0


def test_table_says_how_many_episodes_succeeded_and_which_were_cut_short() -> None:
    times, values = ramp(100)
    ok = episode_numbers(log_from(times, values))
    short = episode_numbers(log_from(times, values, complete=False, success=False,
                                     metrics={"hit_fraction": 0.25, "mean_time_to_hit_s": None}))
    table = markdown_table([Row("lerobot", 200.0, [ok, short])])
    assert "| lerobot | 200 | 1/2 (1 cut short) | 0.50 | 500 | 0 | 0.0 | – |" in table
    held = episode_numbers(log_from(times, values), hold_ticks=3)
    assert "| ours | 0 | 2/2 | 0.75 | 500 | 0 | 0.0 | 3.0 |" in markdown_table([Row("ours", 0.0, [ok, held])])


def test_our_tick_log_gives_the_first_planned_tick_and_the_holds_after_it(tmp_path) -> None:
    path = tmp_path / "ticks.jsonl"
    rows = [{"time_s": t / FPS, "stalled": t in (1, 2, 13, 14, 300), "source_request_id": -1 if t < 10 else 0}
            for t in range(310)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert our_tick_log(path, episode_s=8.0) == (pytest.approx(10 / FPS), 2)  # start-up holds and t > 8 s left out
    assert our_tick_log(tmp_path / "missing.jsonl", 8.0) == (None, 0)


def test_commands_before_the_first_planned_action_are_not_counted() -> None:
    times, values = ramp(240)
    values[:30] = 0.0  # a hold for 1 s, then the ramp starts (as our client holds until its first chunk)
    ep = episode_numbers(log_from(times, values), start_s=30 / FPS - 0.5 / FPS)
    assert ep.commands == 210 and ep.first_action_s == pytest.approx(1.0)
    assert ep.rms_jerk == pytest.approx(0.0, abs=1e-6)
    assert episode_numbers(log_from(times, values)).rms_jerk > 0  # the hold → ramp kink, when counted


def test_seeds_from() -> None:
    assert seeds_from("1000-1002,1005") == [1000, 1001, 1002, 1005]
