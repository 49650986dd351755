"""Tasks where feedback in the middle of a motion decides success (a plan made before it fails).

- `pick_place_push`: pick_place whose cube is pushed 4–6 cm aside once, when the tool first comes within a
  random 3–7 cm (horizontal) of it, below 10 cm, before the grasp: a chunk planned for the old place closes on nothing.
- `reach_dodge`: reach_jump whose target dodges once per target, to a new place, when the measured tool
  first comes within 6 cm of it (before the hit); the hit clock restarts at the dodge.

Both emit a StimulusEvent at the change ("cube_pushed" / "target_jump"), so reaction is measured from it.
To the policy they look like their base task (same instruction, same one-hot).
"""

from __future__ import annotations

import math

import numpy as np

from sim.kinematics import solve_reach
from sim.physics import SimPhysics
from sim.tasks.base import StimulusEvent
from sim.tasks.pick_place import PickPlace
from sim.tasks.reach_jump import ReachJump
from sim.tasks.sampling import polar_point, sample_apart

PUSH_BELOW_Z = 0.10  # the tool is reaching down for the cube (the home pose is at 0.14 m)


class PickPlacePush(PickPlace):
    name = "pick_place_push"
    policy_task = "pick_place"

    def __init__(self, duration_s: float = 20.0):
        super().__init__(duration_s)
        self._rng = np.random.default_rng(0)
        self._push_at_m = 0.05
        self.pushed = False

    def reset(self, physics: SimPhysics, rng: np.random.Generator) -> None:
        super().reset(physics, rng)
        self._rng = np.random.default_rng(rng.integers(1 << 31))
        self._push_at_m = float(self._rng.uniform(0.03, 0.07))
        self.pushed = False

    def after_tick(self, physics: SimPhysics, t: float) -> None:
        super().after_tick(physics, t)
        if self.pushed or physics.grasped(self.cube):
            return
        pos, yaw = physics.cube_pose(self.cube)
        tool = physics.tool_position()
        if tool[2] < PUSH_BELOW_Z and math.dist(tool[:2].tolist(), pos[:2].tolist()) < self._push_at_m:
            self._push(physics, t, pos, yaw)

    def _push(self, physics: SimPhysics, t: float, pos: np.ndarray, yaw: float) -> None:
        for _ in range(50):
            angle, dist = self._rng.uniform(-math.pi, math.pi), self._rng.uniform(0.04, 0.06)
            xy = pos[:2] + dist * np.array([math.cos(angle), math.sin(angle)])
            if 0.12 <= float(np.linalg.norm(xy)) <= 0.24 and abs(math.atan2(xy[1], xy[0])) <= 1.4:
                break
        physics.place_cube(self.cube, (float(xy[0]), float(xy[1])), yaw)
        self.pushed = True
        self.events.append(StimulusEvent(t, "cube_pushed", np.array([xy[0], xy[1], pos[2]])))


class ReachDodge(ReachJump):
    name = "reach_dodge"
    policy_task = "reach_jump"

    def __init__(self, dodge_radius_m: float = 0.06, **kwargs):
        super().__init__(**kwargs)
        self.dodge_radius_m = dodge_radius_m
        self._rng = np.random.default_rng(0)
        self._dodged: set[int] = set()

    def reset(self, physics: SimPhysics, rng: np.random.Generator) -> None:
        self._rng = np.random.default_rng(rng.integers(1 << 31))
        self._dodged = set()
        super().reset(physics, rng)

    def after_tick(self, physics: SimPhysics, t: float) -> None:
        i = self.current
        if i >= 0 and i not in self._dodged and self.hit_times[-1] is None:
            target = self.schedule[i][1]
            if np.linalg.norm(physics.tool_position() - target) < self.dodge_radius_m:
                self._dodge(physics, t, i, target)
                return
        super().after_tick(physics, t)

    def _dodge(self, physics: SimPhysics, t: float, i: int, old: np.ndarray) -> None:
        rng = self._rng
        point = sample_apart(rng, lambda: polar_point(rng, (0.16, 0.28), (-1.2, 1.2), rng.uniform(0.05, 0.20)),
                             [old], 0.08, accept=lambda p: solve_reach(*p, margin=0.1) is not None)
        self._dodged.add(i)
        self.schedule[i] = (self.schedule[i][0], point)
        self.appeared_at[-1] = t
        physics.set_mocap("target", point)
        self.events.append(StimulusEvent(t, "target_jump", point.copy()))
