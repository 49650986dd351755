"""A thread that advances a SimWorld with the wall clock, like a real arm that never waits.

Absolute deadlines: at each wake-up the thread steps exactly the physics steps that wall time says
are due since start (so sleeping late never accumulates drift), then sleeps to the next deadline.
A slow client does not slow the world. Everything that touches the world holds `lock`.
"""

from __future__ import annotations

import threading
import time

from sim.world import SimWorld


class RealtimeStepper:
    def __init__(self, world: SimWorld, wake_period_s: float = 0.004, max_catch_up_s: float = 0.25):
        self.world = world
        self.lock = threading.Lock()
        self.wake_period_s = wake_period_s
        self.max_catch_up_s = max_catch_up_s
        self.overruns = 0  # times the thread fell further behind than max_catch_up_s (time skipped)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-physics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self) -> None:
        dt = self.world.physics.model.opt.timestep
        start = time.perf_counter()
        done = 0
        wake = 0
        while not self._stop.is_set():
            due = int((time.perf_counter() - start) / dt)
            behind = due - done
            if behind * dt > self.max_catch_up_s:  # the machine stalled: skip, do not fast-forward
                self.overruns += 1
                done = due - int(self.wake_period_s / dt)
                behind = due - done
            if behind > 0:
                with self.lock:
                    self.world.advance(behind)
                done += behind
            wake += 1
            delay = start + wake * self.wake_period_s - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            else:
                wake = int((time.perf_counter() - start) / self.wake_period_s)
