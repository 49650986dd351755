"""`vla-async bench fuzz --messages N`: the long fuzz campaign against real processes on 127.0.0.1.

A real policy server gets N malformed messages (seeded, structure-aware: nesting bombs, huge/
negative/zero shapes, dtype/shape/byte mismatches, truncated and extra frames, ext types, wrong
versions, messages before the handshake, JPEG header bombs, ...) from an attacker process while a
correct client requests at --rate-hz; then (unless --client-messages 0) a correct client gets
malformed replies from a hostile server and must reconnect to a real one. Prints thread deaths,
process exits, the correct client's p99 reply latency before vs during the fuzz, and peak server
RSS; then the machine reference: the same flood while a bare ZeroMQ echo that nobody attacks is timed
instead (on a shared machine, what the cores alone do to a round trip's tail). Prints numbers; never
passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from vla_async.fuzz.campaign import client_campaign, machine_reference, server_campaign


def _print_server(r: dict[str, Any]) -> None:
    c = r["correct_client"]
    print(f"server fuzz: {r['messages']} malformed messages in {r['attacker'].get('elapsed_s', 0):.1f} s "
          f"({r['attacker'].get('replies', 0)} error replies to the attacker)")
    print(f"  thread deaths      {r['thread_deaths']}  (threads start/min/end {r['threads']['start']}/"
          f"{r['threads']['min_during']}/{r['threads']['end']})")
    print(f"  process exits      {r['process_exits']}  (server exit code after SIGTERM: {r['server_exit_code']})")
    print(f"  correct client     {c['chunks']}/{c['requests']} chunks, lost {c['lost']}, in order {c['in_order']}")
    if c["lost"] or not c["in_order"]:
        print(f"  correct client's errors {c['errors']}; transport {c['transport']}")
    print(f"  reply p50 ms       before {c['p50_ms']['before']:.2f}  during {c['p50_ms']['during']:.2f}")
    print(f"  reply p99 ms       before {c['p99_ms']['before']:.2f}  during {c['p99_ms']['during']:.2f}  "
          f"(ratio {c['p99_ms']['during'] / c['p99_ms']['before']:.2f})")
    stats = r.get("server_stats") or {}
    if stats:
        print(f"  server read        {stats.get('received', 0)} messages through the decoder; dropped unread: "
              f"{stats.get('budget_dropped', 0)} over the stranger budget, {stats.get('penalty_dropped', 0)} in the "
              f"penalty box ({stats.get('peers_boxed', 0)} times a peer was boxed; new attacker identities "
              f"{r['attacker'].get('rotations', 0)})")
    busy = r["server_during_attack"]
    print(f"  server CPU         {busy['cpu_s']:.1f} s in the {busy['wall_s']:.1f} s of the attack "
          f"({100 * busy['cpu_s'] / max(busy['wall_s'], 1e-9):.0f}% of one core; "
          f"{1e6 * busy['cpu_s'] / max(r['messages'], 1):.0f} us per malformed message)")
    rss = r["rss_mib"]
    print(f"  server RSS MiB     start {rss['start']:.0f}  peak {max(rss['peak_hwm'], rss['peak_sampled']):.0f}")
    late = r.get("late_client")
    if late is not None:
        got = (f"{late['chunks']}/{late['requests']} chunks, lost {late['lost']}, in order {late['in_order']}"
               if late["connected"] else f"not connected: {late['error']}")
        print(f"  new robot          connected during the attack {late['connected'] and late['during_attack']}; {got}")


def _print_reference(r: dict[str, Any]) -> None:
    p99, p50 = r["p99_ms"], r["p50_ms"]
    print(f"machine reference: a bare ZeroMQ echo nobody attacks, same flood at the server, "
          f"{r['requests']['before']}/{r['requests']['during']} round trips before/during, lost {r['lost']}")
    print(f"  round trip p50 ms  before {p50['before']:.2f}  during {p50['during']:.2f}")
    print(f"  round trip p99 ms  before {p99['before']:.2f}  during {p99['during']:.2f}  "
          f"(ratio {p99['during'] / p99['before']:.2f}: what this machine alone does to a round trip's tail)")


def _print_client(r: dict[str, Any]) -> None:
    c = r["correct_client"]
    print(f"client fuzz: {r['messages']} malformed replies from a hostile server")
    print(f"  transport failure  {c['failure']}")
    print(f"  correct chunks     {r['during']['chunks']}/{r['during']['requests']} during, lost {c['lost']}, "
          f"in order {c['in_order']}, garbage dropped {c['transport']['garbage']}")
    print(f"  after the real server took the port: {r['after_real_server']['chunks']}/"
          f"{r['after_real_server']['requests']} chunks")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="vla-async bench fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000, help="malformed messages to the server")
    parser.add_argument("--client-messages", type=int, default=20_000,
                        help="malformed replies to the client (0: skip the client side)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate-hz", type=float, default=30.0, help="the correct client's request rate")
    parser.add_argument("--fuzz-rate", type=float, default=0.0,
                        help="malformed messages/s to the server (0: as fast as it takes them, which saturates "
                        "its I/O thread; a rate it can sustain shows the latency cost of the checks alone)")
    parser.add_argument("--rotate-every", type=int, default=0,
                        help="the attacker takes new connections (ROUTER identities) every N messages, dodging "
                        "the server's per-identity penalty box (1: every message; 0: never)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="--section.field=value",
                        help="extra server option, e.g. --server-arg=--penalty_box.strikes=0 (repeatable)")
    parser.add_argument("--baseline-s", type=float, default=5.0, help="correct client alone, before the fuzz")
    parser.add_argument("--late-client", action="store_true",
                        help="a second correct robot connects once the attack has begun (a new robot must get in)")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the machine reference (the same flood while a bare ZeroMQ echo that nobody "
                        "attacks is timed instead of the server)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(list(argv))
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine load (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    t0 = time.monotonic()
    results: dict[str, Any] = {"server": server_campaign(args.messages, seed=args.seed, rate_hz=args.rate_hz,
                                                         baseline_s=args.baseline_s, fuzz_rate=args.fuzz_rate,
                                                         rotate_every=args.rotate_every,
                                                         server_args=tuple(args.server_arg),
                                                         late_client=args.late_client)}
    _print_server(results["server"])
    if args.reference:
        results["machine_reference"] = machine_reference(args.messages, seed=args.seed, rate_hz=args.rate_hz,
                                                         baseline_s=args.baseline_s)
        _print_reference(results["machine_reference"])
    if args.client_messages > 0:
        results["client"] = client_campaign(args.client_messages, seed=args.seed, rate_hz=args.rate_hz)
        _print_client(results["client"])
    print(f"wall time {time.monotonic() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=str)
        print(f"wrote {args.json}")
    return 0
