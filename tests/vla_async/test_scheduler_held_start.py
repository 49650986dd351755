"""A chunk's rows advance only with the ticks the arm moved along a plan: ticks it was held (start-up, an underrun,
the watchdog) between the request and the arrival are not skipped. At start-up with a slow policy the first chunk
used to be placed at its capture tick and run from row d̂: the arm, still where the chunk starts, lunged d̂ rows
ahead (clipped by the safety layer, with the gripper running on schedule: the learned pick_place policy closed
its first grasp 2-3 cm short at 400 ms)."""

from __future__ import annotations

import numpy as np
import pytest
from sched_helpers import drive, make_robot

from vla_async.config.schema import SafetyConfig, strategy_config
from vla_async.messages import ActionChunk
from vla_async.scheduler import ActionScheduler

ROBOT = make_robot(dof=5, gripper=True)
H = 40


def _ramp(request, dim: int = 6) -> np.ndarray:
    """Row i is i ticks of a steady motion from the origin (the arm starts at rest there)."""
    return np.outer(np.arange(H) * 0.02, np.ones(dim))


@pytest.mark.parametrize("preset", ["aligned", "rail", "lag_rail", "vlash_rail", "rtc", "vlash"])
@pytest.mark.parametrize("latency", [1, 6, 12])
def test_the_first_chunk_starts_at_its_first_row_on_arrival(preset, latency):
    sched = ActionScheduler(strategy_config(preset), ROBOT, chunk_length=H)
    run = drive(sched, 3 * latency + 10, [latency], policy=_ramp)
    arrival, first = run.reports[0]
    assert first.request_id == 0 and first.accepted
    assert first.dropped_actions == 0
    assert all(o.source_request_id < 0 for o in run.outputs[:arrival])  # held until then
    out = run.outputs[arrival]
    assert out.source_request_id == 0
    # the arm's own position, no jump (the joints; rail presets average the gripper column over a few rows)
    np.testing.assert_allclose(out.planned[:5], _ramp(None)[0, :5], atol=1e-9)


def test_without_a_hold_the_rows_of_the_passed_ticks_are_dropped_as_before():
    sched = ActionScheduler(strategy_config("aligned", trigger="every_tick"), ROBOT, chunk_length=H)
    run = drive(sched, 80, [7], policy=_ramp)
    later = [(k, rep) for k, rep in run.reports[1:]]
    assert len(later) >= 5 and not any(o.stalled for o in run.outputs[run.reports[0][0]:])
    for k_now, rep in later:  # the plan ran throughout: every passed tick's row is dropped
        assert rep.dropped_actions == k_now - run.chunks[rep.request_id].start_tick == 7


def test_a_hold_after_the_request_delays_the_chunk_by_the_held_ticks_only():
    """Chunk 1 is requested at tick 10 while chunk 0 still runs; chunk 0 ends after tick 14 and the arm is held
    until chunk 1 arrives at 18: it drops the rows of ticks 10-14 (the arm moved along chunk 0) and no more."""
    sched = ActionScheduler(strategy_config("aligned", trigger="every_tick"), ROBOT, chunk_length=H)
    state = np.zeros(6)
    out = sched.on_tick(0, state)
    short = np.outer(np.arange(14) * 0.02, np.ones(6))  # 14 rows: the plan ends at tick 14 + the start-up shift
    sched.on_chunk(ActionChunk(out.request.request_id, out.request.exec_tick, short), k_now=1)
    second = None
    for k in range(1, 18):
        out = sched.on_tick(k, state)
        if out.request is not None and second is None and k == 10:
            second = out.request
        elif out.request is not None:
            sched.on_request_failed(out.request.request_id)  # only request 10 is answered
    assert second is not None and second.exec_tick == 10
    held = [k for k in range(10, 18) if not 1 <= k < 15]  # chunk 0 ran at ticks 1-14 (held at tick 0)
    report = sched.on_chunk(ActionChunk(second.request_id, second.exec_tick, _ramp(second)), k_now=18)
    assert report.accepted and report.dropped_actions == 8 - len(held) == 5
    np.testing.assert_allclose(sched.on_tick(18, state).planned, _ramp(second)[5], atol=1e-9)


def test_with_the_safety_layer_a_slow_first_chunk_is_followed_without_clipping():
    """The point of it on a robot: at 400 ms the first command of a 0.02 rad/tick chunk is its row 0, so the safety
    layer (max_step 0.05 rad) never has to clip; placed at the capture tick it would ask for a 0.24 rad jump."""
    safety = SafetyConfig(max_velocity=3.0, max_acceleration=40.0, max_step=0.05)
    sched = ActionScheduler(strategy_config("aligned"), ROBOT, chunk_length=H, safety=safety)
    run = drive(sched, 40, [12], policy=_ramp)
    moving = [o for o in run.outputs if o.source_request_id >= 0]
    assert moving and all(np.allclose(o.command[:5], o.planned[:5]) for o in moving)
