"""The plan: commands indexed by absolute tick, with velocity and acceleration travelling together.

Row `i` of the plan is for tick `start_tick + i`. The plan is contiguous by construction (one array
per quantity), so it can never have gaps; the scheduler drops rows for ticks that have passed and
fusers replace rows from a junction tick on. Velocities and accelerations are in units per second
(and per second²), so a fuser can blend C2-continuously (VLA-RAIL keeps p, v, a together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOLD_SOURCE = -1  # `source` of a row that holds a position because no chunk covers that tick


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A chunk placed on the tick grid: row `i` is for tick `start_tick + i`."""

    start_tick: int
    pos: np.ndarray  # [n, D]
    vel: np.ndarray  # [n, D] units/s
    acc: np.ndarray  # [n, D] units/s²
    source: int  # request id of the chunk it came from

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    @property
    def end_tick(self) -> int:
        """One past the last tick covered."""
        return self.start_tick + len(self)

    def from_tick(self, tick: int) -> Trajectory:
        """The part of this trajectory for ticks >= `tick` (possibly empty)."""
        cut = min(max(0, tick - self.start_tick), len(self))
        return Trajectory(max(tick, self.start_tick), self.pos[cut:], self.vel[cut:], self.acc[cut:], self.source)


class Plan:
    """Planned commands for a contiguous range of ticks `[start_tick, end_tick)`."""

    def __init__(self, action_dim: int):
        self.action_dim = action_dim
        self.clear()

    def clear(self, start_tick: int = 0) -> None:
        d = self.action_dim
        self.start_tick = start_tick
        self.pos = np.empty((0, d))
        self.vel = np.empty((0, d))
        self.acc = np.empty((0, d))
        self.source = np.empty(0, dtype=np.int64)
        self.count = np.empty(0, dtype=np.int64)  # how many chunks were fused into each tick

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    @property
    def end_tick(self) -> int:
        return self.start_tick + len(self)

    def index(self, tick: int) -> int:
        """Row of `tick`, or -1 when the plan does not cover it."""
        i = tick - self.start_tick
        return i if 0 <= i < self.pos.shape[0] else -1

    def ticks_left(self, tick: int) -> int:
        """Planned ticks from `tick` (inclusive) to the end of the plan."""
        return max(0, self.end_tick - max(tick, self.start_tick)) if len(self) else 0

    def state_at(self, tick: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = self.index(tick)
        if i < 0:
            raise IndexError(f"tick {tick} is outside the plan [{self.start_tick}, {self.end_tick})")
        return self.pos[i], self.vel[i], self.acc[i]

    def positions(self, first: int, stop: int) -> np.ndarray:
        """Planned positions for ticks in `[first, stop)` that the plan covers."""
        a = max(0, first - self.start_tick)
        b = max(a, min(len(self), stop - self.start_tick))
        return self.pos[a:b]

    def drop_before(self, tick: int) -> int:
        """Forget rows for ticks < `tick`; returns how many were dropped."""
        if self.pos.shape[0] == 0:
            self.start_tick = max(tick, self.start_tick)
            return 0
        cut = min(max(0, tick - self.start_tick), len(self))
        if cut == len(self):
            self.clear(max(tick, self.start_tick))
            return cut
        if cut:
            self.start_tick += cut
            self.pos, self.vel, self.acc = self.pos[cut:], self.vel[cut:], self.acc[cut:]
            self.source, self.count = self.source[cut:], self.count[cut:]
        return cut

    def hold_until(self, first: int, tick: int, position: np.ndarray) -> None:
        """Make the plan cover `[first, tick]`, holding its last position (or `position` when empty)."""
        if len(self) == 0:
            self.clear(first)
            last = np.asarray(position, dtype=float)
        else:
            last = self.pos[-1]
        n = tick + 1 - self.end_tick
        if n <= 0:
            return
        zeros = np.zeros((n, self.action_dim))
        self.pos = np.concatenate([self.pos, np.broadcast_to(last, (n, self.action_dim))])
        self.vel = np.concatenate([self.vel, zeros])
        self.acc = np.concatenate([self.acc, zeros])
        self.source = np.concatenate([self.source, np.full(n, HOLD_SOURCE, dtype=np.int64)])
        self.count = np.concatenate([self.count, np.zeros(n, dtype=np.int64)])

    def replace_from(
        self, tick: int, pos: np.ndarray, vel: np.ndarray, acc: np.ndarray, source: np.ndarray, count: np.ndarray
    ) -> None:
        """Keep rows before `tick`, then the given rows. `tick` must be within `[start, end]`."""
        if len(self) == 0:
            self.clear(tick)
        keep = tick - self.start_tick
        if not 0 <= keep <= len(self):
            raise ValueError(f"junction tick {tick} would leave a gap in plan [{self.start_tick}, {self.end_tick})")
        self.pos = np.concatenate([self.pos[:keep], pos])
        self.vel = np.concatenate([self.vel[:keep], vel])
        self.acc = np.concatenate([self.acc[:keep], acc])
        self.source = np.concatenate([self.source[:keep], source])
        self.count = np.concatenate([self.count[:keep], count])
