"""The tick clock: absolute deadlines (no drift), sleep-then-spin, skip on overrun."""

from __future__ import annotations

import random

import pytest

from robot_client.clock import TickClock


class FakeTime:
    """A deterministic time source: sleeps overshoot by a random amount, reads cost a little."""

    def __init__(self, overshoot_s: float = 0.0, read_cost_s: float = 1e-6, seed: int = 0):
        self.t = 100.0
        self.overshoot_s = overshoot_s
        self.read_cost_s = read_cost_s
        self.rng = random.Random(seed)
        self.sleeps: list[float] = []

    def now(self) -> float:
        self.t += self.read_cost_s
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s + self.rng.uniform(0, self.overshoot_s)


def test_deadlines_are_absolute_and_do_not_drift() -> None:
    ft = FakeTime(overshoot_s=0.0005)
    clock = TickClock(50.0, spin_s=0.001, now=ft.now, sleep=ft.sleep)
    t0 = clock.start()
    rng = random.Random(1)
    timings = []
    for k in range(2000):
        timing = clock.wait(k)
        timings.append(timing)
        ft.t += rng.uniform(0.0, 0.012)  # variable work inside the tick, always shorter than the period
    # deadlines are exactly t0 + k * period: sleep overshoot and work never accumulate
    for k, timing in enumerate(timings):
        assert timing.tick == k
        assert timing.missed == 0
        assert timing.deadline == pytest.approx(t0 + k * 0.02, abs=1e-9)
        assert timing.woke_at >= timing.deadline  # never early
    # the spin absorbs the sleep overshoot: lateness stays at the read cost, not the overshoot
    assert max(t.lateness_s for t in timings) < 0.0001
    assert timings[-1].woke_at - t0 == pytest.approx(1999 * 0.02, abs=1e-4)


def test_sleep_stops_short_of_the_deadline_then_spins() -> None:
    ft = FakeTime()
    clock = TickClock(30.0, spin_s=0.002, now=ft.now, sleep=ft.sleep)
    clock.start()
    clock.wait(1)
    assert len(ft.sleeps) == 1
    assert ft.sleeps[0] == pytest.approx(1 / 30 - 0.002, abs=1e-5)


def test_overrun_skips_to_the_due_tick_and_counts_missed_ticks() -> None:
    ft = FakeTime()
    clock = TickClock(10.0, spin_s=0.0, now=ft.now, sleep=ft.sleep)
    t0 = clock.start()
    assert clock.wait(0).tick == 0
    ft.t = t0 + 0.35  # tick 0's work took 3.5 periods
    timing = clock.wait(1)
    assert timing.tick == 3  # ticks 1 and 2 are skipped, not run back to back
    assert timing.missed == 2
    assert timing.deadline == pytest.approx(t0 + 0.3)
    assert clock.missed_total == 2
    # the next tick is back on the absolute grid
    nxt = clock.wait(timing.tick + 1)
    assert nxt.tick == 4 and nxt.missed == 0
    assert nxt.woke_at >= t0 + 0.4


def test_late_but_within_one_period_is_not_skipped() -> None:
    ft = FakeTime()
    clock = TickClock(10.0, spin_s=0.0, now=ft.now, sleep=ft.sleep)
    t0 = clock.start()
    ft.t = t0 + 0.15  # tick 1 is 50 ms late: run it now (late), do not skip it
    timing = clock.wait(1)
    assert timing.tick == 1 and timing.missed == 0
    assert timing.lateness_s == pytest.approx(0.05, abs=1e-4)


def test_real_clock_runs_ticks_in_order_on_the_grid() -> None:
    clock = TickClock(200.0)
    t0 = clock.start()
    ticks = [clock.wait(k) for k in range(20)]
    assert [t.tick for t in ticks] == list(range(20)) or sum(t.missed for t in ticks) > 0
    for t in ticks:
        assert t.woke_at >= t.deadline
        assert t.deadline == pytest.approx(t0 + t.tick / 200.0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        TickClock(0.0)
    with pytest.raises(RuntimeError):
        TickClock(30.0).deadline(1)
