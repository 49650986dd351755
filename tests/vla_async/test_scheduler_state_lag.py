"""state_lag_ticks (the lag_rail preset): chunks planned from the measured state are placed by the servo lag."""

import numpy as np
import pytest
from sched_helpers import drive, make_robot

from vla_async.config.schema import strategy_config
from vla_async.messages import ActionChunk, Observation
from vla_async.policy_input import EXEC_OFFSET_KEY, policy_input
from vla_async.scheduler import ActionScheduler
from vla_async.specs import PolicySpec

ROBOT = make_robot(dof=5, gripper=True)
H = 30


def _sched(lag: int, **overrides) -> ActionScheduler:
    return ActionScheduler(strategy_config("lag_rail", state_lag_ticks=lag, **overrides), ROBOT, chunk_length=H)


@pytest.mark.parametrize("lag", [0, 1, 4])
def test_requests_condition_on_the_measured_state_and_start_lag_ticks_before_capture(lag):
    sched = _sched(lag)
    run = drive(sched, 60, [3])
    requests = [o.request for o in run.outputs if o.request is not None]
    assert len(requests) > 5
    for req in requests:
        assert req.rollforward_state is None  # the server uses the measured state of the observation
        assert req.exec_tick == req.tick - lag
    for k_now, rep in run.reports:  # rows for ticks before the arrival are dropped, the lag's included
        assert rep.dropped_actions == min(H, k_now - run.chunks[rep.request_id].start_tick)


def test_the_plan_follows_the_chunk_rows_for_the_lagged_ticks():
    """A chunk placed at tick − lag joins the plan at the row for the arrival tick (the policy's row i is for
    tick exec_tick + i), not at its row 0; with lag 0 it would start `lag` rows earlier in the chunk."""
    lag = 4
    sched = _sched(lag, smoother={"enabled": False}, fuser={"kind": "latest_only", "align": True})
    run = drive(sched, 40, [2])
    checked = 0
    for out in run.outputs:
        if out.source_request_id < 0:
            continue
        chunk = run.chunks[out.source_request_id]
        np.testing.assert_array_equal(out.command, chunk.actions[out.tick - chunk.start_tick].astype(float))
        checked += 1
    assert checked > 20


def test_state_lag_with_a_rollforward_is_a_config_error():
    for bad in ("commanded", "auto", "last_command"):
        with pytest.raises(ValueError, match="state_lag_ticks=4 .* needs rollforward: none"):
            strategy_config("lag_rail", rollforward=bad)
    assert strategy_config("vlash_rail").state_lag_ticks == 0  # other presets are unchanged


@pytest.mark.parametrize("lag", [2, 4])
def test_a_lag_placed_rtc_prefix_starts_with_the_commands_sent_for_the_lagged_ticks(lag):
    """rtc with state_lag_ticks: row i of the prefix is the command for tick exec_tick + i — those already sent
    (ticks k - lag .. k - 1), then the plan from k; the lagged rows and d̂ more are committed."""
    sched = ActionScheduler(strategy_config("rtc", state_lag_ticks=lag), ROBOT, chunk_length=H)
    sent: dict[int, np.ndarray] = {}
    state = np.zeros(6)
    chunk = np.cumsum(np.full((H + 10, 6), 0.01), axis=0).astype(np.float32)
    out = sched.on_tick(0, state)
    first, sent[0] = out.request, out.command
    assert first.exec_tick == -lag and first.action_prefix is None  # nothing sent or planned yet
    checked = 0
    for k in range(1, 30):
        out = sched.on_tick(k, state)
        sent[k] = out.command
        if k == 2:
            sched.on_chunk(ActionChunk(first.request_id, first.exec_tick, chunk[:H]), k_now=k)
        req = out.request
        if req is None:
            continue
        assert req.exec_tick == k - lag
        if req.action_prefix is not None:
            n = len(req.action_prefix)
            np.testing.assert_array_equal(req.action_prefix[:lag], np.array([sent[t] for t in range(k - lag, k)]))
            np.testing.assert_array_equal(req.action_prefix[lag:], sched.plan.positions(k, k + n - lag))
            assert req.prefix_frozen == min(n, lag + sched.delay.delay_ticks_ceil)
            checked += 1
        else:  # until the lagged ticks have all been sent and tick k is planned
            assert k - lag < 0 or k <= 2
        sched.on_chunk(ActionChunk(req.request_id, req.exec_tick, chunk[k % 5 : k % 5 + H]), k_now=k + 1)
    assert checked > 5


def test_a_chunk_placed_before_its_capture_tick_is_planned_for_the_capture_time():
    """A VLASH-trained policy is told exec_offset_s = 0 (never negative) for a lag-placed chunk."""
    spec = PolicySpec("p", ROBOT.state_names, ROBOT.action_names, H, fps=ROBOT.fps, extra={EXEC_OFFSET_KEY: True})
    obs = Observation(request_id=1, tick=10, exec_tick=6, state=np.zeros(6, np.float32))
    assert policy_input(obs, 30.0, policy=spec).exec_offset_s == 0.0
    ahead = Observation(request_id=2, tick=10, exec_tick=13, state=np.zeros(6, np.float32))
    assert policy_input(ahead, 30.0, policy=spec).exec_offset_s == pytest.approx(0.1)
