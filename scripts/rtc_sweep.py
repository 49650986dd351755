"""Delay-sweep plots and table for real-time chunking (issue 16) from `vla-async eval --json` results.

    python scripts/rtc_sweep.py run_a.json [run_b.json ...] --out docs/rtc [--label run_b.json=inpaint]

One PNG per task (`rtc_sweep_<task>.png`): success, completion time and the plan's junction |Δp| p95 (before the
safety layer; dashed: 1.5 × the policy's own p95 moving step from the sync @ 0 ms reference) against the delay in
ticks, one line per method. Prints a markdown table (method rows × delay columns) per metric. `--label FILE=TAG`
appends TAG to the strategy names of that file (e.g. the same strategies run with inference-time RTC). Files with
the same cells (other seeds) are pooled: success and targets hit exactly (counts), reaction and junction p95 as
the episode-weighted mean of each run's value.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

PANELS = [("success_rate", "success rate"), ("hit_share", "targets hit (reach_jump) / share"),
          ("completion_time_s", "completion time, all episodes (s)"), ("reaction_ms", "reaction, mean (ms)"),
          ("junction_pre_dp_p95", "junction |Δp| p95 before safety (rad)")]
FORMATS = {"success_rate": "{:.0%}", "hit_share": "{:.0%}", "completion_time_s": "{:.2f}", "reaction_ms": "{:.0f}",
           "junction_pre_dp_p95": "{:.4f}"}


def _derived(row: dict[str, Any]) -> dict[str, Any]:
    """The row with `hit_share` (targets hit / target jumps) and `reaction_ms`."""
    events, missed = row.get("events"), row.get("hit_missed")
    share = (events - missed) / events if events and missed is not None else None
    react = row.get("reaction_s_mean")
    return {**row, "hit_share": share, "reaction_ms": None if react is None else 1000 * react}


POOLED_MEANS = ("reaction_s_mean", "junction_pre_dp_p95", "typical_step", "completion_time_s")


def pool(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for the same cell run on different seeds (see the module docstring)."""
    n = sum(r["episodes"] for r in rows)
    out = {**rows[0], "episodes": n, "successes": sum(r["successes"] for r in rows)}
    out["success_rate"] = out["successes"] / n
    for key in ("events", "hit_missed"):
        out[key] = sum(r.get(key) or 0 for r in rows)
    for key in POOLED_MEANS:
        vals = [(r[key], r["episodes"]) for r in rows if r.get(key) is not None]
        out[key] = sum(v * w for v, w in vals) / sum(w for _, w in vals) if vals else None
    return out


def load_rows(paths: list[str], labels: dict[str, str]) -> tuple[list[dict[str, Any]], float]:
    cells: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    fps = 30.0
    for path in paths:
        doc = json.loads(Path(path).read_text())
        fps = float(doc["config"].get("fps", fps))
        tag = labels.get(path)
        for row in doc["rows"]:
            if tag and row["strategy"] != "sync":
                row = {**row, "strategy": f"{row['strategy']} ({tag})"}
            cells[(row["task"], row["strategy"], round(row["latency_ms"], 3))].append(row)
    return [_derived(pool(group)) for group in cells.values()], fps


def by_method(rows: list[dict[str, Any]], task: str, fps: float) -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        if row["task"] == task and not (row["strategy"] == "sync" and row["latency_ms"] == 0):
            out[row["strategy"]][round(row["latency_ms"] * fps / 1000.0)] = row
    return out


def reference_step(rows: list[dict[str, Any]], task: str) -> float | None:
    for row in rows:
        if row["task"] == task and row["strategy"] == "sync" and row["latency_ms"] == 0:
            return row.get("typical_step")
    return None


def panels_with_data(methods: dict[str, dict[int, dict[str, Any]]]) -> list[tuple[str, str]]:
    """The panels any cell has a value for (pick_place has no targets to hit and no reaction events)."""
    return [(key, label) for key, label in PANELS
            if any(row.get(key) is not None for cells in methods.values() for row in cells.values())]


def plot(task: str, methods: dict[str, dict[int, dict[str, Any]]], step: float | None, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = panels_with_data(methods)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    styles = ["o-", "s--", "^-.", "D:", "v-", "P--", "X-.", "*:", "h-", "<--"]
    for (key, label), ax in zip(panels, axes[0], strict=True):
        for i, (name, cells) in enumerate(sorted(methods.items())):
            ds = sorted(cells)
            ax.plot(ds, [cells[d].get(key) if cells[d].get(key) is not None else float("nan") for d in ds],
                    styles[i % len(styles)], label=name, markersize=4)
        if key == "junction_pre_dp_p95" and step:
            ax.axhline(1.5 * step, color="grey", ls="--", lw=1, label="1.5 × policy p95 step")
        ax.set(xlabel="delay d (ticks at 30 Hz)", ylabel=label, title=f"{task}: {label}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = out / f"rtc_sweep_{task}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def table(methods: dict[str, dict[int, dict[str, Any]]], key: str, fmt: str) -> str:
    ds = sorted({d for cells in methods.values() for d in cells})
    lines = ["| method | " + " | ".join(f"d={d}" for d in ds) + " |", "|---|" + "---|" * len(ds)]
    for name, cells in sorted(methods.items()):
        vals = [cells.get(d, {}).get(key) for d in ds]
        lines.append(f"| {name} | " + " | ".join("–" if v is None else fmt.format(v) for v in vals) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+")
    p.add_argument("--out", default="docs/rtc")
    p.add_argument("--label", action="append", default=[], help="FILE=TAG")
    args = p.parse_args(argv)
    labels = dict(item.split("=", 1) for item in args.label)
    rows, fps = load_rows(args.results, labels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for task in sorted({r["task"] for r in rows}):
        methods = by_method(rows, task, fps)
        step = reference_step(rows, task)
        print(f"## {task} (plot: {plot(task, methods, step, out)}; policy p95 moving step "
              f"{'–' if step is None else f'{step:.4f}'} rad)")
        for key, label in panels_with_data(methods):
            print(f"\n{label}\n\n{table(methods, key, FORMATS[key])}")
        n = sorted({r["episodes"] for r in rows if r["task"] == task})
        print(f"\nepisodes per cell: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
