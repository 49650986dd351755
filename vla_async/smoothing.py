"""Trajectory smoother inside one chunk (VLA-RAIL, arXiv 2512.24673, "Trajectory Smoother").

Gradual dimensions: per joint, a least-squares polynomial fit over the chunk's tick times,
resampled on the tick grid, with velocity and acceleration from the analytic derivative. With
`window = w` the polynomial is fitted around every sample over `w` samples (Savitzky-Golay style):
it denoises without reshaping a multi-phase motion (descend → close → lift), which one cubic over a
whole 50-action chunk flattens. `window = 0` fits one polynomial to the whole chunk. Either way the
fit is a fixed linear map of the chunk, so the stacked [3n, n] operator (position, velocity,
acceleration) is computed once per chunk length and smoothing a chunk is one matrix product.

Stepwise (gripper-like) dimensions are not fitted: moving average over `stepwise_window` samples,
then, with `stepwise_snap = limits`, snapped to the nearer of the dimension's two position limits
(closed / open), and held between changes, with zero velocity and acceleration.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_async.config.schema import SmootherConfig
from vla_async.plan import index_selector


def _gradient(x: np.ndarray, fps: float) -> np.ndarray:
    """np.gradient(x, 1/fps, axis=0) (central inside, one-sided at the ends) without its overhead."""
    out = np.empty_like(x)
    out[1:-1] = (x[2:] - x[:-2]) * (0.5 * fps)
    out[0] = (x[1] - x[0]) * fps
    out[-1] = (x[-1] - x[-2]) * fps
    return out


def difference_operator(n: int, fps: float) -> np.ndarray:
    """[3n, n]: positions, then their velocities and accelerations by central differences (one-sided at the
    ends, as `np.gradient`), as one linear map."""
    eye = np.eye(n)
    if n < 2:
        return np.concatenate([eye, np.zeros((2 * n, n))])
    d1 = _gradient(eye, fps)  # column i: the gradient of a unit impulse at sample i
    return np.concatenate([eye, d1, _gradient(d1, fps)])


def fit_operators(n: int, degree: int, window: int, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear operators [n, n] mapping raw samples to fitted position, velocity, acceleration."""
    w = n if window <= 0 or window >= n else window
    deg = min(degree, w - 1)
    ops = np.zeros((3, n, n))
    half = w // 2
    powers = np.arange(deg + 1)
    scale = max((w - 1) / 2.0, 1.0)  # normalise times to about [-1, 1] for conditioning
    dxdt = fps / scale  # d(x)/d(seconds)
    for i in range(n):
        lo = 0 if w == n else min(max(0, i - half), n - w)
        idx = np.arange(lo, lo + w)
        centre = lo + (w - 1) / 2.0
        vander = np.vander((idx - centre) / scale, deg + 1, increasing=True)  # [w, deg+1]
        pinv = np.linalg.pinv(vander)  # coefficients = pinv @ samples
        xi = (i - centre) / scale
        row_p = xi**powers
        row_v = np.where(powers >= 1, powers * xi ** np.maximum(powers - 1, 0), 0.0)
        row_a = np.where(powers >= 2, powers * (powers - 1) * xi ** np.maximum(powers - 2, 0), 0.0)
        ops[0, i, idx] = row_p @ pinv
        ops[1, i, idx] = (row_v @ pinv) * dxdt
        ops[2, i, idx] = (row_a @ pinv) * dxdt**2
    return ops[0], ops[1], ops[2]


def moving_average_operator(n: int, window: int) -> np.ndarray:
    """[n, n] centred moving average over `window` samples, truncated (renormalised) at the ends."""
    op = np.zeros((n, n))
    half = max(0, window) // 2
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i + half + 1)
        op[i, lo:hi] = 1.0 / (hi - lo)
    return op


class Smoother:
    """Fits each gradual dimension of a chunk; stepwise dimensions are averaged, snapped and held."""

    def __init__(
        self,
        config: SmootherConfig,
        stepwise_mask: Sequence[bool],
        fps: float,
        position_limits: Sequence[Sequence[float]] | None = None,
        chunk_length: int | None = None,
    ):
        """`chunk_length`: the operators for chunks of that length are built here (others when first needed)."""
        self.config = config
        self.fps = float(fps)
        self.stepwise = np.asarray(stepwise_mask, dtype=bool)
        self._step_idx = np.flatnonzero(self.stepwise)
        self.stepwise_selector = index_selector(self._step_idx)  # the stepwise columns (slice, index array or None)
        self._levels: np.ndarray | None = None  # [n_stepwise, 2] closed/open levels to snap to
        if config.stepwise_snap == "limits" and position_limits is not None and len(self._step_idx):
            lim = np.asarray(position_limits, dtype=float)[self._step_idx]
            if np.all(np.isfinite(lim)):
                self._levels = lim
        self._ops: dict[int, np.ndarray] = {}
        self._avg: dict[int, np.ndarray] = {}
        if chunk_length is not None:
            self.operator(chunk_length)
            self._average(chunk_length)

    @property
    def snaps_stepwise(self) -> bool:
        """Whether stepwise columns are snapped to their two levels (not a linear map of the chunk)."""
        return self._levels is not None

    def operator(self, n: int) -> np.ndarray:
        """[3n, n]: the fit (enabled) or the raw positions with their finite differences (disabled)."""
        ops = self._ops.get(n)
        if ops is None:
            if self.config.enabled:
                ops = np.concatenate(fit_operators(n, self.config.degree, self.config.window, self.fps))
            else:
                ops = difference_operator(n, self.fps)
            ops.setflags(write=False)
            self._ops[n] = ops
        return ops

    def stacked(self, actions: np.ndarray, lead: int = 0, derivatives: bool = True) -> np.ndarray:
        """[3, lead + n, D]: positions, velocities, accelerations of `actions` [n, D] in rows lead.. (the first
        `lead` rows are left unset, for the caller to fill: e.g. an anchor row before the chunk). Without smoothing
        and `derivatives=False` (for fusers that read positions only) velocities and accelerations are 0."""
        if type(actions) is not np.ndarray:
            actions = np.asarray(actions, dtype=float)
        n, d = actions.shape
        out = np.empty((3, lead + n, d))
        if not derivatives and not self.config.enabled:
            out[0, lead:] = actions
            out[1:, lead:] = 0.0
            return out
        if lead == 0:
            np.matmul(self.operator(n), actions, out=out.reshape(3 * n, d))  # one product: [3n, n] @ [n, D]
        else:
            out[:, lead:] = (self.operator(n) @ actions).reshape(3, n, d)
        s = self.stepwise_selector
        if s is not None:
            if self.config.enabled:
                out[0][lead:, s] = self.smooth_stepwise(actions[:, s])
            out[1:, lead:, s] = 0.0
        return out

    def smooth_stepwise(self, raw: np.ndarray) -> np.ndarray:
        """Smoothed stepwise columns [n, S] of `raw` [n, S]: averaged, then snapped when configured."""
        avg = self._average(raw.shape[0])
        out = raw if avg is None else avg @ raw
        if self._levels is not None:
            low, high = self._levels[:, 0], self._levels[:, 1]
            out = np.where(out >= 0.5 * (low + high), high, low)
        return out

    def _average(self, n: int) -> np.ndarray | None:
        """The stepwise moving average for n samples (None: none)."""
        if self.config.stepwise_window <= 1 or n <= 1:
            return None
        avg = self._avg.get(n)
        if avg is None:
            avg = self._avg[n] = moving_average_operator(n, self.config.stepwise_window)
        return avg
