"""Run every episode of a grid on one engine, with a progress bar, and aggregate per cell."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sim.eval.episode_log import EpisodeLog
from sim.eval.grid import Cell, Episode, EvalConfig, expand_cells
from sim.eval.metrics import aggregate, episode_metrics
from vla_async.config import StrategyConfig


@dataclass
class GridResult:
    rows: list[dict[str, Any]]
    episodes: list[dict[str, Any]]  # per-episode scalars (samples dropped)
    logs: dict[tuple[str, str, float], EpisodeLog] = field(default_factory=dict)  # first seed of each cell


def run_episode(config: EvalConfig, episode: Episode) -> EpisodeLog:
    cell = episode.cell
    kwargs = dict(fps=config.fps, chunk_length=config.chunk_length, max_duration_s=config.max_duration_s,
                  safety=config.safety, server_workers=config.server_workers)
    if config.engine == "virtual":
        from sim.eval.virtual_engine import run_virtual_episode

        return run_virtual_episode(cell.task, cell.strategy, cell.latency, episode.seed,
                                   policy_exec_offset=config.policy_exec_offset, policy=config.backend,
                                   expert_lag_s=config.expert_lag_s,
                                   cameras=config.cameras, image_size=config.image_size, **kwargs)
    from sim.eval.realtime_engine import run_realtime_episode

    return run_realtime_episode(cell.task, cell.strategy, cell.latency, episode.seed, realtime=config.realtime,
                                backend=config.backend, cameras=config.cameras, image_size=config.image_size, **kwargs)


def _job(args: tuple[EvalConfig, Episode]) -> tuple[dict[str, Any], EpisodeLog]:
    config, episode = args
    log = run_episode(config, episode)
    return metrics_for(config, log), log


def metrics_for(config: EvalConfig, log: EpisodeLog) -> dict[str, Any]:
    m = config.metrics
    return episode_metrics(log, reaction_distance_m=m.reaction_distance_m, reaction_speed_mps=m.reaction_speed_mps,
                           hit_radius_m=m.hit_radius_m)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    # a progress bar is for a terminal: into a log file it would write a `\r` line per update
    return tqdm(total=total, desc="episodes", unit="ep", file=sys.stderr, dynamic_ncols=True,
                disable=not enabled or not sys.stderr.isatty())


def cell_fields(cell: Cell) -> dict[str, Any]:
    """What names a report row (and each line of an episode stream)."""
    return {"task": cell.task, "strategy": cell.strategy_name, "latency_ms": cell.latency.mean_ms,
            "jitter_ms": cell.latency.jitter_ms, "is_reference": cell.is_reference,
            "max_in_flight": cell.strategy.max_in_flight, "trigger": trigger_name(cell.strategy)}


def row_for(cell: Cell, samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {**cell_fields(cell), **aggregate(samples)}


def rows_from_stream(lines: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Report rows from an episode stream (`vla-async eval --json X` writes X.episodes.jsonl as episodes
    finish: one line = a cell's fields + `seed` + `metrics`), in first-seen order; a later line for the same
    (cell, seed) replaces an earlier one. Rebuilds the rows of a run that did not get to write its JSON."""
    cells: dict[tuple[str, str, float], dict[str, Any]] = {}
    samples: dict[tuple[str, str, float], dict[int, dict[str, Any]]] = defaultdict(dict)
    for line in lines:
        key = (line["task"], line["strategy"], float(line["latency_ms"]))
        cells.setdefault(key, {k: line[k] for k in ("task", "strategy", "latency_ms", "jitter_ms", "is_reference",
                                                     "max_in_flight", "trigger")})
        samples[key][int(line["seed"])] = line["metrics"]
    return [{**fields, **aggregate(list(samples[key].values()))} for key, fields in cells.items()]


def trigger_name(strategy: StrategyConfig) -> str:
    """The trigger a strategy runs with (`sync: true` always uses the synchronous one)."""
    return "sync" if strategy.sync else strategy.trigger


def run_grid(config: EvalConfig, *, progress: bool = True,
             on_episode: Callable[[Episode, dict[str, Any]], None] | None = None) -> GridResult:
    """Run all episodes (in `config.workers` processes for the virtual engine) and aggregate. The cells
    (strategies included) are resolved once, up front: a preset edited during a run changes nothing in it."""
    cells = expand_cells(config)
    episodes = [Episode(cell, seed) for cell in cells for seed in config.seeds]
    samples: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    logs: dict[tuple[str, str, float], EpisodeLog] = {}
    scalars: list[dict[str, Any]] = []
    bar = _progress(len(episodes), progress)

    def collect(ep: Episode, metrics: dict[str, Any], log: EpisodeLog) -> None:
        samples[ep.cell.key].append(metrics)
        if ep.cell.key not in logs:
            logs[ep.cell.key] = log
        scalars.append({"task": ep.cell.task, "strategy": ep.cell.strategy_name,
                        "latency_ms": ep.cell.latency.mean_ms, "seed": ep.seed,
                        **{k: v for k, v in metrics.items() if not isinstance(v, list)}})
        if on_episode is not None:
            on_episode(ep, metrics)
        bar.update(1)

    try:
        if config.workers > 1 and config.engine == "virtual":
            with ProcessPoolExecutor(config.workers) as pool:
                for ep, (metrics, log) in zip(episodes, pool.map(_job, [(config, ep) for ep in episodes]), strict=False):
                    collect(ep, metrics, log)
        else:
            for ep in episodes:
                metrics, log = _job((config, ep))
                collect(ep, metrics, log)
    finally:
        bar.close()
    rows = [row_for(cell, samples[cell.key]) for cell in cells if samples[cell.key]]
    return GridResult(rows, scalars, logs)
