"""Noise injection for recovery data (DART-style): perturb what is executed, never what is labelled.

Scheme: in a noisy episode, perturbation *bursts* start at random ticks (Poisson, `rate_hz`); each
holds a constant joint-space offset ~ N(0, std_rad²) on the five arm joints (the gripper is never
perturbed) for a duration drawn uniformly from `duration_s`. The robot executes expert action +
offset, so it drifts off the expert's path; the recorded `action` is always the clean expert action
planned from the state actually reached, i.e. the correction back. Bursts do not overlap. A
fraction `episode_fraction` of the episodes is noisy (drawn from the seed), the rest are clean.
Everything is drawn from the episode's seed, so a recording is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARM_JOINTS = 5


@dataclass(frozen=True)
class NoiseConfig:
    std_rad: float = 0.08
    rate_hz: float = 0.6
    duration_s: tuple[float, float] = (0.15, 0.5)
    episode_fraction: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = self.duration_s
        if self.std_rad < 0 or self.rate_hz < 0 or not 0 <= self.episode_fraction <= 1 or not 0 < lo <= hi:
            raise ValueError(f"bad noise config {self}: need std_rad >= 0, rate_hz >= 0, "
                             "0 <= episode_fraction <= 1, 0 < duration_s[0] <= duration_s[1]")


class NoiseInjector:
    """Per-tick offsets for one episode: `offset(tick)` → [6] added to the executed action."""

    def __init__(self, config: NoiseConfig, seed: int, fps: float):
        self.config = config
        self.fps = float(fps)
        self._rng = np.random.default_rng([seed, 0x5EED])
        self.enabled = config.std_rad > 0 and self._rng.random() < config.episode_fraction
        self._until = -1
        self._offset = np.zeros(ARM_JOINTS + 1)

    def offset(self, tick: int) -> np.ndarray:
        if not self.enabled:
            return np.zeros(ARM_JOINTS + 1)
        if tick >= self._until:
            self._offset[:] = 0.0
            if self._rng.random() < self.config.rate_hz / self.fps:
                duration = self._rng.uniform(*self.config.duration_s)
                self._until = tick + max(1, int(round(duration * self.fps)))
                self._offset[:ARM_JOINTS] = self._rng.normal(0.0, self.config.std_rad, ARM_JOINTS)
        return self._offset.copy()
