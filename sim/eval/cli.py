"""`vla-async eval`: run a grid (or one cell) and print a table; optional JSON and PNG plots.

    vla-async eval --config eval/quick --json out/quick.json --plots out/plots
    vla-async eval --task pick_place --strategy vlash_rail --latency_ms 200 --seeds 0-9 --json out.json
    vla-async eval --config eval/quick --engine realtime --strategy_overrides.max_in_flight=2
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sim.eval.grid import EvalConfig, load_eval_config
from vla_async.cli_parser import OneLineArgumentParser
from vla_async.config import ConfigError, describe_fields, strategy_names
from vla_async.config.schema import SIM_TASKS

# single-cell flags -> EvalConfig field (same names the grid files use)
_FLAGS = {"task": "tasks", "strategy": "strategies", "latency_ms": "latencies_ms", "seeds": "seeds",
          "engine": "engine", "jitter_ms": "jitter_ms", "workers": "workers"}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(prog="vla-async eval", allow_abbrev=False, add_help=False,
                                description="Evaluate strategies × tasks × latencies; any field as --a.b=value.")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--config", help="grid YAML: a file, or a shipped name (eval/quick, eval/full)")
    p.add_argument("--task", help=f"task name(s), comma separated: {' | '.join(SIM_TASKS)}")
    p.add_argument("--strategy", help="strategy preset or variant name(s), comma separated: "
                   f"{' | '.join(strategy_names())} (or a variant of the grid YAML)")
    p.add_argument("--latency_ms", help="mean injected latency(ies) in ms, comma separated")
    p.add_argument("--jitter_ms", help="fixed jitter (ms) for every latency")
    p.add_argument("--seeds", help="e.g. 0-9 or 0,3,5")
    p.add_argument("--engine", help="virtual | realtime")
    p.add_argument("--workers", help="episodes run in parallel (processes)")
    p.add_argument("--json", help="write rows + per-episode results here (and, as episodes finish, every "
                   "episode's metrics to <json>.episodes.jsonl: scripts/eval_tables.py reads either)")
    p.add_argument("--plots", help="write PNG plots into this folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, EvalConfig]:
    parser = build_parser()
    args, rest = parser.parse_known_args(list(argv))
    if args.help:
        return args, EvalConfig()
    overrides: dict[str, Any] = {}
    for flag, field_name in _FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[field_name] = value
    from vla_async.config import parse_overrides
    from vla_async.config.loader import deep_merge

    return args, load_eval_config(args.config, deep_merge(parse_overrides(rest), overrides))


def main(argv: Sequence[str]) -> int:
    try:
        args, config = parse_args(argv)
    except ConfigError as exc:
        print(f"vla-async eval: {exc}", file=sys.stderr)
        return 2
    if args.help:
        print(build_parser().format_help())
        print("grid fields (YAML keys, or --field=value):")
        print("\n".join(describe_fields(EvalConfig)))
        return 0
    from sim.eval.quality import quality_report
    from sim.eval.report import legend, markdown_table, write_json
    from sim.eval.runner import run_grid
    from sim.eval.seen_scenes import seen_scenes_note

    seen_note = seen_scenes_note(config)
    if seen_note:
        print(seen_note, file=sys.stderr)
    try:
        with episode_stream(args.json) as on_episode:
            result = run_grid(config, progress=not args.quiet, on_episode=on_episode)
    except ConfigError as exc:
        print(f"vla-async eval: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(result.rows))
    print()
    print(legend(velocity_jump_cap=velocity_jump_cap(config)))
    checks = quality_report(result.rows, fps=config.fps)
    if checks:
        print()
        print(checks)
    if seen_note:
        print()
        print(seen_note)
    if args.json:
        write_json(args.json, config.model_dump(), result.rows, result.episodes, extra={"seen_scenes_note": seen_note})
        print(f"\nJSON: {args.json}")
    if args.plots:
        written = write_plots(result, args.plots)
        print(f"plots: {', '.join(str(p) for p in written)}")
    return 0


@contextmanager
def episode_stream(json_path: str | None) -> Iterator[Callable[[Any, dict[str, Any]], None] | None]:
    """With `--json X`: a callback appending each finished episode (its cell, seed and metrics) to
    X.episodes.jsonl, flushed per line, so a run that dies before writing X keeps what it measured."""
    if not json_path:
        yield None
        return
    from sim.eval.runner import cell_fields

    path = Path(f"{json_path}.episodes.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:

        def write(episode: Any, metrics: dict[str, Any]) -> None:
            fh.write(json.dumps({**cell_fields(episode.cell), "seed": episode.seed, "metrics": metrics}) + "\n")
            fh.flush()

        yield write


def velocity_jump_cap(config: EvalConfig) -> float | None:
    """max_acceleration / fps: the largest one-tick velocity change the safety layer lets through."""
    acc = config.safety.max_acceleration
    return float(acc) / config.fps if isinstance(acc, int | float) and config.safety.enabled else None


def write_plots(result: Any, out_dir: str | Path) -> list[Path]:
    """Metric-vs-latency per task, and per task a junction trajectory plot at the highest latency."""
    from sim import so101
    from sim.eval.plots import plot_junction_trajectory, plot_metrics_vs_latency

    out_dir = Path(out_dir)
    written = plot_metrics_vs_latency(result.rows, out_dir)
    tasks = sorted({key[0] for key in result.logs})
    for task in tasks:
        keys = [k for k in result.logs if k[0] == task]
        top = max(k[2] for k in keys)
        chosen = {f"{k[1]} @ {k[2]:.0f} ms": result.logs[k] for k in sorted(keys) if k[2] == top}
        ref = [k for k in keys if k[2] == 0.0 and k[1] == "sync"]
        if ref:
            chosen = {"sync @ 0 ms (reference)": result.logs[ref[0]], **chosen}
        written.append(plot_junction_trajectory(chosen, out_dir / f"trajectory_{task}.png", joint_names=so101.NAMES))
    return written
