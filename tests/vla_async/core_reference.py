"""Plain reference implementations the tests check the production code against (not used by it).

Each is the straightforward form of something production computes another way: the quintic blend and its
peaks evaluated directly, finite differences with numpy's semantics, numpy's quantile in pure Python, a
plan written row by row from arrays.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vla_async.chunk_fusion import ChunkFusion, fusion_class
from vla_async.config.schema import FuserConfig, SmootherConfig
from vla_async.latency import sorted_quantile
from vla_async.plan import Plan, Trajectory
from vla_async.quintic import PEAK_SAMPLES, blend_operator, peak_operator
from vla_async.smoothing import Smoother

_PEAK_OP = peak_operator()


def make_fusion(config: FuserConfig, stepwise, fps: float, limits=None, smoother: SmootherConfig | None = None,
                position_limits=None, chunk_length: int | None = None) -> ChunkFusion:
    """The fusion `config.kind` names, over a smoother (disabled unless given) for `stepwise` joints."""
    sm = Smoother(smoother or SmootherConfig(), stepwise, fps, position_limits)
    return fusion_class(config.kind)(config, sm, limits, chunk_length)


def smooth(smoother: Smoother, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions, velocities and accelerations on the tick grid for `actions` [n, D]."""
    pva = smoother.stacked(actions)
    return pva[0], pva[1], pva[2]


def finite_derivatives(pos: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Velocity and acceleration (units/s, units/s²) of positions sampled at `fps`: `np.gradient` twice."""
    pos = np.asarray(pos, dtype=float)
    if pos.shape[0] < 2:
        return np.zeros_like(pos), np.zeros_like(pos)
    vel = np.gradient(pos, 1.0 / fps, axis=0)
    return vel, np.gradient(vel, 1.0 / fps, axis=0)


def quantile(samples: Iterable[float], q: float) -> float:
    """numpy's default (linear) quantile via the production helper on sorted samples."""
    return sorted_quantile(sorted(samples), q)


def quintic_blend(p0, v0, a0, pf, vf, af, n_ticks: int, fps: float):
    """Samples τ = i/n, i = 0..n-1, of the quintic from (p0, v0, a0) to (pf, vf, af) over n ticks."""
    out = blend_operator(n_ticks, float(fps)) @ np.stack([p0, v0, a0, pf, vf, af])
    return out[:n_ticks], out[n_ticks : 2 * n_ticks], out[2 * n_ticks :]


def blend_peaks(p0, v0, a0, pf, vf, af, T):
    """Peak |velocity|, |acceleration|, |jerk| [n, D] of the quintics from (p0, v0, a0) to (pf[n], vf[n], af[n])
    over durations T[n] seconds (one candidate blend per row), from its coefficients in τ at the sample points."""
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
    peaks = np.abs(_PEAK_OP @ c.reshape(6, n * d)).reshape(3, PEAK_SAMPLES, n, d).max(axis=1)
    return peaks[0] / T, peaks[1] / T2, peaks[2] / (T2 * T)


def write_rows(plan: Plan, tick: int, pos, vel, acc, source: int, count: int = 1) -> None:
    """Keep the plan's rows before `tick`, then the given rows (what a fusion writes, from separate arrays)."""
    plan.write_rows(tick, np.stack([np.asarray(pos, float), vel, acc]), source, count)


def state_at(plan: Plan, tick: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of the position, velocity and acceleration planned for `tick`."""
    p, v, a = plan.row(tick).copy()
    return p, v, a


def reference_rail_fuse(fusion, plan: Plan, actions: np.ndarray, start: int, lead: int, j: int, source: int) -> int:
    """The step-by-step path the rail fast path replaces: smooth the chunk (with an anchor row for tick
    `start - 1` when `lead`, stepwise positions kept from the plan), then `RailFusion.merge`."""
    pva = fusion.smoother.stacked(actions, lead)
    if lead:
        pva[:, 0] = pva[:, 1]
        s = np.flatnonzero(fusion.stepwise)
        pva[0, 0, s] = plan.position(j)[s]
    return fusion.merge(plan, Trajectory.stacked(start - lead, pva, source), j)

