"""The safety layer as it was before the displacement-window rewrite: the reference `test_safety` compares the
fast one with (same commands up to rounding). Not used by the product.

Safety layer on the commanded trajectory: position limits, max velocity, acceleration and step.

Each tick the command moves from the previous command with a velocity chosen inside
- the hard window: |v| ≤ max_velocity, |v|·dt ≤ max_step, and a braking bound toward each position
  limit (v·dt + v²/(2·a_max) ≤ distance to the limit, so the arm can always stop before it; this is
  what keeps the acceleration bound satisfiable next to a limit), and
- the acceleration window |v − v_prev| ≤ max_acceleration·dt (dropped only if the two windows
  cannot meet, e.g. when starting outside the limits),
and is finally clamped to the limits (robot limits shrunk by `limit_margin`). Stepwise (gripper)
dimensions are only clamped to their limits. `come_to_rest` is the watchdog's smooth stop.
"""

from __future__ import annotations

import numpy as np

from vla_async.config.schema import SafetyConfig
from vla_async.plan import index_selector
from vla_async.specs import RobotSpec


def _clip_fallback(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.minimum(np.maximum(x, lo, out=out), hi, out=out)


# np.clip's own ufunc: min(max(x, lo), hi) in one call (np.clip adds several µs of Python dispatch around it)
_clip = getattr(getattr(getattr(np, "_core", None), "umath", None), "clip", None) or _clip_fallback


def _per_joint(value: float | list[float], n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or np.any(arr <= 0):
        raise ValueError(f"safety.{name} must be a positive number or a list of {n} positive numbers, got {value!r}")
    return arr


class ReferenceSafetyLayer:
    def __init__(self, config: SafetyConfig, robot: RobotSpec):
        d = robot.action_dim
        self.config = config
        self.dt = 1.0 / float(robot.fps)
        self.stepwise = np.asarray(robot.stepwise_mask, dtype=bool)
        self.gradual = ~self.stepwise
        if robot.position_limits is None:
            self.low, self.high = np.full(d, -np.inf), np.full(d, np.inf)
        else:
            lim = np.asarray(robot.position_limits, dtype=float)
            self.low, self.high = lim[:, 0] + config.limit_margin, lim[:, 1] - config.limit_margin
            if np.any(self.low >= self.high):
                raise ValueError(f"safety.limit_margin={config.limit_margin} leaves no room inside the robot's limits")
        self.max_velocity = _per_joint(config.max_velocity, d, "max_velocity")
        self.max_acceleration = _per_joint(config.max_acceleration, d, "max_acceleration")
        self.max_step = _per_joint(config.max_step, d, "max_step")
        self._v_hard = np.minimum(self.max_velocity, self.max_step / self.dt)
        self._dv = self.max_acceleration * self.dt
        # farther than this from a limit, the braking bound cannot bind (|v| ≤ v_hard): skip it
        self._brake_zone = self._v_hard * self.dt + self._v_hard**2 / (2 * self.max_acceleration)
        self._fps_gradual = self.gradual / self.dt  # turns a position change into a velocity, 0 on stepwise dims
        self._stepwise_sel = index_selector(np.flatnonzero(self.stepwise))
        self._v_hard_neg = -self._v_hard
        self._low_inner, self._high_inner = self.low + self._brake_zone, self.high - self._brake_zone
        if self._stepwise_sel is not None:
            self._low_step, self._high_step = self.low[self._stepwise_sel].copy(), self.high[self._stepwise_sel].copy()
        # scratch for `apply` (never returned nor kept by a caller)
        self._lo, self._hi, self._u = np.empty(d), np.empty(d), np.empty(d)
        self._b1, self._b2 = np.empty(d, dtype=bool), np.empty(d, dtype=bool)
        self.position: np.ndarray | None = None  # last command
        self.velocity = np.zeros(d)  # of the last command, units/s

    def reset(self, position: np.ndarray) -> None:
        """Start from `position` at rest (e.g. the measured state before the first command)."""
        self.position = np.asarray(position, dtype=float).copy()
        self.velocity = np.zeros_like(self.position)

    def apply(self, target: np.ndarray) -> np.ndarray:
        """The safe command closest to `target` for the next tick; becomes the new last command."""
        target = np.asarray(target, dtype=float)
        if self.position is None:
            self.reset(np.clip(target, self.low, self.high))
            return self.position.copy()
        if not self.config.enabled:
            return self._commit(target.copy())  # never keep a view of the caller's array as the last command
        # few numpy calls, each on D values, written into scratch arrays: call overhead, not arithmetic, is the cost
        p, v, dt, a = self.position, self.velocity, self.dt, self.max_acceleration
        hard_hi, hard_lo = self._v_hard, self._v_hard_neg
        b1, b2 = self._b1, self._b2
        np.less(p, self._low_inner, out=b1)
        np.greater(p, self._high_inner, out=b2)
        near_limit = np.count_nonzero(np.logical_or(b1, b2, out=b1)) > 0
        if near_limit:
            brake_hi = a * (np.sqrt(dt * dt + 2.0 * np.maximum(self.high - p, 0.0) / a) - dt)
            brake_lo = -a * (np.sqrt(dt * dt + 2.0 * np.maximum(p - self.low, 0.0) / a) - dt)
            hard_hi, hard_lo = np.minimum(hard_hi, brake_hi), np.maximum(hard_lo, brake_lo)
        lo = np.maximum(hard_lo, np.subtract(v, self._dv, out=self._lo), out=self._lo)
        hi = np.minimum(hard_hi, np.add(v, self._dv, out=self._hi), out=self._hi)
        if np.count_nonzero(np.greater(lo, hi, out=b2)):
            lo = np.where(b2, hard_lo, lo)
            hi = np.where(b2, np.maximum(hard_lo, hard_hi), hi)
        u = np.subtract(target, p, out=self._u)
        u /= dt
        _clip(u, lo, hi, out=u)
        u *= dt
        cmd = p + u
        if near_limit:
            _clip(cmd, self.low, self.high, out=cmd)
        s = self._stepwise_sel
        if s is not None:
            if isinstance(s, slice):
                _clip(target[s], self._low_step, self._high_step, out=cmd[s])
            else:
                cmd[s] = _clip(target[s], self._low_step, self._high_step)
        return self._commit(cmd)

    def hold(self) -> np.ndarray:
        """Underrun: stop where the last command is, braking at the acceleration limit (no overshoot-and-return)."""
        return self._decelerate(self.max_acceleration)

    def come_to_rest(self) -> np.ndarray:
        """Watchdog: reduce every joint's speed by `rest_deceleration·dt` per tick until it is still."""
        return self._decelerate(np.minimum(self.config.rest_deceleration, self.max_acceleration))

    def _decelerate(self, rate: float | np.ndarray) -> np.ndarray:
        if self.position is None:
            raise RuntimeError("SafetyLayer has no last command yet: call reset(position) first")
        speed = np.maximum(np.abs(self.velocity) - rate * self.dt, 0.0)
        return self.apply(self.position + np.sign(self.velocity) * speed * self.dt)

    def _commit(self, cmd: np.ndarray) -> np.ndarray:
        self.velocity = (cmd - self.position) * self._fps_gradual
        self.position = cmd
        return cmd.copy()
