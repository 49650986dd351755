"""Each metric against values computed by hand on small synthetic trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.eval.episode_log import EpisodeRecorder, EventRecord, RequestRecord
from sim.eval.metrics import (
    aggregate,
    command_steps,
    episode_metrics,
    junction_jumps,
    junction_ticks,
    reaction_latency_s,
    rms_jerk,
    staleness_ticks,
    stall_stats,
    third_differences,
    time_to_hit_s,
    ttfa_ticks,
    wilson_interval,
)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-3)
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0 and hi == pytest.approx(0.4345, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_rms_jerk_of_cubic_is_its_constant_third_derivative():
    fps = 10.0
    t = np.arange(20) / fps
    cmd = np.stack([t**3, np.zeros_like(t), 5 * t**3], axis=1)  # jerk 6 and (masked) 30
    mask = np.array([True, True, False])
    # third difference of t^3 sampled at dt is exactly 6 dt^3 -> jerk 6; second joint 0
    assert rms_jerk(cmd, fps, mask) == pytest.approx(math.sqrt((36 + 0) / 2))
    assert rms_jerk(cmd[:3], fps, mask) == 0.0
    assert rms_jerk(np.outer(t, [1, 1, 1]), fps) == pytest.approx(0.0, abs=1e-9)


def test_junctions_between_chunks_across_holds():
    src = np.array([-1, -1, 0, 0, 0, 1, 1, -1, 1, 2])
    assert junction_ticks(src).tolist() == [5, 9]
    assert junction_ticks(np.array([0, 0, -1, -1, 1])).tolist() == [4]  # after a stall: from the held pose


def test_junction_jumps_hand_computed():
    fps = 2.0
    cmd = np.array([[0.0, 9], [0.0, 9], [0.0, 9], [1.0, 9], [1.5, 0], [2.0, 0]])  # gripper col masked out
    src = np.array([0, 0, 0, 1, 1, 1])
    j = junction_jumps(cmd, src, fps, np.array([True, False]))
    assert j["dp"].tolist() == [1.0]
    assert j["dv"].tolist() == [pytest.approx(1.0 * fps)]  # p3 - 2p2 + p1 = 1
    assert j["da"].tolist() == [pytest.approx(1.0 * fps**2)]  # p3 - 3p2 + 3p1 - p0 = 1
    assert command_steps(cmd, np.array([True, False])).tolist() == [0.0, 0.0, 1.0, 0.5, 0.5]
    assert j["disc"].tolist() == [pytest.approx(1.0)]  # |p3 - (3p2 - 3p1 + p0)| = 1 (units)


def test_third_difference_ignores_smooth_speed_but_sees_a_switch():
    fast = np.outer(0.01 * np.arange(8) ** 2, [1.0])  # constant acceleration: Δ³p = 0, however fast
    assert np.isnan(third_differences(fast)[:3]).all()
    np.testing.assert_allclose(third_differences(fast)[3:], 0.0, atol=1e-12)
    kinked = np.array([[0.0], [0.0], [0.0], [0.0], [0.1], [0.2]])  # starts moving at tick 4
    # tick 4: 0.1 - (0 - 0 + 0) = 0.1; tick 5: 0.2 - 3*0.1 + 0 - 0 = -0.1 -> 0.1
    np.testing.assert_allclose(third_differences(kinked)[3:], [0.0, 0.1, 0.1])
    src = np.array([0, 0, 0, 0, 1, 1])
    jumps = junction_jumps(kinked, src, 10.0)
    assert jumps["disc"].tolist() == [pytest.approx(0.1)] and jumps["dp"].tolist() == [pytest.approx(0.1)]
    # the same kink on a fast smooth ramp: |Δp| grows with speed, the discontinuity does not
    ramp = np.outer(np.arange(6) * 0.5, [1.0]) + kinked
    fast_jumps = junction_jumps(ramp, src, 10.0)
    assert fast_jumps["dp"].tolist() == [pytest.approx(0.6)] and fast_jumps["disc"].tolist() == [pytest.approx(0.1)]


def test_stalls_exclude_startup_and_count_runs():
    stalled = np.array([1, 1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    src = np.array([-1, -1, 0, -1, -1, 0, 1, -1, 1])
    assert stall_stats(stalled, src) == {"stall_ticks": 3, "stall_runs": 2, "startup_ticks": 2}
    assert stall_stats(np.array([True, True]), np.array([-1, -1]))["stall_ticks"] == 0


def test_staleness_and_ttfa():
    ticks = np.arange(8)
    src = np.array([-1, -1, 0, 0, 0, 1, 1, 1])
    reqs = [RequestRecord(0, capture_tick=0, exec_tick=0), RequestRecord(1, capture_tick=3, exec_tick=5),
            RequestRecord(2, capture_tick=6, exec_tick=8)]
    assert staleness_ticks(ticks, src, {0: 0, 1: 3, 2: 6}).tolist() == [2, 3, 4, 2, 3, 4]
    assert ttfa_ticks(ticks, src, reqs) == {0: 2, 1: 2}  # request 2 never executed


def _approach(n: int, start: int, step: float) -> np.ndarray:
    """Commanded tool on the x axis: still until `start`, then moving +x by `step` per tick."""
    x = np.array([0.0 if k < start else (k - start + 1) * step for k in range(n)])
    return np.stack([x, np.zeros(n), np.zeros(n)], axis=1)


def test_reaction_latency_thresholds():
    fps = 10.0
    ticks = np.arange(30)
    tool = _approach(30, start=8, step=0.004)  # 4 mm/tick = 4 cm/s toward target at x=1
    ev = EventRecord(time_s=0.25, kind="target_jump", target=(1.0, 0.0, 0.0))  # first tick able to see it: 3
    # closes 1 cm after 3 ticks of motion (tick 10), speed 0.04 m/s >= 0.03
    assert reaction_latency_s(ticks, tool, ev, fps, 0.01, 0.03) == pytest.approx(1.0 - 0.25)
    assert reaction_latency_s(ticks, tool, ev, fps, 0.01, 0.05) is None  # never fast enough
    assert reaction_latency_s(ticks, tool, ev, fps, 0.01, 0.03, until_tick=9) is None
    away = EventRecord(time_s=0.25, kind="target_jump", target=(-1.0, 0.0, 0.0))
    assert reaction_latency_s(ticks, tool, away, fps, 0.01, 0.0) is None


def test_time_to_hit():
    fps = 10.0
    ticks = np.arange(30)
    tool = _approach(30, start=0, step=0.01)
    ev = EventRecord(time_s=0.05, kind="target_jump", target=(0.2, 0.0, 0.0))
    # x(k) = (k+1)*0.01 -> within 0.025 of 0.2 from x=0.18, k=17
    assert time_to_hit_s(ticks, tool, ev, fps, 0.025) == pytest.approx(1.7 - 0.05)
    assert time_to_hit_s(ticks, tool, ev, fps, 0.025, until_tick=10) is None


def _log(success: bool, completion: float | None):
    rec = EpisodeRecorder({"task": "t"}, 10.0, np.array([True, False]))
    for k in range(6):
        rec.tick(tick=k, command=[0.1 * k, 0], state=[0.1 * k, 0], stalled=k in (0, 4),
                 source_request_id=-1 if k in (0, 4) else (0 if k < 3 else 1), rollforward_error=0.5 if k == 3 else None)
    rec.request(0, 0, 0)
    rec.request(1, 2, 3).latency_s = 0.1
    return rec.finish(success, completion)


def test_episode_metrics_and_aggregate(tmp_path):
    log = _log(True, 0.6)
    m = episode_metrics(log)
    assert m["stall_ticks"] == 1 and m["startup_ticks"] == 1 and m["startup_s"] == pytest.approx(0.1)
    assert m["rollforward_error"] == [0.5]
    assert m["staleness_s"] == pytest.approx([0.1, 0.2, 0.1, 0.3])
    assert m["latency_s"] == [0.1]
    path = tmp_path / "ep.jsonl"
    log.save_jsonl(path)
    again = episode_metrics(type(log).load_jsonl(path))
    assert again == m
    row = aggregate([m, episode_metrics(_log(False, None))])
    assert row["success_rate"] == 0.5 and row["completion_time_s"] == pytest.approx(0.6)
    assert row["throughput_per_min"] == pytest.approx(60 * 1 / 1.2)
    assert row["success_ci95"] == list(wilson_interval(1, 2))


def test_hit_fraction_is_the_tasks_own_count_pooled_over_episodes(tmp_path):
    """reach_jump reports hits and judged targets; the row pools them (3 + 1 of 4 + 2), other tasks get None."""
    logs = []
    for hits, targets in ((3.0, 4.0), (1.0, 2.0)):
        log = _log(True, 0.6)
        log.task_metrics = {"hits": hits, "targets": targets, "mean_time_to_hit_s": 0.5}
        logs.append(log)
    path = tmp_path / "ep.jsonl"
    logs[1].save_jsonl(path)
    assert type(logs[1]).load_jsonl(path).task_metrics["hits"] == 1.0
    row = aggregate([episode_metrics(log) for log in logs])
    assert row["hit_fraction"] == pytest.approx(4 / 6)
    assert aggregate([episode_metrics(_log(True, 0.6))])["hit_fraction"] is None


def test_tracking_error_is_the_tasks_own_mean_averaged_over_episodes():
    """track reports its mean tool-to-target distance; the row averages episodes that have one (NaN, e.g. an
    episode shorter than the grace period, is left out), other tasks get None."""
    logs = []
    for err in (0.01, 0.03, float("nan")):
        log = _log(True, 0.6)
        log.task_metrics = {"score": 0.9, "mean_error_m": err}
        logs.append(log)
    eps = [episode_metrics(log) for log in logs]
    assert [ep["track_error_m"] for ep in eps[:2]] == [0.01, 0.03] and eps[2]["track_error_m"] is None
    assert aggregate(eps)["track_error_m"] == pytest.approx(0.02)
    assert aggregate([episode_metrics(_log(True, 0.6))])["track_error_m"] is None


def test_typical_step_is_the_p95_of_moving_steps():
    rec = EpisodeRecorder({}, 10.0, np.array([True]))
    pos = np.cumsum([0.0, 0, 0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.05, 0.05, 0.05, 0.05])  # 9 moving steps
    for k, p in enumerate(pos):
        rec.tick(tick=k, command=[p], state=[p], source_request_id=0)
    row = aggregate([episode_metrics(rec.finish(True, 1.0))])
    moving = [0.01, 0.02, 0.03, 0.04, 0.05, 0.05, 0.05, 0.05, 0.05]  # the stopped ticks are left out
    assert row["typical_step"] == pytest.approx(np.percentile(moving, 95))
    assert row["typical_step_p50"] == pytest.approx(0.05)
    # Δ³p while moving (ticks 3..11): 0.01, 0, -0.01(->0.01), 0, 0, -0.01(->0.01), 0, 0, 0
    assert row["typical_third_diff"] == pytest.approx(np.percentile([0.01, 0, 0.01, 0, 0, 0.01, 0, 0, 0], 95))


def test_reversal_lag_uses_pan_direction_of_target():
    from sim.eval.metrics import reversal_lag_s

    fps = 10.0
    n = 20
    ticks = np.arange(n)
    pan_t = np.where(ticks < 5, 0.1 * ticks, 0.5 - 0.1 * (ticks - 5))  # target reverses at tick 5
    pan_c = np.where(ticks < 8, 0.1 * ticks, 0.8 - 0.1 * (ticks - 8))  # command reverses at tick 8
    target = np.stack([np.cos(pan_t), np.sin(pan_t), np.zeros(n)], axis=1)
    cmd = np.stack([np.cos(pan_c), np.sin(pan_c), np.zeros(n)], axis=1)
    ev = EventRecord(0.5, "direction_change", tuple(target[5]))
    assert reversal_lag_s(ticks, cmd, target, ev, fps) == pytest.approx(0.9 - 0.5)  # first tick moving back: 9
    assert reversal_lag_s(ticks, cmd, np.full((n, 3), np.nan), ev, fps) is None
