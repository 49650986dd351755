"""Robot kinds chosen by config, as a registry: `robot.kind` -> "module:factory", factory(RobotConfig) -> Robot.

`sim` is the simulated arm in real-time mode (in the `sim` package, imported only when chosen: the robot
computer needs MuJoCo only for it). A LeRobot arm (SO-100/101, Koch, ...) becomes a thin adapter to
`vla_async.robot.Robot`; that adapter and physical deployment come in their own issue.
"""

from __future__ import annotations

from vla_async.config import ConfigError, RobotConfig
from vla_async.registry import load
from vla_async.robot import Robot


class RobotUnavailableError(RuntimeError):
    """The configured robot cannot be created here (missing extra, not implemented yet)."""


ROBOTS: dict[str, str] = {
    "sim": "sim:robot_from_config",
    "lerobot": "robot_client.robots:lerobot_robot",
}
_EXTRAS = {"sim": "sim", "lerobot": "lerobot"}  # the pip extra each kind needs


def make_robot_from_config(config: RobotConfig) -> Robot:
    """Create (not connect) the robot `config` describes."""
    target = ROBOTS.get(config.kind)
    if target is None:
        raise ConfigError(f"robot.kind: unknown kind {config.kind!r}; allowed: {', '.join(ROBOTS)}")
    try:
        return load(target)(config)
    except ModuleNotFoundError as exc:  # the kind's package or a library it needs is not installed
        raise RobotUnavailableError(
            f"robot.kind={config.kind} needs {exc.name!r}; install it with pip install "
            f"'vla-async[{_EXTRAS.get(config.kind, config.kind)}]'"
        ) from exc


def lerobot_robot(config: RobotConfig) -> Robot:
    raise RobotUnavailableError(
        "robot.kind=lerobot: the LeRobot arm adapter (SO-100/101, Koch, ...) comes in its own issue; "
        "it will need pip install 'vla-async[lerobot]'. Use robot.kind=sim for now."
    )
