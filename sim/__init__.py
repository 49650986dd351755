"""MuJoCo simulation: an SO-101-class arm, tasks, scripted experts, robots in real and virtual time.

Importing `sim` does not import MuJoCo (the expert backend on a server only needs kinematics);
`make_robot` does. MUJOCO_GL defaults to egl (headless, Mesa llvmpipe) unless already set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

os.environ.setdefault("MUJOCO_GL", "egl")

if TYPE_CHECKING:
    from sim.robot import SimRobot
    from vla_async.config import RobotConfig


def make_robot(
    task: str,
    *,
    mode: Literal["realtime", "virtual"] = "virtual",
    fps: float = 30.0,
    seed: int = 0,
    cameras: Sequence[str] = ("front", "wrist"),
    image_size: tuple[int, int] = (224, 224),
    render: bool = True,
) -> SimRobot:
    """A simulated arm on `task` that implements vla_async.robot.Robot (call connect() to start)."""
    from sim.robot import SimRobot

    return SimRobot(task, mode=mode, fps=fps, seed=seed, cameras=cameras, image_size=image_size, render=render)


def robot_from_config(config: RobotConfig) -> SimRobot:
    """The simulated arm in real-time mode as `robot.kind=sim` describes it (robot_client's robot registry)."""
    from vla_async.config import ConfigError

    if config.options:
        raise ConfigError(f"robot.options: the sim robot takes no options, got {sorted(config.options)}")
    return make_robot(
        config.task, mode="realtime", fps=config.fps, seed=config.seed, cameras=tuple(config.cameras),
        image_size=(config.camera.height, config.camera.width), render=config.render,
    )


__all__ = ["make_robot", "robot_from_config"]
