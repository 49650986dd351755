"""A private, small Ray head on 127.0.0.1 for tests and benchmarks (never `ray stop`: others may run Ray).

`ray start --head --block` runs in its own session with its own temp dir and free ports, so stopping it
(its process group: SIGTERM, then SIGKILL) ends exactly the processes it started and no other Ray
instance on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
#: Ray replaces --node-ip-address=127.0.0.1 by the machine's address unless it thinks it runs a single-node
#: cluster (its Windows/macOS mode): then the head, its workers and drivers stay on loopback.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free on 127.0.0.1 a moment ago."""
    socks, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


WORKER_PORTS = 200  # width of the worker port range handed to `ray start`


def worker_port_range(taken: list[int], width: int = WORKER_PORTS, tries: int = 100) -> int:
    """The first port of `width` + 1 consecutive ports (a free one first) that holds none of `taken`: Ray refuses
    to start when a component's port falls inside the worker range (a CI run hit it: runtime_env 49809 in 49779…)."""
    for _ in range(tries):
        lo = free_ports(1)[0]
        if lo + width <= 65535 and not any(lo <= p <= lo + width for p in taken):
            return lo
    raise RuntimeError(f"no {width + 1}-port worker range clear of {sorted(taken)} in {tries} tries")


class LocalRayHead:
    """`with LocalRayHead(num_cpus=4) as head: ray.init(address=head.address)`."""

    def __init__(self, *, num_cpus: int = 4, startup_timeout_s: float = 180.0, nice: int = 0, attempts: int = 2):
        for attempt in range(attempts):  # a loaded machine can miss Ray's own 30 s raylet start-up wait
            try:
                self._start(num_cpus, startup_timeout_s, nice)
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise

    @property
    def env(self) -> dict[str, str]:
        """Environment for drivers of this head (child processes that call ray.init)."""
        return {**LOOPBACK_ENV, "PYTHONPATH": _ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def _start(self, num_cpus: int, startup_timeout_s: float, nice: int) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="vlaray_", dir="/tmp")  # short: Ray's socket paths are limited
        ports = free_ports(8)
        gcs, node_manager, object_manager, client, agent_listen, agent_grpc, runtime_env, metrics = ports
        worker_lo = worker_port_range(ports)
        self.address = f"127.0.0.1:{gcs}"
        ray_bin = str(Path(sys.executable).with_name("ray"))
        argv = [ray_bin, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                f"--num-cpus={num_cpus}", "--num-gpus=0", f"--temp-dir={self.temp_dir}", "--include-dashboard=false",
                "--disable-usage-stats", f"--node-manager-port={node_manager}",
                f"--object-manager-port={object_manager}", f"--ray-client-server-port={client}",
                f"--dashboard-agent-listen-port={agent_listen}", f"--dashboard-agent-grpc-port={agent_grpc}",
                f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
                f"--min-worker-port={worker_lo}", f"--max-worker-port={worker_lo + WORKER_PORTS}",
                "--object-store-memory=100000000"]
        if nice:
            argv = ["nice", "-n", str(nice), *argv]
        env = {**os.environ, **self.env}
        self.log_path = Path(self.temp_dir) / "ray_start.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        if not self._wait_ready(startup_timeout_s):
            output = self.output()
            self.stop()
            raise RuntimeError(f"ray head did not start within {startup_timeout_s:.0f} s:\n{output[-3000:]}")

    def _wait_ready(self, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        host, port = self.address.split(":")
        while time.monotonic() < end:
            if self.process.poll() is not None:
                return False
            if "Ray runtime started" in self.output():
                with socket.socket() as s:
                    if s.connect_ex((host, int(port))) == 0:
                        return True
            time.sleep(0.2)
        return False

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> None:
        """End this head and everything it started (its process group and every descendant: some Ray
        workers start their own process group), then remove its temp dir."""
        started = _descendants(self.process.pid)  # before the head goes: orphans are re-parented
        try:
            pgid = os.getpgid(self.process.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None:
            _signal_group(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        started |= _descendants(self.process.pid)
        if pgid is not None:
            _signal_group(pgid, signal.SIGKILL)  # whatever outlived the head
        for pid in started:
            _kill(pid)
        self.process.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRayHead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _descendants(root: int) -> set[int]:
    """Every process below `root` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
