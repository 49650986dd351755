"""`vla-async bench lerobot`'s numbers, from the episode log the simulated robot writes (the same code measures
both stacks; lerobot_robot_vla_sim/episode_log.py) — pure functions of plain data, no LeRobot needed.

Per episode, from the commands the arm received (wall time since the episode's clock started):
- control rate: commands per second between the first and the last; loop gaps: the time between two commands;
- the arm's command on the 1/fps control grid (bins centred on the first command): the last command of each
  period, or the previous one held when none came; RMS jerk of that trajectory (gradual joints, policy units
  per s³, sim.eval.metrics.rms_jerk);
- stalls: control periods after the first command in which the arm got no fresh planned action: periods with no
  command at all (LeRobot's client sends nothing while its queue is empty) plus ticks a client says it held
  (`hold_ticks`; ours sends its hold every tick and logs it as stalled);
- success, hits/targets (completion of reach_jump's targets) and mean time to hit, from the task's status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EpisodeNumbers:
    complete: bool  # the world's clock reached the episode's end before the client stopped
    success: bool
    hit_fraction: float
    mean_time_to_hit_s: float
    commands: int
    rate_hz: float
    gaps_ms: np.ndarray
    held_periods: int
    hold_ticks: int
    rms_jerk: float

    @property
    def stalls(self) -> int:
        return self.held_periods + self.hold_ticks


def command_grid(times_s: np.ndarray, values: np.ndarray, fps: float) -> tuple[np.ndarray, int]:
    """The command the arm holds in each control period from the first command on, and how many periods got none."""
    if len(times_s) == 0:
        return np.zeros((0, values.shape[1] if values.ndim == 2 else 0)), 0
    bins = np.floor((times_s - times_s[0]) * fps + 0.5).astype(int)
    grid = np.empty((int(bins[-1]) + 1, values.shape[1]))
    filled = np.zeros(len(grid), dtype=bool)
    last = np.r_[bins[1:] != bins[:-1], True]  # several commands in one period: the last one counts
    grid[bins[last]] = values[last]
    filled[bins] = True
    for k in range(1, len(grid)):
        if not filled[k]:
            grid[k] = grid[k - 1]
    return grid, int((~filled).sum())


def episode_numbers(log: Mapping[str, Any], hold_ticks: int = 0) -> EpisodeNumbers:
    """One episode's numbers from the robot's episode log (see the module docstring)."""
    from sim.eval.metrics import rms_jerk

    fps = float(log["fps"])
    cmds = np.asarray(log["commands"], dtype=float).reshape(-1, 2 + len(log["joint_names"]))
    times, values = cmds[:, 0], cmds[:, 2:] * np.asarray(log["to_policy_scale"], dtype=float)
    grid, held = command_grid(times, values, fps)
    gradual = np.array([not n.startswith("gripper") for n in log["joint_names"]])
    span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    metrics = log.get("metrics", {})
    mean_hit = metrics.get("mean_time_to_hit_s")
    return EpisodeNumbers(
        complete=bool(log["complete"]), success=bool(log["success"]),
        hit_fraction=float(metrics.get("hit_fraction", log.get("progress", 0.0))),
        mean_time_to_hit_s=math.nan if mean_hit is None else float(mean_hit),
        commands=len(times), rate_hz=(len(times) - 1) / span if span > 0 else 0.0,
        gaps_ms=np.diff(times) * 1e3, held_periods=held, hold_ticks=int(hold_ticks),
        rms_jerk=rms_jerk(grid, fps, gradual) if len(grid) else 0.0,
    )


@dataclass(frozen=True)
class Row:
    stack: str
    latency_ms: float
    episodes: Sequence[EpisodeNumbers]

    def cells(self) -> list[str]:
        eps = self.episodes
        gaps = np.concatenate([e.gaps_ms for e in eps]) if eps else np.zeros(0)
        hit_times = [1e3 * e.mean_time_to_hit_s for e in eps if math.isfinite(e.mean_time_to_hit_s)]
        incomplete = sum(not e.complete for e in eps)
        return [
            self.stack, f"{self.latency_ms:g}",
            f"{sum(e.success for e in eps)}/{len(eps)}" + (f" ({incomplete} cut short)" if incomplete else ""),
            _mean([e.hit_fraction for e in eps], "{:.2f}"), _mean(hit_times, "{:.0f}"),
            _mean([e.stalls for e in eps], "{:.1f}"), _mean([e.rms_jerk for e in eps], "{:.0f}"),
            _mean([e.rate_hz for e in eps], "{:.1f}"), _gaps(gaps),
        ]


def _mean(values: Sequence[float], fmt: str) -> str:
    return fmt.format(float(np.mean(values))) if len(values) else "–"


HEADER = ["stack", "lat ms", "success", "hits/targets", "time to hit ms", "stalls/ep", "RMS jerk",
          "rate Hz", "loop gap p50 / p99 / max ms"]


def _gaps(gaps_ms: np.ndarray) -> str:
    if len(gaps_ms) == 0:
        return "–"
    p50, p99 = np.percentile(gaps_ms, [50, 99])
    return f"{p50:.1f} / {p99:.1f} / {gaps_ms.max():.1f}"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)
