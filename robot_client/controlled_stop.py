"""The controlled stop: however a run ends (its end, Ctrl-C, an exception in the loop, a lost server,
a robot error), decelerate the arm to rest through the safety layer, then hold or release torque.

Deceleration is the watchdog's: every joint's speed drops by `safety.rest_deceleration·dt` per tick
(within the acceleration limit), one command per control period, for at most `robot.stop_timeout_s`.
A robot that fails while being stopped is not commanded again; torque is still held or released.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from vla_async.config import ClientConfig
from vla_async.robot import Robot
from vla_async.safety import SafetyLayer


class ServerLostError(RuntimeError):
    """The policy server has been unreachable for longer than safety.server_lost_stop_s."""


class ServerLossGuard:
    """Raises ServerLostError once the server has been unreachable for `timeout_s` (checked per tick)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = float(timeout_s)
        self._since: float | None = None

    def check(self, connected: bool, now: float | None = None) -> None:
        if connected:
            self._since = None
            return
        now = time.monotonic() if now is None else now
        if self._since is None:
            self._since = now
        elif now - self._since > self.timeout_s:
            raise ServerLostError(f"lost the policy server: unreachable for more than {self.timeout_s:g} s "
                                  f"(safety.server_lost_stop_s)")


@dataclass(frozen=True)
class StopOutcome:
    reason: str
    ticks: int  # commands sent while decelerating
    at_rest: bool
    torque: str  # held | released | held (release not supported by this robot) | ...
    error: str | None = None  # why the robot could not be commanded during the stop

    def message(self) -> str:
        rest = f"at rest after {self.ticks} ticks" if self.at_rest else f"NOT at rest after {self.ticks} ticks"
        failed = f"; the robot failed during the stop: {self.error}" if self.error else ""
        return f"stopped ({self.reason}): arm {rest}, torque {self.torque}{failed}"


def stop_reason(exc: BaseException | None, stop_requested: bool, ended_by: str | None = None) -> str:
    """Why the loop ended: its exception, else `ended_by` (a transport failure, a dead thread), else a
    stop request or the end of the run."""
    if ended_by is not None and exc is None:
        return ended_by
    if isinstance(exc, KeyboardInterrupt) or (exc is None and stop_requested):
        return "stop requested (Ctrl-C)"
    if isinstance(exc, ServerLostError):
        return str(exc)
    if exc is not None:
        return f"error in the control loop: {type(exc).__name__}: {exc}"
    return "end of run"


def controlled_stop(robot: Robot, safety: SafetyLayer | None, config: ClientConfig, reason: str) -> StopOutcome:
    """Bring the arm to rest, then hold or release torque per `robot.on_stop`."""
    ticks, error = 0, None
    if safety is not None and safety.position is not None:
        ticks, error = _decelerate(robot, safety, math.ceil(config.robot.stop_timeout_s * robot.spec.fps))
    at_rest = safety is None or safety.position is None or _still(safety)
    return StopOutcome(reason, ticks, at_rest and error is None, _torque(robot, config.robot.on_stop), error)


def _still(safety: SafetyLayer) -> bool:
    return bool(np.all(np.abs(safety.velocity) <= 1e-9))


def _decelerate(robot: Robot, safety: SafetyLayer, max_ticks: int) -> tuple[int, str | None]:
    dt = 1.0 / float(robot.spec.fps)
    deadline = time.monotonic()
    ticks = 0
    while ticks < max_ticks and not _still(safety):
        command = safety.come_to_rest()
        try:
            robot.send_action(command)
        except Exception as exc:  # a failing robot is not commanded again
            return ticks, f"{type(exc).__name__}: {exc}"
        ticks += 1
        deadline += dt
        time.sleep(max(0.0, deadline - time.monotonic()))
    return ticks, None


def _torque(robot: Robot, on_stop: str) -> str:
    if getattr(robot, "dry_run", False):
        return "untouched (dry run)"
    if on_stop == "hold":
        return "held"
    release = getattr(robot, "release_torque", None)
    if release is None:
        return "held (release not supported by this robot)"
    try:
        release()
    except Exception as exc:
        return f"NOT released ({type(exc).__name__}: {exc})"
    return "released"
