"""Ctrl-C reaches a real `vla-async client` process at every stage: while it waits for a server that is
not there (one waiting line, exit 130 at once), and during the run (ends it, prints the summary)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vla_async.local_server import LocalServer, backend_args

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LIGHT_ROBOT = ["--robot.task=reach_jump", "--robot.render=false", "--robot.cameras=[]"]


class ClientProcess:
    """`python -m robot_client ...` with its stderr collected line by line."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
        self.proc = subprocess.Popen([sys.executable, "-m", "robot_client", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.err):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise AssertionError(f"never saw {text!r}; stderr: {self.err}")
            time.sleep(0.05)

    def interrupt(self, timeout_s: float = 20.0) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout_s)  # stderr is the reader thread's alone
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"Ctrl-C did not stop the client within {timeout_s} s; stderr: {self.err}") from None
        self._reader.join(5)
        assert self.proc.stdout is not None
        return self.proc.returncode, self.proc.stdout.read()


@pytest.mark.timeout(120)
def test_ctrl_c_while_waiting_for_a_server() -> None:
    client = ClientProcess(["--network.port=1", "--network.request_timeout_s=1", *LIGHT_ROBOT])
    client.wait_for("waiting for the policy server at tcp://127.0.0.1:1")
    time.sleep(1.5)  # several status periods: the waiting line must still be there once
    started = time.monotonic()
    code, _ = client.interrupt()
    assert code == 130 and time.monotonic() - started < 10
    assert sum("waiting for the policy server" in line for line in client.err) == 1, client.err
    assert client.err[-1] == "vla-async client: interrupted" and not any("Traceback" in e for e in client.err)


@pytest.mark.timeout(180)
def test_ctrl_c_during_the_run_ends_it_with_a_summary(tmp_path: Path) -> None:
    with LocalServer(backend_args("expert", _sim_spec()), log_path=tmp_path / "server.log") as server:
        client = ClientProcess([f"--network.port={server.port}", "--duration_s=120", "--stop_on_success=false",
                                "--log.live_status=true", *LIGHT_ROBOT])
        client.wait_for("tick", timeout_s=90)  # the status line of a running loop
        code, out = client.interrupt()
    assert code == 0, client.err
    assert "stopping after this tick" in "\n".join(client.err)
    assert out.startswith("strategy vlash_rail, robot so101_sim; the policy was sent the command at the capture tick")
    assert "stalls" in out  # the expert: no cameras, no prefix
    assert not any("Traceback" in e for e in client.err)


def _sim_spec():
    from sim import so101

    return so101.robot_spec(30.0, cameras=())
