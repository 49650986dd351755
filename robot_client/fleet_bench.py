"""`vla-async bench fleet --robots N --replicas M`: N kinematic robots on M fleet replicas (Ray Serve) and,
in the same run, on M plain `vla-async serve` processes; then one replica is killed (SIGKILL).

Prints per robot: round trip p50/p99 (submit → chunk decoded) on plain servers and on the fleet, chunks,
lost and misordered chunks, reconnects, commands outside the limits, and kill → first chunk again for the
robots of the killed replica. Then the fairness across robots (max/min p50), fleet vs plain p50 and the
failover summary. Numbers only, no verdicts (CPU load from other processes moves them: see `uptime`).

Runs its own small Ray head on 127.0.0.1 (private temp dir and ports; stopped at the end, no other Ray
instance is touched) unless --address names a running cluster. The robots only use HTTP and ZeroMQ:
this module never imports Ray; the fleet is driven through `vla-async fleet` in a child process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from robot_client.fleet_robots import RobotResult, RobotRun, join_robots, robot_result, start_robots
from robot_client.kinematic_robot import kinematic_spec
from vla_async.cli_parser import OneLineArgumentParser
from vla_async.config import NetworkConfig
from vla_async.local_server import LocalServer, backend_args, wait_until

_ROOT = str(Path(__file__).resolve().parents[1])


def server_args(joints: int, fps: float, latency_ms: float, max_batch: int) -> list[str]:
    return [*backend_args("linear", kinematic_spec(joints, fps)), f"--injected_latency.mean_ms={latency_ms:g}",
            f"--batching.max_batch={max_batch}", "--log_level=warning"]


def fleet_cli(*args: str, env: dict[str, str] | None = None, timeout_s: float = 300.0) -> str:
    """Run `vla-async fleet ...` in a child process (it imports Ray; this process does not)."""
    env = {**os.environ, "PYTHONPATH": _ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    out = subprocess.run([sys.executable, "-m", "vla_async.cli", "fleet", *args], capture_output=True, text=True,
                         timeout=timeout_s, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"vla-async fleet {args[0]} failed ({out.returncode}):\n{out.stdout[-2000:]}\n"
                           f"{out.stderr[-3000:]}")
    return out.stdout


def fleet_status(route_url: str) -> dict:
    """The registry's status through the route's HTTP endpoint (no Ray on this side)."""
    with urllib.request.urlopen(route_url.rsplit("/", 1)[0] + "/status", timeout=10) as reply:
        return json.loads(reply.read())


def live_replicas(route_url: str) -> list[dict]:
    return [r for r in fleet_status(route_url)["replicas"] if r["live"]]


def kill_replica(route_url: str, address: str) -> float:
    """SIGKILL the replica process serving `address` (same machine); returns the kill time (monotonic)."""
    pid = next(r["pid"] for r in fleet_status(route_url)["replicas"] if r["address"] == address)
    t = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    return t


def address_at(run: RobotRun, t: float) -> str:
    """host:port the robot was connected to at time `t`."""
    current = "?"
    for when, address in run.policy.addresses:
        if when <= t:
            current = address
    return current


def _phase(networks: dict[str, NetworkConfig], args: argparse.Namespace, duration_s: float) -> list[RobotRun]:
    return start_robots(networks, joints=args.joints, fps=args.fps, duration_s=duration_s)


def run_plain(args: argparse.Namespace, names: list[str]) -> tuple[list[RobotRun], float, float]:
    servers = [LocalServer(server_args(args.joints, args.fps, args.latency_ms, args.max_batch))
               for _ in range(args.replicas)]
    try:
        networks = {n: NetworkConfig(port=servers[i % len(servers)].port) for i, n in enumerate(names)}
        runs = _phase(networks, args, args.duration)
        start = time.monotonic() + args.warmup
        join_robots(runs, args.duration + 60)
        return runs, start, time.monotonic()
    finally:
        for s in servers:
            s.stop()


def run_fleet(args: argparse.Namespace, names: list[str], route_url: str
              ) -> tuple[list[RobotRun], float, float, float | None, str | None]:
    networks = {n: NetworkConfig(route_url=route_url, port=1) for n in names}  # port: fallback only
    total = args.duration + (args.after_kill if args.kill else 0.0)
    runs = _phase(networks, args, total)
    start = time.monotonic() + args.warmup
    if not wait_until(lambda: all(r.policy.chunks for r in runs), timeout_s=120, interval_s=0.1):
        print("warning: not every robot received a chunk within 120 s", flush=True)
    steady_end = start + (args.duration - args.warmup)
    time.sleep(max(0.0, steady_end - time.monotonic()))
    kill_at = killed = None
    if args.kill:
        counts: dict[str, int] = {}
        for r in runs:
            counts[r.policy.server_address] = counts.get(r.policy.server_address, 0) + 1
        killed = max(counts, key=lambda a: counts[a])
        kill_at = kill_replica(route_url, killed)
        print(f"killed the replica at {killed} (SIGKILL), {counts[killed]} robots on it", flush=True)
    join_robots(runs, total + 60)
    return runs, start, steady_end, kill_at, killed


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def report(plain: list[RobotResult], fleet: list[RobotResult], failover: dict[str, RobotResult],
           affected: set[str]) -> dict:
    print(f"\n{'robot':<9} {'plain p50':>9} {'p99':>7} | {'fleet replica':<22} {'p50':>7} {'p99':>7} {'chunks':>6} "
          f"{'lost':>4} {'misord':>6} {'reconn':>6} {'limits':>6} | {'kill→resume s':>13}")
    for p, f in zip(plain, fleet, strict=True):
        fo = failover.get(f.name)
        resume = _fmt(fo.resume_s, ".3f") if fo is not None and f.name in affected else ("-" if fo is None else "n/a")
        print(f"{f.name:<9} {_fmt(p.round_trip_p50_ms):>9} {_fmt(p.round_trip_p99_ms):>7} | {f.server:<22} "
              f"{_fmt(f.round_trip_p50_ms):>7} {_fmt(f.round_trip_p99_ms):>7} {f.chunks:>6} {f.lost:>4} "
              f"{f.misordered:>6} {(fo or f).reconnects:>6} {(fo or f).violations:>6} | {resume:>13}")
    p50s = [f.round_trip_p50_ms for f in fleet if not math.isnan(f.round_trip_p50_ms)]
    plain_p50 = [p.round_trip_p50_ms for p in plain if not math.isnan(p.round_trip_p50_ms)]
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else math.nan  # noqa: E731
    summary = {
        "fleet_p50_ms": med(p50s), "plain_p50_ms": med(plain_p50),
        "fleet_p99_ms": med([f.round_trip_p99_ms for f in fleet]), "plain_p99_ms": med([p.round_trip_p99_ms for p in plain]),
        "fairness_fleet_max_over_min_p50": (max(p50s) / min(p50s)) if p50s else math.nan,
        "fairness_plain_max_over_min_p50": (max(plain_p50) / min(plain_p50)) if plain_p50 else math.nan,
        "lost": sum(f.lost for f in fleet) + sum(f.lost for f in failover.values()),
        "misordered": sum(f.misordered for f in fleet) + sum(f.misordered for f in failover.values()),
        "plain_lost": sum(p.lost for p in plain), "plain_misordered": sum(p.misordered for p in plain),
        "limit_violations": sum(f.violations for f in failover.values()) if failover else sum(f.violations for f in fleet),
        "affected_robots": len(affected),
        "resume_max_s": max((failover[n].resume_s or math.inf for n in affected), default=math.nan),
        "resume_p50_s": med([failover[n].resume_s or math.inf for n in affected]),
        "false_reconnects": sum(fo.reconnects for n, fo in failover.items() if n not in affected)
        + sum(max(0, fo.reconnects - 1) for n, fo in failover.items() if n in affected),
    }
    summary["fleet_vs_plain_p50"] = summary["fleet_p50_ms"] / summary["plain_p50_ms"] - 1
    print(f"\nround trip p50 (median over robots): fleet {summary['fleet_p50_ms']:.1f} ms, plain "
          f"{summary['plain_p50_ms']:.1f} ms ({summary['fleet_vs_plain_p50'] * 100:+.1f} %); p99 fleet "
          f"{summary['fleet_p99_ms']:.1f}, plain {summary['plain_p99_ms']:.1f} ms")
    print(f"fairness (max/min per-robot p50): fleet {summary['fairness_fleet_max_over_min_p50']:.3f}, "
          f"plain {summary['fairness_plain_max_over_min_p50']:.3f}")
    print(f"chunks lost {summary['lost']}, misordered {summary['misordered']} (plain servers: lost "
          f"{summary['plain_lost']}, misordered {summary['plain_misordered']}); commands outside limits "
          f"{summary['limit_violations']}")
    if affected:
        print(f"failover: {len(affected)} robots on the killed replica, kill → chunks again p50 "
              f"{summary['resume_p50_s']:.3f} s, max {summary['resume_max_s']:.3f} s; false reconnects "
              f"{summary['false_reconnects']}")
    return summary


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = OneLineArgumentParser(prog="vla-async bench fleet", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robots", type=int, default=16)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--duration", type=float, default=20.0, help="seconds per phase before the kill")
    p.add_argument("--warmup", type=float, default=4.0, help="seconds at the start of a phase left out")
    p.add_argument("--after-kill", type=float, default=8.0, help="seconds the robots run after the kill")
    p.add_argument("--no-kill", dest="kill", action="store_false", help="no failover phase")
    p.add_argument("--latency-ms", type=float, default=100.0, help="server's injected model latency")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--joints", type=int, default=6)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--num-cpus", type=int, default=4, help="CPUs the private Ray head advertises")
    p.add_argument("--address", default=None, help="use this running Ray cluster instead of a private head")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(list(argv))
    if args.robots < 1 or args.replicas < 1 or args.duration <= args.warmup:
        p.error("want --robots >= 1, --replicas >= 1 and --duration > --warmup")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    from vla_async.local_ray import LocalRayHead, free_ports

    names = [f"robot{i:02d}" for i in range(args.robots)]
    print(f"{args.robots} kinematic robots at {args.fps:g} Hz, {args.replicas} replicas, injected model latency "
          f"{args.latency_ms:g} ms; load: {os.getloadavg()[0]:.2f}", flush=True)
    plain_runs, p_start, p_end = run_plain(args, names)
    plain = [robot_result(r, p_start, p_end) for r in plain_runs]
    head = None if args.address else LocalRayHead(num_cpus=args.num_cpus)
    address = args.address or head.address  # type: ignore[union-attr]
    env = head.env if head is not None else None
    try:
        http_port = free_ports(1)[0]
        fleet_cli("up", f"--address={address}", f"--replicas={args.replicas}", f"--http-port={http_port}",
                  *server_args(args.joints, args.fps, args.latency_ms, args.max_batch), "--network.port=0", env=env)
        route_url = f"http://127.0.0.1:{http_port}/route"
        runs, f_start, f_end, kill_at, killed = run_fleet(args, names, route_url)
        fleet = [robot_result(r, f_start, f_end) for r in runs]
        failover: dict[str, RobotResult] = {}
        affected: set[str] = set()
        if kill_at is not None:
            failover = {r.name: robot_result(r, kill_at, math.inf, since=kill_at) for r in runs}
            affected = {r.name for r in runs if address_at(r, kill_at) == killed}
        errors = [f"{r.name}: {r.error}" for r in plain_runs + runs if r.error]
        summary = report(plain, fleet, failover, affected)
        for line in errors:
            print("robot error:", line)
        print(f"load average after the run: {os.getloadavg()[0]:.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "summary": summary,
                                                   "plain": [vars(x) for x in plain], "fleet": [vars(x) for x in fleet],
                                                   "failover": {k: vars(v) for k, v in failover.items()}}, indent=1,
                                                  default=str))
        fleet_cli("down", f"--address={address}", env=env)
        return 1 if errors else 0
    finally:
        if head is not None:
            head.stop()
