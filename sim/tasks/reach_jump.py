"""reach_jump (whack-a-mole): a target appears at a random reachable place at random times.

Each jump is a StimulusEvent("target_jump"). A target counts as hit when the tool comes within
`radius_m` of it within `time_limit_s` of its appearance; success = at least `min_hit_fraction`
of the targets that could be judged were hit. The time-to-hit of every target is kept
(`hit_times`), so an evaluator can measure reaction time after each jump.
"""

from __future__ import annotations

import numpy as np

from sim.kinematics import solve_reach
from sim.physics import SimPhysics
from sim.tasks.base import StimulusEvent, Task, TaskStatus
from sim.tasks.sampling import polar_point, sample_apart


class ReachJump(Task):
    name = "reach_jump"

    def __init__(
        self,
        duration_s: float = 8.0,
        radius_m: float = 0.025,
        time_limit_s: float = 1.5,
        interval_s: tuple[float, float] = (1.5, 2.2),
        min_hit_fraction: float = 0.75,
    ):
        super().__init__()
        self.duration_s = duration_s
        self.radius_m = radius_m
        self.time_limit_s = time_limit_s
        self.interval_s = interval_s
        self.min_hit_fraction = min_hit_fraction
        self.schedule: list[tuple[float, np.ndarray]] = []
        self.current = -1
        self.appeared_at: list[float] = []
        self.hit_times: list[float | None] = []  # time from appearance to hit, per shown target

    @property
    def instruction(self) -> str:
        return "touch the magenta ball with the gripper every time it moves"

    def reset(self, physics: SimPhysics, rng: np.random.Generator) -> None:
        super().reset(physics, rng)
        self.schedule, t, last = [], 0.0, None
        while t < self.duration_s:
            others = [] if last is None else [last]
            point = sample_apart(
                rng,
                lambda: polar_point(rng, (0.16, 0.28), (-1.2, 1.2), rng.uniform(0.05, 0.20)),
                others,
                0.08,
                accept=lambda p: solve_reach(*p, margin=0.1) is not None,
            )
            self.schedule.append((t, point))
            last = point
            t += rng.uniform(*self.interval_s)
        self.current, self.appeared_at, self.hit_times = -1, [], []
        self.before_tick(physics, 0.0)

    def before_tick(self, physics: SimPhysics, t: float) -> None:
        nxt = self.current + 1
        if nxt < len(self.schedule) and self.schedule[nxt][0] <= t + 1e-9:
            self.current = nxt
            target = self.schedule[nxt][1]
            physics.set_mocap("target", target)
            self.appeared_at.append(t)
            self.hit_times.append(None)
            self.events.append(StimulusEvent(t, "target_jump", target.copy()))

    def after_tick(self, physics: SimPhysics, t: float) -> None:
        if self.current < 0 or self.hit_times[-1] is not None:
            return
        elapsed = t - self.appeared_at[-1]
        if elapsed <= self.time_limit_s + 1e-9:
            target = self.schedule[self.current][1]
            if np.linalg.norm(physics.tool_position() - target) < self.radius_m:
                self.hit_times[-1] = elapsed

    def target_position(self, physics: SimPhysics) -> np.ndarray | None:
        return None if self.current < 0 else self.schedule[self.current][1].copy()

    def status(self, physics: SimPhysics, t: float) -> TaskStatus:
        judged = [
            h for h, t0 in zip(self.hit_times, self.appeared_at, strict=False) if h is not None or t - t0 > self.time_limit_s
        ]
        hits = [h for h in judged if h is not None]
        fraction = len(hits) / len(judged) if judged else 0.0
        done = t >= self.duration_s - 1e-9
        metrics = {
            "targets": float(len(judged)),
            "hits": float(len(hits)),
            "hit_fraction": fraction,
            "mean_time_to_hit_s": float(np.mean(hits)) if hits else float("nan"),
        }
        success = done and len(judged) > 0 and fraction >= self.min_hit_fraction
        return TaskStatus(success, fraction, done, list(self.events), metrics)
