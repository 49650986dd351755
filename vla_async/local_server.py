"""Start a policy server as a child process on loopback (round-trip tool, benchmarks, tests).

Only a subprocess is launched here; the core never imports `policy_server`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path


class LocalServer:
    """`python -m policy_server <args>`; `.port` is read from its `listening on` line."""

    def __init__(self, args: Sequence[str] = (), *, port: int = 0, startup_timeout_s: float = 30.0,
                 env: dict[str, str] | None = None):
        argv = [sys.executable, "-m", "policy_server", f"--network.port={port}", *args]
        root = str(Path(__file__).resolve().parents[1])
        full_env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=full_env)
        self.output: list[str] = []
        self.port = self._wait_ready(startup_timeout_s)
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_ready(self, timeout_s: float) -> int:
        found: list[int] = []

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line.rstrip())
                if line.startswith("listening on "):
                    found.append(int(line.rsplit(":", 1)[1]))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not found:
            self.kill()
            raise RuntimeError("policy server did not start:\n" + "\n".join(self.output[-20:]))
        return found[0]

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip())

    def kill(self) -> None:
        """SIGKILL: the abrupt failure a client must survive."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        return int(self.process.returncode)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: object, timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll `predicate()` until true or `timeout_s` passes (bounded waits for tests and tools)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval_s)
    return bool(predicate())  # type: ignore[operator]
