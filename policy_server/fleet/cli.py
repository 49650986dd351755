"""`vla-async fleet up|status|down`: policy server replicas on a running Ray cluster (docs/fleet.md).

    ray start --head --node-ip-address=HEAD_IP           (once per cluster; GPU boxes: ray start --address=...)
    vla-async fleet up --replicas 2 --config server.yaml --backend.device=cuda
    vla-async client --network.route_url=http://HEAD_IP:8000/route ...   (on each robot computer)

`up` takes the same server config as `vla-async serve` (--config and --section.field=value) plus the fleet
options below; it deploys, waits until the replicas are live, prints the route URL and returns (the fleet
keeps running in Ray). `status` prints replicas and robots; `down` removes the fleet.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from vla_async.cli_parser import OneLineArgumentParser
from vla_async.config import ServerConfig, config_from_cli

USAGE = "usage: vla-async fleet up|status|down [options]  (vla-async fleet up --help)"


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        pair = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want LOW-HIGH, e.g. 1-4") from None
    if pair[0] < 0 or pair[1] < pair[0]:
        raise argparse.ArgumentTypeError(f"{text!r}: want 0 <= LOW <= HIGH")
    return pair


def _parser(command: str) -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog=f"vla-async fleet {command}", add_help=False)
    p.add_argument("--address", default=None, help="Ray cluster address (default: the running one, `auto`)")
    if command != "up":
        p.add_argument("--json", action="store_true", help="status: print JSON")
        return p
    p.add_argument("--replicas", type=int, default=1, help="fixed count of policy server replicas")
    p.add_argument("--autoscale", type=_range, default=None, metavar="MIN-MAX",
                   help="scale between MIN and MAX replicas from the registry's load instead")
    p.add_argument("--robots-per-replica", type=int, default=8, help="autoscale: robots one replica serves")
    p.add_argument("--max-queue-depth", type=float, default=0.0, help="autoscale: one more replica above this "
                   "queue depth per replica (0: off)")
    p.add_argument("--max-latency-ms", type=float, default=0.0, help="autoscale: one more replica above this "
                   "server time per batch (0: off)")
    p.add_argument("--upscale-delay", type=float, default=2.0, help="autoscale: seconds a higher count must be "
                   "wanted before Serve adds a replica")
    p.add_argument("--downscale-delay", type=float, default=20.0, help="autoscale: the same for removing one")
    p.add_argument("--ports", type=_range, default=None, metavar="LOW-HIGH",
                   help="replicas bind the first free port in this range (default: any free port)")
    p.add_argument("--gpus-per-replica", type=float, default=0.0, help="1 = one replica per GPU")
    p.add_argument("--cpus-per-replica", type=float, default=0.5)
    p.add_argument("--http-host", default="127.0.0.1", help="where Serve's HTTP proxy (the route) listens; "
                   "an address the robots reach, e.g. the head's LAN address")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--timeout", type=float, default=180.0, help="wait this long for the replicas")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("up", "status", "down"):
        print(__doc__ if args[:1] in (["-h"], ["--help"]) else USAGE, file=sys.stdout if args else sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    command, rest = args[0], args[1:]
    parser = _parser(command)
    if any(a in ("-h", "--help") for a in rest):
        parser.print_help()
        if command == "up":
            config_from_cli(ServerConfig, ["--help"], prog="vla-async fleet up", usage="\nserver config:")
        return 0
    opts, extra = parser.parse_known_args(rest)
    if command != "up" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    config = None
    if command == "up":
        config = config_from_cli(ServerConfig, extra, prog="vla-async fleet up", usage=USAGE)
        if isinstance(config, int):
            return config
    from policy_server.fleet import ray_app  # ray: only past argument checks (a bad flag needs no cluster)

    try:
        ray_app.connect(opts.address)
    except ConnectionError as exc:
        print(f"vla-async fleet {command}: no Ray cluster ({exc}); start one with "
              "`ray start --head --node-ip-address=IP` (docs/fleet.md)", file=sys.stderr)
        return 1
    if command == "up":
        return _up(ray_app, config, opts)
    if command == "status":
        return _status(ray_app, opts.json)
    ray_app.tear_down()
    print("fleet removed (Ray and Serve keep running; `ray stop` on each node ends them)")
    return 0


def _up(ray_app, config: ServerConfig, opts: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    options = ray_app.FleetOptions(
        replicas=opts.replicas, autoscale=opts.autoscale, robots_per_replica=opts.robots_per_replica,
        max_queue_depth=opts.max_queue_depth, max_latency_ms=opts.max_latency_ms, ports=opts.ports,
        gpus_per_replica=opts.gpus_per_replica, cpus_per_replica=opts.cpus_per_replica,
        http_host=opts.http_host, http_port=opts.http_port, upscale_delay_s=opts.upscale_delay,
        downscale_delay_s=opts.downscale_delay)
    url = ray_app.deploy(config, options)
    want = opts.autoscale[0] if opts.autoscale else opts.replicas
    try:
        status = ray_app.wait_for_replicas(want, opts.timeout)
    except TimeoutError as exc:
        print(f"vla-async fleet up: {exc}", file=sys.stderr)
        return 1
    print(_format_status(status))
    print(f"route: {url}\nrobots: vla-async client --network.route_url={url} --client_name=<unique robot name> ...")
    return 0


def _status(ray_app, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    try:
        status = ray_app.fleet_status()
    except ValueError:
        print("vla-async fleet status: no fleet on this cluster (vla-async fleet up)", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=1) if as_json else _format_status(status))
    return 0


def _format_status(status: dict) -> str:
    lines = [f"{'replica':<12} {'address':<22} {'live':<5} {'robots':>6} {'queue':>5} {'batch ms':>8}  problem"]
    for r in status["replicas"]:
        lines.append(f"{r['replica']:<12} {r['address']:<22} {str(r['live']):<5} {len(r['robots']):>6} "
                     f"{r['queue_depth']:>5} {r['latency_ms']:>8.1f}  {r['problem'] or ''}")
    counts = status["counts"]
    lines.append(f"robots known {len(status['robots'])}; assignments {counts['assignments']}, sticky "
                 f"{counts['sticky']}, moved {counts['moved']}, failure reports {counts['failure_reports']}")
    return "\n".join(lines)
