"""Smoothing + rail fusion of a chunk as precomputed linear operators (the scheduler's fast path).

Everything `on_chunk` computes for the gradual joints under a smoothing rail strategy is linear in
X = [actions (n rows); p0; v0; a0] (the chunk and the plan's state at the junction): the smoothed chunk
is S @ actions, the quintic blend is linear in (p0, v0, a0) and the smoothed chunk's state L ticks on,
and so are the blend's velocity/acceleration/jerk samples. So for a key (chunk length n, offset c of the
junction in the smoothed chunk, anchor-row flag `lead`, blend length L) the whole new plan segment is
one product M @ X written into the plan, and the mismatch plus the shortest blend's safety check is one
more product. `Smoother.stacked` + `RailFuser.fuse` is the step-by-step reference (same result up to
the order of floating-point sums; tests check it).
"""

from __future__ import annotations

import numpy as np

from vla_async.fusion import _PEAK_S, RailFuser, _blend_operator, _peak_matrix
from vla_async.plan import Plan, Trajectory
from vla_async.smoothing import Smoother, moving_average_operator


class RailChunkOperators:
    """Fuses a raw chunk into the plan with `smoother` (enabled) and the rail `fuser` (gradual joints needed)."""

    def __init__(self, smoother: Smoother, fuser: RailFuser):
        self.smoother, self.fuser = smoother, fuser
        self.fps = fuser.fps
        self._g = fuser._g
        self._step = smoother._step_sel
        self._check: dict[tuple[int, int, int], np.ndarray] = {}
        self._segment: dict[tuple[int, int, int, int], np.ndarray] = {}
        self._stepwise: dict[tuple[int, int, int], np.ndarray | None] = {}
        self._x: dict[int, np.ndarray] = {}

    def _rows(self, n: int, c: int, lead: int, m: int) -> np.ndarray:
        """Chunk row behind each of the `m` segment rows (the anchor row repeats chunk row 0; clipped to the
        chunk: rows past it are only read by a check that the blend length then never uses)."""
        return np.clip(c + np.arange(m) - lead, 0, n - 1)

    def _smoothing(self, n: int) -> np.ndarray:
        return self.smoother._stacked(n).reshape(3, n, n)

    def check_operator(self, n: int, c: int, lead: int) -> np.ndarray:
        """[1 + 3S, n + 3]: row 0 = p0 − smoothed position at the junction (the mismatch), then the samples of
        the `min_blend_ticks` blend's velocity, acceleration and jerk (`RailFuser.limited_length`'s first check)."""
        key = (n, c, lead)
        op = self._check.get(key)
        if op is None:
            m = lead + n - c
            first = self.fuser.config.min_blend_ticks
            S = self._smoothing(n)
            op = np.zeros((1 + 3 * _PEAK_S, n + 3))
            r = self._rows(n, c, lead, max(m, first + 1))
            op[0, :n] = -S[0, r[0]]
            op[0, n] = 1.0
            pm = _peak_matrix(first, self.fps)  # [3S, 6] on (p0, v0, a0, pf, vf, af)
            op[1:, :n] = pm[:, 3:] @ S[:, r[first]]
            op[1:, n:] = pm[:, :3]
            op.setflags(write=False)
            self._check[key] = op
        return op

    def segment_operator(self, n: int, c: int, lead: int, L: int) -> np.ndarray:
        """[3, m, n + 3]: the plan's p, v, a for the m segment rows (blend over the first L) from X."""
        key = (n, c, lead, L)
        op = self._segment.get(key)
        if op is None:
            m = lead + n - c
            S = self._smoothing(n)
            r = self._rows(n, c, lead, m)
            op = np.zeros((3, m, n + 3))
            op[:, :, :n] = S[:, r]
            if L > 0:
                B = _blend_operator(L, self.fps).reshape(3, L, 6)
                op[:, :L, :n] = B[:, :, 3:] @ S[:, r[L]]
                op[:, :L, n:] = B[:, :, :3]
            op.setflags(write=False)
            if len(self._segment) > 512:
                self._segment.clear()
            self._segment[key] = op
        return op

    def stepwise_operator(self, n: int, c: int, lead: int) -> np.ndarray | None:
        """[3, m, n + 3]: the stepwise (gripper) columns of the m segment rows from X: the chunk's moving average,
        velocity and acceleration 0, the anchor row (`lead` with the junction at it) keeping the plan's p0.
        None when the smoother snaps stepwise values to levels (not linear: `fuse` then takes the direct path)."""
        key = (n, c, lead)
        if key in self._stepwise:
            return self._stepwise[key]
        op = None
        if self.smoother._levels is None:
            m = lead + n - c
            w = self.smoother.config.stepwise_window
            avg = moving_average_operator(n, w) if w > 1 and n > 1 else np.eye(n)
            op = np.zeros((3, m, n + 3))
            if lead and c == 0:
                op[0, 0, n] = 1.0
                op[0, 1:, :n] = avg
            else:
                op[0, :, :n] = avg[c - lead :]
            op.setflags(write=False)
        if len(self._stepwise) > 512:
            self._stepwise.clear()
        self._stepwise[key] = op
        return op

    def fuse(self, plan: Plan, actions: np.ndarray, start: int, lead: int, j: int, source: int) -> int:
        """What `smoother.stacked(actions, lead)` (+ the anchor row) then `fuser.fuse(plan, .., j)` do; the plan
        must cover `j`. Returns the blend length."""
        n, d = actions.shape
        c = j - (start - lead)  # the junction's row in the smoothed chunk (with its anchor row)
        m = lead + n - c
        X = self._x.get(n)
        if X is None or X.shape[1] != d:
            X = self._x[n] = np.empty((n + 3, d))
        i = plan.lo + plan.index(j)
        X[:n] = actions
        X[n:] = plan.buf[:, i]
        s, g, fuser = self._step, self._g, self.fuser
        step_op = self.stepwise_operator(n, c, lead) if s is not None else None
        anchor = plan.buf[0, i, s].copy() if s is not None and step_op is None and lead and c == 0 else None
        cfg = fuser.config
        Xg = X[:, g]
        q = np.abs(self.check_operator(n, c, lead) @ Xg)
        n_blend = fuser.blend_length(max(q[0].tolist()), m)  # the few |mismatch| values: Python's max is cheaper
        if cfg.blend_limits and n_blend > 0:
            first = min(cfg.min_blend_ticks, n_blend)
            if n_blend > first:
                if np.count_nonzero(np.less_equal(q[1:], fuser._sample_limits)) == q.size - q.shape[1]:
                    n_blend = first
                else:
                    n_blend = fuser.limited_length(X[n:], self._head(X[:n], n, c, lead, n_blend + 1), n_blend)
        r = plan.reserve_from(j, m, source, 1)
        seg = self.segment_operator(n, c, lead, n_blend)
        if isinstance(g, slice):
            np.matmul(seg, Xg, out=plan.buf[:, r : r + m, g])
        else:
            plan.buf[:, r : r + m, g] = seg @ Xg
        if step_op is not None:
            if isinstance(s, slice):
                np.matmul(step_op, X[:, s], out=plan.buf[:, r : r + m, s])
            else:
                plan.buf[:, r : r + m, s] = step_op @ X[:, s]
        elif s is not None:
            sw = self.smoother._stepwise(actions[:, s])
            if anchor is not None:
                plan.buf[0, r, s] = anchor
                plan.buf[0, r + 1 : r + m, s] = sw
            else:
                plan.buf[0, r : r + m, s] = sw[c - lead :]
            plan.buf[1:, r : r + m, s] = 0.0
        return n_blend

    def _head(self, actions: np.ndarray, n: int, c: int, lead: int, h: int) -> Trajectory:
        """The first `h` rows of the smoothed chunk from the junction (what the batched blend search reads)."""
        S = self._smoothing(n)
        return Trajectory.stacked(0, S[:, self._rows(n, c, lead, h)] @ actions, -1)
