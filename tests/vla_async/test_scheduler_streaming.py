"""Streamed chunks in the scheduler: rows are fused as their parts arrive, in order; the plan never holds a row
that has not arrived (past them an underrun holds, and the watchdog stays armed until the final part); a bad part
drops the rest of its stream; requests ask for a stream only when the strategy and the policy's spec both say so."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vla_async.config import SafetyConfig, StrategyConfig
from vla_async.messages import ActionChunk
from vla_async.reference_specs import policy_spec_for, reference_robot_spec
from vla_async.scheduler import ActionScheduler
from vla_async.specs import STREAMING_KEY

ROBOT = reference_robot_spec(image_size=(8, 8))
H, D = 20, 14
FIRST = 6  # rows final after the first streamed step (clean_rows[1] >= first_rows 5)
STREAMING = dataclasses.replace(policy_spec_for(ROBOT, H, "p"),
                                extra={STREAMING_KEY: {"steps": 5, "clean_rows": [2, 6, 10, 15, 20], "first_rows": 5}})
CHUNK = (0.2 + 0.01 * np.arange(H)[:, None] + np.zeros(D)).astype(np.float32)  # row i = 0.2 + 0.01 i


def _sched(preset: str = "aligned", policy=STREAMING, **fields) -> ActionScheduler:
    strategy = StrategyConfig(preset=preset, streaming=True, **fields)
    return ActionScheduler(strategy, ROBOT, H, SafetyConfig(enabled=False, watchdog_timeout_s=1.0), policy)


def _part(req, lo: int, hi: int) -> ActionChunk:
    return ActionChunk(req.request_id, req.exec_tick, CHUNK[lo:hi], row_offset=lo, final=hi == H)


def _first_request(sched: ActionScheduler):
    req = sched.on_tick(0, np.zeros(D)).request
    assert req is not None and req.stream
    return req


@pytest.mark.parametrize("preset", ["aligned", "vlash_rail_stream"])
def test_the_plan_never_executes_rows_that_have_not_arrived(preset):
    sched = _sched(preset)
    req = _first_request(sched)
    for k in (1, 2):
        sched.on_tick(k, np.zeros(D))
    assert sched.on_chunk(_part(req, 0, FIRST), k_now=3).accepted
    start = req.exec_tick + 3  # the arm was held at ticks 0-2 (nothing planned): the rows start at the arrival
    assert sched.plan.end_tick == start + FIRST and sched.in_flight == 1
    for k in range(3, 30):
        out = sched.on_tick(k, np.zeros(D))
        plan = sched.plan
        assert all(plan.source_at(t) != req.request_id for t in range(start + FIRST, plan.end_tick))
        if k < start + FIRST:
            assert out.source_request_id == req.request_id and not out.stalled
        else:  # past the arrived rows: an underrun (the safety layer's hold), no plan row at all
            assert out.stalled and out.source_request_id == -1 and out.planned is None and out.request is None
    assert not out.watchdog
    # the rest never came: the watchdog (armed from the request tick until the final part) brings the arm to rest
    outs = [sched.on_tick(k, np.zeros(D)) for k in range(30, 30 + sched.watchdog_ticks)]
    assert any(o.watchdog for o in outs) and sched.stats.watchdog_events == 1


def test_parts_are_fused_in_order_and_equal_the_whole_chunk():
    streamed, whole = _sched(trigger="every_tick"), _sched(trigger="every_tick")
    req, req_whole = _first_request(streamed), _first_request(whole)
    for k in (1, 2):
        streamed.on_tick(k, np.zeros(D))
        whole.on_tick(k, np.zeros(D))
    streamed.on_chunk(_part(req, 0, FIRST), k_now=3)
    whole.on_chunk(ActionChunk(req_whole.request_id, req_whole.exec_tick, CHUNK), k_now=3)  # when the first rows came
    for k in (3, 4):
        streamed.on_tick(k, np.zeros(D))
        whole.on_tick(k, np.zeros(D))
    report = streamed.on_chunk(_part(req, FIRST, H), k_now=5)
    assert report.accepted and streamed.in_flight == 0
    assert (streamed.stats.chunks, streamed.stats.parts, streamed.stats.parts_rejected) == (1, 2, 0)
    a, b = streamed.plan.rows(), whole.plan.rows()
    start = req.exec_tick + 3  # held at ticks 0-2; the later parts are placed like the first
    assert a.end_tick == b.end_tick == start + H
    np.testing.assert_array_equal(a.pos[a.index(5):], b.pos[b.index(5):])
    np.testing.assert_array_equal(a.pos[a.index(5):], CHUNK[5 - start:])
    assert streamed.on_tick(5, np.zeros(D)).request is not None  # the slot is free once the final part is in


def test_a_gap_drops_the_stream_and_a_repeat_is_harmless():
    sched = _sched()
    req = _first_request(sched)
    sched.on_chunk(_part(req, 0, FIRST), k_now=1)
    assert not sched.on_chunk(_part(req, 0, FIRST), k_now=1).accepted  # a repeat (a resent request): nothing new
    assert sched.in_flight == 1 and sched.stats.parts_rejected == 0
    assert not sched.on_chunk(_part(req, FIRST + 2, H), k_now=2).accepted  # a gap: rows 6, 7 missing
    assert sched.in_flight == 0 and sched.stats.parts_rejected == 1
    assert not sched.on_chunk(_part(req, FIRST, H), k_now=3).accepted  # the stream is gone
    assert sched.plan.end_tick == req.exec_tick + 1 + FIRST  # held at tick 0: the rows start at the arrival


@pytest.mark.parametrize(("lo", "hi", "final"), [(3, 6, False), (0, H, False), (1, H + 1, True), (2, H, True)])
def test_a_part_with_a_wrong_range_or_flag_is_rejected(lo, hi, final):
    sched = _sched()
    req = _first_request(sched)
    rows = np.zeros((hi - lo, D), np.float32)
    assert not sched.on_chunk(ActionChunk(req.request_id, req.exec_tick, rows, row_offset=lo, final=final),
                              k_now=1).accepted
    assert sched.plan.end_tick <= 1 and sched.in_flight == 0


def test_a_request_asks_for_a_stream_only_when_strategy_and_spec_both_say_so():
    plain = policy_spec_for(ROBOT, H, "p")
    assert _first_request(_sched("vlash_rail_stream")).stream
    assert not _sched("vlash_rail_stream", plain).on_tick(0, np.zeros(D)).request.stream
    no_option = ActionScheduler(StrategyConfig(preset="vlash_rail"), ROBOT, H, None, STREAMING)
    assert not no_option.on_tick(0, np.zeros(D)).request.stream
