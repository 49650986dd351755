"""Turn aggregated cells into a markdown table, its column legend, and a JSON document."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.tasks.layout import FIXED_LENGTH_TASKS


@dataclass(frozen=True)
class Column:
    header: str
    key: str  # row key
    scale: float
    fmt: str
    legend: str  # what the column means, for the legend under the table


# None values print as "–".
COLUMNS: list[Column] = [
    Column("success", "success_rate", 100.0, "{:.0f}%", "share of seeds whose task succeeded (Wilson 95% CI in 'succ CI95')"),
    Column("req/ep", "requests", 1.0, "{:.0f}", "inference requests per episode (the trigger's budget)"),
    Column("done s", "completion_time_s", 1.0, "{:.2f}",
           f"seconds to task success over ALL episodes, a failure counting as the episode timeout ('–' for "
           f"{', '.join(FIXED_LENGTH_TASKS)}: fixed length, judged at the end)"),
    Column("done ok s", "completion_ok_s", 1.0, "{:.2f}", "the same, mean over successes only"),
    Column("start s", "startup_s", 1.0, "{:.2f}",
           "start-up: the wait for the first chunk, when the arm cannot move yet (mean over episodes; part of "
           "'done s': latency adds at least this much to a task's time however the chunks are joined)"),
    Column("thr/min", "throughput_per_min", 1.0, "{:.1f}", "successes per minute of robot time"),
    Column("react ms", "reaction_s_mean", 1000.0, "{:.0f}",
           "target jump → MEASURED tool moving toward the new target, mean; a miss counts as its whole window "
           "(to the next jump or the end) ('–': the task has no target jumps)"),
    Column("react cmd", "reaction_cmd_s_mean", 1000.0, "{:.0f}", "the same on the commanded tool"),
    Column("react max", "reaction_s_max", 1000.0, "{:.0f}", "measured reaction, worst case"),
    Column("miss", "reaction_missed", 1.0, "{:.0f}", "target jumps with no measured reaction (all seeds)"),
    Column("hit s", "time_to_hit_s_mean", 1.0, "{:.2f}",
           "target jump → measured tool on the target (reach_jump); a miss counts as its whole window"),
    Column("hit frac", "hit_fraction", 1.0, "{:.2f}",
           "reach_jump: targets touched within the task's time limit (1.5 s) / targets judged, pooled over seeds "
           "(the task's own hit fraction; '–': the task has no targets)"),
    Column("trk err mm", "track_error_m", 1000.0, "{:.1f}",
           "track, track_sweep: mean measured tool-to-target distance after the grace period, mean over seeds "
           "(success needs it under the task's radius, 30 mm, on 80% of ticks)"),
    Column("lag ms", "reversal_lag_s_mean", 1000.0, "{:.0f}", "track: target reversal → commanded reversal"),
    Column("TTFA ms", "ttfa_s_mean", 1000.0, "{:.0f}",
           "time to first action: observation captured → first command from its chunk"),
    Column("stalls", "stall_ticks", 1.0, "{:.1f}",
           "ticks per episode the arm was held for lack of a planned action, after the first chunk "
           "(the wait for the first chunk is start-up, not a stall)"),
    Column("jerk", "rms_jerk", 1.0, "{:.1f}", "RMS jerk of the joint commands, rad/s³ (lower = smoother)"),
    Column("Δp p95", "junction_dp_p95", 1.0, "{:.4f}",
           "at chunk junctions (the command switches to a new chunk): 95th percentile of the absolute jump of position, rad"),
    Column("Δv p95", "junction_dv_p95", 1.0, "{:.3f}", "... of velocity, rad/s"),
    Column("Δa p95", "junction_da_p95", 1.0, "{:.1f}", "... of acceleration, rad/s²"),
    Column("pre Δv p95", "junction_pre_dv_p95", 1.0, "{:.3f}",
           "junction velocity jump of the PLAN before the safety layer, rad/s (what the method asked for)"),
    Column("pre Δa p95", "junction_pre_da_p95", 1.0, "{:.1f}", "... of acceleration, rad/s², before safety"),
    Column("clips", "clip_ticks", 1.0, "{:.1f}", "ticks per episode the safety layer changed a planned action"),
    Column("stale ms", "staleness_s_mean", 1000.0, "{:.0f}", "age of the observation behind each executed command"),
    Column("rf err", "rollforward_error_mean", 1.0, "{:.4f}",
           "rollforward error: predicted vs measured joint state at a chunk's first tick, rad"),
    Column("δ p95 ms", "latency_s_p95", 1000.0, "{:.0f}", "observation captured → chunk usable, 95th percentile"),
    Column("client µs", "client_cost_s_mean", 1e6, "{:.0f}", "client (scheduler) time per control tick"),
]


_COMPLETION_KEYS = ("completion_time_s", "completion_ok_s")


def select_columns(headers: Sequence[str]) -> list[Column]:
    by_header = {c.header: c for c in COLUMNS}
    return [by_header[h] for h in headers]


def _fmt(row: Mapping[str, Any], col: Column) -> str:
    value = row.get(col.key)
    if value is None or (col.key in _COMPLETION_KEYS and row["task"] in FIXED_LENGTH_TASKS):
        return "–"
    return col.fmt.format(float(value) * col.scale)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column] = COLUMNS) -> str:
    """One line per cell: task, strategy, latency, episodes, the metric columns, success with Wilson CI."""
    head = ["task", "strategy", "trigger", "lat ms", "n"] + [c.header for c in columns] + ["succ CI95"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lo, hi = row["success_ci95"]
        cells = [row["task"], row["strategy"], str(row.get("trigger", "")), f"{row['latency_ms']:.0f}±{row['jitter_ms']:.0f}",
                 str(row["episodes"])]
        cells += [_fmt(row, c) for c in columns]
        cells.append(f"{100 * lo:.0f}–{100 * hi:.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def legend(columns: Sequence[Column] = COLUMNS, *, velocity_jump_cap: float | None = None) -> str:
    """One line per column. `velocity_jump_cap` (max_acceleration / fps) explains a |Δv| at that value."""
    lines = ["columns: trigger = when the strategy requests inference (compare methods at the same trigger); "
             "lat ms = injected model latency mean ± jitter; n = episodes (seeds)"]
    for c in columns:
        text = c.legend
        if c.key == "junction_dv_p95" and velocity_jump_cap is not None:
            text += (f"; the safety layer limits a one-tick change of velocity to max_acceleration / fps = "
                     f"{velocity_jump_cap:.3f} rad/s, so a value of {velocity_jump_cap:.3f} means the junctions "
                     "hit that limit (the chunk switch was abrupt and the safety layer clipped it)")
        lines.append(f"  {c.header}: {text}")
    lines.append("  (definitions: docs/metrics.md)")
    return "\n".join(lines)


def write_json(path: str | Path, config: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
               episodes: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> None:
    """Serialised first, then written to a temporary file and renamed: a failure leaves no half-written file."""
    doc = {"config": dict(config), "rows": list(rows), "episodes": list(episodes), **(extra or {})}
    text = json.dumps(doc, indent=1, default=_jsonable)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
