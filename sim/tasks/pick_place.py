"""pick_place: two coloured cubes, two coloured zones; the instruction names which cube goes where.

The cube and the zone are drawn per seed, so only a policy that reads the instruction succeeds.
Success = the named cube rests inside the named zone and is no longer held.
"""

from __future__ import annotations

import numpy as np

from sim.physics import CUBE_HALF, CUBES, ZONES, SimPhysics
from sim.tasks.base import Task, TaskStatus
from sim.tasks.sampling import polar_point, sample_apart

ZONE_RADIUS = 0.04


def _layout(rng: np.random.Generator, min_distance: float = 0.09) -> list[np.ndarray]:
    """Two cubes and two zones on the table, pairwise apart (redrawn as a whole when crowded)."""
    for _ in range(100):
        placed: list[np.ndarray] = []
        try:
            for _obj in range(4):
                draw = lambda: polar_point(rng, (0.14, 0.22), (-1.3, 1.3), 0.0)  # noqa: E731
                placed.append(sample_apart(rng, draw, placed, min_distance, tries=50))
            return placed
        except RuntimeError:
            continue
    raise RuntimeError("could not lay out the pick_place scene")


class PickPlace(Task):
    name = "pick_place"

    def __init__(self, duration_s: float = 20.0):
        super().__init__()
        self.duration_s = duration_s
        self.cube = CUBES[0]
        self.zone = ZONES[0]
        self._progress = 0.0

    @property
    def instruction(self) -> str:
        return f"pick up the {self.cube.split('_')[1]} cube and put it in the {self.zone.split('_')[1]} zone"

    def reset(self, physics: SimPhysics, rng: np.random.Generator) -> None:
        super().reset(physics, rng)
        self.cube = CUBES[int(rng.integers(2))]
        self.zone = ZONES[int(rng.integers(2))]
        for name, p in zip((*CUBES, *ZONES), _layout(rng), strict=True):
            if name in CUBES:
                physics.place_cube(name, (p[0], p[1]), rng.uniform(-np.pi / 4, np.pi / 4))
            else:
                physics.set_mocap(name, p)
        self._progress = 0.0

    def _in_zone(self, physics: SimPhysics) -> tuple[bool, float]:
        pos, _ = physics.cube_pose(self.cube)
        dist = float(np.linalg.norm(pos[:2] - physics.mocap_pos(self.zone)[:2]))
        return dist < ZONE_RADIUS and pos[2] < CUBE_HALF + 0.005, dist

    def after_tick(self, physics: SimPhysics, t: float) -> None:
        pos, _ = physics.cube_pose(self.cube)
        inside, dist = self._in_zone(physics)
        held = physics.grasped(self.cube)
        if inside and not held:
            stage = 1.0
        elif held:
            stage = 0.4 + 0.3 * (1.0 - min(1.0, dist / 0.3))
        else:
            reach = float(np.linalg.norm(physics.tool_position() - pos))
            stage = 0.3 * (1.0 - min(1.0, reach / 0.3))
        self._progress = max(self._progress, stage)

    def status(self, physics: SimPhysics, t: float) -> TaskStatus:
        inside, dist = self._in_zone(physics)
        success = inside and not physics.grasped(self.cube)
        done = success or t >= self.duration_s - 1e-9
        return TaskStatus(success, 1.0 if success else self._progress, done, list(self.events),
                          {"cube_zone_distance_m": dist})
