"""Robot adapters chosen by config: `kind=sim` → the simulated arm in real-time mode.

A LeRobot arm (SO-100/101, Koch, ...) becomes a thin adapter to `robot_client.robot.Robot`; that
adapter and physical deployment come in their own issue.
"""

from __future__ import annotations

from robot_client.robot import Robot
from vla_async.config import ConfigError, RobotConfig


class RobotUnavailableError(RuntimeError):
    """The configured robot cannot be created here (missing extra, not implemented yet)."""


def make_robot_from_config(config: RobotConfig) -> Robot:
    """Create (not connect) the robot `config` describes."""
    if config.kind == "sim":
        try:
            import sim  # lazy: the robot computer needs MuJoCo only for the simulated arm
        except ModuleNotFoundError as exc:
            raise RobotUnavailableError(
                f"robot.kind=sim needs {exc.name!r}; install it with pip install 'vla-async[sim]'"
            ) from exc
        if config.options:
            raise ConfigError(f"robot.options: the sim robot takes no options, got {sorted(config.options)}")
        return sim.make_robot(
            config.task, mode="realtime", fps=config.fps, seed=config.seed, cameras=tuple(config.cameras),
            image_size=(config.camera.height, config.camera.width), render=config.render,
        )
    if config.kind == "lerobot":
        raise RobotUnavailableError(
            "robot.kind=lerobot: the LeRobot arm adapter (SO-100/101, Koch, ...) comes in its own issue; "
            "it will need pip install 'vla-async[lerobot]'. Use robot.kind=sim for now."
        )
    raise ConfigError(f"robot.kind: unknown kind {config.kind!r}; allowed: sim, lerobot")
