"""Turn aggregated cells into a markdown table and a JSON document."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# (header, row key, scale, format); None values print as "–".
COLUMNS: list[tuple[str, str, float, str]] = [
    ("success", "success_rate", 100.0, "{:.0f}%"),
    ("done s", "completion_time_s", 1.0, "{:.2f}"),
    ("thr/min", "throughput_per_min", 1.0, "{:.1f}"),
    ("react ms", "reaction_s_mean", 1000.0, "{:.0f}"),
    ("react max", "reaction_s_max", 1000.0, "{:.0f}"),
    ("hit s", "time_to_hit_s_mean", 1.0, "{:.2f}"),
    ("lag ms", "reversal_lag_s_mean", 1000.0, "{:.0f}"),
    ("TTFA ms", "ttfa_s_mean", 1000.0, "{:.0f}"),
    ("stalls", "stall_ticks", 1.0, "{:.1f}"),
    ("jerk", "rms_jerk", 1.0, "{:.1f}"),
    ("|Δp| p95", "junction_dp_p95", 1.0, "{:.4f}"),
    ("|Δv| p95", "junction_dv_p95", 1.0, "{:.3f}"),
    ("|Δa| p95", "junction_da_p95", 1.0, "{:.1f}"),
    ("stale ms", "staleness_s_mean", 1000.0, "{:.0f}"),
    ("rf err", "rollforward_error_mean", 1.0, "{:.4f}"),
    ("δ p95 ms", "latency_s_p95", 1000.0, "{:.0f}"),
    ("client µs", "client_cost_s_mean", 1e6, "{:.0f}"),
]


def _fmt(value: Any, scale: float, fmt: str) -> str:
    if value is None:
        return "–"
    return fmt.format(float(value) * scale)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per cell: task, strategy, latency, success with Wilson CI, then every metric."""
    head = ["task", "strategy", "lat ms", "n"] + [c[0] for c in COLUMNS] + ["succ CI95"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lo, hi = row["success_ci95"]
        cells = [row["task"], row["strategy"], f"{row['latency_ms']:.0f}±{row['jitter_ms']:.0f}", str(row["episodes"])]
        cells += [_fmt(row.get(key), scale, fmt) for _, key, scale, fmt in COLUMNS]
        cells.append(f"{100 * lo:.0f}–{100 * hi:.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def legend() -> str:
    return (
        "success: rate over seeds (Wilson 95% CI in the last column); done s: mean completion time of successes; "
        "react: commanded reaction to a target jump (mean / max); hit s: jump → tool on target; lag: tracking, target "
        "reversal → commanded reversal; TTFA: capture → "
        "first action of that chunk executed; stalls: held ticks per episode after start-up; jerk: RMS jerk of the "
        "command (rad/s³); |Δp| |Δv| |Δa|: p95 jump at chunk junctions; stale: age of the observation behind the "
        "executed action; rf err: ‖ŝ − s‖ at exec tick; δ: capture → chunk usable; client: scheduler time per tick. "
        "See docs/metrics.md."
    )


def write_json(path: str | Path, config: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
               episodes: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> None:
    doc = {"config": dict(config), "rows": list(rows), "episodes": list(episodes), **(extra or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
