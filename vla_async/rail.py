"""The rail family (VLA-RAIL): smoothing inside a chunk, then a C2 quintic blend from the executing plan.

`RailFusion.merge` is the clear path: the smoothed chunk from the junction tick `j`, its first `L` ticks
replaced by the quintic from the plan's (p0, v0, a0) at `j` to the chunk's state at `j + L`. `L` is
`blend_ticks`, or with `adaptive_blend` long enough that the blend's mean catch-up speed stays under
`blend_speed` (bounded by `max_blend_ticks` and by the chunk), or with `blend_limits` the shortest length
whose peaks stay within the limits. Stepwise dimensions step to the new chunk's value at once.

`RailFusion.fuse` anchors the blend at the tick before the junction when the plan covers it (the last
commanded tick), so the chunk's first usable tick already moves toward it; a chunk for a later tick gets
an anchor row. With a smoother, the measured fast path (`vla_async.rail_operators`) computes the same rows
as one precomputed product and leaves most of them to the plan to write when read.
"""

from __future__ import annotations

import math

import numpy as np

from vla_async.chunk_fusion import ChunkFusion, PlacedChunk
from vla_async.config.schema import FuserConfig
from vla_async.plan import Plan, Trajectory, index_selector
from vla_async.quintic import PEAK_SAMPLES, QuinticOperators
from vla_async.rail_operators import RailOperators
from vla_async.smoothing import Smoother

_LATE_S = 0.5  # the fast path's operators are built up front for chunks up to this late


class RailFusion(ChunkFusion):
    reads_derivatives = True

    def __init__(self, config: FuserConfig, smoother: Smoother, limits: tuple[np.ndarray, np.ndarray] | None = None,
                 chunk_length: int | None = None):
        super().__init__(config, smoother, limits, chunk_length)
        gradual = np.flatnonzero(~self.stepwise)
        self.gradual = index_selector(gradual)  # the gradual (blended) columns: a slice, an index array or None
        self.n_gradual = len(gradual)
        d = len(self.stepwise)
        max_vel, max_acc = limits if limits is not None else (np.full(d, np.inf), np.full(d, np.inf))
        peak_limits = np.stack([np.broadcast_to(np.asarray(max_vel, dtype=float), (d,))[gradual],
                                np.broadcast_to(np.asarray(max_acc, dtype=float), (d,))[gradual],
                                np.full(self.n_gradual, config.blend_max_jerk)])
        self.sample_limits = np.repeat(peak_limits, PEAK_SAMPLES, axis=0)  # [3S, G]: each peak sample's bound
        self.sample_limits.setflags(write=False)
        longest = max(config.max_blend_ticks, config.blend_ticks)
        first = config.min_blend_ticks
        ranges = [(first + 1, last) for last in range(first + 1, longest + 1)] if config.blend_limits else []
        self.quintic = QuinticOperators(self.fps, longest, ranges)
        self._samples = np.empty(self.sample_limits.shape)  # scratch for `ends_within_limits`
        self._ok = np.empty(self.sample_limits.shape, dtype=bool)
        self._fast: RailOperators | None = None  # the measured fast path (with a smoother and gradual joints)
        if smoother.config.enabled and self.n_gradual:
            late = math.ceil(_LATE_S * self.fps)
            self._fast = RailOperators(self, chunk_length, late)

    # ------------------------------------------------------------------ the chunk path

    def fuse(self, plan: Plan, chunk: PlacedChunk, k_now: int, write_until: int | None = None) -> int:
        start = chunk.start_tick
        j, lead = max(k_now, start), 0
        if j - 1 >= plan.start_tick:  # the plan covers j, so j - 1 too
            # blend from the tick before j, so tick j already moves toward the new chunk (no tick lost)
            j -= 1
            lead = int(start > j)
        if self._fast is not None and plan.start_tick <= j:
            write_now = None if write_until is None else write_until - j
            return self._fast.fuse(plan, chunk.actions, start, lead, j, chunk.source, write_now)
        pva = self.smoother.stacked(chunk.actions, lead, True)  # [3, lead + n, D]
        if lead:
            self._fill_anchor_row(plan, pva, j)
        return self.merge(plan, Trajectory.stacked(start - lead, pva, chunk.source), j)

    def _fill_anchor_row(self, plan: Plan, pva: np.ndarray, j: int) -> None:
        """Row 0 of `pva` for tick j = start - 1: the chunk's first row, stepwise positions kept from the plan
        (the blend overwrites the gradual ones with the plan's own state at j)."""
        pva[:, 0] = pva[:, 1]
        s = self.smoother.stepwise_selector
        if s is not None:
            pva[0, 0, s] = plan.position(j)[s]

    def merge(self, plan: Plan, new: Trajectory, j: int) -> int:
        tail = new.from_tick(j)
        if len(tail) == 0:
            return 0
        g = self.gradual
        pva, n_blend = tail.pva, 0
        if plan.index(j) >= 0:
            x0 = plan.row(j)  # (p0, v0, a0) [3, D]; a view, read before the plan is written below
            mismatch = float(np.abs(x0[0, g] - tail.pva[0, 0, g]).max()) if g is not None else 0.0
            n_blend = self.blend_length(mismatch, len(tail))
            if self.config.blend_limits and n_blend > 0:
                n_blend = self.limited_length(x0, tail, n_blend)
            if n_blend > 0 and g is not None:  # stepwise dimensions switch to the new chunk at once
                ends = np.concatenate([x0[:, g], tail.pva[:, n_blend, g]])  # (p0, v0, a0, pf, vf, af) [6, G]
                pva = tail.pva.copy()
                pva[:, :n_blend, g] = (self.quintic.blend(n_blend) @ ends).reshape(3, n_blend, self.n_gradual)
        plan.write_rows(j, pva, new.source)
        return n_blend

    # ------------------------------------------------------------------ blend length

    def blend_length(self, mismatch: float, available: int) -> int:
        """`blend_ticks`, or adaptive to the position `mismatch` at the junction; shorter than `available`."""
        cfg = self.config
        n = cfg.blend_ticks
        if cfg.adaptive_blend:
            n = max(n, math.ceil(mismatch * self.fps / cfg.blend_speed))
            n = min(n, max(cfg.max_blend_ticks, cfg.blend_ticks))
        return max(0, min(n, available - 1))

    def limited_length(self, x0: np.ndarray, tail: Trajectory, longest: int) -> int:
        """Shortest blend in [min_blend_ticks, longest] from the plan's state `x0` = (p0, v0, a0) [3, D] into
        `tail` whose peak velocity/acceleration stay within the limits and peak jerk within `blend_max_jerk`
        (gradual joints); `longest` when none does. Every candidate length is checked in one batched product."""
        g = self.gradual
        first = min(self.config.min_blend_ticks, longest)
        if longest <= first or g is None:
            return longest
        # the shortest length alone first (it is the answer at most junctions): one [3S, 6] @ [6, G] product
        if self.ends_within_limits(first, np.concatenate([x0[:, g], tail.pva[:, first, g]])):
            return first
        start_op, end_op = self.quintic.candidates(first + 1, longest)
        n = longest - first
        xf = tail.pva[:, first + 1 : longest + 1, g].transpose(1, 0, 2)  # [n, 3, G]: the tail's state at each length
        samples = (start_op @ x0[:, g]).reshape(n, -1, self.n_gradual) + end_op @ xf  # [n, 3S, G]
        ok = (np.abs(samples) <= self.sample_limits).all(axis=(1, 2))
        k = int(ok.argmax())
        return first + 1 + k if ok[k] else longest

    def ends_within_limits(self, n_ticks: int, ends: np.ndarray) -> bool:
        """Whether the `n_ticks` blend between `ends` = (p0, v0, a0, pf, vf, af) [6, G] of the gradual joints keeps
        its sampled velocity, acceleration and jerk within the limits (NaN counts as over)."""
        samples = np.abs(np.matmul(self.quintic.peaks(n_ticks), ends, out=self._samples), out=self._samples)
        return np.count_nonzero(np.less_equal(samples, self.sample_limits, out=self._ok)) == samples.size

    @property
    def operators_built(self) -> int:
        """Operators the fast path has built so far (constant once the constructor's set covers the chunks seen)."""
        return 0 if self._fast is None else self._fast.built
