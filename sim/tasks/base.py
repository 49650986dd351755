"""What a task is: episode set-up, per-tick hooks, status, and the events a robot must react to.

Tasks follow dm_control's factoring: the physics is passed into every method; a task keeps only
its episode's plan (target schedule, hit log), drawn from the seed in `reset`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from sim.physics import CUBES, PARKED_TARGET, ZONES, SimPhysics
from sim.tasks.layout import (
    CUBE,
    ENV_STATE_DIM,
    TARGET_POS,
    TASK_ONE_HOT,
    ZONE,
    task_index,
)

# Where unused objects wait, out of reach behind the robot.
PARKED_CUBES = {"cube_red": (-0.25, 0.2), "cube_blue": (-0.25, -0.2)}
PARKED_ZONES = {"zone_green": (-0.3, 0.35, 0.0), "zone_yellow": (-0.3, -0.35, 0.0)}


@dataclass(frozen=True, eq=False)
class StimulusEvent:
    """A change the robot must react to, at simulated time `time_s` (e.g. the target jumped)."""

    time_s: float
    kind: str
    target: np.ndarray


@dataclass(frozen=True, eq=False)
class TaskStatus:
    success: bool
    progress: float  # 0..1
    done: bool
    events: list[StimulusEvent] = field(default_factory=list)  # every event so far in this episode
    metrics: dict[str, float] = field(default_factory=dict)  # task-specific numbers (hit times, errors)


class Task(abc.ABC):
    name: str = ""
    policy_task: str = ""  # what the policy is told (the one-hot); defaults to `name`
    duration_s: float = 20.0

    def __init__(self) -> None:
        self.events: list[StimulusEvent] = []

    @property
    @abc.abstractmethod
    def instruction(self) -> str: ...

    def reset(self, physics: SimPhysics, rng: np.random.Generator) -> None:
        """Lay out the scene for a new episode (physics was just reset)."""
        self.events = []
        for cube in CUBES:
            physics.place_cube(cube, PARKED_CUBES[cube], 0.0)
        for zone in ZONES:
            physics.set_mocap(zone, np.array(PARKED_ZONES[zone]))
        physics.set_mocap("target", PARKED_TARGET)

    def before_tick(self, physics: SimPhysics, t: float) -> None:  # noqa: B027 - optional hook
        """Called at the start of each control period (move targets)."""

    def after_tick(self, physics: SimPhysics, t: float) -> None:  # noqa: B027 - optional hook
        """Called at the end of each control period (score)."""

    @abc.abstractmethod
    def status(self, physics: SimPhysics, t: float) -> TaskStatus: ...

    def target_position(self, physics: SimPhysics) -> np.ndarray | None:
        return None

    def environment_state(self, physics: SimPhysics, t: float) -> np.ndarray:
        env = np.zeros(ENV_STATE_DIM)
        env[TASK_ONE_HOT][task_index(self.policy_task or self.name)] = 1.0
        target = self.target_position(physics)
        if target is not None:
            env[TARGET_POS] = target  # the earlier frames' positions are added by the world (SimWorld)
        for cube in CUBES:
            pos, yaw = physics.cube_pose(cube)
            env[CUBE[cube]] = (*pos, yaw, float(physics.grasped(cube)))
        for zone in ZONES:
            env[ZONE[zone]] = physics.mocap_pos(zone)[:2]
        return env
