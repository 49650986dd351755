"""The run summary: counts and percentiles from tick records, identical from memory and from the log."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from robot_client.summary import RunStats, summarize_records
from robot_client.tick_log import TickLogWriter, TickRecord, read_tick_log


def run_records(fps: float = 50.0) -> list[TickRecord]:
    """A run: 5 stalled ticks, chunk 0 arrives at tick 5, a 2-tick overrun at 20, one stall at 30."""
    records = []
    k = 0
    while k < 40:
        missed = 2 if k == 20 else 0
        k += missed
        arrived = 1 if k in (5, 15) else 0
        source = -1 if k < 5 or k == 30 else (0 if k < 15 else 1)
        records.append(TickRecord(
            tick=k, time_s=k / fps, lateness_ms=float(k % 3) * 0.1, work_ms=0.2, missed=missed,
            command=np.zeros(6), state=np.zeros(6), source_request_id=source,
            observation_age_ticks=None if source < 0 else k - (0 if source == 0 else 10),
            stalled=source < 0, watchdog=False, delay_ticks=3.0,
            rollforward_error=0.5 if k in (8, 18) else None, request_id=0 if k == 0 else (1 if k == 10 else -1),
            chunks_arrived=arrived,
        ))
        k += 1
    return records


def test_counts_and_rates() -> None:
    stats = RunStats(50.0)
    for r in run_records():
        stats.add(r)
    s = stats.finish(errors=1, transport={"sent": 2})
    assert s.ticks == 38 and s.missed_ticks == 2
    assert s.achieved_fps == pytest.approx(38 / (40 / 50.0))
    assert s.first_chunk_tick == 5
    assert s.stalls == 6 and s.stalls_after_first_chunk == 1
    assert s.requests == 2 and s.chunks_received == 2 and s.chunks_executed == 2
    assert s.lateness_max_ms == pytest.approx(0.2)
    assert s.rollforward_error_mean == pytest.approx(0.5)
    assert s.errors == 1 and s.transport == {"sent": 2}
    assert s.gap_p95_ms == pytest.approx(20.0)
    table = s.format_table()
    assert "38 ticks" in table and "1 after the first chunk" in table


def test_request_latency_quantiles_and_stall_and_watchdog_events() -> None:
    stats = RunStats(50.0)
    records = run_records()
    for r in records:  # the watchdog fires twice: ticks 10-11 and 25
        stats.add(dataclasses.replace(r, watchdog=r.tick in (10, 11, 25)))
    for ms in range(1, 101):
        stats.add_request_latency(ms / 1e3)
    s = stats.finish()
    assert s.stall_events == 2 and s.stalls == 6  # ticks 0-4, then tick 30
    assert s.watchdog_events == 2 and s.watchdog_ticks == 3
    assert s.request_latency_p50_ms == pytest.approx(50.5)
    assert s.request_latency_p95_ms == pytest.approx(95.05) and s.request_latency_p99_ms == pytest.approx(99.01)
    table = s.format_table()
    assert "p99 99.0 ms" in table and "in 2 stalls" in table and "3 ticks in 2 events" in table
    assert math.isnan(RunStats(50.0).finish().request_latency_p99_ms)


def test_summary_from_the_log_file_matches(tmp_path: Path) -> None:
    records = run_records()
    stats = RunStats(50.0)
    with TickLogWriter(tmp_path / "t.jsonl") as log:
        for r in records:
            stats.add(r)
            log.write(r)
    direct = stats.finish().to_dict()
    from_file = summarize_records(read_tick_log(tmp_path / "t.jsonl"), 50.0).to_dict()
    assert direct.keys() == from_file.keys()
    for key, value in direct.items():
        if isinstance(value, float):
            assert from_file[key] == pytest.approx(value, abs=1e-6), key
        else:
            assert from_file[key] == value, key


def test_empty_run_has_no_numbers_invented() -> None:
    s = RunStats(30.0).finish()
    assert s.ticks == 0 and s.achieved_fps == 0.0
    assert math.isnan(s.lateness_p99_ms)
    assert s.to_dict()["lateness_p99_ms"] is None


def test_stalls_are_counted_as_the_report_counts_them() -> None:
    """A chunk that arrives but is not executed yet (tick 5) leaves the next held ticks in start-up: the live
    status line and the summary count stalls from the first tick executed from a chunk, as metrics.py does."""
    from sim.eval.metrics import stall_stats

    sources = [-1] * 7 + [0] * 5 + [-1] * 2 + [1] * 4
    stats = RunStats(30.0)
    for k, source in enumerate(sources):
        stats.add(TickRecord(
            tick=k, time_s=k / 30, lateness_ms=0.0, work_ms=0.1, missed=0, command=np.zeros(6), state=np.zeros(6),
            source_request_id=source, observation_age_ticks=None, stalled=source < 0, watchdog=False,
            delay_ticks=3.0, rollforward_error=None, request_id=-1, chunks_arrived=int(k == 5)))
    report = stall_stats(np.array([s < 0 for s in sources]), np.array(sources))
    assert stats.stalls_after_first == report["stall_ticks"] == 2
    assert stats.stalls - stats.stalls_after_first == report["startup_ticks"] == 7
