"""Robot adapters chosen by config: `kind=sim` → the simulated arm in real-time mode.

A LeRobot arm (SO-100/101, Koch, ...) would be a thin adapter to `robot_client.robot.Robot`; it is
not implemented, and `kind=lerobot` says so at start-up (what is missing, what to use instead).
"""

from __future__ import annotations

from robot_client.robot import Robot
from vla_async.config import ConfigError, RobotConfig
from vla_async.extras import install_hint


class RobotUnavailableError(RuntimeError):
    """The configured robot cannot be created here (missing extra, not implemented yet)."""


def make_robot_from_config(config: RobotConfig) -> Robot:
    """Create (not connect) the robot `config` describes."""
    if config.kind == "sim":
        try:  # lazy: the robot computer needs MuJoCo only for the simulated arm
            import sim
            import sim.robot  # noqa: F401  (imports MuJoCo)
        except ModuleNotFoundError as exc:
            raise RobotUnavailableError(
                f"robot.kind=sim needs the MuJoCo simulator ({exc.name!r} is not installed): "
                f"{install_hint('sim')}; on a robot computer, drive your own robot (README: Deploying)"
            ) from None
        if config.options:
            raise ConfigError(f"robot.options: the sim robot takes no options, got {sorted(config.options)}")
        return sim.make_robot(
            config.task, mode="realtime", fps=config.fps, seed=config.seed, cameras=tuple(config.cameras),
            image_size=(config.camera.height, config.camera.width), render=config.render,
        )
    if config.kind == "lerobot":
        raise RobotUnavailableError(
            "robot.kind=lerobot is not available: this version has no adapter that drives a LeRobot arm "
            "(SO-100/101, Koch, ...). Use robot.kind=sim (the simulated SO-101), or implement "
            "robot_client.robot.Robot for your arm and run robot_client.loop.RealTimeClient(config, robot)"
        )
    raise ConfigError(f"robot.kind: unknown kind {config.kind!r}; allowed: sim, lerobot")
