"""`vla-async roundtrip`: start a linear-policy server on loopback, send N requests, report.

The smallest end-to-end check of the wire path: a real server process, the real PolicyClient,
the reference payload (3 cameras 224×224×3 + 14-D state → 50×14 chunk).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from vla_async.bench.transport import run_round_trips, summarize_ms
from vla_async.config import NetworkConfig
from vla_async.local_server import LocalServer
from vla_async.reference_specs import reference_robot_spec
from vla_async.transport import PolicyClient


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vla-async roundtrip", description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="number of requests")
    parser.add_argument("--rate-hz", type=float, default=0.0, help="pace requests (0 = back-to-back)")
    parser.add_argument("--image-encoding", choices=("raw", "jpeg"), default="raw")
    parser.add_argument("--server-arg", action="append", default=[], help="extra server override (repeatable)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    spec = reference_robot_spec()
    rng = np.random.default_rng(0)
    images = {c.name: rng.integers(0, 256, c.shape, dtype=np.uint8) for c in spec.cameras}
    print("starting policy server (linear backend) ... ", end="", flush=True)
    with LocalServer(["--backend.name=linear", "--log_level=warning", *args.server_arg]) as server:
        print(f"port {server.port}")
        network = NetworkConfig(port=server.port, image_encoding=args.image_encoding)
        with PolicyClient(network, "roundtrip", spec) as client:
            welcome = client.connect(timeout_s=10.0)
            print(f"session {welcome.session_id}: policy {welcome.policy_spec.name!r}, "
                  f"H={welcome.policy_spec.chunk_length}, {welcome.policy_spec.action_dim} actions")
            period = 1.0 / args.rate_hz if args.rate_hz > 0 else 0.0
            rtts, replies, failures = run_round_trips(client, images, args.n, first_id=1, period_s=period)
            stats = client.stats
    rows = {
        "round trip": summarize_ms(rtts),
        "server total": summarize_ms([r.chunk.timing.total_ms / 1e3 for r in replies]),
        "  queue": summarize_ms([r.chunk.timing.queue_ms / 1e3 for r in replies]),
        "  model": summarize_ms([r.chunk.timing.model_ms / 1e3 for r in replies]),
        "transport": summarize_ms([a - r.chunk.timing.total_ms / 1e3 for a, r in zip(rtts, replies, strict=True)]),
    }
    print(f"\n{'ms':<14}{'p50':>9}{'p90':>9}{'p99':>9}{'mean':>9}{'max':>9}")
    for name, s in rows.items():
        print(f"{name:<14}{s['p50']:>9.3f}{s['p90']:>9.3f}{s['p99']:>9.3f}{s['mean']:>9.3f}{s['max']:>9.3f}")
    print(f"\nrequests {args.n}, chunks {len(replies)}, failures {failures}, client stats {stats}")
    return 0 if failures == 0 and len(replies) == args.n else 1
