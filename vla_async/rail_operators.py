"""Smoothing + rail fusion of a chunk as precomputed linear operators (the scheduler's fast path).

Everything `on_chunk` computes for a smoothing rail strategy is linear in X = [p0; v0; a0; actions]
(the plan's state at the junction, then the n raw actions): the smoothed chunk is S @ actions, the
quintic blend is linear in (p0, v0, a0) and the smoothed chunk's state L ticks on, and the stepwise
(gripper) columns are a moving average. So for a key (chunk length n, offset c of the junction in the
smoothed chunk, anchor-row flag `lead`, blend length L) the new plan segment is one product M @ X.

Three things keep a chunk's cost small on the tick it arrives:
- M is banded (a local smoother): rows are multiplied with only the columns they use;
- only the rows the next ticks read are written now; the rest is left to the plan (`Plan.write_segment`),
  written if read, and usually replaced by the next chunk before that;
- the shortest blend (`min_blend_ticks`) is tried first: its velocity, acceleration and jerk samples are one
  small product on X; with `blend_ticks > min_blend_ticks` the adaptive length only matters when that check
  fails, and is then found the step-by-step way.
`Smoother.stacked` + the anchor row + `RailFusion.merge` is the reference (same result up to the order of
floating-point sums; tests check it). `RailFusion` owns one `RailOperators` and builds it in its constructor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vla_async.plan import Plan, Trajectory
from vla_async.smoothing import moving_average_operator

if TYPE_CHECKING:
    from vla_async.rail import RailFusion

_STATE_ROWS = 3  # X rows 0..2: the plan's (p0, v0, a0) at the junction; the chunk's actions follow
_CACHE_SIZE = 128  # operators kept per kind (keys vary with the latency: the junction's offset in the chunk)


def _cached(cache: dict, key, value):
    """Store `value` under `key` (emptying a full cache first: keys seen again are rebuilt) and return it."""
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


@dataclass(frozen=True, eq=False)
class SegmentOperator:
    """M for one key: plan rows t = 0..m-1 from the junction on are `gradual[:, t] @ X`, and for the stepwise
    columns `stepwise[:, t] @ X` (None: no stepwise columns, or computed directly). Rows `[a, b)` read only the
    X rows `[first_col[a], stop_col[b])`."""

    gradual: np.ndarray  # [3, m, 3 + n]
    stepwise: np.ndarray | None  # [3, m, 3 + n]
    blend: int  # L
    first_col: tuple[int, ...]  # [m + 1]: the first X row any segment row >= a reads
    stop_col: tuple[int, ...]  # [m + 1]: one past the last X row any segment row < b reads

    @classmethod
    def build(cls, gradual: np.ndarray, stepwise: np.ndarray | None, blend: int) -> SegmentOperator:
        nz = np.any(gradual != 0, axis=0)  # [m, 3 + n]: the X rows each segment row reads
        if stepwise is not None:
            nz |= np.any(stepwise != 0, axis=0)
        cols = np.arange(nz.shape[1])
        first = np.where(nz, cols, nz.shape[1]).min(axis=1)
        last = np.where(nz, cols + 1, 0).max(axis=1)
        first_col = np.minimum.accumulate(np.append(first, nz.shape[1])[::-1])[::-1]  # suffix minimum
        stop_col = np.maximum.accumulate(np.insert(last, 0, 0))  # prefix maximum
        for op in (gradual, stepwise):
            if op is not None:
                op.setflags(write=False)
        return cls(gradual, stepwise, blend, tuple(int(x) for x in first_col), tuple(int(x) for x in stop_col))

    def write(self, rows: np.ndarray, first: int, stop: int, x: np.ndarray, s) -> None:
        """Segment rows `[first, stop)` into `rows` [3, stop - first, D] from X; `s` selects the stepwise columns
        (a slice, an index array or None). The gradual product writes every column, the stepwise one then its own."""
        a, b = self.first_col[first], self.stop_col[stop]
        if a >= b:  # the rows read nothing (all-zero weights)
            a, b = 0, 1
        np.matmul(self.gradual[:, first:stop, a:b], x[a:b], out=rows)
        if self.stepwise is not None:
            if isinstance(s, slice):
                np.matmul(self.stepwise[:, first:stop, a:b], x[a:b, s], out=rows[:, :, s])
            else:
                rows[:, :, s] = self.stepwise[:, first:stop, a:b] @ x[a:b, s]


class _FusedSegment:
    """The rows of one fused chunk (a `plan.SegmentWriter`): X through the segment operator, then the stepwise
    columns snapped to levels when the smoother snaps (not linear: precomputed for every row)."""

    __slots__ = ("op", "x", "s", "snapped")

    def __init__(self, op: SegmentOperator, x: np.ndarray, s, snapped: np.ndarray | None):
        self.op, self.x, self.s, self.snapped = op, x, s, snapped

    def write(self, rows: np.ndarray, first: int, stop: int) -> None:
        self.op.write(rows, first, stop, self.x, self.s)
        if self.snapped is not None:
            rows[0][:, self.s] = self.snapped[first:stop]  # rows[0] first: [rows, s] even when s is an index array
            rows[1:, :, self.s] = 0.0


class RailOperators:
    """The fast path of `fusion` (a `RailFusion` with an enabled smoother and gradual joints): fuses a raw chunk
    into the plan. Operators for chunks of `chunk_length` on time or up to `late_ticks` late are built here."""

    def __init__(self, fusion: RailFusion, chunk_length: int | None, late_ticks: int):
        self.fusion = fusion
        self.smoother = fusion.smoother
        self.fps = fusion.fps
        self._g = fusion.gradual
        self._step = self.smoother.stepwise_selector
        # stepwise columns snapped to levels are not linear: computed directly for every row, none deferred
        self._snapped = self._step is not None and self.smoother.snaps_stepwise
        self._segment: dict[tuple[int, int, int, int], SegmentOperator] = {}
        self._check: dict[tuple[int, int, int], tuple[np.ndarray, int]] = {}
        self._mismatch: dict[tuple[int, int, int], tuple[np.ndarray, int]] = {}
        self._shortest: dict[tuple[int, int, int], tuple[np.ndarray, int, SegmentOperator] | None] = {}
        self.built = 0  # junction keys prepared (the shortest blend's check, or the mismatch row)
        cfg = fusion.config
        # the adaptive length is >= blend_ticks, so when the shortest blend passes the limits it is the answer
        self._speculate = cfg.blend_limits and cfg.blend_ticks > cfg.min_blend_ticks
        self._limits = np.concatenate([fusion.sample_limits, fusion.sample_limits])  # for +samples and -samples
        self._samples = np.empty(self._limits.shape)
        self._ok = np.empty(self._limits.shape, dtype=bool)
        if chunk_length is not None:
            n = chunk_length
            self._prepare(n, [(0, 1)] + [(c, 0) for c in range(max(0, min(late_ticks, n - 2)) + 1)])

    def _prepare(self, n: int, keys: list[tuple[int, int]]) -> None:
        """Build the operators `fuse` reads for chunks of length `n` joined at (offset c, lead) in `keys`: the shortest
        blend's check and segment and the mismatch row (or the mismatch row and the default-length segment, without
        blend limits)."""
        cfg = self.fusion.config
        for c, lead in keys:
            m = lead + n - c
            if m < 2:
                continue
            if self._speculate:
                self._shortest_blend(n, c, lead)
                if cfg.adaptive_blend:  # read when the shortest blend fails its check
                    self.mismatch_operator(n, c, lead)
            else:
                self.mismatch_operator(n, c, lead)
                self.segment_operator(n, c, lead, max(0, min(cfg.blend_ticks, m - 1)))

    def _rows(self, n: int, c: int, lead: int, m: int) -> np.ndarray:
        """Chunk row behind each of the `m` segment rows (the anchor row repeats chunk row 0)."""
        return np.clip(c + np.arange(m) - lead, 0, n - 1)

    def _smoothing(self, n: int) -> np.ndarray:
        return self.smoother.operator(n).reshape(3, n, n)

    def segment_operator(self, n: int, c: int, lead: int, L: int) -> SegmentOperator:
        """The plan's p, v, a for the m = lead + n - c segment rows (blend over the first L) from X."""
        key = (n, c, lead, L)
        op = self._segment.get(key)
        if op is None:
            m = lead + n - c
            S = self._smoothing(n)
            r = self._rows(n, c, lead, m)
            grad = np.zeros((3, m, _STATE_ROWS + n))
            grad[:, :, _STATE_ROWS:] = S[:, r]
            if L > 0:
                B = self.fusion.quintic.blend(L).reshape(3, L, 6)
                grad[:, :L, _STATE_ROWS:] = B[:, :, 3:] @ S[:, r[L]]
                grad[:, :L, :_STATE_ROWS] = B[:, :, :3]
            linear_stepwise = self._step is not None and not self._snapped
            stepwise = self._stepwise_operator(n, c, lead) if linear_stepwise else None
            op = _cached(self._segment, key, SegmentOperator.build(grad, stepwise, L))
        return op

    def _stepwise_operator(self, n: int, c: int, lead: int) -> np.ndarray:
        """[3, m, 3 + n]: the stepwise (gripper) columns of the m segment rows from X: the chunk's moving average,
        velocity and acceleration 0, the anchor row (`lead` with the junction at it) keeping the plan's p0."""
        m = lead + n - c
        w = self.smoother.config.stepwise_window
        avg = moving_average_operator(n, w) if w > 1 and n > 1 else np.eye(n)
        op = np.zeros((3, m, _STATE_ROWS + n))
        if lead and c == 0:
            op[0, 0, 0] = 1.0  # p0
            op[0, 1:, _STATE_ROWS:] = avg
        else:
            op[0, :, _STATE_ROWS:] = avg[c - lead :]
        return op

    def _shortest_blend(self, n: int, c: int, lead: int) -> tuple[np.ndarray, int, SegmentOperator] | None:
        """For `fuse`, per key: the shortest blend's check and segment operator (None: not a candidate)."""
        key = (n, c, lead)
        if key in self._shortest:
            return self._shortest[key]
        first = self.fusion.config.min_blend_ticks
        hit = None
        if self._speculate and first + 1 < lead + n - c:
            hit = (*self.check_operator(n, c, lead), self.segment_operator(n, c, lead, first))
        self.built += 1
        return _cached(self._shortest, key, hit)

    def mismatch_operator(self, n: int, c: int, lead: int) -> tuple[np.ndarray, int]:
        """(row, h): row @ X[:h] = p0 − the smoothed chunk's position at the junction (per joint)."""
        key = (n, c, lead)
        hit = self._mismatch.get(key)
        if hit is None:
            at_junction = self._smoothing(n)[0, self._rows(n, c, lead, 1)[0]]  # [n]
            h = _STATE_ROWS + int(np.flatnonzero(at_junction).max(initial=-1)) + 1
            row = np.zeros((1, h))
            row[0, 0] = 1.0
            row[0, _STATE_ROWS:] = -at_junction[: h - _STATE_ROWS]
            row.setflags(write=False)
            self.built += 1
            hit = _cached(self._mismatch, key, (row, h))
        return hit

    def check_operator(self, n: int, c: int, lead: int) -> tuple[np.ndarray, int]:
        """([+Q; -Q], h): Q @ X[:h] are the velocity, acceleration and jerk samples of the `min_blend_ticks` blend
        (what `RailFusion.ends_within_limits` checks), as one product on the X rows it reads."""
        key = (n, c, lead)
        hit = self._check.get(key)
        if hit is None:
            first = self.fusion.config.min_blend_ticks
            m = lead + n - c
            S = self._smoothing(n)
            end = S[:, self._rows(n, c, lead, m)[first]]  # the smoothed chunk's (p, v, a) at the blend's end [3, n]
            ends = np.zeros((6, _STATE_ROWS + n))
            ends[:3, :_STATE_ROWS] = np.eye(3)
            ends[3:, _STATE_ROWS:] = end
            h = _STATE_ROWS + int(np.flatnonzero(np.any(end != 0, axis=0)).max(initial=-1)) + 1
            q = self.fusion.quintic.peaks(first) @ ends[:, :h]
            both = np.concatenate([q, -q])
            both.setflags(write=False)
            hit = _cached(self._check, key, (both, h))
        return hit

    def fuse(self, plan: Plan, actions: np.ndarray, start: int, lead: int, j: int, source: int,
             write_now: int | None = None) -> int:
        """What `smoother.stacked(actions, lead)` (+ the anchor row) then `fusion.merge(plan, .., j)` do; the plan
        must cover `j`. Writes at least `write_now` rows from `j` (all when None) and leaves the rest to the plan.
        Returns the blend length."""
        n, d = actions.shape
        c = j - (start - lead)  # the junction's row in the smoothed chunk (with its anchor row)
        m = lead + n - c
        x = np.empty((_STATE_ROWS + n, d))
        x[:_STATE_ROWS] = plan.row(j)
        x[_STATE_ROWS:] = actions
        op = self._shortest_passing(x, n, c, lead)
        if op is None:
            op = self.segment_operator(n, c, lead, self._blend_length(x, n, c, lead, m))
        n_blend = op.blend
        snapped = self._snapped_rows(x, m, c, lead) if self._snapped else None
        now = m if write_now is None or snapped is not None else min(m, max(write_now, n_blend + 1))
        plan.write_segment(j, m, _FusedSegment(op, x, self._step, snapped), source, now)
        return n_blend

    def _shortest_passing(self, x: np.ndarray, n: int, c: int, lead: int) -> SegmentOperator | None:
        """The shortest blend's segment operator when its samples are within the limits, else None."""
        shortest = self._shortest.get((n, c, lead), False)
        if shortest is False:
            shortest = self._shortest_blend(n, c, lead)
        if shortest is None:
            return None
        samples = np.matmul(shortest[0], x[: shortest[1], self._g], out=self._samples)
        if np.count_nonzero(np.less_equal(samples, self._limits, out=self._ok)) == samples.size:
            return shortest[2]
        return None

    def _snapped_rows(self, x: np.ndarray, m: int, c: int, lead: int) -> np.ndarray:
        """[m, stepwise] snapped stepwise positions of the segment rows (the anchor row keeps the plan's p0)."""
        s = self._step
        sw = self.smoother.smooth_stepwise(x[_STATE_ROWS:, s])
        if lead and c == 0:
            return np.concatenate([x[0, s][None], sw])
        return sw[c - lead :]

    def _blend_length(self, x: np.ndarray, n: int, c: int, lead: int, m: int) -> int:
        """`RailFusion.merge`'s blend length from X: adaptive to the mismatch (one small product), then, with blend
        limits, the shortest safe one (`RailFusion.limited_length` on the smoothed chunk from the junction)."""
        fusion, g = self.fusion, self._g
        mismatch = 0.0
        if fusion.config.adaptive_blend:
            row, h = self.mismatch_operator(n, c, lead)
            mismatch = max(np.abs(row @ x[:h, g])[0].tolist())
        n_blend = fusion.blend_length(mismatch, m)
        if not fusion.config.blend_limits or n_blend == 0:
            return n_blend
        tail = self._smoothing(n)[:, self._rows(n, c, lead, m)] @ x[_STATE_ROWS:]  # [3, m, D]
        return fusion.limited_length(x[:_STATE_ROWS], Trajectory.stacked(0, tail, -1), n_blend)
