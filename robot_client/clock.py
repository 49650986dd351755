"""A drift-free control clock: absolute deadlines `t0 + k·period`, sleep then a short spin.

Deadlines are computed from the start time and the tick index, never from the previous wake-up,
so sleep overshoot and per-tick work never accumulate into drift. The OS sleep is coarse (it may
wake a few hundred µs late), so the clock sleeps until `spin_s` before the deadline and busy-waits
the rest. When a tick overruns past the next deadline(s), the clock does not burst through the
missed ticks to catch up: it skips to the tick whose deadline has most recently passed and counts
the ticks it skipped.

The time source and the sleep function are injectable so tests can drive the clock with a fake
time (deterministic) and the loop can share `time.monotonic` with the transport thread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TickTiming:
    """When one tick started, relative to its absolute deadline."""

    tick: int  # the tick that runs now (may be > the tick asked for after an overrun)
    deadline: float  # t0 + tick·period, on the clock's time source
    woke_at: float  # time the clock returned
    missed: int  # ticks skipped before this one (0 when on time)

    @property
    def lateness_s(self) -> float:
        return self.woke_at - self.deadline


class TickClock:
    """Waits for absolute tick deadlines; see the module docstring."""

    def __init__(
        self,
        fps: float,
        *,
        spin_s: float = 0.0008,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if spin_s < 0:
            raise ValueError(f"spin_s must be >= 0, got {spin_s}")
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self.spin_s = float(spin_s)
        self._now = now
        self._sleep = sleep
        self._t0: float | None = None
        self.missed_total = 0

    @property
    def start_time(self) -> float:
        if self._t0 is None:
            raise RuntimeError("TickClock.start() has not been called")
        return self._t0

    def start(self, t0: float | None = None) -> float:
        """Fix tick 0's deadline (now by default) and return it."""
        self._t0 = self._now() if t0 is None else float(t0)
        self.missed_total = 0
        return self._t0

    def deadline(self, tick: int) -> float:
        return self.start_time + tick * self.period

    def current_tick(self) -> int:
        """The latest tick whose deadline has passed (-1 before tick 0)."""
        return math.floor((self._now() - self.start_time) / self.period + 1e-9)

    def wait(self, tick: int) -> TickTiming:
        """Block until `tick`'s deadline; after an overrun, skip to the most recent due tick."""
        deadline = self.deadline(tick)
        now = self._now()
        if now >= deadline + self.period:  # overran into a later tick: skip, do not burst
            due = max(tick, self.current_tick())
            missed = due - tick
            self.missed_total += missed
            return TickTiming(tick=due, deadline=self.deadline(due), woke_at=self._now(), missed=missed)
        remaining = deadline - now
        if remaining > self.spin_s:
            self._sleep(remaining - self.spin_s)
        while (now := self._now()) < deadline:
            pass
        return TickTiming(tick=tick, deadline=deadline, woke_at=now, missed=0)
