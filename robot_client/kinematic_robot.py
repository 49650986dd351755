"""A light in-process robot: an ideal position-servoed arm with a first-order lag, no cameras.

For benchmarks and tests where MuJoCo is not installed, and for arm sizes the simulator does not
model (e.g. a 14-joint bimanual arm). Its state evolves with the wall clock (monotonic time), like a
real arm, between the moments the client reads it: `s(t) = c + (s0 - c)·exp(-(t - t0)/τ)` towards
the last command `c`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import numpy as np

from vla_async.reference_specs import joint_names
from vla_async.robot import Robot, RobotObservation
from vla_async.specs import RobotSpec


def kinematic_spec(n_joints: int, fps: float, name: str = "kinematic_arm") -> RobotSpec:
    """Names match the linear backend's (`vla_async.reference_specs.joint_names`)."""
    names = joint_names(n_joints)
    return RobotSpec(name=name, fps=fps, state_names=names, action_names=names,
                     position_limits=tuple((-3.0, 3.0) for _ in names))


class KinematicRobot(Robot):
    def __init__(self, spec: RobotSpec, *, time_constant_s: float = 0.05,
                 initial_state: np.ndarray | None = None, now: Callable[[], float] = time.monotonic) -> None:
        if time_constant_s <= 0:
            raise ValueError("time_constant_s must be > 0")
        self._spec = spec
        self._tau = float(time_constant_s)
        self._now = now
        lim = spec.position_limits
        self._limits = None if lim is None else np.asarray(lim, dtype=np.float64).T  # [2, D]: low, high
        self._lock = threading.Lock()
        start = np.zeros(spec.state_dim) if initial_state is None else np.asarray(initial_state, float)
        self._state = start.astype(np.float64).copy()
        self._command = self._state.copy()
        self._t = self._now()
        self._connected = False

    @property
    def spec(self) -> RobotSpec:
        return self._spec

    def connect(self) -> None:
        with self._lock:
            self._t = self._now()
            self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def _advance(self) -> None:
        t = self._now()
        decay = math.exp(-(t - self._t) / self._tau)
        self._state = self._command + (self._state - self._command) * decay
        self._t = t

    def get_observation(self, with_images: bool = True) -> RobotObservation:
        if not self._connected:
            raise RuntimeError("KinematicRobot is not connected")
        with self._lock:
            self._advance()
            return RobotObservation(state=self._state.copy())

    def send_action(self, action: np.ndarray) -> np.ndarray:
        if not self._connected:
            raise RuntimeError("KinematicRobot is not connected")
        applied = np.asarray(action, dtype=np.float64).reshape(self._spec.action_dim)
        if self._limits is not None:
            applied = np.clip(applied, self._limits[0], self._limits[1])
        with self._lock:
            self._advance()
            self._command = applied.copy()
        return applied
