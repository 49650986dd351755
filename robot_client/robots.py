"""Robot adapters chosen by config: `kind=sim` → the simulated arm in real-time mode; `kind=lerobot` →
a LeRobot robot (robot_client/lerobot_robot.py). `robot.dry_run=true` wraps either so nothing is sent.
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
        return lerobot_robot(config)
    raise ConfigError(f"robot.kind: unknown kind {config.kind!r}; allowed: sim, lerobot")


def lerobot_robot(config: RobotConfig) -> Robot:
    """robot.kind=lerobot (LeRobot is imported only now)."""
    from robot_client.lerobot_robot import lerobot_robot as make

    return make(config)


def make_robot(config: RobotConfig) -> Robot:
    """The robot `config` describes, behind the dry-run wrapper when `robot.dry_run` is set."""
    robot = make_robot_from_config(config)
    if config.dry_run:
        from robot_client.dry_run import DryRunRobot

        return DryRunRobot(robot)
    return robot
