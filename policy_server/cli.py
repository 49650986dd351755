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

import zmq

from policy_server.backend import BackendError
from policy_server.server import PolicyServer
from vla_async.config import ServerConfig, config_from_cli
from vla_async.supervision import on_any_thread_death

_GIL_SWITCH_INTERVAL_S = 0.0005
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
    # The I/O thread and the worker hand requests to each other through the GIL: under a flood of
    # input, a short switch interval bounds each hand-off at ~0.5 ms instead of CPython's 5 ms.
    sys.setswitchinterval(_GIL_SWITCH_INTERVAL_S)
    try:
        server = PolicyServer(config).start()
    except (BackendError, OSError, RuntimeError, zmq.ZMQError) as exc:
        print(f"vla-async serve: cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"listening on {server.endpoint}", flush=True)
    deaths: list[str] = []
    on_any_thread_death(lambda text: (deaths.append(text), stop.set()))  # threads outside the server's own
    code = serve_until_stopped(server, stop)
    if deaths:
        print(f"vla-async serve: {deaths[0]}; exiting so a supervisor can restart the server", file=sys.stderr)
        return 1
    return code


def serve_until_stopped(server: PolicyServer, stop: threading.Event, poll_s: float = 0.2) -> int:
    """Wait for `stop`; 0 after a requested stop, 1 when a server thread died (said on stderr), so a
    supervisor (systemd, a container runtime) restarts the server instead of keeping a mute process."""
    try:
        while not stop.wait(poll_s):
            if server.fatal is not None:
                break
    finally:
        server.stop()
        print(f"stopped; stats {server.stats}", flush=True)
    if server.fatal is not None:
        print(f"vla-async serve: {server.fatal}; exiting so a supervisor can restart the server", file=sys.stderr)
        return 1
    return 0
