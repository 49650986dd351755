"""The overlap family of chunk fusions: switch (latest_only) and mix overlapping ticks (LeRobot, ACT).

These read positions only, as LeRobot and ACT do: without smoothing the chunk's velocities and
accelerations are left 0 (`reads_derivatives = False`). The rail family lives in `vla_async.rail`.
"""

from __future__ import annotations

import abc
import math

import numpy as np

from vla_async.chunk_fusion import ChunkFusion
from vla_async.plan import Plan, Trajectory


class LatestOnlyFusion(ChunkFusion):
    """Switch abruptly: from `j` on, the plan is the new chunk."""

    def merge(self, plan: Plan, new: Trajectory, j: int) -> int:
        plan.write_rows(j, new.from_tick(j).pva, new.source)
        return 0


class _OverlapFusion(ChunkFusion):
    """Ticks both chunks cover are mixed as `w·old + (1 − w)·new`, w from `_old_weight` of how many predictions the
    old value already mixes (a hold, count 0, is not a prediction: the new chunk replaces it); the new chunk alone
    after the old plan ends. Positions only, as LeRobot and ACT do (velocities and accelerations are the new
    chunk's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._weights = np.zeros(1)  # w by old count (index), grown on demand

    def merge(self, plan: Plan, new: Trajectory, j: int) -> int:
        plan.mix_overlap(j, new.from_tick(j).pva.copy(), new.source, self._weights_of)
        return 0

    def _weights_of(self, old_count: np.ndarray) -> np.ndarray:
        """w of the old values [n, 1] for their counts [n]."""
        top = int(np.maximum.reduce(old_count))
        if top >= len(self._weights):
            self._weights = np.array([0.0] + [self._old_weight(c) for c in range(1, 2 * top + 2)])
        return self._weights[old_count][:, None]

    @abc.abstractmethod
    def _old_weight(self, old_count: int) -> float:
        """w of the old value when it mixes `old_count` >= 1 predictions."""


class LeRobotFusion(_OverlapFusion):
    """LeRobot's aggregate: overlapping ticks become `w·old + (1-w)·new` (w = 0.3)."""

    def _old_weight(self, old_count: int) -> float:
        return self.config.lerobot_old_weight


class TemporalEnsembleFusion(_OverlapFusion):
    """ACT temporal ensembling: `Σ w_i a^(i) / Σ w_i`, `w_i = exp(-m·i)`, i = 0 the oldest prediction.

    The old value already is the weighted mean of `c` predictions with total weight
    `W = Σ_{i<c} exp(-m i)`; the new prediction gets `exp(-m c)`, so the update is exact and incremental.
    """

    def _old_weight(self, old_count: int) -> float:
        m, c = self.config.ensemble_m, float(old_count)
        total_old = c if m == 0 else (1.0 - math.exp(-m * c)) / (1.0 - math.exp(-m))
        return total_old / (total_old + math.exp(-m * c))
