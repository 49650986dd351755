"""`vla-async bench client`: scheduler cost per tick and real-time loop lateness (numbers, no verdicts).

(a) scheduler + fuser cost per tick for 6- and 14-joint arms with 50-action chunks, via
    `vla_async.bench.scheduler.measure_scheduler_cost` (the same code the loop runs);
(b) the real loop: a policy server subprocess on loopback (pinned to the last core), the real-time
    simulated arm and the RealTimeClient (pinned to the other cores) for `--duration` seconds at
    each rate; tick lateness p50/p99/max, achieved rate, command gaps, client work per tick.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robot_client.kinematic_robot import KinematicRobot, kinematic_spec
from robot_client.robots import make_robot_from_config
from vla_async.config import ClientConfig, RobotConfig, build_config
from vla_async.local_server import LocalServer, backend_args
from vla_async.robot import Robot


def scheduler_cost_rows(joints: Sequence[int], chunk_length: int, strategies: Sequence[str],
                        ticks: int) -> list[dict[str, Any]]:
    """Per-tick scheduler + fuser cost (µs percentiles) from the scheduler's own benchmark function."""
    from vla_async.bench.scheduler import measure_scheduler_cost

    rows = []
    for n in joints:
        for name in strategies:
            result = measure_scheduler_cost(action_dim=n, chunk_length=chunk_length, strategy_name=name, ticks=ticks)
            rows.append({"joints": n, "chunk_length": chunk_length, "strategy": name} | result)
    return rows


def _pin_client(server_cpus: set[int]) -> set[int] | None:
    """Keep the client off the server's core(s); returns the client's cores (None if not pinned)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = os.sched_getaffinity(0)
    client = cores - server_cpus
    if not client:
        return None
    os.sched_setaffinity(0, client)
    return client


def bench_robot(kind: str, fps: float, task: str, joints: int) -> Robot:
    """The real-time sim arm, or the light in-process arm (no MuJoCo needed, any joint count)."""
    if kind == "sim":
        return make_robot_from_config(RobotConfig(kind="sim", task=task, fps=fps, cameras=[], render=False))
    return KinematicRobot(kinematic_spec(joints, fps))


def loop_run(fps: float, duration_s: float, backend: str, robot_kind: str, task: str, joints: int,
             strategy: str, server_cpus: set[int] | None, log_dir: Path) -> dict[str, Any]:
    """One real-time run against a fresh server subprocess; returns the summary as a dict."""
    from robot_client.loop import RealTimeClient

    robot = bench_robot(robot_kind, fps, task, joints)
    with LocalServer([*backend_args(backend, robot.spec), "--log_level=warning"], cpus=server_cpus,
                     log_path=log_dir / f"server_{backend}_{fps:g}hz.log") as server, robot:
        config = build_config(ClientConfig, {
            "network": {"host": server.host, "port": server.port},
            "strategy": {"preset": strategy},
            "log": {"path": str(log_dir / f"ticks_{robot_kind}_{fps:g}hz.jsonl"), "print_summary": False,
                    "live_status": False},
            "stop_on_success": False,
        })
        summary = RealTimeClient(config, robot, connect_timeout_s=30.0).run(duration_s=duration_s)
    return summary.to_dict() | {"robot": robot.spec.name, "joints": robot.spec.action_dim}


def format_loop_table(rows: Sequence[dict[str, Any]]) -> str:
    head = (f"{'fps':>5} {'achieved':>9} {'ticks':>6} {'missed':>6} {'late p50':>9} {'late p99':>9} "
            f"{'late max':>9} {'gap p95':>8} {'work p99':>9} {'chunks':>6} {'stalls*':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['target_fps']:>5g} {r['achieved_fps']:>9.2f} {r['ticks']:>6} {r['missed_ticks']:>6} "
            f"{_ms(r['lateness_p50_ms'])} {_ms(r['lateness_p99_ms'])} {_ms(r['lateness_max_ms'])} "
            f"{_ms(r['gap_p95_ms'], 8)} {_ms(r['work_p99_ms'])} {r['chunks_received']:>6} "
            f"{r['stalls_after_first_chunk']:>7}"
        )
    lines.append("times in ms; lateness = wake-up minus absolute deadline; stalls* = after the first chunk")
    return "\n".join(lines)


def _ms(value: float | None, width: int = 9) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vla-async bench client", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of real-time loop per rate")
    parser.add_argument("--rates", default="30,50", help="control rates to run, comma-separated (Hz)")
    parser.add_argument("--joints", default="6,14", help="arm sizes for the scheduler cost table")
    parser.add_argument("--chunk-length", type=int, default=50)
    parser.add_argument("--cost-strategies", default="vlash_rail,lerobot,aligned",
                        help="strategies in the scheduler cost table")
    parser.add_argument("--cost-ticks", type=int, default=3000, help="ticks per scheduler cost measurement")
    parser.add_argument("--backend", default="expert", help="server backend for the loop runs")
    parser.add_argument("--robot", choices=("auto", "sim", "kinematic"), default="auto",
                        help="auto: the real-time sim arm when MuJoCo is installed, else the in-process arm")
    parser.add_argument("--robot-joints", type=int, default=6, help="joints of the in-process arm")
    parser.add_argument("--task", default="reach_jump")
    parser.add_argument("--strategy", default="vlash_rail")
    parser.add_argument("--skip-scheduler", action="store_true")
    parser.add_argument("--skip-loop", action="store_true")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to separate cores")
    parser.add_argument("--out", default="runs/bench_client", help="folder for tick logs and server logs")
    parser.add_argument("--json", dest="json_path", help="also write all results to this JSON file")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    results: dict[str, Any] = {}
    if not args.skip_scheduler:
        joints = [int(j) for j in args.joints.split(",") if j]
        strategies = [name for name in args.cost_strategies.split(",") if name]
        try:
            rows = scheduler_cost_rows(joints, args.chunk_length, strategies, args.cost_ticks)
        except ImportError as exc:  # the scheduler benchmark is another module; say so, measure the rest
            print(f"(a) scheduler cost: not measured ({exc})")
            results["scheduler_cost"] = {"error": str(exc)}
        else:
            results["scheduler_cost"] = rows
            print("(a) scheduler + fuser cost per tick (µs)")
            for row in rows:
                print("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    if not args.skip_loop:
        log_dir = Path(args.out)
        log_dir.mkdir(parents=True, exist_ok=True)
        server_cpus: set[int] | None = None
        client_cpus = None
        all_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        if not args.no_pin and hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2:
            server_cpus = {max(os.sched_getaffinity(0))}
            client_cpus = _pin_client(server_cpus)
        robot_kind = args.robot if args.robot != "auto" else ("sim" if _have_mujoco() else "kinematic")
        backend = args.backend if robot_kind == "sim" or args.backend != "expert" else "linear"
        print(f"(b) real-time loop: robot {robot_kind}, backend {backend}, task {args.task}, strategy {args.strategy}, "
              f"{args.duration:g} s per rate; server cores {sorted(server_cpus) if server_cpus else 'any'}, "
              f"client cores {sorted(client_cpus) if client_cpus else 'any'}")
        rows = []
        try:
            for fps in [float(r) for r in args.rates.split(",") if r]:
                started = time.monotonic()
                rows.append(loop_run(fps, args.duration, backend, robot_kind, args.task, args.robot_joints,
                                     args.strategy, server_cpus, log_dir))
                print(f"  {fps:g} Hz done in {time.monotonic() - started:.1f} s", flush=True)
        finally:
            if client_cpus is not None:
                os.sched_setaffinity(0, all_cpus)
        results["loop"] = rows
        print(format_loop_table(rows))
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json_path}")
    return 0


def _have_mujoco() -> bool:
    import importlib.util

    return importlib.util.find_spec("mujoco") is not None


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
