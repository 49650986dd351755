"""Check the report rows against the project's quality bar (issue 5) and say PASS/MISS with numbers.

Every target compares the default strategy with a row of the same grid (the zero-latency sync
reference, or `sync` / `naive` / `lerobot` at the same latency); targets whose rows are missing are
skipped, never assumed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT = "vlash_rail"


@dataclass(frozen=True)
class Check:
    task: str
    latency_ms: float
    target: str
    value: float | None
    limit: float | None
    passed: bool

    def line(self) -> str:
        got = "–" if self.value is None else f"{self.value:.4g}"
        lim = "–" if self.limit is None else f"{self.limit:.4g}"
        mark = "PASS" if self.passed else "MISS"
        return f"| {mark} | {self.task} | {self.latency_ms:.0f} | {self.target} | {got} | {lim} |"


def _find(rows: Sequence[Mapping[str, Any]], task: str, strategy: str, lat: float) -> Mapping[str, Any] | None:
    for r in rows:
        if r["task"] == task and r["strategy"] == strategy and abs(r["latency_ms"] - lat) < 1e-9:
            return r
    return None


def _le(task: str, lat: float, target: str, value: Any, limit: Any) -> Check | None:
    if value is None or limit is None:
        return None
    return Check(task, lat, target, float(value), float(limit), float(value) <= float(limit) + 1e-12)


def quality_checks(rows: Sequence[Mapping[str, Any]], fps: float = 30.0, default: str = DEFAULT) -> list[Check]:
    tick_ms = 1000.0 / fps
    out: list[Check | None] = []
    for row in rows:
        if row["strategy"] != default or row["latency_ms"] <= 0:
            continue
        task, lat = row["task"], row["latency_ms"]
        ref = _find(rows, task, "sync", 0.0)
        if ref is not None:
            out.append(_le(task, lat, "success ≥ reference − 2 pts (shown as shortfall)",
                           ref["success_rate"] - row["success_rate"], 0.02))
            if task == "pick_place" and ref["completion_time_s"]:
                out.append(_le(task, lat, "completion s ≤ 1.05 × reference", row["completion_time_s"],
                               1.05 * ref["completion_time_s"]))
            if task == "reach_jump" and ref.get("time_to_hit_s_mean") is not None:
                out.append(_le(task, lat, "time-to-hit ms ≤ ref + 1.5·lat + 2 ticks",
                               _ms(row.get("time_to_hit_s_mean")),
                               1000 * ref["time_to_hit_s_mean"] + 1.5 * lat + 2 * tick_ms))
            if ref.get("typical_step"):
                out.append(_le(task, lat, "junction |Δp| p95 ≤ 1.5 × ref p95 moving step", row["junction_dp_p95"],
                               1.5 * ref["typical_step"]))
            if ref.get("typical_third_diff"):
                out.append(_le(task, lat, "junction |Δ³p| p95 ≤ 1.5 × ref p95 moving |Δ³p|",
                               row.get("junction_disc_p95"), 1.5 * ref["typical_third_diff"]))
        out.append(_le(task, lat, "reaction mean ms ≤ 1.5·lat + 1 tick", _ms(row.get("reaction_s_mean")),
                       1.5 * lat + tick_ms))
        out.append(_le(task, lat, "reaction max ms ≤ 2·lat + 2 ticks", _ms(row.get("reaction_s_max")),
                       2 * lat + 2 * tick_ms))
        out.append(_le(task, lat, "stalled ticks / episode = 0", row["stall_ticks"], 0.0))
        sync = _find(rows, task, "sync", lat)
        if task == "pick_place" and sync is not None and sync["completion_time_s"] and row["completion_time_s"]:
            out.append(_le(task, lat, "completion ≥ 1.3× faster than sync (shown: ours/sync ≤ 1/1.3)",
                           row["completion_time_s"] / sync["completion_time_s"], 1 / 1.3))
        for other in ("naive", "lerobot"):
            o = _find(rows, task, other, lat)
            if o is not None and o["rms_jerk"]:
                out.append(_le(task, lat, f"RMS jerk ≤ 1/3 of {other} (shown: ratio)", row["rms_jerk"] / o["rms_jerk"],
                               1 / 3))
    return [c for c in out if c is not None]


def _ms(seconds: Any) -> float | None:
    return None if seconds is None else 1000.0 * float(seconds)


def quality_report(rows: Sequence[Mapping[str, Any]], fps: float = 30.0, default: str = DEFAULT) -> str:
    """Markdown table of the checks that this grid can evaluate ('' when none)."""
    checks = quality_checks(rows, fps, default)
    if not checks:
        return ""
    passed = sum(c.passed for c in checks)
    head = [f"quality bar for {default}: {passed}/{len(checks)} pass",
            "| | task | lat ms | target | value | limit |", "|---|---|---|---|---|---|"]
    return "\n".join(head + [c.line() for c in checks])
