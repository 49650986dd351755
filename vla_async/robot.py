"""The Robot interface the client drives, shaped after LeRobot's `Robot`.

Any LeRobot robot (SO-100/101, Koch, ...) or the simulated arm is a thin adapter to this.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from vla_async.specs import RobotSpec


@dataclass(frozen=True, eq=False)
class RobotObservation:
    """One reading of the robot: measured joint state, camera images, privileged sim state."""

    state: np.ndarray  # [state_dim] float
    images: dict[str, np.ndarray] = field(default_factory=dict)  # name -> HxWxC uint8
    environment_state: np.ndarray | None = None  # simulation only (privileged, for experts)


class Robot(abc.ABC):
    """A robot the client can command. Methods mirror LeRobot's `Robot`."""

    @property
    @abc.abstractmethod
    def spec(self) -> RobotSpec:
        """State/action names, action kind, cameras, fps, limits."""

    @property
    def observation_features(self) -> dict[str, object]:
        feats: dict[str, object] = {name: float for name in self.spec.state_names}
        feats.update({cam.name: cam.shape for cam in self.spec.cameras})
        return feats

    @property
    def action_features(self) -> dict[str, type]:
        return {name: float for name in self.spec.action_names}

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def get_observation(self, with_images: bool = True) -> RobotObservation:
        """Latest state (and images when asked; rendering/capture can be skipped when not needed)."""

    @abc.abstractmethod
    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Command the robot; returns the action actually applied (after the robot's own clamps)."""

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
