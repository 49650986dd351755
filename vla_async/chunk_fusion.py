"""ChunkFusion: how one strategy family turns an arriving chunk into plan rows.

The scheduler validates and places a chunk (which tick its first action is for), makes the plan cover
the junction tick `j = max(k_now, chunk.start_tick)` (an underrun is filled with a hold first), then
calls `fusion.fuse(plan, chunk, k_now)`. Everything after that is the fusion's: smoothing the chunk,
how it meets the executing plan, any precomputed operators and their caches (built in its
constructor), and which rows it leaves to the plan to write later (`Plan.write_segment`).

Families are chosen by `strategy.fuser.kind` from `FUSIONS` (name -> "module:Class"). To add one, see
docs/fusion.md: one class and a preset.
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import numpy as np

from vla_async.config.schema import FuserConfig, StrategyConfig
from vla_async.plan import Plan, Trajectory
from vla_async.registry import load
from vla_async.smoothing import Smoother
from vla_async.specs import RobotSpec


class PlacedChunk(NamedTuple):
    """A validated chunk on the tick grid (a tuple: built on the arrival tick, where a frozen dataclass costs µs)."""

    start_tick: int  # tick of actions[0]
    actions: np.ndarray  # [n, D] float, finite
    source: int  # request id


class ChunkFusion(abc.ABC):
    """Merges placed chunks into the plan. Subclasses implement `merge` (and may override `fuse` with a faster
    path that gives the same rows); both return the number of blended ticks (0 when there is no blend)."""

    reads_derivatives = False  # whether `merge` reads the plan's and the chunk's velocities and accelerations

    def __init__(self, config: FuserConfig, smoother: Smoother, limits: tuple[np.ndarray, np.ndarray] | None = None,
                 chunk_length: int | None = None):
        """`limits` = per-joint (max velocity, max acceleration) a fusion may respect; `chunk_length` = the length
        chunks will have (what the constructor may precompute for)."""
        self.config = config
        self.smoother = smoother
        self.stepwise = smoother.stepwise
        self.fps = smoother.fps

    def first_position(self, actions: np.ndarray) -> np.ndarray:
        """The position this fusion would command for `actions[0]` (held before the robot's state is known)."""
        return self.smoother.stacked(actions, 0, self.reads_derivatives)[0, 0]

    def fuse(self, plan: Plan, chunk: PlacedChunk, k_now: int, write_until: int | None = None) -> int:
        """Merge `chunk` into `plan` from `k_now`, the first tick not commanded yet. The plan covers
        `[.., max(k_now, chunk.start_tick)]`. Rows for ticks < `write_until` are written now; later ones may be
        left to the plan to write when read (all written now when None)."""
        pva = self.smoother.stacked(chunk.actions, 0, self.reads_derivatives)
        return self.merge(plan, Trajectory.stacked(chunk.start_tick, pva, chunk.source), max(k_now, chunk.start_tick))

    @abc.abstractmethod
    def merge(self, plan: Plan, new: Trajectory, j: int) -> int:
        """Merge the smoothed chunk `new` into `plan` from the junction tick `j`, which the plan covers."""


# fuser kind -> "module:Class"; Class(config, smoother, limits, chunk_length) -> ChunkFusion. Imported when used.
FUSIONS: dict[str, str] = {
    "latest_only": "vla_async.fusion:LatestOnlyFusion",
    "lerobot": "vla_async.fusion:LeRobotFusion",
    "temporal_ensemble": "vla_async.fusion:TemporalEnsembleFusion",
    "rail": "vla_async.rail:RailFusion",
}


def fusion_class(kind: str) -> type[ChunkFusion]:
    target = FUSIONS.get(kind)
    if target is None:
        raise ValueError(f"unknown fuser {kind!r}; available: {sorted(FUSIONS)}")
    return load(target)


def create_fusion(strategy: StrategyConfig, robot: RobotSpec, chunk_length: int | None = None,
                  limits: tuple[np.ndarray, np.ndarray] | None = None) -> ChunkFusion:
    """The fusion `strategy.fuser.kind` names, with the strategy's smoother for `robot`."""
    cls = fusion_class(strategy.fuser.kind)
    smoother = Smoother(strategy.smoother, robot.stepwise_mask, robot.fps, robot.position_limits, chunk_length)
    return cls(strategy.fuser, smoother, limits, chunk_length)
