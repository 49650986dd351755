"""track: a target moves on a smooth path with varying speed; keep the tool on it. track_sweep: the same
with a target sweeping one way at constant speed (its motion visible in one frame).

Score = fraction of ticks (after a short grace period) with the tool within `radius_m`; success =
score >= `min_score` at the end. Each reversal of the sideways motion is a StimulusEvent
("direction_change").
"""

from __future__ import annotations

import math

import numpy as np

from sim.physics import SimPhysics
from sim.tasks.base import StimulusEvent, Task, TaskStatus


class Track(Task):
    name = "track"

    def __init__(self, duration_s: float = 8.0, radius_m: float = 0.03, grace_s: float = 1.0, min_score: float = 0.8):
        super().__init__()
        self.duration_s = duration_s
        self.radius_m = radius_m
        self.grace_s = grace_s
        self.min_score = min_score
        self._p = np.zeros(9)
        self._within = 0
        self._samples = 0
        self._error_sum = 0.0
        self._last_dir = 0.0

    @property
    def instruction(self) -> str:
        return "follow the moving magenta ball with the gripper"

    def reset(self, physics: SimPhysics, rng: np.random.Generator) -> None:
        super().reset(physics, rng)
        self._p = self._sample_path(rng)
        self._within = self._samples = 0
        self._error_sum = 0.0
        self._last_dir = 0.0
        self.before_tick(physics, 0.0)

    def _sample_path(self, rng: np.random.Generator) -> np.ndarray:
        # theta0, omega0, sign, pan amplitude, speed-wave omega, speed-wave phase, r phase, z phase, speed depth
        return np.array([
            rng.uniform(-math.pi, math.pi), rng.uniform(0.7, 1.0), rng.choice([-1.0, 1.0]), rng.uniform(0.6, 0.9),
            2 * math.pi / rng.uniform(2.5, 4.0), rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi),
            rng.uniform(0, 2 * math.pi), 0.6,
        ])

    def path(self, t: float) -> np.ndarray:
        th0, w0, sign, amp, wv, phv, phr, phz, depth = self._p
        theta = th0 + sign * w0 * (t + depth / wv * (math.cos(phv) - math.cos(wv * t + phv)))
        pan = amp * math.sin(theta)
        r = 0.22 + 0.04 * math.sin(2 * theta + phr)
        z = 0.12 + 0.05 * math.sin(1.5 * theta + phz)
        return np.array([r * math.cos(pan), r * math.sin(pan), z])

    def target_velocity(self, t: float) -> np.ndarray:
        h = 1e-4
        return (self.path(t + h) - self.path(t - h)) / (2 * h)

    def before_tick(self, physics: SimPhysics, t: float) -> None:
        physics.set_mocap("target", self.path(t))
        v = self.target_velocity(t)
        p = self.path(t)
        lateral = -p[1] * v[0] + p[0] * v[1]  # sign of the sideways (pan) motion
        direction = math.copysign(1.0, lateral)
        if self._last_dir and direction != self._last_dir:
            self.events.append(StimulusEvent(t, "direction_change", p))
        self._last_dir = direction

    def after_tick(self, physics: SimPhysics, t: float) -> None:
        if t < self.grace_s:
            return
        error = float(np.linalg.norm(physics.tool_position() - self.path(t)))
        self._samples += 1
        self._within += error < self.radius_m
        self._error_sum += error

    def target_position(self, physics: SimPhysics) -> np.ndarray | None:
        return physics.mocap_pos("target")

    def status(self, physics: SimPhysics, t: float) -> TaskStatus:
        score = self._within / self._samples if self._samples else 0.0
        done = t >= self.duration_s - 1e-9
        metrics = {
            "score": score,
            "mean_error_m": self._error_sum / self._samples if self._samples else float("nan"),
        }
        return TaskStatus(done and score >= self.min_score, score, done, list(self.events), metrics)


class TrackSweep(Track):
    """track whose target sweeps one way around the base at a constant angular speed, at a per-episode
    radius and height: one frame shows where the target is *and* where it is going (position → velocity),
    so a single-frame policy can aim ahead — the task where the rollforward offset Δ changes the right
    plan (issue 13's VLASH-trained vs plain comparison). To the policy it is `track` (same instruction,
    same one-hot); no reversals, so no stimulus events."""

    name = "track_sweep"
    policy_task = "track"
    #: rad/s, always increasing pan: ~10 cm/s at the mean radius, so 200 ms of unmodelled latency costs ~2 cm
    OMEGA = 0.45

    def __init__(self, duration_s: float = 3.5, radius_m: float = 0.03, grace_s: float = 1.0, min_score: float = 0.8):
        super().__init__(duration_s, radius_m, grace_s, min_score)

    def _sample_path(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.uniform(-1.0, -0.6), rng.uniform(0.19, 0.25), rng.uniform(0.08, 0.16)])  # pan0, r, z

    def path(self, t: float) -> np.ndarray:
        pan0, r, z = self._p[:3]
        pan = pan0 + self.OMEGA * t
        return np.array([r * math.cos(pan), r * math.sin(pan), z])
