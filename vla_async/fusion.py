"""Chunk fusers: how a new chunk is merged into the plan from the junction tick on.

A fuser receives the plan, the new chunk already placed on the tick grid (and smoothed, when the
strategy smooths), and the junction tick `j`: the first tick whose command may still change. The
plan is guaranteed to cover `[.., j]` (the scheduler fills an underrun with a hold first), so every
fuser sees the executing trajectory's state at `j`. Fusers are chosen by name from `FUSERS`.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Sequence

import numpy as np

from vla_async.config.schema import FuserConfig
from vla_async.plan import Plan, Trajectory, index_selector


class Fuser(abc.ABC):
    """Merges a placed chunk into the plan; returns the number of blended ticks (0 for a switch)."""

    reads_derivatives = False  # whether `fuse` reads the plan's and the chunk's velocities and accelerations

    def __init__(self, config: FuserConfig, stepwise_mask: Sequence[bool], fps: float):
        self.config = config
        self.stepwise = np.asarray(stepwise_mask, dtype=bool)
        self.fps = float(fps)

    @abc.abstractmethod
    def fuse(self, plan: Plan, new: Trajectory, j: int) -> int: ...


class LatestOnlyFuser(Fuser):
    """Switch abruptly: from `j` on, the plan is the new chunk."""

    def fuse(self, plan: Plan, new: Trajectory, j: int) -> int:
        plan.replace_from_stacked(j, new.from_tick(j).pva, new.source, 1)
        return 0


class _OverlapFuser(Fuser):
    """Ticks both chunks cover are mixed as `w·old + (1 − w)·new`, w from `_old_weight` of how many predictions the
    old value already mixes (a hold, count 0, is not a prediction: the new chunk replaces it); the new chunk alone
    after the old plan ends. Positions only, as LeRobot and ACT do (velocities and accelerations are the new
    chunk's)."""

    def __init__(self, config: FuserConfig, stepwise_mask: Sequence[bool], fps: float):
        super().__init__(config, stepwise_mask, fps)
        self._weights = np.zeros(0)  # w by old count (index), grown on demand

    def fuse(self, plan: Plan, new: Trajectory, j: int) -> int:
        tail = new.from_tick(j)
        a = plan.index(j)
        n_overlap = 0 if a < 0 else max(0, min(len(tail), len(plan) - a))
        pva = tail.pva.copy()
        if n_overlap == 0:
            plan.replace_from_stacked(j, pva, new.source, 1)
            return 0
        rows = slice(plan.lo + a, plan.lo + a + n_overlap)
        old_count = plan.cnt[rows]
        top = int(np.maximum.reduce(old_count))
        if top >= len(self._weights):
            self._weights = np.array([0.0] + [self._old_weight(c) for c in range(1, 2 * top + 2)])
        w_old = self._weights[old_count][:, None]
        head = pva[0, :n_overlap]
        head += w_old * (plan.buf[0, rows] - head)
        count = old_count + 1  # a new array: the plan's rows are overwritten next
        r = plan.replace_from_stacked(j, pva, new.source, 1)
        plan.cnt[r : r + n_overlap] = count
        return 0

    @abc.abstractmethod
    def _old_weight(self, old_count: int) -> float:
        """w of the old value when it mixes `old_count` >= 1 predictions."""


class LeRobotFuser(_OverlapFuser):
    """LeRobot's aggregate: overlapping ticks become `w·old + (1-w)·new` (w = 0.3)."""

    def _old_weight(self, old_count: int) -> float:
        return self.config.lerobot_old_weight


class TemporalEnsembleFuser(_OverlapFuser):
    """ACT temporal ensembling: `Σ w_i a^(i) / Σ w_i`, `w_i = exp(-m·i)`, i = 0 the oldest prediction.

    The old value already is the weighted mean of `c` predictions with total weight
    `W = Σ_{i<c} exp(-m i)`; the new prediction gets `exp(-m c)`, so the update is exact and incremental.
    """

    def _old_weight(self, old_count: int) -> float:
        m, c = self.config.ensemble_m, float(old_count)
        total_old = c if m == 0 else (1.0 - math.exp(-m * c)) / (1.0 - math.exp(-m))
        return total_old / (total_old + math.exp(-m * c))


def quintic_basis(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quintic Hermite basis h0..h5 (columns) and its first and second derivatives in τ (VLA-RAIL)."""
    t = np.asarray(tau, dtype=float)[:, None]
    t2, t3, t4, t5 = t * t, t**3, t**4, t**5
    h = np.hstack([
        1 - 10 * t3 + 15 * t4 - 6 * t5,
        t - 6 * t3 + 8 * t4 - 3 * t5,
        0.5 * t2 - 1.5 * t3 + 1.5 * t4 - 0.5 * t5,
        10 * t3 - 15 * t4 + 6 * t5,
        -4 * t3 + 7 * t4 - 3 * t5,
        0.5 * t3 - t4 + 0.5 * t5,
    ])
    dh = np.hstack([
        -30 * t2 + 60 * t3 - 30 * t4,
        1 - 18 * t2 + 32 * t3 - 15 * t4,
        t - 4.5 * t2 + 6 * t3 - 2.5 * t4,
        30 * t2 - 60 * t3 + 30 * t4,
        -12 * t2 + 28 * t3 - 15 * t4,
        1.5 * t2 - 4 * t3 + 2.5 * t4,
    ])
    ddh = np.hstack([
        -60 * t + 180 * t2 - 120 * t3,
        -36 * t + 96 * t2 - 60 * t3,
        1 - 9 * t + 18 * t2 - 10 * t3,
        60 * t - 180 * t2 + 120 * t3,
        -24 * t + 84 * t2 - 60 * t3,
        3 * t - 12 * t2 + 10 * t3,
    ])
    return h, dh, ddh


@functools.lru_cache(maxsize=64)
def _blend_operator(n_ticks: int, fps: float) -> np.ndarray:
    """[3n, 6]: maps (p0, v0, a0, pf, vf, af) to positions, velocities, accelerations at τ = i/n.

    The duration scalings (T, T² on the coefficients, 1/T, 1/T² on the derivatives) are folded in,
    so a blend is one small matrix product.
    """
    T = n_ticks / fps
    h, dh, ddh = quintic_basis(np.arange(n_ticks) / n_ticks)
    scale = np.array([1.0, T, T * T, 1.0, T, T * T])
    op = np.concatenate([h * scale, dh * (scale / T), ddh * (scale / (T * T))])
    op.setflags(write=False)
    return op


def quintic_blend(
    p0: np.ndarray, v0: np.ndarray, a0: np.ndarray, pf: np.ndarray, vf: np.ndarray, af: np.ndarray,
    n_ticks: int, fps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples τ = i/n, i = 0..n-1, of the quintic from (p0, v0, a0) to (pf, vf, af) over n ticks."""
    out = _blend_operator(n_ticks, float(fps)) @ np.stack([p0, v0, a0, pf, vf, af])
    return out[:n_ticks], out[n_ticks : 2 * n_ticks], out[2 * n_ticks :]


def _peak_operator(samples: int = 17) -> np.ndarray:
    """[3S, 6]: maps the coefficients c0..c5 of p(τ) = Σ c_i τ^i to dp/dτ, d²p/dτ², d³p/dτ³ at S points of τ."""
    tau = np.linspace(0.0, 1.0, samples)[:, None]
    i = np.arange(6)[None, :].astype(float)
    ops = []
    for d in (1, 2, 3):
        fall = np.prod([np.maximum(i - m, 0) for m in range(d)], axis=0)  # i (i-1) ... (i-d+1)
        ops.append(np.where(i >= d, fall * tau ** np.maximum(i - d, 0), 0.0))
    return np.concatenate(ops)


_PEAK_OP = _peak_operator()
_PEAK_S = _PEAK_OP.shape[0] // 3


def blend_peaks(
    p0: np.ndarray, v0: np.ndarray, a0: np.ndarray, pf: np.ndarray, vf: np.ndarray, af: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak |velocity|, |acceleration|, |jerk| [n, D] of the quintics from (p0, v0, a0) to (pf[n], vf[n], af[n])
    over durations T[n] seconds (one candidate blend per row), sampled at 17 points of τ (the jerk is a
    parabola in τ whose extremes lie at the ends or the vertex, close to a sample). One small matrix product."""
    T = np.asarray(T, dtype=float)[:, None]
    T2 = T * T
    P = pf - p0 - v0 * T - 0.5 * a0 * T2  # p(τ) = Σ c_i τ^i on τ ∈ [0, 1]
    V = (vf - v0 - a0 * T) * T
    A = (af - a0) * T2
    n, d = P.shape
    c = np.empty((6, n, d))
    c[0] = p0
    c[1] = v0 * T
    c[2] = 0.5 * a0 * T2
    c[3] = 10 * P - 4 * V + 0.5 * A
    c[4] = -15 * P + 7 * V - A
    c[5] = 6 * P - 3 * V + 0.5 * A
    peaks = np.abs(_PEAK_OP @ c.reshape(6, n * d)).reshape(3, _PEAK_S, n, d).max(axis=1)
    return peaks[0] / T, peaks[1] / T2, peaks[2] / (T2 * T)


@functools.lru_cache(maxsize=256)
def _peak_matrix(n_ticks: int, fps: float) -> np.ndarray:
    """[3S, 6]: maps (p0, v0, a0, pf, vf, af) of an n-tick blend to its velocity, acceleration and jerk at
    the 17 sample points (what `blend_peaks` evaluates, as one fixed linear map per blend length)."""
    T = np.array([n_ticks / fps])
    cols = []
    for k in range(6):
        x = np.zeros((6, 1, 1))
        x[k] = 1.0
        p0, v0, a0, pf, vf, af = x
        P = pf - p0 - v0 * T - 0.5 * a0 * T * T
        V = (vf - v0 - a0 * T) * T
        A = (af - a0) * T * T
        c = np.array([p0, v0 * T, 0.5 * a0 * T * T, 10 * P - 4 * V + 0.5 * A, -15 * P + 7 * V - A,
                      6 * P - 3 * V + 0.5 * A]).reshape(6)
        cols.append(_PEAK_OP @ c)
    scale = np.repeat(T[0] ** -np.arange(1.0, 4.0), _PEAK_S)
    op = np.stack(cols, axis=1) * scale[:, None]
    op.setflags(write=False)
    return op


@functools.lru_cache(maxsize=64)
def _candidate_operators(first: int, last: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Stacked `_peak_matrix` for blend lengths first..last: the start part [n·3S, 3] and the end part [n, 3S, 3]."""
    ops = np.stack([_peak_matrix(n, fps) for n in range(first, last + 1)])  # [n, 3S, 6]
    start = np.ascontiguousarray(ops[:, :, :3].reshape(-1, 3))
    end = np.ascontiguousarray(ops[:, :, 3:])
    start.setflags(write=False)
    end.setflags(write=False)
    return start, end


class RailFuser(Fuser):
    """VLA-RAIL chunk fuser: C2 quintic blend from the plan's (p0, v0, a0) at `j` to the new chunk at `j+L`.

    `L` is `blend_ticks`, or with `adaptive_blend` long enough that the blend's mean catch-up speed
    stays under `blend_speed` (bounded by `max_blend_ticks` and by the chunk). Stepwise dimensions
    step to the new chunk's value at once.
    """

    reads_derivatives = True

    def blend_length(self, mismatch: float, available: int) -> int:
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
        g = self._g
        first = min(self.config.min_blend_ticks, longest)
        if longest <= first or g is None:
            return longest
        lim = self._sample_limits
        # the shortest length alone first (it is the answer at most junctions): one [3S, 6] @ [6, G] product
        ends = self._ends  # (p0, v0, a0, pf, vf, af) [6, G]: `fuse` reuses it when the answer is `first`
        ends[:3] = x0[:, g]
        ends[3:] = tail.pva[:, first, g]
        self._ends_len = first
        if self.ends_within_limits(first, ends):
            return first
        start_op, end_op = _candidate_operators(first + 1, longest, self.fps)
        n = longest - first
        xf = tail.pva[:, first + 1 : longest + 1, g].transpose(1, 0, 2)  # [n, 3, G]: the tail's state at each length
        samples = (start_op @ x0[:, g]).reshape(n, -1, self._n_gradual) + end_op @ xf  # [n, 3S, G]
        ok = (np.abs(samples) <= lim).all(axis=(1, 2))
        k = int(ok.argmax())
        return first + 1 + k if ok[k] else longest

    def ends_within_limits(self, n_ticks: int, ends: np.ndarray) -> bool:
        """Whether the `n_ticks` blend between `ends` = (p0, v0, a0, pf, vf, af) [6, G] of the gradual joints keeps
        its sampled velocity, acceleration and jerk within the limits (NaN counts as over)."""
        samples = np.abs(np.matmul(_peak_matrix(n_ticks, self.fps), ends, out=self._samples), out=self._samples)
        return np.count_nonzero(np.less_equal(samples, self._sample_limits, out=self._ok)) == samples.size

    def fuse(self, plan: Plan, new: Trajectory, j: int) -> int:
        tail = new.from_tick(j)
        if len(tail) == 0:
            return 0
        n_blend = 0
        blend = None
        i = plan.index(j)
        g = self._g
        if i >= 0:
            x0 = plan.buf[:, plan.lo + i]  # (p0, v0, a0) [3, D]; read before the plan is written below
            mismatch = float(np.abs(x0[0, g] - tail.pva[0, 0, g]).max()) if g is not None else 0.0
            n_blend = self.blend_length(mismatch, len(tail))
            self._ends_len = -1
            if self.config.blend_limits and n_blend > 0:
                n_blend = self.limited_length(x0, tail, n_blend)
            if n_blend > 0 and g is not None:  # stepwise dimensions switch to the new chunk at once
                ends = self._ends  # (p0, v0, a0, pf, vf, af) [6, G]
                if self._ends_len != n_blend:
                    ends[:3] = x0[:, g]
                    ends[3:] = tail.pva[:, n_blend, g]
                blend = (_blend_operator(n_blend, self.fps) @ ends).reshape(3, n_blend, self._n_gradual)
        r = plan.replace_from_stacked(j, tail.pva, new.source, 1)
        if blend is not None:
            plan.buf[:, r : r + n_blend, g] = blend
        return n_blend

    def __init__(self, config: FuserConfig, stepwise_mask: Sequence[bool], fps: float,
                 limits: tuple[np.ndarray, np.ndarray] | None = None):
        super().__init__(config, stepwise_mask, fps)
        self._gradual_idx = np.flatnonzero(~self.stepwise)
        self._stepwise_idx = np.flatnonzero(self.stepwise)
        self._g = index_selector(self._gradual_idx)
        self._n_gradual = len(self._gradual_idx)
        d = len(self.stepwise)
        max_vel, max_acc = limits if limits is not None else (np.full(d, np.inf), np.full(d, np.inf))
        self._max_vel = np.broadcast_to(np.asarray(max_vel, dtype=float), (d,))[self._gradual_idx]
        self._max_acc = np.broadcast_to(np.asarray(max_acc, dtype=float), (d,))[self._gradual_idx]
        self._peak_limits = np.stack([self._max_vel, self._max_acc, np.full(len(self._max_vel), config.blend_max_jerk)])
        self._sample_limits = np.repeat(self._peak_limits, _PEAK_S, axis=0)  # [3S, G]: each sample's bound
        # scratch for the per-chunk blend search
        self._ends = np.empty((6, self._n_gradual))
        self._ends_len = -1  # blend length `_ends` holds the end state of (-1: none)
        self._samples = np.empty(self._sample_limits.shape)
        self._ok = np.empty(self._sample_limits.shape, dtype=bool)


FUSERS: dict[str, type[Fuser]] = {
    "latest_only": LatestOnlyFuser,
    "lerobot": LeRobotFuser,
    "temporal_ensemble": TemporalEnsembleFuser,
    "rail": RailFuser,
}


def create_fuser(
    config: FuserConfig, stepwise_mask: Sequence[bool], fps: float,
    limits: tuple[np.ndarray, np.ndarray] | None = None,
) -> Fuser:
    """`limits` = per-joint (max velocity, max acceleration) that a rail blend with `blend_limits` respects."""
    try:
        cls = FUSERS[config.kind]
    except KeyError:
        raise ValueError(f"unknown fuser {config.kind!r}; available: {sorted(FUSERS)}") from None
    if cls is RailFuser:
        return RailFuser(config, stepwise_mask, fps, limits)
    return cls(config, stepwise_mask, fps)
