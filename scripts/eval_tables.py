"""Tables for README / docs/results.md from `vla-async eval --json` outputs, and the list of every cell where
vlash_rail (or vlash_rail_delay) loses to another strategy at the same trigger.

    python scripts/eval_tables.py runs/full.json [runs/lerobot.json ...] > docs/results.md
    python scripts/eval_tables.py runs/full.json.episodes.jsonl   # a run that died before writing its JSON

Later files replace earlier rows of the same (task, strategy, latency). Nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sim.eval.report import Column, markdown_table, select_columns
from sim.tasks.layout import FIXED_LENGTH_TASKS

TABLE = ("success", "req/ep", "done s", "done ok s", "react ms", "react cmd", "miss", "hit s", "stalls", "jerk",
         "Δv p95", "pre Δv p95", "pre Δa p95", "clips")
COMPACT = ("success", "req/ep", "done s", "react ms", "hit s", "stalls", "jerk", "Δv p95", "pre Δv p95", "clips")  # README
OURS = ("vlash_rail", "vlash_rail_delay")


# (row key, label, higher is better, smallest difference that counts)
CRITERIA: tuple[tuple[str, str, bool, float], ...] = (
    ("success_rate", "success", True, 1e-9),
    ("completion_time_s", "completion s (all episodes)", False, 0.05),
    ("reaction_s_mean", "reaction ms (measured)", False, 0.0167),
    ("time_to_hit_s_mean", "hit s", False, 0.0167),
    ("rms_jerk", "RMS jerk", False, 1.0),
    ("stall_ticks", "stall ticks", False, 0.5),
)


def load_rows(paths: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of `--json` files, or rebuilt from `.episodes.jsonl` streams (a run that died before its JSON)."""
    from sim.eval.runner import rows_from_stream

    rows: dict[tuple[str, str, float], dict[str, Any]] = {}
    for path in paths:
        with open(path) as fh:
            if path.endswith(".jsonl"):
                found = rows_from_stream(json.loads(line) for line in fh if line.strip())
            else:
                found = json.load(fh)["rows"]
        for row in found:
            rows[(row["task"], row["strategy"], float(row["latency_ms"]))] = row
    return list(rows.values())


def _value(row: Mapping[str, Any], key: str) -> float | None:
    if key == "completion_time_s" and row["task"] in FIXED_LENGTH_TASKS:
        return None
    v = row.get(key)
    return None if v is None else float(v)


def losses(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per (cell, rival, criterion) where ours is worse than a rival with the same trigger and the same
    number of requests in flight (the same request budget)."""
    out = []
    for ours in (r for r in rows if r["strategy"] in OURS):
        rivals = [r for r in rows if r["task"] == ours["task"] and r["latency_ms"] == ours["latency_ms"]
                  and r.get("trigger") == ours.get("trigger") and r["strategy"] != ours["strategy"]
                  and r["strategy"] not in OURS and r.get("max_in_flight") == ours.get("max_in_flight")]
        for rival in rivals:
            for key, label, higher, eps in CRITERIA:
                a, b = _value(ours, key), _value(rival, key)
                if a is None or b is None:
                    continue
                worse = (b - a > eps) if higher else (a - b > eps)
                if worse:
                    scale = 100.0 if key == "success_rate" else (1000.0 if key == "reaction_s_mean" else 1.0)
                    out.append(f"- {ours['task']} @ {ours['latency_ms']:.0f} ms ({ours.get('trigger')}): "
                               f"{ours['strategy']} {label} {a * scale:.2f} vs {rival['strategy']} {b * scale:.2f}")
    return out


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None = None) -> str:
    ordered = sorted(rows, key=lambda r: (r["task"], r.get("trigger", ""), r["latency_ms"], r["strategy"]))
    return markdown_table(ordered, columns or select_columns(TABLE))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", nargs="+")
    p.add_argument("--compact", action="store_true", help="the README's columns")
    args = p.parse_args(argv)
    rows = load_rows(args.json)
    print(table(rows, select_columns(COMPACT) if args.compact else None))
    print()
    print("Cells where vlash_rail / vlash_rail_delay lose to a strategy with the same trigger:\n")
    print("\n".join(losses(rows)) or "- none")


if __name__ == "__main__":
    main()
