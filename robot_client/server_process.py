"""Start a policy server as a real subprocess on loopback (for benchmarks, tests and demos).

The robot side never imports `policy_server`; it only runs `python -m policy_server` with config
overrides, on a free port picked here, optionally pinned to given CPU cores.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vla_async.specs import RobotSpec


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def backend_args(backend: str, robot: RobotSpec) -> list[str]:
    """Server arguments selecting `backend` for `robot`: the expert plans at the robot's rate; the linear
    backend (no fixed arm) gets the robot's names."""
    args = [f"--backend.name={backend}"]
    if backend == "expert":
        args.append(f"--backend.options.fps={robot.fps:g}")
    if backend == "linear":
        args += [f"--backend.options.state_names=[{','.join(robot.state_names)}]",
                 f"--backend.options.action_names=[{','.join(robot.action_names)}]",
                 "--backend.options.cameras=[]"]
    return args


class ServerProcess:
    """`python -m policy_server <overrides> --network.port=<port>` as a context manager.

    Output goes to `log_path` (or is discarded) so a chatty server never blocks on a full pipe.
    """

    def __init__(self, overrides: Sequence[str] = (), *, host: str = "127.0.0.1", port: int | None = None,
                 cpus: set[int] | None = None, log_path: str | Path | None = None) -> None:
        self.host = host
        self.port = port or free_tcp_port(host)
        self.overrides = [*overrides, f"--network.host={host}", f"--network.port={self.port}"]
        self.cpus = cpus
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        out = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        cpus = self.cpus
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus and hasattr(os, "sched_setaffinity") else None
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "policy_server", *self.overrides],
                stdout=out, stderr=subprocess.STDOUT, preexec_fn=preexec,  # noqa: PLW1509
            )
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Hard kill (SIGKILL): the way a crashed or unplugged server disappears."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
