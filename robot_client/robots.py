"""Robot kinds chosen by config, as a registry: `robot.kind` -> "module:factory", factory(RobotConfig) -> Robot.

`sim` is the simulated arm in real-time mode (in the `sim` package, imported only when chosen: the robot
computer needs MuJoCo only for it); `lerobot` is any LeRobot 0.4.4 robot (robot_client/lerobot_robot.py,
LeRobot imported only when chosen). `make_robot` adds the dry-run wrapper when `robot.dry_run` is set.
"""

from __future__ import annotations

from vla_async.config import ConfigError, RobotConfig
from vla_async.extras import install_hint
from vla_async.registry import load
from vla_async.robot import Robot


class RobotUnavailableError(RuntimeError):
    """The configured robot cannot be created here (missing extra, not implemented yet)."""


ROBOTS: dict[str, str] = {
    "sim": "sim:robot_from_config",
    "lerobot": "robot_client.robots:lerobot_robot",
}


def make_robot_from_config(config: RobotConfig) -> Robot:
    """Create (not connect) the robot `config` describes."""
    target = ROBOTS.get(config.kind)
    if target is None:
        raise ConfigError(f"robot.kind: unknown kind {config.kind!r}; allowed: {', '.join(ROBOTS)}")
    try:
        return load(target)(config)
    except ModuleNotFoundError as exc:  # the kind's package or a library it needs is not installed
        if config.kind == "sim":
            raise RobotUnavailableError(
                f"robot.kind=sim needs the MuJoCo simulator ({exc.name!r} is not installed): "
                f"{install_hint('sim')}; on a robot computer, drive your own robot (README: Deploying)"
            ) from None
        raise RobotUnavailableError(
            f"robot.kind={config.kind} needs {exc.name!r}; {install_hint(config.kind)}"
        ) from None


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
