"""`vla-async bench lerobot`'s numbers, from the episode log the simulated robot writes (the same code measures
both stacks; lerobot_robot_vla_sim/episode_log.py) — pure functions of plain data, no LeRobot needed.

Per episode, from the commands the arm received (wall time since the episode's clock started, i.e. the client's
first read of the arm), from the first action planned by the policy on (`start_s`: ours sends holds before its
first chunk, LeRobot's client sends nothing; first action: when that came):
- control rate: commands per second between the first and the last; loop gaps: the time between two commands;
- the arm's command on the 1/fps control grid (bins centred on the first command): the last command of each
  period, or the previous one held when none came; RMS jerk of that trajectory (gradual joints, policy units
  per s³, sim.eval.metrics.rms_jerk);
- empty periods: control periods in which the arm received no command at all: LeRobot's client sends nothing
  while its action queue is empty, and either client misses a period when its loop runs late;
- holds: ticks a client commanded a hold (no fresh planned action; ours logs them, `hold_ticks`); LeRobot's client
  never sends one (None: its underruns are empty periods);
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
    first_action_s: float
    rate_hz: float
    gaps_ms: np.ndarray
    empty_periods: int
    hold_ticks: int | None
    rms_jerk: float


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


def episode_numbers(log: Mapping[str, Any], hold_ticks: int | None = None, start_s: float | None = None) -> EpisodeNumbers:
    """One episode's numbers from the robot's episode log (see the module docstring); commands before `start_s`
    (default: none) are not counted."""
    from sim.eval.metrics import rms_jerk

    fps = float(log["fps"])
    cmds = np.asarray(log["commands"], dtype=float).reshape(-1, 2 + len(log["joint_names"]))
    if start_s is not None:
        cmds = cmds[cmds[:, 0] >= start_s]
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
        commands=len(times), first_action_s=float(times[0]) if len(times) else math.nan, rate_hz=(len(times) - 1) / span if span > 0 else 0.0,
        gaps_ms=np.diff(times) * 1e3, empty_periods=held, hold_ticks=hold_ticks,
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
        holds = [e.hold_ticks for e in eps if e.hold_ticks is not None]
        return [
            self.stack, f"{self.latency_ms:g}", _successes(eps),
            _mean([e.hit_fraction for e in eps], "{:.2f}"), _mean(hit_times, "{:.0f}"),
            _mean([1e3 * e.first_action_s for e in eps], "{:.0f}"), _mean([e.empty_periods for e in eps], "{:.1f}"),
            _mean(holds, "{:.1f}"), _mean([e.rms_jerk for e in eps], "{:.0f}"),
            _mean([e.rate_hz for e in eps], "{:.1f}"), _gaps(gaps),
        ]


def _successes(eps: Sequence[EpisodeNumbers]) -> str:
    incomplete = sum(not e.complete for e in eps)
    return f"{sum(e.success for e in eps)}/{len(eps)}" + (f" ({incomplete} cut short)" if incomplete else "")


def _mean(values: Sequence[float], fmt: str) -> str:
    return fmt.format(float(np.mean(values))) if len(values) else "–"


HEADER = ["stack", "lat ms", "success", "hits/targets", "time to hit ms", "first action ms", "empty periods/ep",
          "holds/ep", "RMS jerk",
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
