"""`vla-async serve [--config X.yaml] [--section.field=value ...]`: run the policy server.

Prints one line `listening on tcp://HOST:PORT` once it is ready (with --network.port=0 the port
is the one picked), then serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence

from policy_server.backend import BackendError
from policy_server.server import PolicyServer
from vla_async.config import ConfigError, ServerConfig, describe_fields, load_config

USAGE = "usage: vla-async serve [--config PATH.yaml] [--section.field=value ...]"


def split_config_arg(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Pull `--config PATH` / `--config=PATH` out of argv; the rest are field overrides."""
    path, rest, args = None, [], list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--config":
            if not args:
                raise ConfigError("--config needs a path")
            path = args.pop(0)
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return path, rest


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(USAGE + "\n\nfields:\n" + "\n".join(describe_fields(ServerConfig)))
        return 0
    try:
        path, overrides = split_config_arg(args)
        config = load_config(ServerConfig, path, overrides)
    except ConfigError as exc:
        print(f"vla-async serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = PolicyServer(config).start()
    except (BackendError, OSError, RuntimeError) as exc:
        print(f"vla-async serve: cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"listening on {server.endpoint}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print(f"stopped; stats {server.stats}", flush=True)
    return 0
