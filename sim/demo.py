"""`vla-async demo` — the main job: a policy server and a robot client on a simulated pick-and-place.

1. starts `python -m policy_server` (expert backend, injected latency ~150 ms with jitter, like a large
   VLA on a GPU) on a free 127.0.0.1 port, and the real-time client with the default strategy on
   `pick_place`, the arm advancing with the wall clock; prints a live status line;
2. compares, in virtual time over a few seeds, the default strategy with `sync` at the same latency
   and the zero-latency synchronous reference (the same scheduler code, deterministic, fast);
3. prints a short report, writes plots (and an MP4 of the front camera replaying the real-time run)
   into the output folder.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim.eval.episode_log import EpisodeLog
from sim.eval.grid import EvalConfig, expand_cells, latency_config, parse_seeds, resolve_strategy
from sim.eval.report import markdown_table
from vla_async.config import InjectedLatencyConfig, StrategyConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vla-async demo", allow_abbrev=False,
                                description="server + real-time client on pick_place, then a comparison report")
    p.add_argument("--task", default="pick_place")
    p.add_argument("--strategy", default="vlash_rail", help="the strategy to run live (default: the default)")
    p.add_argument("--latency_ms", type=float, default=150.0)
    p.add_argument("--jitter_ms", type=float, default=25.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare_seeds", default="0-2", help="seeds for the virtual-time comparison")
    p.add_argument("--duration_s", type=float, default=30.0)
    p.add_argument("--out", default="runs/demo", help="report, plots and video go here")
    p.add_argument("--no-video", dest="video", action="store_false")
    p.add_argument("--quiet", action="store_true", help="no live status line / progress bar")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = EvalConfig(tasks=[args.task], strategies=[args.strategy, "sync"], latencies_ms=[args.latency_ms],
                        jitter_ms=args.jitter_ms, seeds=parse_seeds(args.compare_seeds),
                        max_duration_s=args.duration_s)
    strategy = resolve_strategy(config, args.strategy)
    latency = latency_config(config, args.latency_ms, seed=0)

    print(f"[1/3] real time: policy server (expert, {args.latency_ms:.0f}±{args.jitter_ms:.0f} ms injected) + "
          f"robot client ({strategy.name}) on {args.task}, seed {args.seed}", flush=True)
    live_log = run_live(args, strategy, latency, out)
    from sim.eval.runner import metrics_for, row_for

    live_cell = next(c for c in expand_cells(config) if c.strategy_name == args.strategy and c.latency.mean_ms > 0)
    live_row = row_for(live_cell, [metrics_for(config, live_log)])
    live_row["strategy"] = f"{args.strategy} (real time, seed {args.seed})"

    print(f"[2/3] virtual time: {args.strategy} vs sync at {args.latency_ms:.0f} ms vs sync at 0 ms, "
          f"seeds {args.compare_seeds}", flush=True)
    from sim.eval.runner import run_grid

    result = run_grid(config, progress=not args.quiet)
    rows = [live_row, *result.rows]

    print("[3/3] report\n")
    print(markdown_table(rows))
    print()
    print(summary_lines(result.rows, args.strategy, args.latency_ms))
    from sim.eval.plots import plot_junction_trajectory
    from sim.eval.report import write_json

    traj = {f"{args.strategy} @ {args.latency_ms:.0f} ms (real time)": live_log}
    traj.update({f"{k[1]} @ {k[2]:.0f} ms (virtual)": v for k, v in sorted(result.logs.items()) if k[1] == "sync"})
    plot = plot_junction_trajectory(traj, out / "trajectory.png")
    write_json(out / "report.json", config.model_dump(), rows, result.episodes)
    live_log.save_jsonl(out / "live_episode.jsonl")
    print(f"\nplots: {plot}\nJSON: {out / 'report.json'}\nreal-time episode log: {out / 'live_episode.jsonl'}")
    if args.video:
        video = write_replay_video(live_log, args.task, args.seed, out / "front.mp4")
        if video is not None:
            print(f"video (front camera, replay of the real-time commands): {video}")
    return 0


def run_live(args: argparse.Namespace, strategy: StrategyConfig, latency: InjectedLatencyConfig,
             out: Path) -> EpisodeLog:
    """The real-time episode (the eval engine's own function) with a live status line."""
    from sim.eval.realtime_engine import run_realtime_episode

    stop = threading.Event()
    holder: list[Any] = []

    def printer() -> None:
        while not stop.wait(0.5):
            if holder and not args.quiet:
                sys.stderr.write("\r" + holder[0].status_line()[:150])
                sys.stderr.flush()

    thread = threading.Thread(target=printer, daemon=True)
    thread.start()
    t0 = time.monotonic()
    try:
        log = run_realtime_episode(args.task, strategy, latency, args.seed, max_duration_s=args.duration_s,
                                   workdir=out / "live", on_client=holder.append)
    finally:
        stop.set()
        thread.join(1.0)
    done = f"success in {log.completion_time_s:.2f} s" if log.success else "no success"
    print(f"\n      {done}; {log.num_ticks} ticks, {len(log.requests)} requests, wall {time.monotonic() - t0:.1f} s")
    return log


def summary_lines(rows: list[dict], strategy: str, latency_ms: float) -> str:
    """Plain-language comparison: the default strategy vs sync at the same latency vs the reference."""
    find = {(r["strategy"], r["latency_ms"]): r for r in rows}
    ours, sync, ref = find.get((strategy, latency_ms)), find.get(("sync", latency_ms)), find.get(("sync", 0.0))
    lines = []
    if ours and sync and ours["completion_time_s"] and sync["completion_time_s"]:
        lines.append(f"- {strategy} completes in {ours['completion_time_s']:.2f} s vs sync {sync['completion_time_s']:.2f} s "
                     f"at {latency_ms:.0f} ms: {sync['completion_time_s'] / ours['completion_time_s']:.2f}x faster")
    if ours and ref and ours["completion_time_s"] and ref["completion_time_s"]:
        lines.append(f"- vs the zero-latency reference ({ref['completion_time_s']:.2f} s): "
                     f"{100 * (ours['completion_time_s'] / ref['completion_time_s'] - 1):+.1f}% completion time")
    if ours and sync:
        lines.append(f"- success {100 * ours['success_rate']:.0f}% vs sync {100 * sync['success_rate']:.0f}%"
                     + (f" (reference {100 * ref['success_rate']:.0f}%)" if ref else "")
                     + f"; stalled ticks/episode {ours['stall_ticks']:.1f} vs sync {sync['stall_ticks']:.1f}")
    return "\n".join(lines)


def write_replay_video(log: EpisodeLog, task: str, seed: int, path: Path, every: int = 2) -> Path | None:
    """Replay the logged commands on a rendering virtual-time arm and save the front camera as MP4."""
    try:
        import imageio.v2 as imageio

        import sim
    except ModuleNotFoundError as exc:
        print(f"(no video: {exc.name} missing)")
        return None
    try:
        robot = sim.make_robot(task, mode="virtual", fps=log.fps, seed=seed, cameras=("front",), render=True)
        frames = []
        with robot:
            robot.reset(seed)
            for i in range(log.num_ticks):
                robot.send_action(log.command[i])
                if i % every == 0:
                    frames.append(robot.get_observation(with_images=True).images["front"])
                robot.step_tick()
        imageio.mimwrite(path, frames, fps=log.fps / every, macro_block_size=1)
        return path
    except Exception as exc:  # a video is a bonus: never fail the demo for it
        print(f"(no video: {exc})")
        return None

