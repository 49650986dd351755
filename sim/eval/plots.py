"""PNG plots (matplotlib, Agg backend): metrics vs latency per strategy, and trajectories at junctions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim.eval.episode_log import EpisodeLog
from sim.eval.metrics import junction_ticks

# (row key, axis label, scale)
METRIC_PANELS: list[tuple[str, str, float]] = [
    ("success_rate", "success rate", 1.0),
    ("completion_time_s", "completion time (s)", 1.0),
    ("reaction_s_mean", "reaction latency, mean (ms)", 1000.0),
    ("stall_ticks", "stalled ticks / episode", 1.0),
    ("rms_jerk", "RMS jerk of command", 1.0),
    ("junction_dp_p95", "junction |Δp| p95", 1.0),
]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics_vs_latency(rows: Sequence[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """One PNG per task: a panel per metric, a line per strategy, the zero-latency reference dashed."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_task: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row)
    paths = []
    for task, task_rows in by_task.items():
        fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
        lines: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        reference = None
        for row in task_rows:
            if row.get("is_reference"):
                reference = row
            else:
                lines[row["strategy"]].append(row)
        for ax, (key, label, scale) in zip(axes.flat, METRIC_PANELS, strict=False):
            for name, pts in sorted(lines.items()):
                pts = sorted(pts, key=lambda r: r["latency_ms"])
                xs = [r["latency_ms"] for r in pts if r.get(key) is not None]
                ys = [r[key] * scale for r in pts if r.get(key) is not None]
                if xs:
                    ax.plot(xs, ys, marker="o", label=name)
            if reference is not None and reference.get(key) is not None:
                ax.axhline(reference[key] * scale, color="k", ls="--", lw=1, label="sync @ 0 ms")
            ax.set_xlabel("injected latency (ms)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes.flat[0].legend(fontsize=8)
        fig.suptitle(f"{task}: metrics vs injected latency")
        fig.tight_layout()
        path = out_dir / f"metrics_{task}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def busiest_joint(log: EpisodeLog) -> int:
    """Index of the gradual joint that moves the most (the most telling one to plot)."""
    idx = np.nonzero(log.gradual_mask)[0]
    if log.num_ticks < 2 or idx.size == 0:
        return 0
    travel = np.abs(np.diff(log.command[:, idx], axis=0)).sum(axis=0)
    return int(idx[int(np.argmax(travel))])


def plot_junction_trajectory(
    logs: Mapping[str, EpisodeLog], path: str | Path, *, window_s: float = 3.0, joint: int | None = None
) -> Path:
    """Command and measured state of one joint over a window, chunk junctions as vertical lines.

    One panel per log (e.g. one strategy each), same joint and window so they compare directly.
    """
    plt = _pyplot()
    logs = {k: v for k, v in logs.items() if v.num_ticks > 1}
    fig, axes = plt.subplots(len(logs) or 1, 1, figsize=(11, 2.6 * max(1, len(logs))), squeeze=False)
    first = next(iter(logs.values()), None)
    j = joint if joint is not None else (busiest_joint(first) if first is not None else 0)
    for ax, (name, log) in zip(axes[:, 0], logs.items(), strict=False):
        t = log.tick / log.fps
        start = t[0] + 0.25 * max(0.0, t[-1] - t[0] - window_s)
        sel = (t >= start) & (t <= start + window_s)
        ax.plot(t[sel], log.command[sel, j], label="command", lw=1.4)
        ax.plot(t[sel], log.state[sel, j], label="measured", lw=1.0, alpha=0.8)
        stalled = sel & log.stalled
        if stalled.any():
            ax.plot(t[stalled], log.command[stalled, j], "rx", ms=4, label="stalled")
        for i in junction_ticks(log.source_request_id):
            if sel[i]:
                ax.axvline(t[i], color="gray", lw=0.7, ls=":")
        ax.set_title(f"{name} — joint {j}; dotted lines: chunk junctions", fontsize=9)
        ax.set_ylabel("position")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
