"""The end-of-run summary: rate, lateness, stalls, staleness, chunk traffic — from the tick records.

`RunStats` accumulates a few scalars per tick (cheap, on the control thread); `finish` turns them
into a frozen `RunSummary` with a readable table. `summarize_records` does the same from a
JSONL log read back from disk, so a log file alone is enough to reproduce the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from robot_client.tick_log import TickRecord


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


@dataclass(frozen=True)
class RunSummary:
    """What a run did. Times in ms unless named otherwise; NaN when there was nothing to measure."""

    target_fps: float
    duration_s: float
    ticks: int
    achieved_fps: float
    missed_ticks: int
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    gap_p95_ms: float  # time between consecutive commands
    work_p50_ms: float  # client work per tick: wake-up to command sent (and observation submitted)
    work_p99_ms: float
    requests: int
    chunks_received: int
    chunks_executed: int  # distinct chunks that produced at least one command
    errors: int
    first_chunk_tick: int | None
    stalls: int
    stall_time_s: float
    stalls_after_first_chunk: int  # after the first tick executed from a chunk (the report's "stalls")
    watchdog_ticks: int
    observation_age_p50_ticks: float
    observation_age_p95_ticks: float
    final_delay_ticks: float
    rollforward_error_mean: float
    rollforward_error_p95: float
    request_latency_p50_ms: float = math.nan  # capture of an observation → its chunk received
    request_latency_p95_ms: float = math.nan
    request_latency_p99_ms: float = math.nan  # keep network.request_timeout_s above this (docs/metrics.md)
    stall_events: int = 0  # runs of consecutive stalled ticks
    watchdog_events: int = 0  # times the watchdog started bringing the arm to rest
    transport: Mapping[str, int] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}

    def format_table(self) -> str:
        rows = [
            ("rate", f"{self.achieved_fps:.2f} Hz of {self.target_fps:g} Hz target, {self.ticks} ticks in {self.duration_s:.2f} s"),
            ("missed ticks", f"{self.missed_ticks}"),
            ("tick lateness", f"p50 {self.lateness_p50_ms:.3f} ms  p99 {self.lateness_p99_ms:.3f} ms  max {self.lateness_max_ms:.3f} ms"),
            ("command gap p95", f"{self.gap_p95_ms:.2f} ms"),
            ("client work / tick", f"p50 {self.work_p50_ms:.3f} ms  p99 {self.work_p99_ms:.3f} ms"),
            ("requests / chunks", f"{self.requests} sent, {self.chunks_received} received, {self.chunks_executed} executed, {self.errors} errors"),
            ("first chunk at tick", f"{self.first_chunk_tick}"),
            ("request latency", f"p50 {self.request_latency_p50_ms:.1f} ms  p95 {self.request_latency_p95_ms:.1f} ms  "
                                f"p99 {self.request_latency_p99_ms:.1f} ms"),
            ("stalls", f"{self.stalls} ticks ({self.stall_time_s:.2f} s) in {self.stall_events} stalls, "
                       f"{self.stalls_after_first_chunk} after the first chunk"),
            ("watchdog", f"{self.watchdog_ticks} ticks in {self.watchdog_events} events"),
            ("observation age", f"p50 {self.observation_age_p50_ticks:.1f}  p95 {self.observation_age_p95_ticks:.1f} ticks"),
            ("delay estimate d̂", f"{self.final_delay_ticks:.2f} ticks (last)"),
            ("rollforward error", f"mean {self.rollforward_error_mean:.4f}  p95 {self.rollforward_error_p95:.4f}"),
        ]
        if self.transport:
            rows.append(("transport", ", ".join(f"{k}={v}" for k, v in self.transport.items())))
        rows += [(str(k), str(v)) for k, v in self.extra.items()]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


class RunStats:
    """Accumulates per-tick scalars; `finish` builds the RunSummary."""

    def __init__(self, fps: float) -> None:
        self.fps = float(fps)
        self.ticks = 0
        self.missed = 0
        self.lateness_ms: list[float] = []
        self.work_ms: list[float] = []
        self.times_s: list[float] = []
        self.obs_age: list[float] = []
        self.rf_error: list[float] = []
        self.sources: set[int] = set()
        self.requests = 0
        self.chunks_received = 0
        self.errors = 0
        self.first_chunk_tick: int | None = None
        self.first_source_tick: int | None = None  # first tick whose command came from a chunk
        self.stalls = 0
        self.stalls_after_first = 0
        self.watchdog = 0
        self.delay_ticks = math.nan
        self.request_latency_ms: list[float] = []
        self.stall_events = 0
        self.watchdog_events = 0
        self._stalled = self._watchdog = False

    def add_request_latency(self, latency_s: float) -> None:
        """One request's latency: capture of its observation → its chunk received."""
        self.request_latency_ms.append(latency_s * 1e3)

    def add(self, r: TickRecord) -> None:
        self.ticks += 1
        self.missed += r.missed
        self.lateness_ms.append(r.lateness_ms)
        self.work_ms.append(r.work_ms)
        self.times_s.append(r.time_s)
        self.chunks_received += r.chunks_arrived
        if r.chunks_arrived and self.first_chunk_tick is None:
            self.first_chunk_tick = r.tick
        if r.request_id >= 0:
            self.requests += 1
        if r.source_request_id >= 0:
            self.sources.add(r.source_request_id)
        if r.observation_age_ticks is not None:
            self.obs_age.append(float(r.observation_age_ticks))
        if r.rollforward_error is not None:
            self.rf_error.append(float(r.rollforward_error))
        if r.source_request_id >= 0 and self.first_source_tick is None:
            self.first_source_tick = r.tick
        if r.stalled:
            self.stalls += 1
            if self.first_source_tick is not None:  # as the report (sim/eval/metrics.stall_stats) counts
                self.stalls_after_first += 1
        self.watchdog += int(r.watchdog)
        self.stall_events += int(r.stalled and not self._stalled)
        self.watchdog_events += int(r.watchdog and not self._watchdog)
        self._stalled, self._watchdog = bool(r.stalled), bool(r.watchdog)
        self.delay_ticks = float(r.delay_ticks)

    def finish(self, *, errors: int = 0, transport: Mapping[str, int] | None = None,
               extra: Mapping[str, Any] | None = None) -> RunSummary:
        times = self.times_s
        duration = (times[-1] - times[0] + 1.0 / self.fps) if times else 0.0
        gaps = list(np.diff(times) * 1e3) if len(times) > 1 else []
        return RunSummary(
            target_fps=self.fps, duration_s=duration, ticks=self.ticks,
            achieved_fps=self.ticks / duration if duration > 0 else 0.0,
            missed_ticks=self.missed,
            lateness_p50_ms=_pct(self.lateness_ms, 50), lateness_p99_ms=_pct(self.lateness_ms, 99),
            lateness_max_ms=max(self.lateness_ms) if self.lateness_ms else math.nan,
            gap_p95_ms=_pct(gaps, 95),
            work_p50_ms=_pct(self.work_ms, 50), work_p99_ms=_pct(self.work_ms, 99),
            requests=self.requests, chunks_received=self.chunks_received, chunks_executed=len(self.sources),
            errors=errors, first_chunk_tick=self.first_chunk_tick,
            stalls=self.stalls, stall_time_s=self.stalls / self.fps, stalls_after_first_chunk=self.stalls_after_first,
            watchdog_ticks=self.watchdog,
            observation_age_p50_ticks=_pct(self.obs_age, 50), observation_age_p95_ticks=_pct(self.obs_age, 95),
            final_delay_ticks=self.delay_ticks,
            rollforward_error_mean=float(np.mean(self.rf_error)) if self.rf_error else math.nan,
            rollforward_error_p95=_pct(self.rf_error, 95),
            request_latency_p50_ms=_pct(self.request_latency_ms, 50),
            request_latency_p95_ms=_pct(self.request_latency_ms, 95),
            request_latency_p99_ms=_pct(self.request_latency_ms, 99),
            stall_events=self.stall_events, watchdog_events=self.watchdog_events,
            transport=dict(transport or {}), extra=dict(extra or {}),
        )


def summarize_records(rows: Iterable[Mapping[str, Any]], fps: float) -> RunSummary:
    """A RunSummary from log rows (dicts as read by `read_tick_log`)."""
    stats = RunStats(fps)
    for row in rows:
        stats.add(TickRecord(**{**row, "command": np.asarray(row["command"]), "state": np.asarray(row["state"])}))
    return stats.finish()
