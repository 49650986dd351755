"""Scheduler + fuser cost per tick (virtual time, constant latency, smooth synthetic chunks).

`python -m vla_async.bench.scheduler` prints a table for 6- and 14-joint arms and several strategies.
The per-tick cost includes the amortised chunk work: ticks where a chunk arrives time
`on_chunk` + `on_tick` together, because that is what the real-time loop pays on that tick.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from vla_async.config.schema import SafetyConfig, strategy_config
from vla_async.messages import ActionChunk
from vla_async.scheduler import ActionScheduler
from vla_async.specs import RobotSpec
from vla_async.virtual import VirtualDriver

DEFAULT_STRATEGIES = ("vlash_rail", "rail", "vlash", "lerobot", "temporal_ensemble", "sync")


def _robot(action_dim: int, fps: float) -> RobotSpec:
    names = tuple(f"joint{i}.pos" for i in range(action_dim - 1)) + ("gripper.pos",)
    return RobotSpec(
        name=f"bench_{action_dim}dof",
        fps=fps,
        state_names=names,
        action_names=names,
        stepwise_actions=("gripper.pos",),
        position_limits=tuple((-3.0, 3.0) for _ in names),
    )


def measure_scheduler_cost(
    action_dim: int, chunk_length: int, strategy_name: str, ticks: int, latency_ticks: int = 5, fps: float = 30.0
) -> dict[str, float]:
    """Percentiles (µs) of the scheduler's cost per tick, and of `on_chunk` alone."""
    robot = _robot(action_dim, fps)
    sched = ActionScheduler(strategy_config(strategy_name), robot, chunk_length, SafetyConfig())
    driver = VirtualDriver(sched, timer=time.perf_counter_ns)
    phase = np.arange(action_dim) * 0.3
    state = np.zeros(action_dim)
    per_tick = np.empty(ticks)
    tick_only = np.empty(ticks)
    chunk_cost: list[float] = []
    for k in range(ticks):
        step = driver.step(k, state)
        chunk_cost += [d.cost / 1e3 for d in step.deliveries]
        per_tick[k] = step.cost / 1e3
        tick_only[k] = step.tick_cost / 1e3
        out = step.output
        state = out.command
        if out.request is not None:
            t = (out.request.exec_tick + np.arange(chunk_length))[:, None] / fps
            actions = (0.8 * np.sin(0.7 * t + phase)).astype(np.float32)
            chunk = ActionChunk(out.request.request_id, out.request.exec_tick, actions)
            driver.send_at_tick(chunk, k + latency_ticks, latency_s=latency_ticks / fps)
    skip = min(50, ticks // 10)
    warm, on_tick = per_tick[skip:], tick_only[skip:]
    chunks = np.asarray(chunk_cost) if chunk_cost else np.zeros(1)
    return {
        "p50_us": float(np.percentile(warm, 50)),
        "p99_us": float(np.percentile(warm, 99)),
        "max_us": float(warm.max()),
        "mean_us": float(warm.mean()),
        "on_tick_p50_us": float(np.percentile(on_tick, 50)),
        "on_tick_p99_us": float(np.percentile(on_tick, 99)),
        "on_chunk_p50_us": float(np.percentile(chunks, 50)),
        "on_chunk_max_us": float(chunks.max()),
        "chunks": float(len(chunk_cost)),
        "stall_ticks": float(sched.stats.stall_ticks),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vla_async.bench.scheduler", description=__doc__)
    parser.add_argument("--ticks", type=int, default=3000)
    parser.add_argument("--chunk-length", type=int, default=50)
    parser.add_argument("--dims", type=int, nargs="+", default=[6, 14])
    parser.add_argument("--strategies", nargs="+", default=list(DEFAULT_STRATEGIES))
    args = parser.parse_args(list(argv) if argv is not None else None)
    print(f"scheduler + fuser cost per tick, H={args.chunk_length}, {args.ticks} ticks, latency 5 ticks @ 30 Hz")
    print("tick = on_tick alone; all = on_chunk + on_tick on the same tick (chunk arrival ticks included)")
    header = (
        f"{'joints':>6} {'strategy':<18} {'tick p50':>9} {'tick p99':>9} {'all p50':>8} {'all p99':>8} "
        f"{'all max':>8} {'on_chunk p50':>13}   (µs)"
    )
    print(header)
    print("-" * len(header))
    for dim in args.dims:
        for name in args.strategies:
            r = measure_scheduler_cost(dim, args.chunk_length, name, args.ticks)
            print(
                f"{dim:>6} {name:<18} {r['on_tick_p50_us']:>9.1f} {r['on_tick_p99_us']:>9.1f} {r['p50_us']:>8.1f} "
                f"{r['p99_us']:>8.1f} {r['max_us']:>8.1f} {r['on_chunk_p50_us']:>13.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
