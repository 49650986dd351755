"""Start a policy server as a real child process on this machine (tools, benchmarks, tests, eval).

The one launcher for `python -m policy_server`: the core never imports `policy_server`, it only
runs it. The child binds the port it is given (0 = any free port, read back from its
`listening on tcp://HOST:PORT` line), optionally pinned to some CPU cores; its output is kept in
memory (`output()`) and, with `log_path`, also written to a file, so a chatty server never blocks
on a full pipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from vla_async.specs import RobotSpec

_ROOT = str(Path(__file__).resolve().parents[1])


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


class LocalServer:
    """`python -m policy_server <args>`, started by the constructor and ready when it returns.

    `host`/`port` are where clients connect. Use as a context manager (stops on exit); `kill()` is
    the abrupt failure a client must survive.
    """

    def __init__(self, args: Sequence[str] = (), *, host: str = "127.0.0.1", port: int = 0,
                 cpus: set[int] | None = None, log_path: str | Path | None = None,
                 startup_timeout_s: float = 30.0, env: dict[str, str] | None = None):
        self.host = host
        self.log_path = Path(log_path) if log_path else None
        self._lines: list[str] = []
        self._log: IO[str] | None = self.log_path.open("w") if self.log_path else None
        argv = [sys.executable, "-m", "policy_server", *args, f"--network.host={host}", f"--network.port={port}"]
        full_env = {**os.environ, "PYTHONPATH": _ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus and hasattr(os, "sched_setaffinity") else None
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=full_env, preexec_fn=preexec)  # noqa: PLW1509
        self._ready = threading.Event()
        self._port = 0
        self._reader = threading.Thread(target=self._read_output, name="local-server-output", daemon=True)
        self._reader.start()
        if not self._ready.wait(startup_timeout_s) or not self._port:
            self.kill()
            raise RuntimeError("policy server did not start:\n" + "\n".join(self._lines[-20:]))
        self.port = self._port

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line.rstrip())
            if self._log is not None:
                self._log.write(line)
                self._log.flush()
            if not self._ready.is_set() and line.startswith("listening on "):
                self._port = int(line.rsplit(":", 1)[1])
                self._ready.set()
        self._ready.set()  # exited before listening: the constructor reports the output

    def output(self) -> str:
        """Everything the server printed so far."""
        return "\n".join(self._lines)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the way a crashed or unplugged server disappears."""
        if self.process.poll() is None:
            self.process.kill()
        self._finish(10.0)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM (the server stops cleanly), SIGKILL if it does not within `timeout_s`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._finish(timeout_s)
        return int(self.process.returncode)

    def _finish(self, timeout_s: float) -> None:
        self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=2.0)
        if self._log is not None and not self._reader.is_alive():
            self._log.close()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll `predicate()` until true or `timeout_s` passes (bounded waits for tests and tools)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
