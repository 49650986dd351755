"""VlaSimFollower: LeRobot's `Robot` interface on the simulated arm in real time (sim.make_robot, realtime).

Same motor names, units and normalisation as LeRobot's SO-101 follower: the arm's radians become
STS3215 ticks of a fixed calibration (each joint's simulated range, centred on tick 2048), and LeRobot's
own `MotorsBus._normalize/_unnormalize` turn ticks into degrees (or −100…100) and the gripper into
0…100, so values are quantised like a real bus's. Observations also carry `environment_state`
(privileged simulator state, for the scripted expert policy) unless `environment_state=false`.
With `episode_log` the robot logs every command it is sent (lerobot_robot_vla_sim/episode_log.py).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np
from lerobot.motors import Motor, MotorCalibration, MotorNormMode
from lerobot.motors.motors_bus import MotorsBus
from lerobot.robots.robot import Robot
from lerobot.robots.utils import ensure_safe_goal_position

from lerobot_robot_vla_sim.config_vla_sim_follower import VlaSimFollowerConfig

_MODEL, _RESOLUTION, _MID = "sts3215", 4096, 2048
_RAD_PER_TICK = 2.0 * math.pi / (_RESOLUTION - 1)
ENV_STATE_KEY = "environment_state"


def sim_calibration(limits: tuple[tuple[float, float], ...], motors: list[str]) -> dict[str, MotorCalibration]:
    """Ranges symmetric about tick 2048 covering each simulated joint; the gripper's 0…1 opening spans 0…100."""
    cal = {}
    for i, (motor, (lo, hi)) in enumerate(zip(motors, limits, strict=True)):
        half = 1000 if motor == "gripper" else math.ceil(max(abs(lo), abs(hi)) / _RAD_PER_TICK)
        cal[motor] = MotorCalibration(id=i + 1, drive_mode=0, homing_offset=0, range_min=_MID - half,
                                      range_max=_MID + half)
    return cal


class SimMotorsBus:
    """The part of LeRobot's MotorsBus the robot and our adapter use, over the simulation: the
    normalisation is LeRobot's own code (MotorsBus._normalize/_unnormalize)."""

    apply_drive_mode = True
    model_resolution_table = {_MODEL: _RESOLUTION}
    _normalize = MotorsBus._normalize
    _unnormalize = MotorsBus._unnormalize

    def __init__(self, motors: dict[str, Motor], calibration: dict[str, MotorCalibration], arm: Any,
                 before_read: Any = None) -> None:
        self.before_read = before_read  # the robot's hook: starts the world's clock on the first read
        self.motors = motors
        self.calibration = calibration
        self.arm = arm
        self.torque_enabled = True
        self._id_to_name_dict = {m.id: name for name, m in motors.items()}
        self._id_to_model_dict = {m.id: m.model for m in motors.values()}

    def _id_to_name(self, motor_id: int) -> str:
        return self._id_to_name_dict[motor_id]

    def _id_to_model(self, motor_id: int) -> str:
        return self._id_to_model_dict[motor_id]

    def ticks_from_sim(self, values: np.ndarray) -> dict[int, int]:
        out = {}
        for (name, m), v in zip(self.motors.items(), values, strict=True):
            cal = self.calibration[name]
            if name == "gripper":
                out[m.id] = int(round(cal.range_min + float(v) * (cal.range_max - cal.range_min)))
            else:
                out[m.id] = int(round(_MID + float(v) / _RAD_PER_TICK))
        return out

    def sim_from_ticks(self, ticks: dict[int, int]) -> np.ndarray:
        out = []
        for name, m in self.motors.items():
            cal, t = self.calibration[name], ticks[m.id]
            out.append((t - cal.range_min) / (cal.range_max - cal.range_min) if name == "gripper"
                       else (t - _MID) * _RAD_PER_TICK)
        return np.asarray(out, dtype=np.float64)

    def sync_read(self, data_name: str) -> dict[str, float]:
        if data_name != "Present_Position":
            raise NotImplementedError(f"the simulated bus reads Present_Position only, not {data_name!r}")
        if self.before_read is not None:
            self.before_read()
        state = self.arm.get_observation(with_images=False).state
        norm = self._normalize(self.ticks_from_sim(state))
        return {self._id_to_name(i): v for i, v in norm.items()}

    def sync_write(self, data_name: str, values: dict[str, float]) -> dict[str, float]:
        """Goal_Position in LeRobot's units → ticks → the simulated servos; returns the values after quantising."""
        if data_name != "Goal_Position":
            raise NotImplementedError(f"the simulated bus writes Goal_Position only, not {data_name!r}")
        current = self.arm.commanded_action()
        ticks = self.ticks_from_sim(current)
        ticks.update(self._unnormalize({self.motors[n].id: v for n, v in values.items()}))
        if self.torque_enabled:
            self.arm.send_action(self.sim_from_ticks(ticks))
        norm = self._normalize(ticks)
        return {self._id_to_name(i): norm[i] for i in (self.motors[n].id for n in values)}

    def disable_torque(self) -> None:
        self.torque_enabled = False

    def enable_torque(self) -> None:
        self.torque_enabled = True


class VlaSimFollower(Robot):
    config_class = VlaSimFollowerConfig
    name = "vla_sim_follower"

    def __init__(self, config: VlaSimFollowerConfig) -> None:
        super().__init__(config)
        import sim
        from sim import so101

        self.config = config
        self.arm = sim.make_robot(config.task, mode="realtime", fps=config.fps, seed=config.seed,
                                  cameras=tuple(config.sim_cameras), image_size=(config.image_height, config.image_width),
                                  render=bool(config.sim_cameras))
        body = MotorNormMode.DEGREES if config.use_degrees else MotorNormMode.RANGE_M100_100
        names = [j for j in so101.JOINTS]
        motors = {n: Motor(i + 1, _MODEL, MotorNormMode.RANGE_0_100 if n == "gripper" else body)
                  for i, n in enumerate(names)}
        self.calibration = sim_calibration(so101.LIMITS, names)
        self.bus = SimMotorsBus(motors, self.calibration, self.arm, before_read=self._before_read)
        order = list(config.joint_order or [f"{n}.pos" for n in names])
        if sorted(order) != sorted(f"{n}.pos" for n in names):
            raise ValueError(f"joint_order must be a permutation of {[f'{n}.pos' for n in names]}, got {order}")
        self._order = order
        self._connected = False
        self._clock_started = False
        self.actions_sent = 0
        self.recorder = self._recorder() if config.episode_log else None

    def _recorder(self) -> Any:
        from lerobot_robot_vla_sim.episode_log import EpisodeRecorder
        from robot_client.lerobot_units import joint_units

        motors = {n: (m.norm_mode.value, _RESOLUTION) for n, m in self.bus.motors.items()}
        units = joint_units(motors, self.calibration, self._order, "radians")
        return EpisodeRecorder(str(self.config.episode_log), self.config.episode_s, self._order,
                               units.scale.tolist(), self.config.fps)

    @cached_property
    def observation_features(self) -> dict[str, Any]:
        from sim.tasks.layout import ENV_STATE_DIM

        cams = {c: (self.config.image_height, self.config.image_width, 3) for c in self.config.sim_cameras}
        env = {ENV_STATE_KEY: (ENV_STATE_DIM,)} if self.config.environment_state else {}
        return {**dict.fromkeys(self._order, float), **cams, **env}

    @cached_property
    def action_features(self) -> dict[str, type]:
        return dict.fromkeys(self._order, float)

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self.bus.enable_torque()
        self._connected = True
        if self.config.sim_cameras:  # as a camera's connect reads a frame: the renderer's GL context is made now,
            self.arm.get_observation(with_images=True)  # on this thread, not in the client's first tick
        if self.config.clock == "connect":
            self._start_clock()

    def _start_clock(self) -> None:
        self._clock_started = True
        self.arm.connect()  # the real-time physics thread starts here
        if self.recorder is not None:
            self.recorder.started()

    def _before_read(self) -> None:
        if not self._clock_started:
            self._start_clock()
        if self.recorder is not None:
            self.recorder.read()
            self._check_episode_end()

    def _check_episode_end(self) -> None:
        rec = self.recorder
        if rec is not None and not rec.written and rec.episode_s is not None and self.arm.time_s >= rec.episode_s:
            rec.maybe_finish(self.arm.time_s, self.arm.task_status())

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        """Nothing to do: the simulated bus has a fixed calibration."""

    def configure(self) -> None:
        """Nothing to do: the simulated servos need no register set-up."""

    def get_observation(self) -> dict[str, Any]:
        self._check_connected()
        self._before_read()
        obs = self.arm.get_observation(with_images=bool(self.config.sim_cameras))
        norm = self.bus._normalize(self.bus.ticks_from_sim(obs.state))
        joints = {f"{self.bus._id_to_name(i)}.pos": v for i, v in norm.items()}
        out: dict[str, Any] = {k: joints[k] for k in self._order}
        out.update(obs.images)
        if self.config.environment_state:
            out[ENV_STATE_KEY] = obs.environment_state
        return out

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        self._check_connected()
        limit = self.config.fail_after_actions
        if limit is not None and self.actions_sent >= limit:
            raise ConnectionError(f"simulated bus fault after {limit} actions (fail_after_actions)")
        self.actions_sent += 1
        goal = {k.removesuffix(".pos"): float(v) for k, v in action.items() if k.endswith(".pos")}
        if self.config.max_relative_target is not None:
            present = self.bus.sync_read("Present_Position")
            goal = ensure_safe_goal_position({k: (g, present[k]) for k, g in goal.items()},
                                             self.config.max_relative_target)
        sent = self.bus.sync_write("Goal_Position", goal)
        if self.recorder is not None:
            self.recorder.command(self.arm.time_s, {f"{m}.pos": v for m, v in goal.items()})
            self._check_episode_end()
        return {f"{m}.pos": v for m, v in sent.items()}

    def disconnect(self) -> None:
        if self.config.disable_torque_on_disconnect:
            self.bus.disable_torque()
        if self.recorder is not None and not self.recorder.written:
            self.recorder.write(self.arm.time_s, self.arm.task_status(), complete=False)
        self.arm.disconnect()
        self._connected = False

    # the simulation's task, for the client's stop-on-success and instruction
    @property
    def instruction(self) -> str:
        return self.arm.instruction

    def task_status(self) -> Any:
        return self.arm.task_status()

    def _check_connected(self) -> None:
        if not self._connected:
            raise ConnectionError(f"{self} is not connected")
