"""When to request inference: small trigger classes chosen by name (`TRIGGERS`).

Every trigger also needs a free in-flight slot (checked by the scheduler). `ticks_left` counts the
planned ticks from the current tick (inclusive) to the end of the plan.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from vla_async.config.schema import StrategyConfig


@dataclass(slots=True)
class TriggerState:
    tick: int
    ticks_left: int
    in_flight: int
    delay_ticks: float  # d̂ (fractional ticks)
    last_request_tick: int | None
    chunk_length: int


class Trigger(abc.ABC):
    def __init__(self, strategy: StrategyConfig):
        self.strategy = strategy
        # True: `should_request` is True whatever the state (the scheduler then skips building a TriggerState)
        self.unconditional = False

    @abc.abstractmethod
    def should_request(self, st: TriggerState) -> bool: ...

    def _since_last(self, st: TriggerState) -> int:
        return 1 << 30 if st.last_request_tick is None else st.tick - st.last_request_tick


class HorizonTrigger(Trigger):
    """Every `s` ticks (execution horizon), or at once when the plan has run out."""

    def should_request(self, st: TriggerState) -> bool:
        return st.ticks_left == 0 or self._since_last(st) >= self.strategy.execution_horizon


class DelayTrigger(Trigger):
    """When the planned ticks left fall to d̂ + margin: the new chunk arrives just before the plan ends."""

    def should_request(self, st: TriggerState) -> bool:
        if st.ticks_left > st.delay_ticks + self.strategy.trigger_margin_ticks:
            return False
        # with several requests allowed in flight, space them by the execution horizon
        return st.in_flight == 0 or self._since_last(st) >= self.strategy.execution_horizon


class QueueTrigger(Trigger):
    """LeRobot: request while planned ticks left / H ≤ lerobot_queue_threshold."""

    def should_request(self, st: TriggerState) -> bool:
        return st.ticks_left <= self.strategy.lerobot_queue_threshold * st.chunk_length


class EveryTickTrigger(Trigger):
    """Whenever a slot is free (ACT's temporal ensembling queries every tick). With `max_in_flight = N > 1`
    the requests are staggered ≈ d̂/N ticks apart (pipelining: a fresh chunk every cycle/N), so the
    slots do not all fill on one tick and return together."""

    def __init__(self, strategy: StrategyConfig):
        super().__init__(strategy)
        self.unconditional = strategy.max_in_flight <= 1

    def should_request(self, st: TriggerState) -> bool:
        n = self.strategy.max_in_flight
        if n <= 1 or st.in_flight == 0:
            return True
        return self._since_last(st) >= max(1, round(st.delay_ticks / n))


class SyncTrigger(Trigger):
    """Synchronous baseline: request at the last planned tick (or when nothing is planned)."""

    def should_request(self, st: TriggerState) -> bool:
        return st.ticks_left <= 1 and st.in_flight == 0


TRIGGERS: dict[str, type[Trigger]] = {
    "horizon": HorizonTrigger,
    "delay": DelayTrigger,
    "queue": QueueTrigger,
    "every_tick": EveryTickTrigger,
    "sync": SyncTrigger,
}


def create_trigger(strategy: StrategyConfig) -> Trigger:
    """The trigger for a strategy (`sync: true` always uses the synchronous trigger)."""
    name = "sync" if strategy.sync else strategy.trigger
    return TRIGGERS[name](strategy)
