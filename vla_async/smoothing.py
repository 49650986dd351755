"""Trajectory smoother inside one chunk (VLA-RAIL, arXiv 2512.24673, "Trajectory Smoother").

Per joint, a least-squares polynomial fit over the chunk's tick times, resampled on the tick grid,
with velocity and acceleration from the analytic derivative. With `window = 0` one polynomial is
fitted to the whole chunk; with `window = w` a polynomial is fitted around every sample over `w`
samples (Savitzky-Golay style), which follows long chunks more closely. Either way the fit is a
fixed linear map of the chunk, so the three [n, n] operators are computed once per chunk length and
smoothing a chunk costs three matrix products. Gripper-like (stepwise) dimensions are not fitted:
they are step signals with zero velocity and acceleration.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_async.config.schema import SmootherConfig


def finite_derivatives(pos: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Velocity and acceleration (units/s, units/s²) of positions sampled at `fps`, by central differences."""
    n = pos.shape[0]
    if n < 2:
        zeros = np.zeros_like(pos, dtype=float)
        return zeros, zeros.copy()
    vel = np.gradient(pos, 1.0 / fps, axis=0)
    acc = np.gradient(vel, 1.0 / fps, axis=0)
    return vel, acc


def _fit_operators(n: int, degree: int, window: int, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear operators mapping raw samples [n] to fitted position, velocity, acceleration [n]."""
    w = n if window <= 0 or window >= n else window
    deg = min(degree, w - 1)
    ops = np.zeros((3, n, n))
    half = w // 2
    for i in range(n):
        lo = 0 if w == n else min(max(0, i - half), n - w)
        idx = np.arange(lo, lo + w)
        scale = max((w - 1) / 2.0, 1.0)  # normalise times to about [-1, 1] for conditioning
        centre = lo + (w - 1) / 2.0
        x = (idx - centre) / scale
        vander = np.vander(x, deg + 1, increasing=True)  # [w, deg+1]
        pinv = np.linalg.pinv(vander)  # coefficients = pinv @ samples
        xi = (i - centre) / scale
        powers = np.arange(deg + 1)
        row_p = xi**powers
        row_v = np.where(powers >= 1, powers * xi ** np.maximum(powers - 1, 0), 0.0)
        row_a = np.where(powers >= 2, powers * (powers - 1) * xi ** np.maximum(powers - 2, 0), 0.0)
        dxdt = fps / scale  # d(x)/d(seconds)
        ops[0, i, idx] = row_p @ pinv
        ops[1, i, idx] = (row_v @ pinv) * dxdt
        ops[2, i, idx] = (row_a @ pinv) * dxdt**2
    return ops[0], ops[1], ops[2]


class Smoother:
    """Fits each gradual dimension of a chunk; stepwise dimensions pass through as steps."""

    def __init__(self, config: SmootherConfig, stepwise_mask: Sequence[bool], fps: float):
        self.config = config
        self.fps = float(fps)
        self.stepwise = np.asarray(stepwise_mask, dtype=bool)
        self._ops: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def operators(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ops = self._ops.get(n)
        if ops is None:
            ops = _fit_operators(n, self.config.degree, self.config.window, self.fps)
            self._ops[n] = ops
        return ops

    def __call__(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, velocities and accelerations on the tick grid for `actions` [n, D]."""
        actions = np.asarray(actions, dtype=float)
        if not self.config.enabled:
            pos = actions.copy()
            vel, acc = finite_derivatives(pos, self.fps)
        else:
            op_p, op_v, op_a = self.operators(actions.shape[0])
            pos, vel, acc = op_p @ actions, op_v @ actions, op_a @ actions
        if self.stepwise.any():
            pos[:, self.stepwise] = actions[:, self.stepwise]
            vel[:, self.stepwise] = 0.0
            acc[:, self.stepwise] = 0.0
        return pos, vel, acc
