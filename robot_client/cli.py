"""`vla-async client` / `python -m robot_client`: run the real-time client from a YAML config.

    vla-async client --config configs/client/sim.yaml --strategy.preset=vlash_rail --duration_s=10
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from vla_async.config import ClientConfig, ConfigError, config_from_cli

USAGE = """usage: vla-async client [--config PATH] [--section.field=value ...]

Runs the real-time robot client: connects to a policy server, drives the robot at its control
rate and prints a summary. Strategy presets: --strategy.preset=<name> (configs/strategies/).
Fields (any can be overridden on the command line):"""


class LiveStatus:
    """Prints `line()` about twice a second from a daemon thread until stopped."""

    def __init__(self, line: object, stream: TextIO = sys.stderr, period_s: float = 0.5) -> None:
        self._line = line
        self._stream = stream
        self._period_s = period_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-status", daemon=True)
        self._end = "\r" if stream.isatty() else "\n"

    def __enter__(self) -> LiveStatus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(2.0)
        if self._end == "\r":
            self._stream.write("\n")

    def _run(self) -> None:
        while not self._done.wait(self._period_s):
            self._stream.write(self._line() + self._end)  # type: ignore[operator]
            self._stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_cli(ClientConfig, sys.argv[1:] if argv is None else argv, prog="vla-async client",
                             usage=USAGE)
    return config if isinstance(config, int) else run_client(config)


def run_client(config: ClientConfig) -> int:
    from robot_client.loop import RealTimeClient, TransportFailure
    from robot_client.robots import RobotUnavailableError, make_robot_from_config
    from vla_async.supervision import on_any_thread_death
    from vla_async.transport import HandshakeError

    try:
        robot = make_robot_from_config(config.robot)
    except (RobotUnavailableError, ConfigError) as exc:
        print(f"vla-async client: {exc}", file=sys.stderr)
        return 2
    client = RealTimeClient(config, robot)
    previous = signal.signal(signal.SIGINT, lambda *_: client.stop()) if _main_thread() else None
    deaths: list[str] = []
    restore_hook = on_any_thread_death(lambda text: (deaths.append(text), client.stop()))
    try:
        with robot:
            if config.log.live_status:
                with LiveStatus(client.status_line):
                    summary = client.run()
            else:
                summary = client.run()
    except (HandshakeError, TimeoutError) as exc:
        print(f"vla-async client: could not connect to the policy server at "
              f"{config.network.host}:{config.network.port}: {exc}", file=sys.stderr)
        return 1
    except TransportFailure as exc:
        print(f"vla-async client: stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        restore_hook()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if deaths:
        print(f"vla-async client: stopped: {deaths[0]}", file=sys.stderr)
        return 1
    if config.log.print_summary:
        print(f"strategy {config.strategy.name}, robot {robot.spec.name}")
        print(summary.format_table())
        if config.log.path:
            print(f"per-tick log: {config.log.path}")
    return 0


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
