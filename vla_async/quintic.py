"""The quintic Hermite blend of VLA-RAIL as fixed linear maps, one per blend length.

A blend of `n` ticks from (p0, v0, a0) to (pf, vf, af) samples τ = i/n, i = 0..n-1, of the quintic
over T = n/fps seconds. Its positions, velocities and accelerations are one [3n, 6] matrix times the
six end states (`blend_operator`); its velocity, acceleration and jerk at `PEAK_SAMPLES` points of τ
are one [3S, 6] matrix (`peak_matrix`: the jerk is a parabola in τ whose extremes lie at the ends or
the vertex, close to a sample). `QuinticOperators` keeps them for one fps, built once.
"""

from __future__ import annotations

import numpy as np

PEAK_SAMPLES = 17  # S: points of τ at which a blend's peaks are checked


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


def blend_operator(n_ticks: int, fps: float) -> np.ndarray:
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


def peak_operator(samples: int = PEAK_SAMPLES) -> np.ndarray:
    """[3S, 6]: maps the coefficients c0..c5 of p(τ) = Σ c_i τ^i to dp/dτ, d²p/dτ², d³p/dτ³ at S points of τ."""
    tau = np.linspace(0.0, 1.0, samples)[:, None]
    i = np.arange(6)[None, :].astype(float)
    ops = []
    for d in (1, 2, 3):
        fall = np.prod([np.maximum(i - m, 0) for m in range(d)], axis=0)  # i (i-1) ... (i-d+1)
        ops.append(np.where(i >= d, fall * tau ** np.maximum(i - d, 0), 0.0))
    return np.concatenate(ops)


_PEAK_OP = peak_operator()


def peak_matrix(n_ticks: int, fps: float) -> np.ndarray:
    """[3S, 6]: maps (p0, v0, a0, pf, vf, af) of an n-tick blend to its velocity, acceleration and jerk at
    the S sample points (the quintic's coefficients in τ are linear in the end states)."""
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
    scale = np.repeat(T[0] ** -np.arange(1.0, 4.0), PEAK_SAMPLES)
    op = np.stack(cols, axis=1) * scale[:, None]
    op.setflags(write=False)
    return op


class QuinticOperators:
    """`blend_operator`, `peak_matrix` and the stacked peak matrices of a range of lengths, for one fps.

    Every length up to `longest` is built in the constructor; a longer one (a config or chunk beyond what the
    constructor was told) is built when first asked for and kept.
    """

    def __init__(self, fps: float, longest: int, candidate_ranges: list[tuple[int, int]] = ()):
        self.fps = float(fps)
        self._blend: dict[int, np.ndarray] = {}
        self._peaks: dict[int, np.ndarray] = {}
        self._candidates: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for n in range(1, longest + 1):
            self.blend(n)
            self.peaks(n)
        for first, last in candidate_ranges:
            self.candidates(first, last)

    def blend(self, n_ticks: int) -> np.ndarray:
        """`blend_operator(n_ticks, fps)` [3n, 6]."""
        op = self._blend.get(n_ticks)
        if op is None:
            op = self._blend[n_ticks] = blend_operator(n_ticks, self.fps)
        return op

    def peaks(self, n_ticks: int) -> np.ndarray:
        """`peak_matrix(n_ticks, fps)` [3S, 6]."""
        op = self._peaks.get(n_ticks)
        if op is None:
            op = self._peaks[n_ticks] = peak_matrix(n_ticks, self.fps)
        return op

    def candidates(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """`peaks` for blend lengths first..last stacked: the start-state part [n·3S, 3] and the end part [n, 3S, 3]."""
        hit = self._candidates.get((first, last))
        if hit is None:
            ops = np.stack([self.peaks(n) for n in range(first, last + 1)])  # [n, 3S, 6]
            start = np.ascontiguousarray(ops[:, :, :3].reshape(-1, 3))
            end = np.ascontiguousarray(ops[:, :, 3:])
            start.setflags(write=False)
            end.setflags(write=False)
            hit = self._candidates[(first, last)] = (start, end)
        return hit
