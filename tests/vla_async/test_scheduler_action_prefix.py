"""The scheduler's committed action prefix (real-time chunking): the plan from exec_tick, d̂ rows committed."""

from __future__ import annotations

import numpy as np
import pytest

from vla_async.config import StrategyConfig
from vla_async.messages import ActionChunk
from vla_async.reference_specs import reference_robot_spec
from vla_async.scheduler import ActionScheduler

ROBOT = reference_robot_spec(image_size=(8, 8))
H = 20


def _run_until_second_request(preset: str, latency_ticks: int, **fields: object
                              ) -> tuple[ActionScheduler, object, np.ndarray]:
    """(scheduler, its second request, the first chunk as planned by tick: row i at tick i + its arrival)"""
    sched = ActionScheduler(StrategyConfig(preset=preset, **fields), ROBOT, H)
    state = np.zeros(14)
    first = sched.on_tick(0, state).request
    assert first is not None and first.action_prefix is None  # nothing planned yet: no prefix
    chunk = np.cumsum(np.full((H, 14), 0.01), axis=0)
    k = 0
    for k in range(1, latency_ticks + 1):
        sched.on_tick(k, state)
    sched.on_chunk(ActionChunk(first.request_id, first.exec_tick, chunk.astype(np.float32)), k_now=k + 1)
    second = sched.on_tick(k + 1, state).request
    assert second is not None
    start = k + 1  # the arm was held from the request to the arrival (nothing planned): the chunk starts there
    by_tick = np.concatenate([np.full((start, 14), np.nan), chunk])
    return sched, second, by_tick


@pytest.mark.parametrize("latency", [3, 6])
def test_rtc_prefix_is_the_plan_from_the_capture_tick_with_d_hat_rows_committed(latency):
    sched, req, chunk = _run_until_second_request("rtc", latency)
    k = req.tick
    assert req.exec_tick == k and req.rollforward_state is None
    d_hat = sched.delay.delay_ticks_ceil
    assert req.prefix_frozen == d_hat == latency + 1
    # the plan from k to the chunk's end: chunk rows k - 0 .. H-1 (aligned, no smoothing)
    np.testing.assert_allclose(req.action_prefix, chunk[k:], rtol=1e-6)


@pytest.mark.parametrize("prefix_rows,sent", [(3, 5), (8, 8)])
def test_prefix_rows_caps_the_plan_sent_but_never_below_the_committed_rows(prefix_rows, sent):
    sched, req, chunk = _run_until_second_request("rtc", 4, prefix_rows=prefix_rows)
    k, d_hat = req.tick, sched.delay.delay_ticks_ceil
    assert req.prefix_frozen == d_hat == 5
    np.testing.assert_allclose(req.action_prefix, chunk[k:k + sent], rtol=1e-6)


def test_vlash_rtc_prefix_starts_at_the_rolled_forward_exec_tick_with_nothing_committed():
    sched, req, chunk = _run_until_second_request("vlash_rtc", 4)
    assert req.exec_tick == req.tick + sched.delay.delay_ticks_ceil
    assert req.prefix_frozen == 0
    np.testing.assert_allclose(req.action_prefix, chunk[req.exec_tick:], rtol=1e-6)


@pytest.mark.parametrize("preset", ["vlash", "rail", "vlash_rail", "temporal_ensemble"])
def test_other_strategies_send_no_prefix(preset):
    _, req, _ = _run_until_second_request(preset, 3)
    assert req.action_prefix is None and req.prefix_frozen == 0


@pytest.mark.parametrize("latency", [3, 6])
def test_vlash_rtc_rail_commits_the_first_d_hat_rows_and_conditions_on_where_they_start(latency):
    """The composition (issue 16): the chunk from the capture tick, its first d̂ rows committed, the state the
    command at capture; with VLASH's `commanded` rollforward nothing would be committed (= vlash_rail_rf)."""
    sched, req, chunk = _run_until_second_request("vlash_rtc_rail", latency)
    k = req.tick
    d_hat = sched.delay.delay_ticks_ceil
    assert req.exec_tick == k and req.prefix_frozen == d_hat >= latency
    np.testing.assert_allclose(req.rollforward_state, sched.plan.rows().pos[sched.plan.rows().index(k)], atol=1e-9)
    assert len(req.action_prefix) >= d_hat
    _, rf, _ = _run_until_second_request("vlash_rtc", latency)
    assert rf.prefix_frozen == 0 and rf.exec_tick > rf.tick  # the VLASH rollforward: nothing committed
