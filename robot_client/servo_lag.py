"""The arm's tracking lag: how many ticks the measured state trails a smoothly moving command.

This is the lag the scheduler reads at each capture (`state_lag: measured`) and that `state_lag_ticks` caps: the
command the measured state is nearest to, counted back from the command about to be sent (the control loop reads
the state, then sends). A step response's 50% rise time (`calibrate.measure_lag`) is shorter: a servo with a
velocity-dependent error trails a ramp by more than it takes to cover half a step (our sim: 2–3 vs 3 ticks;
the scheduler's `state_lag_ticks` there is 4, a tick above).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_async.config import ClientConfig
from vla_async.robot import Robot
from vla_async.safety import SafetyLayer

MAX_LAG_TICKS = 12


@dataclass(frozen=True)
class JointProbe:
    """The joint a calibration moves (the first smooth one), where it starts and its safety limits."""

    joint: int
    safety: SafetyLayer
    start: np.ndarray  # the action joints' measured state
    low: float
    high: float

    @classmethod
    def first_smooth(cls, robot: Robot, config: ClientConfig) -> JointProbe:
        spec = robot.spec
        joint = next(i for i, stepwise in enumerate(spec.stepwise_mask) if not stepwise)
        safety = SafetyLayer(config.safety, spec)
        start = np.asarray(robot.get_observation(with_images=False).state, dtype=float)[: spec.action_dim]
        return cls(joint, safety, start, float(safety.low[joint]), float(safety.high[joint]))

    def of_joint(self, value: float | Sequence[float], dim: int) -> float:
        """A scalar or per-joint safety setting's value for the probed joint."""
        return float(np.broadcast_to(np.asarray(value, dtype=float), (dim,))[self.joint])


def tracking_lag(commands: np.ndarray, states: np.ndarray, max_lag: int = MAX_LAG_TICKS,
                 min_motion: float = 1e-6) -> float | None:
    """Median over the ticks of a moving command of the lag j (0 = the command sent at that tick, after the
    state was read) whose command c[k − j] is nearest to the state s[k]; ticks before `max_lag` and ticks whose
    command did not move are skipped. None without enough such ticks."""
    c = np.asarray(commands, dtype=float)
    s = np.asarray(states, dtype=float)
    if c.shape != s.shape or c.ndim != 1:
        raise ValueError(f"commands and states must be 1-D and alike, got {c.shape} and {s.shape}")
    lags = [int(np.argmin(np.abs(c[k - max_lag: k + 1][::-1] - s[k])))
            for k in range(max_lag, len(c)) if abs(c[k] - c[k - 1]) > min_motion]
    return float(np.median(lags)) if len(lags) >= 5 else None


def measure_tracking_lag(robot: Robot, config: ClientConfig, speed: float | None = None,
                         seconds: float = 1.5) -> float | None:
    """Ramp the first smooth joint at `speed` units/s (default: a third of safety.max_velocity, at most what
    covers 10% of its range in `seconds`) for `seconds`, then back at the same speed, through the safety layer;
    the tracking lag of both ramps together (`tracking_lag`)."""
    spec = robot.spec
    fps = float(spec.fps)
    probe = JointProbe.first_smooth(robot, config)
    joint, safety, start, lo, hi = probe.joint, probe.safety, probe.start, probe.low, probe.high
    max_velocity = probe.of_joint(config.safety.max_velocity, spec.action_dim)
    rate = speed if speed is not None else min(max_velocity / 3.0, 0.1 * (hi - lo) / seconds)
    span = rate * seconds
    direction = 1.0 if start[joint] + span <= hi else -1.0
    if not lo <= start[joint] + direction * span <= hi:
        print(f"ramp skipped: {spec.action_names[joint]} at {start[joint]:.4g} has no room for {span:.4g} within "
              f"[{lo:.4g}, {hi:.4g}]")
        return None
    n = max(2, math.ceil(seconds * fps))
    print(f"ramp (--move): {spec.action_names[joint]} from {start[joint]:.4g} to {start[joint] + direction * span:.4g} "
          f"and back at {rate:.3g} units/s")
    path = start[joint] + direction * span * np.r_[np.arange(1, n + 1), np.arange(n - 1, -1, -1)] / n
    safety.reset(start)
    commands, states = [], []
    target = start.copy()
    deadline = time.monotonic()
    for value in path:
        states.append(float(robot.get_observation(with_images=False).state[joint]))  # read, then send (the loop's order)
        target[joint] = value
        commands.append(float(robot.send_action(safety.apply(target))[joint]))
        deadline += 1.0 / fps
        time.sleep(max(0.0, deadline - time.monotonic()))
    return tracking_lag(np.array(commands), np.array(states))
