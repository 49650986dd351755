"""VirtualDriver: the ActionScheduler in virtual time, for the evaluator, the scheduler bench and the tests.

No clock and no threads: the caller sends each chunk with the virtual time it reaches the robot, and
`step(k, state)` first hands the scheduler every chunk that has arrived by tick k's time (k / fps), in
order of arrival (ties by request id), as `on_chunk(k_now=k)`, then asks it for tick k's command. So a
chunk that arrives while tick k-1 executes shapes tick k, exactly as in the real-time loop. A caller
that wants the scheduler's cost passes a `timer` (e.g. `time.perf_counter`); the driver only subtracts
its readings.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from vla_async.messages import ActionChunk
from vla_async.scheduler import ActionScheduler, ChunkReport, TickOutput

_EPS_S = 1e-9  # arrival times within this of a tick's time count as arrived


class Delivery(NamedTuple):
    chunk: ActionChunk
    report: ChunkReport
    arrival_s: float
    latency_s: float | None  # what `on_chunk` was told (None: it derived the latency from ticks)
    cost: float  # timer units spent in `on_chunk` (0 without a timer)


class Step(NamedTuple):
    output: TickOutput
    deliveries: list[Delivery]
    tick_cost: float  # timer units spent in `on_tick` (0 without a timer)

    @property
    def cost(self) -> float:
        """What the scheduler cost on this tick: every `on_chunk`, then `on_tick`."""
        return sum(d.cost for d in self.deliveries) + self.tick_cost


def _no_timer() -> float:
    return 0.0


class VirtualDriver:
    def __init__(self, scheduler: ActionScheduler, timer: Callable[[], float] | None = None):
        self.scheduler = scheduler
        self.fps = scheduler.fps
        self._timer = timer or _no_timer
        self._pending: list[tuple[float, int, int, ActionChunk, float | None]] = []  # heap
        self._sent = 0

    @property
    def pending(self) -> int:
        """Chunks sent that have not reached the scheduler yet."""
        return len(self._pending)

    def send(self, chunk: ActionChunk, arrival_s: float, latency_s: float | None = None) -> None:
        """`chunk` reaches the robot at virtual time `arrival_s`; `latency_s` is passed on to `on_chunk`."""
        heapq.heappush(self._pending, (arrival_s, chunk.request_id, self._sent, chunk, latency_s))
        self._sent += 1

    def send_at_tick(self, chunk: ActionChunk, tick: int, latency_s: float | None = None) -> None:
        """`chunk` arrives while tick `tick - 1` executes: it shapes tick `tick`'s command."""
        self.send(chunk, tick / self.fps, latency_s)

    def fail(self, request_id: int) -> None:
        """The request failed (an error, a missed deadline): its in-flight slot is freed now."""
        self.scheduler.on_request_failed(request_id)

    def step(self, k: int, state: np.ndarray) -> Step:
        """Deliver the chunks that arrived by tick k's time, then tick k."""
        deliveries = self.deliver(k)
        timer = self._timer
        t0 = timer()
        out = self.scheduler.on_tick(k, state)
        return Step(out, deliveries, timer() - t0)

    def deliver(self, k: int) -> list[Delivery]:
        """Hand the scheduler every chunk that arrived by tick k's time (`on_chunk` with k_now=k)."""
        now, pending, timer = k / self.fps, self._pending, self._timer
        out = []
        while pending and pending[0][0] <= now + _EPS_S:
            arrival_s, _, _, chunk, latency_s = heapq.heappop(pending)
            t0 = timer()
            report = self.scheduler.on_chunk(chunk, k_now=k, latency_s=latency_s)
            out.append(Delivery(chunk, report, arrival_s, latency_s, timer() - t0))
        return out
