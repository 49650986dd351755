"""PNG plots (matplotlib, Agg backend): metrics vs latency per strategy, and trajectories at junctions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim.eval.episode_log import EpisodeLog
from sim.eval.metrics import junction_ticks

# (row key, axis label with unit, scale, what an empty panel means)
METRIC_PANELS: list[tuple[str, str, float, str]] = [
    ("success_rate", "success rate (0–1)", 1.0, ""),
    ("completion_time_s", "completion time (s)", 1.0, "fixed-length task: no completion time"),
    ("reaction_s_mean", "reaction latency, mean (ms)", 1000.0, "no target jumps in this task"),
    ("stall_ticks", "stalled ticks / episode", 1.0, ""),
    ("rms_jerk", "RMS jerk of command (rad/s³)", 1.0, ""),
    ("junction_dp_p95", "junction |Δp| p95 (rad)", 1.0, ""),
]
#: line styles cycled per strategy, so coinciding lines stay distinguishable
_STYLES = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--"), ("X", "-."), ("*", ":")]


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
        for ax, (key, label, scale, empty) in zip(axes.flat, METRIC_PANELS, strict=False):
            drawn = 0
            for i, (name, pts) in enumerate(sorted(lines.items())):
                pts = sorted(pts, key=lambda r: r["latency_ms"])
                xs = [r["latency_ms"] for r in pts if r.get(key) is not None]
                ys = [r[key] * scale for r in pts if r.get(key) is not None]
                if xs:
                    marker, style = _STYLES[i % len(_STYLES)]
                    ax.plot(xs, ys, marker=marker, ls=style, ms=7 - i % 3, alpha=0.85, label=name)
                    drawn += 1
            if reference is not None and reference.get(key) is not None:
                ax.axhline(reference[key] * scale, color="k", ls="--", lw=1, label="sync @ 0 ms (reference)")
                drawn += 1
            if not drawn:
                ax.text(0.5, 0.5, empty or "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_xlabel("injected latency (ms)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=9)
        fig.suptitle(f"{task}: metrics vs injected latency (mean over seeds; markers and line styles per strategy)")
        fig.tight_layout(rect=(0, 0.06, 1, 1))
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


def joint_label(index: int, names: Sequence[str] | None) -> str:
    """`elbow_flex (rad)`; a gripper is a normalised opening; without names `joint 3`."""
    if not names or index >= len(names):
        return f"joint {index}"
    name = str(names[index]).removesuffix(".pos")
    return f"{name} (opening, 0 = closed … 1 = open)" if "gripper" in name else f"{name} (rad)"


def plot_junction_trajectory(
    logs: Mapping[str, EpisodeLog], path: str | Path, *, joint: int | None = None,
    joint_names: Sequence[str] | None = None, title: str = "",
) -> Path:
    """Command and measured position of one joint over whole episodes, chunk junctions as dotted lines.

    One panel per log (e.g. one strategy each); every panel has the same joint, the same time axis
    (seconds since the episode started) and the same value axis, so they compare directly.
    """
    plt = _pyplot()
    logs = {k: v for k, v in logs.items() if v.num_ticks > 1}
    n = max(1, len(logs))
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.4 * n + 0.9), squeeze=False, sharex=True, sharey=True)
    first = next(iter(logs.values()), None)
    j = joint if joint is not None else (busiest_joint(first) if first is not None else 0)
    for ax, (name, log) in zip(axes[:, 0], logs.items(), strict=False):
        _trajectory_panel(ax, name, log, j)
    axes[-1, 0].set_xlabel("time since the episode started (s)")
    fig.supylabel(f"{joint_label(j, joint_names)}")
    handles, labels = _unique_legend(axes[:, 0])
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(title or f"{joint_label(j, joint_names)}: command vs measured", x=0.01, ha="left", fontsize=10)
    fig.tight_layout(rect=(0.01, 0.05 if n > 1 else 0.1, 1, 0.97 if n > 1 else 0.92))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _trajectory_panel(ax: Any, name: str, log: EpisodeLog, j: int) -> None:
    t = log.tick / log.fps
    ax.plot(t, log.command[:, j], label="command sent", lw=1.4)
    ax.plot(t, log.state[:, j], label="measured position", lw=1.0, alpha=0.8)
    if log.stalled.any():
        ax.plot(t[log.stalled], log.command[log.stalled, j], "rx", ms=4, label="held (start-up or stall)")
    for i in junction_ticks(log.source_request_id):
        ax.axvline(t[i], color="gray", lw=0.6, ls=":")
    ax.plot([], [], color="gray", lw=0.6, ls=":", label="chunk junction")
    if log.success and log.completion_time_s is not None:
        ax.axvline(log.completion_time_s, color="green", lw=1.2, label="task success")
    seed = log.meta.get("seed")
    outcome = f"success at {log.completion_time_s:.2f} s" if log.success and log.completion_time_s else (
        "success" if log.success else "no success")
    ax.set_title(f"{name}{f', seed {seed}' if seed is not None else ''} — {outcome}", fontsize=9, loc="left")
    ax.grid(alpha=0.3)


def _unique_legend(axes: Any) -> tuple[list[Any], list[str]]:
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=False):
            handles.setdefault(label, handle)
    return list(handles.values()), list(handles)
