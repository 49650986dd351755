"""The policy server as the virtual-time engine sees it: workers, a queue, injected compute time.

Mirrors `policy_server.server`: each worker computes one request at a time; a request that finds
every worker busy waits as the session's single pending request, and a newer request supersedes
it (the old one fails, like the real server's OVERLOADED reply). With `max_in_flight = 1` nothing
ever waits; with more requests in flight than workers, queueing shows up in the latency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Started:
    request_id: int
    submit_s: float
    start_s: float
    arrival_s: float  # start + compute time: when the chunk is usable on the client
    payload: Any


class ServerModel:
    def __init__(self, workers: int, compute_s: Callable[[], float]):
        self.free_at = [0.0] * max(1, int(workers))
        self.compute_s = compute_s
        self._pending: tuple[int, float, Any] | None = None
        self._started: list[Started] = []

    def _start(self, request_id: int, submit_s: float, at_s: float, payload: Any) -> None:
        i = min(range(len(self.free_at)), key=self.free_at.__getitem__)
        start = max(at_s, self.free_at[i])
        self.free_at[i] = start + max(0.0, float(self.compute_s()))
        self._started.append(Started(request_id, submit_s, start, self.free_at[i], payload))

    def advance(self, now_s: float) -> list[Started]:
        """Requests that started computing by `now_s` (their arrival may still be in the future)."""
        self._start_pending(now_s)
        started, self._started = self._started, []
        return started

    def _start_pending(self, now_s: float) -> None:
        if self._pending is not None and min(self.free_at) <= now_s:
            rid, submit, payload = self._pending
            self._pending = None
            self._start(rid, submit, submit, payload)

    def submit(self, now_s: float, request_id: int, payload: Any) -> list[int]:
        """Hand a request to the server; returns the ids of requests it superseded."""
        self._start_pending(now_s)
        if min(self.free_at) <= now_s and self._pending is None:
            self._start(request_id, now_s, now_s, payload)
            return []
        superseded = [] if self._pending is None else [self._pending[0]]
        self._pending = (request_id, now_s, payload)
        return superseded
