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
from vla_async.config import ServerConfig, config_from_cli

USAGE = "usage: vla-async serve [--config PATH.yaml] [--section.field=value ...]"


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_cli(ServerConfig, sys.argv[1:] if argv is None else argv, prog="vla-async serve",
                             usage=USAGE + "\n\nfields:")
    if isinstance(config, int):
        return config
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
