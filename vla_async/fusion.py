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
from vla_async.plan import Plan, Trajectory


class Fuser(abc.ABC):
    """Merges a placed chunk into the plan; returns the number of blended ticks (0 for a switch)."""

    def __init__(self, config: FuserConfig, stepwise_mask: Sequence[bool], fps: float):
        self.config = config
        self.stepwise = np.asarray(stepwise_mask, dtype=bool)
        self.fps = float(fps)

    @abc.abstractmethod
    def fuse(self, plan: Plan, new: Trajectory, j: int) -> int: ...


def _ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.int64)


class LatestOnlyFuser(Fuser):
    """Switch abruptly: from `j` on, the plan is the new chunk."""

    def fuse(self, plan: Plan, new: Trajectory, j: int) -> int:
        tail = new.from_tick(j)
        plan.replace_from(j, tail.pos, tail.vel, tail.acc, np.full(len(tail), new.source), _ones(len(tail)))
        return 0


class _OverlapFuser(Fuser):
    """Ticks both chunks cover are mixed by `_mix`; the new chunk alone after the old plan ends."""

    def fuse(self, plan: Plan, new: Trajectory, j: int) -> int:
        tail = new.from_tick(j)
        a = plan.index(j)
        n_overlap = 0 if a < 0 else max(0, min(len(tail), len(plan) - a))
        pos, vel, acc = tail.pos.copy(), tail.vel.copy(), tail.acc.copy()
        count = _ones(len(tail))
        if n_overlap:
            sl = slice(a, a + n_overlap)
            old_count = plan.count[sl]
            w_old, w_new = self._weights(old_count)  # [n] each
            held = old_count == 0  # a hold is not a prediction: the new chunk replaces it
            w_old, w_new = np.where(held, 0.0, w_old)[:, None], np.where(held, 1.0, w_new)[:, None]
            for out, old in ((pos, plan.pos[sl]), (vel, plan.vel[sl]), (acc, plan.acc[sl])):
                out[:n_overlap] = w_old * old + w_new * out[:n_overlap]
            count[:n_overlap] = old_count + 1
        plan.replace_from(j, pos, vel, acc, np.full(len(tail), new.source), count)
        return 0

    @abc.abstractmethod
    def _weights(self, old_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised weights (old, new) per overlapping tick, given how many chunks the old value mixes."""


class LeRobotFuser(_OverlapFuser):
    """LeRobot's aggregate: overlapping ticks become `w·old + (1-w)·new` (w = 0.3)."""

    def _weights(self, old_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = np.full(old_count.shape, self.config.lerobot_old_weight)
        return w, 1.0 - w


class TemporalEnsembleFuser(_OverlapFuser):
    """ACT temporal ensembling: `Σ w_i a^(i) / Σ w_i`, `w_i = exp(-m·i)`, i = 0 the oldest prediction.

    The old value already is the weighted mean of `c` predictions with total weight
    `W = Σ_{i<c} exp(-m i)`; the new prediction gets `exp(-m c)`, so the update is exact and incremental.
    """

    def _weights(self, old_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.config.ensemble_m
        c = np.maximum(old_count, 1).astype(float)
        total_old = c if m == 0 else (1.0 - np.exp(-m * c)) / (1.0 - math.exp(-m))
        w_new = np.exp(-m * c)
        return total_old / (total_old + w_new), w_new / (total_old + w_new)


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


_PEAK_TAU = np.linspace(0.0, 1.0, 17)  # where a blend's velocity/acceleration/jerk peaks are looked for
_TAU_POW = np.vander(_PEAK_TAU, 5, increasing=True)  # [S, 5]: 1, τ, τ², τ³, τ⁴


def blend_peaks(
    p0: np.ndarray, v0: np.ndarray, a0: np.ndarray, pf: np.ndarray, vf: np.ndarray, af: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak |velocity|, |acceleration|, |jerk| [n, D] of the quintics from (p0, v0, a0) to (pf[n], vf[n], af[n])
    over durations T[n] seconds (one candidate blend per row), sampled at 17 points of τ (jerk exactly:
    it is a parabola in τ, so its extremes are the ends or the vertex, both sampled closely enough)."""
    T = np.asarray(T, dtype=float)[:, None]
    P = pf - p0 - v0 * T - 0.5 * a0 * T * T  # normalised coefficients of p(τ) = Σ c_i τ^i
    V = (vf - v0 - a0 * T) * T
    A = (af - a0) * T * T
    c3, c4, c5 = 10 * P - 4 * V + 0.5 * A, -15 * P + 7 * V - A, 6 * P - 3 * V + 0.5 * A
    c1, c2 = v0 * T, 0.5 * a0 * T * T
    w = _TAU_POW  # [S, 5]
    vel = (c1[:, None] + w[None, :, 1:2] * 2 * c2[:, None] + w[None, :, 2:3] * 3 * c3[:, None]
           + w[None, :, 3:4] * 4 * c4[:, None] + w[None, :, 4:5] * 5 * c5[:, None]) / T[:, None]
    acc = (2 * c2[:, None] + w[None, :, 1:2] * 6 * c3[:, None] + w[None, :, 2:3] * 12 * c4[:, None]
           + w[None, :, 3:4] * 20 * c5[:, None]) / (T * T)[:, None]
    jerk = (6 * c3[:, None] + w[None, :, 1:2] * 24 * c4[:, None] + w[None, :, 2:3] * 60 * c5[:, None]) / (T**3)[:, None]
    return np.abs(vel).max(axis=1), np.abs(acc).max(axis=1), np.abs(jerk).max(axis=1)


class RailFuser(Fuser):
    """VLA-RAIL chunk fuser: C2 quintic blend from the plan's (p0, v0, a0) at `j` to the new chunk at `j+L`.

    `L` is `blend_ticks`, or with `adaptive_blend` long enough that the blend's mean catch-up speed
    stays under `blend_speed` (bounded by `max_blend_ticks` and by the chunk). Stepwise dimensions
    step to the new chunk's value at once.
    """

    def blend_length(self, mismatch: float, available: int) -> int:
        cfg = self.config
        n = cfg.blend_ticks
        if cfg.adaptive_blend:
            n = max(n, math.ceil(mismatch * self.fps / cfg.blend_speed))
            n = min(n, max(cfg.max_blend_ticks, cfg.blend_ticks))
        return max(0, min(n, available - 1))

    def limited_length(
        self, p0: np.ndarray, v0: np.ndarray, a0: np.ndarray, tail: Trajectory, longest: int
    ) -> int:
        """Shortest blend in [min_blend_ticks, longest] whose peak velocity/acceleration stay within the
        limits and peak jerk within `blend_max_jerk` (gradual joints); `longest` when none does."""
        cfg, g = self.config, self._gradual_idx
        first = min(cfg.min_blend_ticks, longest)
        if longest <= first or len(g) == 0:
            return longest
        n = np.arange(first, longest + 1)
        vel_pk, acc_pk, jerk_pk = blend_peaks(
            p0[g], v0[g], a0[g], tail.pos[n][:, g], tail.vel[n][:, g], tail.acc[n][:, g], n / self.fps
        )
        ok = (vel_pk <= self._max_vel).all(axis=1) & (acc_pk <= self._max_acc).all(axis=1) & (
            jerk_pk <= cfg.blend_max_jerk).all(axis=1)
        hit = np.flatnonzero(ok)
        return int(n[hit[0]]) if len(hit) else longest

    def fuse(self, plan: Plan, new: Trajectory, j: int) -> int:
        tail = new.from_tick(j)
        if len(tail) == 0:
            return 0
        pos, vel, acc = tail.pos, tail.vel, tail.acc
        n_blend = 0
        i = plan.index(j)
        if i >= 0:
            p0, v0, a0 = plan.pos[i], plan.vel[i], plan.acc[i]
            g = self._gradual_idx
            mismatch = float(np.abs(p0[g] - pos[0, g]).max()) if len(g) else 0.0
            n_blend = self.blend_length(mismatch, len(tail))
            if self.config.blend_limits and n_blend > 0:
                n_blend = self.limited_length(p0, v0, a0, tail, n_blend)
            if n_blend > 0:
                pos, vel, acc = pos.copy(), vel.copy(), acc.copy()
                bp, bv, ba = quintic_blend(p0, v0, a0, pos[n_blend], vel[n_blend], acc[n_blend], n_blend, self.fps)
                s = self._stepwise_idx
                if len(s):  # stepwise dimensions switch to the new chunk at once
                    bp[:, s], bv[:, s], ba[:, s] = pos[:n_blend, s], vel[:n_blend, s], acc[:n_blend, s]
                pos[:n_blend], vel[:n_blend], acc[:n_blend] = bp, bv, ba
        plan.replace_from(j, pos, vel, acc, np.full(len(tail), new.source), _ones(len(tail)))
        return n_blend

    def __init__(self, config: FuserConfig, stepwise_mask: Sequence[bool], fps: float,
                 limits: tuple[np.ndarray, np.ndarray] | None = None):
        super().__init__(config, stepwise_mask, fps)
        self._gradual_idx = np.flatnonzero(~self.stepwise)
        self._stepwise_idx = np.flatnonzero(self.stepwise)
        d = len(self.stepwise)
        max_vel, max_acc = limits if limits is not None else (np.full(d, np.inf), np.full(d, np.inf))
        self._max_vel = np.broadcast_to(np.asarray(max_vel, dtype=float), (d,))[self._gradual_idx]
        self._max_acc = np.broadcast_to(np.asarray(max_acc, dtype=float), (d,))[self._gradual_idx]


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
