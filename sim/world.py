"""Physics + task + the control-tick clock: the one place simulated time advances.

Both robot modes drive a `SimWorld`: virtual time calls `step_tick()`, the real-time thread calls
`advance(n)` with however many physics steps the wall clock says are due. Task hooks run exactly
at control-tick boundaries in both cases, so a task sees the same sequence either way.
"""

from __future__ import annotations

import numpy as np

from sim.kinematics import PITCH_REACH, solve_ik
from sim.physics import SimPhysics
from sim.tasks import make_task
from sim.tasks.layout import TARGET_POS, TARGET_PREV, TARGET_PREV2

HOME_TOOL = (0.16, 0.0, 0.14)


def home_pose() -> np.ndarray:
    """Joint vector the arm starts each episode in (tool in front, gripper open)."""
    sol = solve_ik(*HOME_TOOL, PITCH_REACH)
    assert sol is not None
    return np.array([*sol, 0.0, 1.0])


class SimWorld:
    def __init__(self, task: str, fps: float = 30.0, timestep_s: float | None = None):
        self.physics = SimPhysics(fps, timestep_s)
        self.task = make_task(task)
        self.fps = float(fps)
        self.tick = 0
        self._substep = 0  # physics steps done inside the current tick
        # the target's position in the last three frames (now first): a policy's observation history
        self._target_frames: list[np.ndarray] = []

    @property
    def time_s(self) -> float:
        return (self.tick + self._substep / self.physics.substeps) / self.fps

    def reset(self, seed: int) -> None:
        """Deterministic for a seed: same layout, same targets, same initial state."""
        p = self.physics
        p.reset()
        p.set_joint_state(home_pose())
        self.tick = self._substep = 0
        self.task.reset(p, np.random.default_rng(seed))
        p.forward()
        self._target_frames = []
        self._record_target_frame()

    def _record_target_frame(self) -> None:
        target = self.task.target_position(self.physics)
        if target is None:
            self._target_frames = []
            return
        frame = np.asarray(target, dtype=float).copy()
        self._target_frames = [frame, *self._target_frames[:2]]

    def advance(self, nsteps: int) -> None:
        """Advance `nsteps` physics steps, running task hooks at every tick boundary."""
        p = self.physics
        while nsteps > 0:
            n = min(nsteps, p.substeps - self._substep)
            p.step(n)
            nsteps -= n
            self._substep += n
            if self._substep == p.substeps:
                self.tick += 1
                self._substep = 0
                t = self.tick / self.fps
                self.task.after_tick(p, t)
                self.task.before_tick(p, t)
                self._record_target_frame()

    def step_tick(self) -> None:
        self.advance(self.physics.substeps - self._substep)

    def environment_state(self) -> np.ndarray:
        """The task's state plus the target's positions one and two frames earlier (the current one
        repeated before there were earlier frames): motion is only inferable, never given."""
        env = self.task.environment_state(self.physics, self.time_s)
        frames = self._target_frames
        if frames and env[TARGET_POS].any():
            env[TARGET_PREV] = frames[min(1, len(frames) - 1)]
            env[TARGET_PREV2] = frames[min(2, len(frames) - 1)]
        return env
