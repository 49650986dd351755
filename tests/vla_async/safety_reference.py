"""The safety layer's rules written plainly (velocity domain, every bound every tick, no fast paths): the reference
`test_safety` compares `vla_async.safety.SafetyLayer` with, tick by tick. Not used by the product."""

from __future__ import annotations

import numpy as np

from vla_async.config.schema import SafetyConfig
from vla_async.safety import SafetyLayer
from vla_async.specs import RobotSpec


class ReferenceSafetyLayer:
    def __init__(self, config: SafetyConfig, robot: RobotSpec):
        parsed = SafetyLayer(config, robot)  # limits and per-joint bounds, as configured
        self.config, self.dt = config, parsed.dt
        self.stepwise, self.low, self.high = parsed.stepwise, parsed.low, parsed.high
        self.max_acceleration = parsed.max_acceleration
        self.v_hard = np.minimum(parsed.max_velocity, parsed.max_step / self.dt)
        self.position: np.ndarray | None = None
        self.velocity = np.zeros(robot.action_dim)

    def reset(self, position: np.ndarray) -> None:
        self.position = np.asarray(position, dtype=float).copy()
        self.velocity = np.zeros_like(self.position)

    def apply(self, target: np.ndarray) -> np.ndarray:
        target = np.asarray(target, dtype=float)
        if self.position is None:
            self.reset(np.clip(target, self.low, self.high))
            return self.position.copy()
        p, v, dt, a = self.position, self.velocity, self.dt, self.max_acceleration
        # hard window: speed, step, and a braking bound toward each limit (v·dt + v²/2a ≤ distance)
        brake_hi = a * (np.sqrt(dt * dt + 2.0 * np.maximum(self.high - p, 0.0) / a) - dt)
        brake_lo = -a * (np.sqrt(dt * dt + 2.0 * np.maximum(p - self.low, 0.0) / a) - dt)
        hard_hi, hard_lo = np.minimum(self.v_hard, brake_hi), np.maximum(-self.v_hard, brake_lo)
        # acceleration window, dropped where it cannot meet the hard one
        lo, hi = np.maximum(hard_lo, v - a * dt), np.minimum(hard_hi, v + a * dt)
        apart = lo > hi
        lo, hi = np.where(apart, hard_lo, lo), np.where(apart, np.maximum(hard_lo, hard_hi), hi)
        cmd = np.clip(p + np.clip((target - p) / dt, lo, hi) * dt, self.low, self.high)
        cmd[self.stepwise] = np.clip(target, self.low, self.high)[self.stepwise]
        self.velocity = np.where(self.stepwise, 0.0, (cmd - p) / dt)
        self.position = cmd
        return cmd.copy()

    def hold(self) -> np.ndarray:
        return self._decelerate(self.max_acceleration)

    def come_to_rest(self) -> np.ndarray:
        return self._decelerate(np.minimum(self.config.rest_deceleration, self.max_acceleration))

    def _decelerate(self, rate: float | np.ndarray) -> np.ndarray:
        speed = np.maximum(np.abs(self.velocity) - rate * self.dt, 0.0)
        return self.apply(self.position + np.sign(self.velocity) * speed * self.dt)
