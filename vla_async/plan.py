"""The plan: commands indexed by absolute tick, with velocity and acceleration travelling together.

Row `i` of the plan is for tick `start_tick + i`. The plan is contiguous by construction (one window
of a preallocated buffer), so it can never have gaps; the scheduler drops rows for ticks that have
passed (the window's start moves) and fusers overwrite rows from a junction tick on, in place.
Velocities and accelerations are in units per second (and per second²), so a fuser can blend
C2-continuously (VLA-RAIL keeps p, v, a together). Position, velocity and acceleration share one
[3, capacity, D] buffer so that a fused segment is written with one assignment.

Rows may be *deferred*: a fuser writes the rows the next ticks read and hands the rest of its segment
to `defer` as a `RowWriter`. They are written when first read (in blocks of `MATERIALIZE_BLOCK`
rows), or never when a newer chunk replaces them first, which under back-to-back inference is the
usual fate of most of a chunk. Every accessor returns written rows; only `_buf` may hold unwritten ones.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

HOLD_SOURCE = -1  # `source` of a row that holds a position because no chunk covers that tick
MATERIALIZE_BLOCK = 8  # deferred rows written per read past the written ones (bounds the work on one tick)


class RowWriter(Protocol):
    def write(self, buf: np.ndarray, first: int, stop: int) -> None:
        """Write buffer rows `[first, stop)` of `buf` [3, capacity, D] (p, v, a)."""


def index_selector(idx: np.ndarray) -> slice | np.ndarray | None:
    """`idx` as a slice when it is a contiguous range (views instead of gathers), None when empty."""
    if len(idx) == 0:
        return None
    if np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


class Trajectory:
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

    def from_tick(self, tick: int) -> Trajectory:
        """The part of this trajectory for ticks >= `tick` (possibly empty)."""
        cut = min(max(0, tick - self.start_tick), self.pva.shape[1])
        return Trajectory.stacked(max(tick, self.start_tick), self.pva[:, cut:], self.source)


class Plan:
    """Planned commands for a contiguous range of ticks `[start_tick, end_tick)`.

    The rows live in `buf[:, lo:hi]` of a buffer that grows only when a plan longer than it is needed;
    `pos`, `vel`, `acc`, `source` and `count` are views of the current rows (they change when the plan
    is written: copy what must survive a fuse).
    """

    def __init__(self, action_dim: int, capacity: int = 128):
        self.action_dim = action_dim
        self._buf = np.zeros((3, max(1, capacity), action_dim))
        self.src = np.zeros(self._buf.shape[1], dtype=np.int64)
        self.cnt = np.zeros(self._buf.shape[1], dtype=np.int64)
        self._pending: RowWriter | None = None  # writes the deferred rows [_ready, hi)
        self._ready = 0
        self.clear()

    def clear(self, start_tick: int = 0) -> None:
        self.start_tick = start_tick
        self.lo = self.hi = self._ready = 0
        self._pending = None

    @property
    def buf(self) -> np.ndarray:
        """The [3, capacity, D] buffer with every plan row written (rows `lo:hi` are the plan)."""
        if self._pending is not None:
            self._materialize(self.hi)
        return self._buf

    def defer(self, writer: RowWriter, first_row: int) -> None:
        """Buffer rows `[first_row, hi)` are left to `writer`, written when first read."""
        if first_row < self.hi:
            self._pending, self._ready = writer, max(first_row, self.lo)

    def _materialize(self, stop_row: int) -> None:
        """Write deferred rows up to buffer row `stop_row` (at least a block of them)."""
        if self._pending is None or stop_row <= self._ready:
            return
        stop = min(self.hi, max(stop_row, self._ready + MATERIALIZE_BLOCK))
        self._pending.write(self._buf, self._ready, stop)
        self._ready = stop
        if stop >= self.hi:
            self._pending = None

    def _written(self, i: int) -> int:
        """Buffer row of plan row `i`, written."""
        row = self.lo + i
        if row >= self._ready:
            self._materialize(row + 1)
        return row

    def position_row(self, i: int) -> np.ndarray:
        """Planned position of plan row `i` (a view; `0 <= i < len(self)`)."""
        return self._buf[0, self._written(i)]

    def state_row(self, i: int) -> np.ndarray:
        """(p, v, a) [3, D] of plan row `i` (a view; `0 <= i < len(self)`)."""
        return self._buf[:, self._written(i)]

    def __len__(self) -> int:
        return self.hi - self.lo

    @property
    def pos(self) -> np.ndarray:
        return self.buf[0, self.lo : self.hi]

    @property
    def vel(self) -> np.ndarray:
        return self.buf[1, self.lo : self.hi]

    @property
    def acc(self) -> np.ndarray:
        return self.buf[2, self.lo : self.hi]

    @property
    def source(self) -> np.ndarray:
        """Request id of the chunk each row came from (`HOLD_SOURCE` for a hold)."""
        return self.src[self.lo : self.hi]

    @property
    def count(self) -> np.ndarray:
        """How many chunks were fused into each row."""
        return self.cnt[self.lo : self.hi]

    @property
    def end_tick(self) -> int:
        return self.start_tick + self.hi - self.lo

    def index(self, tick: int) -> int:
        """Row of `tick`, or -1 when the plan does not cover it."""
        i = tick - self.start_tick
        return i if 0 <= i < self.hi - self.lo else -1

    def ticks_left(self, tick: int) -> int:
        """Planned ticks from `tick` (inclusive) to the end of the plan."""
        return max(0, self.end_tick - max(tick, self.start_tick)) if self.hi > self.lo else 0

    def state_at(self, tick: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the position, velocity and acceleration planned for `tick`."""
        i = self.index(tick)
        if i < 0:
            raise IndexError(f"tick {tick} is outside the plan [{self.start_tick}, {self.end_tick})")
        p, v, a = self.state_row(i).copy()
        return p, v, a

    def positions(self, first: int, stop: int) -> np.ndarray:
        """Planned positions for ticks in `[first, stop)` that the plan covers (a view)."""
        n = self.hi - self.lo
        a = max(0, first - self.start_tick)
        b = max(a, min(n, stop - self.start_tick))
        if self.lo + b > self._ready:
            self._materialize(self.lo + b)
        return self._buf[0, self.lo + a : self.lo + b]

    def drop_before(self, tick: int) -> int:
        """Forget rows for ticks < `tick`; returns how many were dropped."""
        n = self.hi - self.lo
        if n == 0:
            self.start_tick = max(tick, self.start_tick)
            return 0
        cut = tick - self.start_tick
        if cut <= 0:
            return 0
        if cut >= n:
            self.clear(tick)
            return n
        self.start_tick = tick
        self.lo += cut
        self._ready = max(self._ready, self.lo)  # deferred rows that were never read are gone
        return cut

    def _rows(self, keep: int, n: int) -> int:
        """Buffer row of plan row `keep`, with room for `n` rows from there (rows before `keep` kept and written;
        the caller writes the `n` rows, or defers some of them)."""
        if self._pending is not None:
            self._materialize(self.lo + keep)
            self._pending = None
        need = keep + n
        cap = self._buf.shape[1]
        if self.lo + need > cap:
            if need > cap:  # grow
                cap = max(2 * cap, need)
                buf = np.zeros((3, cap, self.action_dim))
                src, cnt = np.zeros(cap, dtype=np.int64), np.zeros(cap, dtype=np.int64)
                buf[:, :keep], src[:keep], cnt[:keep] = self._buf[:, self.lo : self.lo + keep], \
                    self.src[self.lo : self.lo + keep], self.cnt[self.lo : self.lo + keep]
                self._buf, self.src, self.cnt = buf, src, cnt
            elif keep:  # move the kept rows to the front
                self._buf[:, :keep] = self._buf[:, self.lo : self.lo + keep].copy()
                self.src[:keep] = self.src[self.lo : self.lo + keep]
                self.cnt[:keep] = self.cnt[self.lo : self.lo + keep]
            self.lo = 0
        self.hi = self._ready = self.lo + need
        return self.lo + keep

    def hold_until(self, first: int, tick: int, position: np.ndarray) -> None:
        """Make the plan cover `[first, tick]`, holding its last position (or `position` when empty)."""
        empty = self.hi == self.lo
        if empty:
            self.clear(first)
        n = tick + 1 - self.end_tick
        if n <= 0:
            return
        last = np.asarray(position, dtype=float) if empty else self.buf[0, self.hi - 1].copy()  # _rows may move buf
        keep = self.hi - self.lo
        r = self._rows(keep, n)
        self._buf[0, r : r + n] = last
        self._buf[1:, r : r + n] = 0.0
        self.src[r : r + n] = HOLD_SOURCE
        self.cnt[r : r + n] = 0

    def _junction(self, tick: int) -> int:
        if self.hi == self.lo:
            self.clear(tick)
        keep = tick - self.start_tick
        if not 0 <= keep <= self.hi - self.lo:
            raise ValueError(f"junction tick {tick} would leave a gap in plan [{self.start_tick}, {self.end_tick})")
        return keep

    def replace_from(
        self, tick: int, pos: np.ndarray, vel: np.ndarray, acc: np.ndarray, source: np.ndarray | int,
        count: np.ndarray | int,
    ) -> None:
        """Keep rows before `tick`, then the given rows. `tick` must be within `[start, end]`."""
        keep = self._junction(tick)
        n = len(pos)
        r = self._rows(keep, n)
        self._buf[0, r : r + n] = pos
        self._buf[1, r : r + n] = vel
        self._buf[2, r : r + n] = acc
        self.src[r : r + n] = source
        self.cnt[r : r + n] = count

    def replace_from_stacked(self, tick: int, pva: np.ndarray, source: int, count: int = 1) -> int:
        """`replace_from` with p, v, a stacked as [3, n, D]; returns the buffer row of `tick`."""
        n = pva.shape[1]
        r = self.reserve_from(tick, n, source, count)
        self._buf[:, r : r + n] = pva
        return r

    def reserve_from(self, tick: int, n: int, source: int, count: int = 1) -> int:
        """Keep rows before `tick`, then `n` rows for the caller to write into `_buf` from the returned buffer row
        (or to `defer`)."""
        keep = self._junction(tick)
        r = self._rows(keep, n)
        self.src[r : r + n] = source
        self.cnt[r : r + n] = count
        return r
