"""robot.kind=lerobot: any LeRobot 0.4.4 robot (SO-100/101, Koch, a plugin's type) driven through
LeRobot's own classes, as a `robot_client.robot.Robot`.

`lerobot_robot(RobotConfig)` builds LeRobot's robot config from `robot.lerobot.*` (draccus decodes it,
so LeRobot names every bad field), makes the robot with LeRobot's factory and wraps it. The wrapper
converts joint units both ways from the arm's calibration (robot_client/lerobot_units.py), reads
joints without cameras when the loop needs no images, and leaves LeRobot's own safety in place:
`max_relative_target` clips in LeRobot's `send_action` after our safety layer, and
`disable_torque_on_disconnect` decides what `disconnect()` does. LeRobot is imported only here,
and only when this robot is created.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_client.lerobot_units import JointUnits, UnitsError, joint_units
from robot_client.robots import RobotUnavailableError
from vla_async.config import ConfigError, RobotConfig
from vla_async.extras import install_hint
from vla_async.robot import Robot, RobotObservation
from vla_async.specs import ActionKind, CameraSpec, RobotSpec

log = logging.getLogger(__name__)

#: LeRobot 0.4.4 modules whose import registers robot and camera config types
_ROBOT_MODULES = ("so_follower", "koch_follower", "omx_follower", "bi_so_follower", "lekiwi", "hope_jr",
                  "reachy2", "openarm_follower", "bi_openarm_follower", "unitree_g1", "earthrover_mini_plus")
_CAMERA_MODULES = ("opencv", "realsense", "zmq", "reachy2_camera")
#: this project's simulated arm as a LeRobot robot (type vla_sim_follower)
_OWN_PLUGIN = "lerobot_robot_vla_sim"
#: observation key a simulated robot may add: privileged state for scripted experts
ENV_STATE_KEY = "environment_state"


class LeRobotUnavailableError(RobotUnavailableError):
    """LeRobot is not installed here, or the robot could not be created."""


def lerobot_robot(config: RobotConfig) -> Robot:
    """Create (not connect) the LeRobot robot `config.lerobot` describes, wrapped as our Robot."""
    lerobot_cfg = lerobot_robot_config(config)
    from lerobot.robots.utils import make_robot_from_config

    try:
        robot = make_robot_from_config(lerobot_cfg)
    except (ImportError, ValueError, TypeError, OSError) as exc:
        raise LeRobotUnavailableError(f"robot.lerobot.type={lerobot_cfg.type}: LeRobot could not create the robot: "
                                      f"{exc}") from None
    return LeRobotRobot(robot, config)


def lerobot_robot_config(config: RobotConfig) -> Any:
    """LeRobot's RobotConfig subclass instance for `robot.lerobot.*` (ConfigError with LeRobot's reason)."""
    section = config.lerobot
    if not section.type:
        raise ConfigError("robot.lerobot.type: required with robot.kind=lerobot (e.g. so101_follower, koch_follower, "
                          "vla_sim_follower for the simulated arm)")
    try:
        import draccus
        from lerobot.robots import RobotConfig as LeRobotConfig
    except ModuleNotFoundError as exc:
        raise LeRobotUnavailableError(
            f"robot.kind=lerobot needs LeRobot 0.4.4 ({exc.name!r} is not installed): {install_hint('lerobot')} "
            f"on the robot computer (docs/deploy.md)") from None
    _register_types(LeRobotConfig, section.type)
    try:
        return draccus.decode(LeRobotConfig, {"type": section.type, **section.forwarded()})
    except Exception as exc:  # draccus.utils.DecodingError and dataclass __post_init__ errors
        known = ", ".join(sorted(LeRobotConfig.get_known_choices()))
        raise ConfigError(f"robot.lerobot: LeRobot rejected the robot config: {exc} (registered types: {known})") from None


def _register_types(registry: Any, wanted: str) -> None:
    """Import LeRobot's robot and camera modules (their import registers the config types), then
    installed lerobot_robot_* plugins and this project's sim plugin, until `wanted` is known."""
    for name in _CAMERA_MODULES:
        _try_import(f"lerobot.cameras.{name}")
    for module in [f"lerobot.robots.{m}" for m in _ROBOT_MODULES] + [None, _OWN_PLUGIN]:
        if wanted in registry.get_known_choices():
            return
        if module is None:
            from lerobot.utils.import_utils import register_third_party_plugins
            register_third_party_plugins()
        else:
            _try_import(module)


def _try_import(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # an optional robot's SDK missing must not stop the others
        log.debug("not importing %s: %s", module, exc)


class LeRobotRobot(Robot):
    """A LeRobot robot as our Robot: spec from its features and calibration, units converted both ways."""

    def __init__(self, robot: Any, config: RobotConfig) -> None:
        self.lerobot = robot
        self.config = config
        self._units_name = config.lerobot.units
        self._spec: RobotSpec | None = None
        self._units: JointUnits | None = None
        for extra in ("instruction", "task_status"):  # a simulated robot's task (stop on success, instruction)
            if hasattr(robot, extra):
                setattr(self, extra, getattr(robot, extra))

    # ---------------------------------------------------------------- spec and units
    @property
    def spec(self) -> RobotSpec:
        if self._spec is None:
            self._spec, self._units = self._build_spec()
        return self._spec

    @property
    def units(self) -> JointUnits:
        _ = self.spec
        assert self._units is not None
        return self._units

    def _build_spec(self) -> tuple[RobotSpec, JointUnits]:
        obs_ft, act_ft = dict(self.lerobot.observation_features), dict(self.lerobot.action_features)
        actions = [k for k, v in act_ft.items() if v is float]
        states = [k for k, v in obs_ft.items() if v is float]
        cameras = tuple(CameraSpec(k, int(v[0]), int(v[1]), int(v[2])) for k, v in obs_ft.items()
                        if isinstance(v, tuple) and len(v) == 3)
        env = obs_ft.get(ENV_STATE_KEY)
        units = self._joint_units(actions)
        if [s for s in states if s not in actions] or [a for a in actions if a not in states]:
            raise UnitsError(f"robot.lerobot.type={self.config.lerobot.type}: state features {states} and action "
                             f"features {actions} differ; only joint-position robots are supported")
        spec = RobotSpec(
            name=f"lerobot:{self.config.lerobot.type}", fps=self.config.fps, state_names=tuple(actions),
            action_names=tuple(actions), action_kind=ActionKind.ABSOLUTE, cameras=cameras,
            stepwise_actions=units.stepwise, position_limits=units.limits,
            environment_state_dim=int(env[0]) if isinstance(env, tuple) else 0,
        )
        return spec, units

    def _joint_units(self, actions: list[str]) -> JointUnits:
        bus = getattr(self.lerobot, "bus", None)
        if bus is None or not hasattr(bus, "motors"):
            raise UnitsError(f"robot.lerobot.type={self.config.lerobot.type}: no motor bus to read joint units and "
                             f"limits from; robot.kind=lerobot supports single-bus arms (so100/so101/koch/omx "
                             f"followers, vla_sim_follower)")
        motors = {name: (str(getattr(m.norm_mode, "value", m.norm_mode)), int(bus.model_resolution_table[m.model]))
                  for name, m in bus.motors.items()}
        calibration = getattr(bus, "calibration", None) or getattr(self.lerobot, "calibration", {})
        return joint_units(motors, calibration, actions, self._units_name)

    # ---------------------------------------------------------------- Robot interface
    def connect(self) -> None:
        if not self.lerobot.is_connected:
            self.lerobot.connect(calibrate=False)  # never an interactive calibration in the middle of a start
        if not self.lerobot.is_calibrated:
            self.lerobot.disconnect()
            raise UnitsError(f"{self.lerobot}: the motors' calibration does not match the calibration file (or there "
                             f"is none); run lerobot-calibrate --robot.type={self.config.lerobot.type} "
                             f"--robot.port=... --robot.id={self.config.lerobot.id or '<id>'} first")
        self._spec = None  # calibration may have been written to the motors on connect
        _ = self.spec

    def get_observation(self, with_images: bool = True) -> RobotObservation:
        units = self.units
        bus = getattr(self.lerobot, "bus", None)
        if not with_images and self.spec.cameras and not self.spec.environment_state_dim and bus is not None:
            present = bus.sync_read("Present_Position")  # joints only: skip the camera reads
            return RobotObservation(state=units.to_spec({f"{m}.pos": v for m, v in present.items()}))
        obs = self.lerobot.get_observation()
        images = {c.name: np.asarray(obs[c.name]) for c in self.spec.cameras} if with_images else {}
        env = obs.get(ENV_STATE_KEY)
        return RobotObservation(state=units.to_spec(obs), images=images,
                                environment_state=None if env is None else np.asarray(env, dtype=np.float32))

    def send_action(self, action: np.ndarray) -> np.ndarray:
        units = self.units
        sent: Mapping[str, float] = self.lerobot.send_action(units.to_native(action))
        applied = np.asarray(action, dtype=np.float64).copy()
        for i, name in enumerate(units.names):  # LeRobot returns what it sent (max_relative_target may clip)
            if name in sent:
                applied[i] = float(sent[name]) * units.scale[i]
        return applied

    def release_torque(self) -> None:
        """Controlled stop with robot.on_stop=release: the arm goes limp (LeRobot's bus.disable_torque)."""
        self.lerobot.bus.disable_torque()

    def disconnect(self) -> None:
        """LeRobot's disconnect; it disables torque when its disable_torque_on_disconnect is true."""
        if self.lerobot.is_connected:
            self.lerobot.disconnect()
