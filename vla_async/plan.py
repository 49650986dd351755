"""The plan: commands indexed by absolute tick, with velocity and acceleration travelling together.

Row `i` of the plan is for tick `start_tick + i`. The plan is contiguous by construction (one window
of a preallocated buffer), so it can never have gaps; the scheduler drops rows for ticks that have
passed (the window's start moves) and fusions overwrite rows from a junction tick on, in place.
Velocities and accelerations are in units per second (and per second²), so a fusion can blend
C2-continuously (VLA-RAIL keeps p, v, a together). Position, velocity and acceleration share one
[3, capacity, D] buffer so that a fused segment is written with one assignment.

Deferral, the plan's one invariant: a segment written with `write_segment` may leave its rows from
`write_now` on to its `SegmentWriter`; those rows are written (in blocks of `MATERIALIZE_BLOCK`) before
any accessor returns them, or never when a newer segment replaces them first — which under back-to-back
inference is the usual fate of most of a chunk. So every row a caller can see is written; only the
private buffer may hold unwritten rows, and only rows of the one pending segment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

HOLD_SOURCE = -1  # `source` of a row that holds a position because no chunk covers that tick
MATERIALIZE_BLOCK = 8  # deferred rows written per read past the written ones (bounds the work on one tick)


class SegmentWriter(Protocol):
    def write(self, rows: np.ndarray, first: int, stop: int) -> None:
        """Write the segment's rows `[first, stop)` into `rows` [3, stop - first, D] (p, v, a)."""


class _ArrayWriter:
    """A segment that is already an array [3, n, D]."""

    __slots__ = ("pva",)

    def __init__(self, pva: np.ndarray):
        self.pva = pva

    def write(self, rows: np.ndarray, first: int, stop: int) -> None:
        rows[...] = self.pva[:, first:stop]


def index_selector(idx: np.ndarray) -> slice | np.ndarray | None:
    """`idx` as a slice when it is a contiguous range (views instead of gathers), None when empty."""
    if len(idx) == 0:
        return None
    if np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


class _TickRows:
    """Rows on the tick grid: row `i` is for tick `start_tick + i`, p, v, a stacked as `pva` [3, n, D]."""

    __slots__ = ()
    start_tick: int
    pva: np.ndarray

    @property
    def pos(self) -> np.ndarray:
        return self.pva[0]

    @property
    def vel(self) -> np.ndarray:
        return self.pva[1]

    @property
    def acc(self) -> np.ndarray:
        return self.pva[2]

    def __len__(self) -> int:
        return self.pva.shape[1]

    @property
    def end_tick(self) -> int:
        """One past the last tick covered."""
        return self.start_tick + self.pva.shape[1]


class Trajectory(_TickRows):
    """A chunk placed on the tick grid: row `i` is for tick `start_tick + i` (p, v, a stacked as `pva`)."""

    __slots__ = ("start_tick", "pva", "source")

    def __init__(self, start_tick: int, pos: np.ndarray, vel: np.ndarray, acc: np.ndarray, source: int):
        self.start_tick = start_tick
        self.pva = np.stack([np.asarray(pos, dtype=float), vel, acc]).astype(float, copy=False)  # [3, n, D]
        self.source = source  # request id of the chunk it came from

    @classmethod
    def stacked(cls, start_tick: int, pva: np.ndarray, source: int) -> Trajectory:
        """From positions, velocities (units/s) and accelerations (units/s²) already stacked as [3, n, D]."""
        t = cls.__new__(cls)
        t.start_tick, t.pva, t.source = start_tick, pva, source
        return t

    def from_tick(self, tick: int) -> Trajectory:
        """The part of this trajectory for ticks >= `tick` (possibly empty)."""
        cut = min(max(0, tick - self.start_tick), self.pva.shape[1])
        return Trajectory.stacked(max(tick, self.start_tick), self.pva[:, cut:], self.source)


@dataclass(frozen=True, eq=False)
class PlanRows(_TickRows):
    """A copy of the plan's rows (for tests, logs and plots; not for the tick path)."""

    start_tick: int
    pva: np.ndarray  # [3, n, D]
    source: np.ndarray  # [n] request id per row (`HOLD_SOURCE` for a hold)
    count: np.ndarray  # [n] chunks fused into each row

    def index(self, tick: int) -> int:
        """Row of `tick` (may be out of range)."""
        return tick - self.start_tick


class Plan:
    """Planned commands for a contiguous range of ticks `[start_tick, end_tick)`.

    The rows live in a private buffer that grows only when a plan longer than it is needed; read them with
    `row`, `position`, `positions`, `source_at`, `count_at` (views of written rows: copy what must survive a
    write) or `rows()` (a copy of all of them).
    """

    def __init__(self, action_dim: int, capacity: int = 128):
        self.action_dim = action_dim
        self._buf = np.zeros((3, max(1, capacity), action_dim))
        self._src = np.zeros(self._buf.shape[1], dtype=np.int64)
        self._cnt = np.zeros(self._buf.shape[1], dtype=np.int64)
        self._pending: SegmentWriter | None = None  # writes the deferred buffer rows [_ready, _hi)
        self._pending_row0 = 0  # buffer row of the pending segment's row 0
        self._ready = 0  # buffer rows below this are written
        self.clear()

    # ------------------------------------------------------------------ extent

    def clear(self, start_tick: int = 0) -> None:
        self._start = start_tick
        self._lo = self._hi = self._ready = 0
        self._pending = None

    @property
    def start_tick(self) -> int:
        return self._start

    @property
    def end_tick(self) -> int:
        """One past the last planned tick."""
        return self._start + self._hi - self._lo

    def __len__(self) -> int:
        return self._hi - self._lo

    def index(self, tick: int) -> int:
        """Row of `tick`, or -1 when the plan does not cover it."""
        i = tick - self._start
        return i if 0 <= i < self._hi - self._lo else -1

    def ticks_left(self, tick: int) -> int:
        """Planned ticks from `tick` (inclusive) to the end of the plan."""
        return max(0, self.end_tick - max(tick, self._start)) if self._hi > self._lo else 0

    def drop_before(self, tick: int) -> int:
        """Forget rows for ticks < `tick`; returns how many were dropped."""
        n = self._hi - self._lo
        if n == 0:
            self._start = max(tick, self._start)
            return 0
        cut = tick - self._start
        if cut <= 0:
            return 0
        if cut >= n:
            self.clear(tick)
            return n
        self._start = tick
        self._lo += cut
        self._ready = max(self._ready, self._lo)  # deferred rows that were never read are gone
        return cut

    # ------------------------------------------------------------------ reads (written rows only)

    def _written(self, tick: int) -> int:
        """Buffer row of `tick` (which the plan covers), written."""
        row = self._lo + tick - self._start
        if row >= self._ready:
            self._materialize(row + 1)
        return row

    def row(self, tick: int) -> np.ndarray:
        """(p, v, a) [3, D] planned for `tick` (a view; IndexError when the plan does not cover it)."""
        if self.index(tick) < 0:
            raise IndexError(f"tick {tick} is outside the plan [{self._start}, {self.end_tick})")
        return self._buf[:, self._written(tick)]

    def position(self, tick: int) -> np.ndarray:
        """Planned position for `tick`, which the plan must cover (a view)."""
        return self._buf[0, self._written(tick)]

    def source_at(self, tick: int) -> int:
        """Request id of the chunk planned for `tick`; `HOLD_SOURCE` for a hold or a tick the plan does not cover."""
        i = tick - self._start
        return int(self._src[self._lo + i]) if 0 <= i < self._hi - self._lo else HOLD_SOURCE

    def count_at(self, tick: int) -> int:
        """How many chunks were fused into the row of `tick` (0 for a hold or a tick not covered)."""
        i = self.index(tick)
        return int(self._cnt[self._lo + i]) if i >= 0 else 0

    def positions(self, first: int, stop: int) -> np.ndarray:
        """Planned positions for ticks in `[first, stop)` that the plan covers (a view)."""
        n = self._hi - self._lo
        a = max(0, first - self._start)
        b = max(a, min(n, stop - self._start))
        if self._lo + b > self._ready:
            self._materialize(self._lo + b)
        return self._buf[0, self._lo + a : self._lo + b]

    def rows(self) -> PlanRows:
        """A copy of every row (deferred ones written first)."""
        self._materialize(self._hi)
        lo, hi = self._lo, self._hi
        return PlanRows(self._start, self._buf[:, lo:hi].copy(), self._src[lo:hi].copy(), self._cnt[lo:hi].copy())

    # ------------------------------------------------------------------ writes

    def hold_until(self, first: int, tick: int, position: np.ndarray) -> None:
        """Make the plan cover `[first, tick]`, holding its last position (or `position` when empty)."""
        empty = self._hi == self._lo
        if empty:
            self.clear(first)
        n = tick + 1 - self.end_tick
        if n <= 0:
            return
        last = np.asarray(position, dtype=float) if empty else self.position(self.end_tick - 1).copy()
        r = self._rows(self._hi - self._lo, n)  # may move the buffer: `last` is a copy
        self._buf[0, r : r + n] = last
        self._buf[1:, r : r + n] = 0.0
        self._src[r : r + n] = HOLD_SOURCE
        self._cnt[r : r + n] = 0

    def write_segment(self, tick: int, n: int, writer: SegmentWriter, source: int, write_now: int | None = None,
                      count: int = 1) -> None:
        """Keep rows before `tick` (within `[start, end]`), then `n` rows from `writer`, all from chunk `source`:
        segment rows `[0, write_now)` written now, the rest (none when `write_now` is None) left to `writer`."""
        r = self._rows(self._junction(tick), n)
        self._src[r : r + n] = source
        self._cnt[r : r + n] = count
        now = n if write_now is None else min(n, write_now)
        if now > 0:
            writer.write(self._buf[:, r : r + now], 0, now)
        if now < n:
            self._pending, self._pending_row0, self._ready = writer, r, r + now

    def write_rows(self, tick: int, pva: np.ndarray, source: int, count: int = 1) -> None:
        """Keep rows before `tick`, then the rows of `pva` [3, n, D] (p, v, a), all from chunk `source`."""
        self._write(tick, pva, source, count)

    def _write(self, tick: int, pva: np.ndarray, source: int, count: int) -> int:
        n = pva.shape[1]
        r = self._rows(self._junction(tick), n)
        self._buf[:, r : r + n] = pva
        self._src[r : r + n] = source
        self._cnt[r : r + n] = count
        return r

    def mix_overlap(self, tick: int, pva: np.ndarray, source: int,
                    old_weight: Callable[[np.ndarray], np.ndarray]) -> int:
        """Keep rows before `tick`, then `pva` [3, n, D] (modified in place) whose positions on the ticks the plan
        already covers are mixed as `w·old + (1 − w)·new`, `w = old_weight(old count)` [rows, 1] (a hold, count 0,
        must weigh 0); those rows count one more prediction. Returns the number of mixed rows."""
        a = self.index(tick)
        n_overlap = 0 if a < 0 else max(0, min(pva.shape[1], self._hi - self._lo - a))
        if n_overlap == 0:
            self.write_rows(tick, pva, source)
            return 0
        rows = slice(self._lo + a, self._lo + a + n_overlap)
        self._materialize(rows.stop)
        old_count = self._cnt[rows]
        head = pva[0, :n_overlap]
        head += old_weight(old_count) * (self._buf[0, rows] - head)
        count = old_count + 1  # a new array: the plan's rows are overwritten next
        r = self._write(tick, pva, source, 1)  # may move the rows
        self._cnt[r : r + n_overlap] = count
        return n_overlap

    # ------------------------------------------------------------------ buffer

    def _materialize(self, stop_row: int) -> None:
        """Write deferred rows up to buffer row `stop_row` (at least a block of them)."""
        if self._pending is None or stop_row <= self._ready:
            return
        stop = min(self._hi, max(stop_row, self._ready + MATERIALIZE_BLOCK))
        r0 = self._pending_row0
        self._pending.write(self._buf[:, self._ready : stop], self._ready - r0, stop - r0)
        self._ready = stop
        if stop >= self._hi:
            self._pending = None

    def _junction(self, tick: int) -> int:
        """Plan rows kept when a segment starts at `tick`."""
        if self._hi == self._lo:
            self.clear(tick)
        keep = tick - self._start
        if not 0 <= keep <= self._hi - self._lo:
            raise ValueError(f"junction tick {tick} would leave a gap in plan [{self._start}, {self.end_tick})")
        return keep

    def _rows(self, keep: int, n: int) -> int:
        """Buffer row of plan row `keep`, with room for `n` rows from there (rows before `keep` kept and written;
        the caller writes the `n` rows)."""
        if self._pending is not None:
            self._materialize(self._lo + keep)
            self._pending = None
        need = keep + n
        if self._lo + need > self._buf.shape[1]:
            self._compact(keep, need)
        self._hi = self._ready = self._lo + need
        return self._lo + keep

    def _compact(self, keep: int, need: int) -> None:
        """Move the `keep` kept rows to buffer row 0, growing the buffer when `need` rows do not fit."""
        lo, cap = self._lo, self._buf.shape[1]
        if need > cap:  # grow
            cap = max(2 * cap, need)
            buf = np.zeros((3, cap, self.action_dim))
            src, cnt = np.zeros(cap, dtype=np.int64), np.zeros(cap, dtype=np.int64)
            buf[:, :keep], src[:keep], cnt[:keep] = \
                self._buf[:, lo : lo + keep], self._src[lo : lo + keep], self._cnt[lo : lo + keep]
            self._buf, self._src, self._cnt = buf, src, cnt
        elif keep:  # move the kept rows to the front
            self._buf[:, :keep] = self._buf[:, lo : lo + keep].copy()
            self._src[:keep] = self._src[lo : lo + keep]
            self._cnt[:keep] = self._cnt[lo : lo + keep]
        self._lo = 0
