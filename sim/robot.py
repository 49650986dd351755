"""SimRobot: the simulated arm behind vla_async.robot.Robot, in real or virtual time.

- virtual: nothing moves until the harness calls `step_tick()`; deterministic for a seed.
- realtime: a physics thread advances with the wall clock from `connect()` on; `send_action`
  only sets the servo targets it reads, observations come from a lock-protected snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from sim import so101
from sim.kinematics import tool_position
from sim.realtime import RealtimeStepper
from sim.rendering import CameraRenderer
from sim.tasks.base import TaskStatus
from sim.world import SimWorld
from vla_async.robot import Robot, RobotObservation
from vla_async.specs import RobotSpec

_LOW = np.array([lo for lo, _ in so101.LIMITS])
_HIGH = np.array([hi for _, hi in so101.LIMITS])


def validate_action(action: np.ndarray) -> np.ndarray:
    """The action clamped to the joint limits; ValueError on a wrong size or a non-finite value."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (len(so101.NAMES),):
        raise ValueError(
            f"action must be {len(so101.NAMES)} values {list(so101.NAMES)}, got shape {a.shape}"
        )
    bad = [n for n, ok in zip(so101.NAMES, np.isfinite(a), strict=False) if not ok]
    if bad:
        raise ValueError(f"action has non-finite values for {bad}: {a.tolist()}")
    return np.clip(a, _LOW, _HIGH)


class SimRobot(Robot):
    def __init__(
        self,
        task: str,
        *,
        mode: Literal["realtime", "virtual"] = "virtual",
        fps: float = 30.0,
        seed: int = 0,
        cameras: Sequence[str] = so101.CAMERAS,
        image_size: tuple[int, int] = (224, 224),
        render: bool = True,
    ):
        if mode not in ("realtime", "virtual"):
            raise ValueError(f"mode must be 'realtime' or 'virtual', got {mode!r}")
        self.mode = mode
        self.seed = seed
        self.render = render and len(cameras) > 0
        self._spec = so101.robot_spec(fps, cameras, image_size)
        self._world = SimWorld(task, fps)
        self._world.reset(seed)
        self._stepper = RealtimeStepper(self._world) if mode == "realtime" else None
        self._renderer: CameraRenderer | None = None
        self._image_size = image_size
        self._connected = False

    # ---------------------------------------------------------------- Robot interface
    @property
    def spec(self) -> RobotSpec:
        return self._spec

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True
        if self._stepper is not None:
            self._stepper.start()

    def disconnect(self) -> None:
        if self._stepper is not None:
            self._stepper.stop()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._connected = False

    def get_observation(self, with_images: bool = True) -> RobotObservation:
        with self._locked():
            p = self._world.physics
            state = p.joint_state().astype(np.float32)
            env = self._world.environment_state().astype(np.float32)
            snapshot = (p.data.qpos.copy(), p.data.mocap_pos.copy()) if with_images and self.render else None
        images = {}
        if snapshot is not None:
            if self._renderer is None:  # created lazily on the caller's thread (GL context)
                cams = [c.name for c in self._spec.cameras]
                self._renderer = CameraRenderer(p.model, cams, self._image_size)
            images = self._renderer.render(*snapshot)
        return RobotObservation(state=state, images=images, environment_state=env)

    def send_action(self, action: np.ndarray) -> np.ndarray:
        applied = validate_action(action)
        with self._locked():
            self._world.physics.set_command(applied)
        return applied

    # ---------------------------------------------------------------- simulation extras
    @property
    def instruction(self) -> str:
        return self._world.task.instruction

    @property
    def task(self) -> str:
        return self._world.task.name

    @property
    def time_s(self) -> float:
        with self._locked():
            return self._world.time_s

    @property
    def world(self) -> SimWorld:
        """The underlying world (virtual mode or under `_locked()`; for tools and tests)."""
        return self._world

    def reset(self, seed: int) -> None:
        self.seed = seed
        with self._locked():
            self._world.reset(seed)

    def step_tick(self) -> None:
        """Virtual mode: advance exactly one control period with the last sent action."""
        if self._stepper is not None:
            raise RuntimeError("step_tick() is for virtual mode; in real time the physics thread advances the world")
        self._world.step_tick()

    def task_status(self) -> TaskStatus:
        with self._locked():
            return self._world.task.status(self._world.physics, self._world.time_s)

    def tool_position(self) -> np.ndarray:
        with self._locked():
            return self._world.physics.tool_position()

    @staticmethod
    def tool_position_for(joints: np.ndarray) -> np.ndarray:
        return tool_position(joints)

    def target_position(self) -> np.ndarray | None:
        with self._locked():
            return self._world.task.target_position(self._world.physics)

    def scene_snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(qpos, mocap_pos) copied under the world's lock: what a CameraRenderer needs for one frame."""
        with self._locked():
            data = self._world.physics.data
            return data.qpos.copy(), data.mocap_pos.copy()

    def commanded_action(self) -> np.ndarray:
        with self._locked():
            return self._world.physics.command()

    def _locked(self):
        return self._stepper.lock if self._stepper is not None else _NO_LOCK


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()
