"""Dry run / shadow mode (`robot.dry_run=true`): the whole loop runs on the real robot's observations;
the commands it would send are kept and logged, and the robot's `send_action` is never called.

The robot does not move, so the state stays where it is: what this checks is the connection, the
specs, the rates and the commands the policy asks for (the per-tick log holds every command).
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from vla_async.robot import Robot, RobotObservation
from vla_async.specs import RobotSpec

log = logging.getLogger(__name__)


class DryRunRobot(Robot):
    """Wraps a robot: observations pass through, commands are recorded instead of sent."""

    dry_run = True  # the controlled stop leaves torque as it is

    def __init__(self, robot: Robot, keep: int = 1000) -> None:
        self.inner = robot
        self.would_send: deque[np.ndarray] = deque(maxlen=keep)  # the latest commands, clamped to the limits
        self.commands = 0
        for extra in ("instruction", "task_status"):
            if hasattr(robot, extra):
                setattr(self, extra, getattr(robot, extra))

    @property
    def spec(self) -> RobotSpec:
        return self.inner.spec

    def connect(self) -> None:
        self.inner.connect()
        log.warning("dry run: %s is read, never commanded", self.inner.spec.name)

    def get_observation(self, with_images: bool = True) -> RobotObservation:
        return self.inner.get_observation(with_images=with_images)

    def send_action(self, action: np.ndarray) -> np.ndarray:
        command = np.asarray(action, dtype=np.float64).copy()
        limits = self.spec.position_limits
        if limits is not None:
            lim = np.asarray(limits, dtype=np.float64)
            command = np.clip(command, lim[:, 0], lim[:, 1])
        self.would_send.append(command)
        self.commands += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("dry run: would send %s", np.array2string(command, precision=4))
        return command

    def disconnect(self) -> None:
        self.inner.disconnect()
