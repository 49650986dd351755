"""The real-time client's tick log → EpisodeLog: each request's real exec tick, the chunk it arrived at,
the actions dropped as late and whether the scheduler accepted it come from the log, not a guess."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from robot_client.tick_log import TickLogWriter, TickRecord
from sim import so101
from sim.eval.realtime_engine import log_from_client_jsonl
from sim.kinematics import tool_position


def _record(k: int, *, request: tuple[int, int] | None = None, arrivals=(), source: int = -1) -> TickRecord:
    rid, exec_tick = request if request else (-1, -1)
    return TickRecord(tick=k, time_s=k / 30, lateness_ms=0.0, work_ms=0.1, missed=0, command=np.zeros(6),
                      state=np.zeros(6), source_request_id=source, observation_age_ticks=None, stalled=source < 0,
                      watchdog=False, delay_ticks=4.0, rollforward_error=None, request_id=rid,
                      chunks_arrived=len(arrivals), request_exec_tick=exec_tick, arrivals=tuple(arrivals))


def test_requests_carry_exec_tick_dropped_actions_and_acceptance(tmp_path: Path) -> None:
    records = [_record(0, request=(0, 5)), _record(1, request=(1, 7)), _record(2), _record(3),
               _record(4, arrivals=[(1, 0, False), (0, 2, True)], source=0), _record(5, source=0)]
    with TickLogWriter(tmp_path / "ticks.jsonl") as log:
        for r in records:
            log.write(r)
    robot = SimpleNamespace(spec=so101.robot_spec(30.0, cameras=()), tool_position_for=tool_position)
    meta = {"seed": 0, "engine": "realtime"}
    ep = log_from_client_jsonl(tmp_path / "ticks.jsonl", robot, meta, SimpleNamespace(success=False, events=[]))
    r0, r1 = ep.requests
    assert (r0.capture_tick, r0.exec_tick, r0.arrival_tick, r0.dropped_actions, r0.accepted) == (0, 5, 4, 2, True)
    # matched by request id, not arrival order: request 1's chunk arrived first and was rejected
    assert (r1.capture_tick, r1.exec_tick, r1.arrival_tick, r1.dropped_actions, r1.accepted) == (1, 7, 4, 0, False)
    assert r0.latency_s == 4 / 30 and ep.meta["engine"] == "realtime"
