"""`vla-async client` / `python -m robot_client`: run the real-time client from a YAML config.

    vla-async client --config client/sim --strategy.preset=vlash_rail --duration_s=10

Ctrl-C: while waiting for the server it stops at once (exit 130); during the run the first Ctrl-C
ends the run after the current tick and prints the summary, a second one stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from robot_client.live_status import LiveStatus
from vla_async.config import ClientConfig, ConfigError, config_from_cli, strategy_names
from vla_async.config.schema import DEFAULT_STRATEGY
from vla_async.scheduler import resolve_conditioning

USAGE = f"""usage: vla-async client [--config NAME|PATH] [--section.field=value ...]

Runs the real-time robot client: connects to a policy server, drives the robot at its control
rate and prints a summary. --config takes a file or a shipped name (client/sim).
Strategy: --strategy.preset=<{' | '.join(strategy_names())}> (default {DEFAULT_STRATEGY});
any --strategy.<field> overrides the preset's value.
Fields (any can be overridden on the command line; defaults shown are what runs):"""

__all__ = ["LiveStatus", "main", "run_client"]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = config_from_cli(ClientConfig, sys.argv[1:] if argv is None else argv, prog="vla-async client",
                                 usage=USAGE)
        return config if isinstance(config, int) else run_client(config)
    except KeyboardInterrupt:
        print("\nvla-async client: interrupted", file=sys.stderr)
        return 130


def run_client(config: ClientConfig) -> int:
    from robot_client.lerobot_units import UnitsError
    from robot_client.loop import RealTimeClient, TransportFailure
    from robot_client.robots import RobotUnavailableError, make_robot
    from vla_async.supervision import on_any_thread_death
    from vla_async.transport import HandshakeError

    try:
        robot = make_robot(config.robot)
        robot.connect()
    except (RobotUnavailableError, ConfigError, UnitsError) as exc:
        print(f"vla-async client: {exc}", file=sys.stderr)
        return 2
    client = RealTimeClient(config, robot)
    previous = signal.signal(signal.SIGINT, _interrupt_handler(client)) if _main_thread() else None
    deaths: list[str] = []
    restore_hook = on_any_thread_death(lambda text: (deaths.append(text), client.stop(f"a thread died: {text}")))
    try:
        with _disconnecting(robot):
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
        _say_stop(client)
        return 1
    except Exception as exc:  # the loop ended on an error: the controlled stop has run; say how
        outcome = client.stop_outcome
        said = outcome.message() if outcome is not None else f"{type(exc).__name__}: {exc}"
        print(f"vla-async client: {said}", file=sys.stderr)
        return 1
    finally:
        restore_hook()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if deaths:
        print(f"vla-async client: stopped: {deaths[0]}", file=sys.stderr)
        _say_stop(client)
        return 1
    if config.log.print_summary:
        print(f"strategy {describe_strategy(config)}, robot {robot.spec.name}; the policy was sent "
              f"{resolve_conditioning(config.strategy, client.policy_spec).describe()}")
        print(summary.format_table())
        if config.log.path:
            print(f"per-tick log: {config.log.path}")
    if client.stop_outcome is not None:
        print(f"vla-async client: {client.stop_outcome.message()}"
              + (f"; dry run: {robot.commands} commands logged, none sent" if config.robot.dry_run else ""))
    return 0


def _say_stop(client: Any) -> None:
    if client.stop_outcome is not None:
        print(f"vla-async client: {client.stop_outcome.message()}", file=sys.stderr)


@contextlib.contextmanager
def _disconnecting(robot: Any) -> Iterator[None]:
    try:
        yield
    finally:
        robot.disconnect()


def describe_strategy(config: ClientConfig) -> str:
    """The strategy that ran: its name, and the fields that differ from the preset of that name."""
    from vla_async.config import strategy_config

    s = config.strategy
    if s.name not in strategy_names():
        return f"{s.name} (custom)"
    base = strategy_config(s.name).model_dump()
    changed = sorted(_diff(base, s.model_dump()))
    return s.name if not changed else f"{s.name} (preset + overrides: {', '.join(changed)})"


def _diff(base: dict[str, Any], actual: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in actual.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out += _diff(base[key], value, f"{prefix}{key}.")
        elif base.get(key) != value:
            out.append(f"{prefix}{key}={value}")
    return out


def _interrupt_handler(client: Any) -> Any:
    """Before the loop runs: stop at once. In the loop: end it gracefully; a second Ctrl-C stops at once."""
    def handler(signum: int, frame: object) -> None:
        if client.stats is None or client.stop_requested:
            raise KeyboardInterrupt
        print("\nvla-async client: stopping after this tick (Ctrl-C again to stop at once)", file=sys.stderr)
        client.stop()
    return handler


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
