"""`vla-async bench <what>`: benchmarks that print numbers (never pass/fail on time)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from vla_async.cli import load_entry

BENCHMARKS: dict[str, tuple[str, str]] = {
    "transport": ("vla_async.bench.transport:main", "ZeroMQ round trips: 3 cameras + state → 50×14 chunk"),
    "client": ("robot_client.bench:main", "scheduler cost per tick and real-time loop lateness"),
    "sim": ("sim.bench:main", "physics steps/s and camera frames/s"),
    "server": ("policy_server.bench:main", "server overhead per chunk and batching throughput"),
    "fleet": ("robot_client.fleet_bench:main", "N kinematic robots on M fleet replicas vs M plain servers; failover"),
    "lerobot": ("sim.lerobot_bench.compare:main",
                "LeRobot 0.4.4's own async client/server vs ours on the simulated arm (LeRobot lane venv)"),
    "fuzz": ("vla_async.bench.fuzz:main", "malformed messages vs a real server and client: deaths, exits, p99, RSS"),
}


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in BENCHMARKS:
        print("usage: vla-async bench <what> [options]\n")
        for name, (_, text) in BENCHMARKS.items():
            print(f"  {name:<10} {text}")
        return 0 if not args or args[0] in ("-h", "--help") else 2
    return int(load_entry(BENCHMARKS[args[0]][0])(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
