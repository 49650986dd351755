"""Fuzz campaigns against real processes on 127.0.0.1, with a correct client requesting throughout.

`server_campaign`: a real `python -m policy_server` process; an attacker process
(`vla_async.fuzz.attacker`) builds its messages, then (after the correct client's baseline) sends
them as fast as it can while a correct PolicyClient requests at `rate_hz`, optionally from a new
connection every `rotate_every` messages. Reports what the issue asks: thread deaths, process exits,
the correct client's chunks (all arrived? in order?) and reply latency before vs during the fuzz, the
server's peak RSS (VmHWM), and the server's own counters (what reached the decoder, what its penalty
box dropped unread). Used by the CI test (20,000 messages) and `vla-async bench fuzz`.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_async.config import NetworkConfig
from vla_async.local_server import LocalServer
from vla_async.messages import Observation
from vla_async.protocol import encode
from vla_async.reference_specs import reference_robot_spec
from vla_async.specs import RobotSpec
from vla_async.transport import PolicyClient, ReceivedChunk

_ROOT = str(Path(__file__).resolve().parents[2])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (peak RSS) in KiB and the thread count of a live process, from /proc."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_s(pid: int) -> float:
    """CPU time (user + system, all threads) a live process has used so far, in seconds; 0 when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class Reply:
    request_id: int
    phase: str
    latency_s: float | None  # None: no chunk (an error or no reply)


@dataclass
class CorrectClient:
    """A well-behaved robot: one request at a time at `rate_hz`, every reply recorded with the phase."""

    network: NetworkConfig
    robot: RobotSpec
    rate_hz: float = 30.0
    phase: str = "before"
    replies: list[Reply] = field(default_factory=list)
    arrival_order: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="correct-client", daemon=True)
        self.client = PolicyClient(self.network, "correct", self.robot)

    def start(self) -> CorrectClient:
        self.client.connect(30.0)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30.0)
        self.client.close()

    def _obs(self, rid: int) -> Observation:
        images = {c.name: np.full(c.shape, rid % 256, np.uint8) for c in self.robot.cameras}
        return Observation(rid, rid, rid, np.full(self.robot.state_dim, 0.01, np.float32), images, deadline_ms=30_000)

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        rid = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            rid += 1
            phase, t0 = self.phase, time.monotonic()
            self.client.submit(self._obs(rid))
            self.replies.append(Reply(rid, phase, self._await(rid, t0)))
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _await(self, rid: int, t0: float) -> float | None:
        end = t0 + self.network.request_timeout_s + 5.0
        while time.monotonic() < end:
            self.client.wait(0.05)
            for item in self.client.poll():
                if isinstance(item, ReceivedChunk):
                    self.arrival_order.append(item.chunk.request_id)
                    if item.chunk.request_id == rid:
                        return time.monotonic() - t0
                elif item.request_id == rid:
                    self.errors.append(f"{item.code.value}: {item.message}")
                    return None
        return None

    def summary(self) -> dict[str, Any]:
        got = [r for r in self.replies if r.latency_s is not None]
        ids = [r.request_id for r in self.replies]
        return {
            "requests": len(self.replies), "chunks": len(got), "lost": len(self.replies) - len(got),
            "in_order": self.arrival_order == sorted(self.arrival_order) and self.arrival_order == ids[:len(
                self.arrival_order)],
            "p99_ms": {phase: _p99([r.latency_s for r in got if r.phase == phase]) for phase in ("before", "during")},
            "p50_ms": {phase: _p50([r.latency_s for r in got if r.phase == phase]) for phase in ("before", "during")},
            "errors": self.errors[:5], "transport": self.client.stats, "failure": self.client.failure,
        }


def _p99(values: list[float]) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, 99)) if values else float("nan")


def _p50(values: list[float]) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, 50)) if values else float("nan")


class _Attacker:
    """`python -m vla_async.fuzz.attacker --wait-for-go`: it connects (and with `prebuild` builds all its
    messages) before the baseline is measured, then attacks on `go()`."""

    def __init__(self, port: int, messages: int, seed: int, image_size: tuple[int, int], rate: float,
                 rotate_every: int, prebuild: bool):
        self.proc = _module_process("vla_async.fuzz.attacker", [
            "--port", str(port), "--messages", str(messages), "--seed", str(seed), "--image-size", str(image_size[0]),
            str(image_size[1]), "--rate", str(rate), "--rotate-every", str(rotate_every), "--wait-for-go",
            *(["--prebuild"] if prebuild else [])])
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":  # EOF when it failed
            self.finish(0, {}, 10.0)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, server_pid: int, peak: dict[str, int], timeout_s: float) -> dict[str, Any]:
        """Wait for the attack to end (sampling the server's RSS and threads into `peak`); its report."""
        end = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < end:
            status = proc_status(server_pid)
            peak["rss_kib"] = max(peak.get("rss_kib", 0), status.get("VmRSS", 0))
            peak["threads_min"] = min(peak.get("threads_min", 1 << 30), status.get("Threads", 0))
            time.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
        out, err = self.proc.communicate(timeout=10)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"the attacker failed: {err[-2000:]}")
        return json.loads(lines[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _module_process(module: str, args: list[str], stderr: Any = subprocess.PIPE) -> subprocess.Popen:
    """`python -m module args` with this checkout first on the path, talking over stdin/stdout (text)."""
    env = {**os.environ, "PYTHONPATH": _ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=stderr, text=True, env=env)


class LateJoin:
    """A second correct robot that connects once the attack has begun (a new robot must still get in), in a
    process of its own (`vla_async.fuzz.late_client`), so it does not share the measuring client's interpreter."""

    def __init__(self, port: int, rate_hz: float, image_size: tuple[int, int]):
        """Starts the process (it imports, then waits for `connect`). Its stderr goes to a file, read only when it
        fails: a pipe nobody reads during the attack could fill up with its log lines and block it."""
        self._log = tempfile.TemporaryFile(mode="w+")
        self.proc = _module_process("vla_async.fuzz.late_client", [
            "--port", str(port), "--rate", str(rate_hz), "--image-size", str(image_size[0]), str(image_size[1])],
            stderr=self._log)
        assert self.proc.stdout is not None
        self._ready = self.proc.stdout.readline().strip() == "ready"
        self.during_attack = False
        self.state: dict[str, Any] = {"connected": False, "error": "not asked to connect"}

    def connect(self, hostile: _Attacker) -> None:
        """Connect now; returns once it has connected or given up."""
        assert self.proc.stdout is not None
        self._say("connect")
        first = self.proc.stdout.readline() if self._ready else ""
        self.during_attack = hostile.proc.poll() is None  # the attacker was still sending when the attempt ended
        try:
            self.state = json.loads(first)
        except ValueError:
            self._log.seek(0)
            self.state = {"connected": False, "error": f"the late client failed: {self._log.read()[-300:]!r}"}

    def _say(self, command: str) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(command + "\n")
                self.proc.stdin.flush()
        except OSError:  # it has just exited: its summary (or its absence) says why
            pass

    def after(self) -> None:
        """Its later replies count as after the attack."""
        self._say("after")

    def finish(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Stop it; its summary (`connected`, `error`, `during_attack` and the CorrectClient summary)."""
        self._say("stop")
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=10)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if self.state.get("connected") and lines:
            self.state = json.loads(lines[-1])
        return {"error": None, **self.state, "during_attack": self.during_attack}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def _linear_server_args(image_size: tuple[int, int], *extra: str) -> list[str]:
    """`python -m policy_server` arguments for the fuzz campaigns: the linear model, quiet logs, then `extra`."""
    return ["--backend.name=linear", f"--backend.options.image_size=[{image_size[0]},{image_size[1]}]",
            "--log_level=warning", *extra]


def server_campaign(messages: int, *, seed: int = 0, rate_hz: float = 30.0, baseline_s: float = 3.0,
                    image_size: tuple[int, int] = (8, 8), timeout_s: float = 600.0,
                    server_args: tuple[str, ...] = (), fuzz_rate: float = 0.0,
                    rotate_every: int = 0, prebuild: bool = True, late_client: bool = False) -> dict[str, Any]:
    """Fuzz a real server process with `messages` malformed messages (`fuzz_rate` messages/s, 0 = as
    fast as the server takes them; `rotate_every` > 0: the attacker takes new identities every that
    many messages; `prebuild`: it builds them all before the baseline, so building them loads neither
    phase; without, building paces it as in a CI run; `late_client`: a second correct robot connects
    once the attack has begun); see the module docstring. `server_stats` are the server's own
    counters (how many messages it read, dropped unread by the stranger budget or the penalty box, ...)."""
    robot = reference_robot_spec(image_size=image_size)
    args = _linear_server_args(image_size, *server_args)
    with LocalServer(args) as server:
        pid = server.process.pid
        start = proc_status(pid)
        hostile = _Attacker(server.port, messages, seed, image_size, fuzz_rate, rotate_every, prebuild)
        late = LateJoin(server.port, rate_hz, image_size) if late_client else None  # started (imports) before the baseline
        try:
            correct = CorrectClient(NetworkConfig(port=server.port, request_timeout_s=10.0), robot, rate_hz).start()
            time.sleep(baseline_s)
            correct.phase = "during"
            peak: dict[str, int] = {}
            cpu0, t0 = proc_cpu_s(pid), time.monotonic()
            hostile.go()
            if late is not None:
                late.connect(hostile)
            attacker = hostile.finish(pid, peak, timeout_s)
            attack_cpu = {"cpu_s": proc_cpu_s(pid) - cpu0, "wall_s": time.monotonic() - t0}
            correct.phase = "after"
            if late is not None:
                late.after()
            time.sleep(1.0)
            correct.stop()
            late_summary = late.finish() if late is not None else None
        finally:
            hostile.kill()
            if late is not None:
                late.kill()
        end = proc_status(pid)
        alive = server.alive()
        exit_code = server.stop()
        output = server.output()
    died = output.count("died:")
    return {
        "messages": attacker.get("sent", 0), "attacker": attacker, "correct_client": correct.summary(),
        "server_alive_after": alive, "server_exit_code": exit_code, "process_exits": 0 if alive else 1,
        "thread_deaths": died + max(0, start.get("Threads", 0) - end.get("Threads", 0)),
        "threads": {"start": start.get("Threads"), "min_during": peak.get("threads_min"), "end": end.get("Threads")},
        "server_during_attack": attack_cpu,
        "rss_mib": {"start": start.get("VmRSS", 0) / 1024, "peak_sampled": peak.get("rss_kib", 0) / 1024,
                    "peak_hwm": end.get("VmHWM", 0) / 1024},
        "server_log_tail": output.splitlines()[-5:], "server_stats": server_stats(output),
        **({"late_client": late_summary} if late_summary is not None else {}),
    }


def machine_reference(messages: int, *, seed: int = 0, rate_hz: float = 30.0, baseline_s: float = 5.0,
                      image_size: tuple[int, int] = (8, 8), timeout_s: float = 600.0) -> dict[str, Any]:
    """What the machine alone does to a round trip under the flood: the same attack at a real server, while a
    bare DEALER exchanges a pre-encoded observation at `rate_hz` with a bare ZeroMQ echo in another process
    (`vla_async.bench.raw_zmq`) that nobody attacks. Its p50/p99 before vs during, in ms; on a shared machine
    (attacker, server and client on the same cores) the ratio is the floor the server's own ratio sits on."""
    from vla_async.bench.raw_zmq import RawDealer  # bench code: only this reference needs it

    robot = reference_robot_spec(image_size=image_size)
    obs = Observation(1, 1, 1, np.full(robot.state_dim, 0.01, np.float32),
                      {c.name: np.zeros(c.shape, np.uint8) for c in robot.cameras})
    frames = [bytes(f) for f in encode(obs)]
    echo = _module_process("vla_async.bench.raw_zmq", [])
    try:
        assert echo.stdout is not None
        line = echo.stdout.readline().strip()  # "listening on tcp://127.0.0.1:PORT", or EOF if it failed
        if not line.startswith("listening on "):
            raise RuntimeError(f"the reference echo server did not start: {line or 'no output'}")
        port = int(line.rsplit(":", 1)[1])
        with LocalServer(_linear_server_args(image_size)) as server, RawDealer(port) as dealer:
            hostile = _Attacker(server.port, messages, seed, image_size, 0.0, 0, True)
            try:
                before, lost = dealer.round_trips(frames, max(1, round(baseline_s * rate_hz)), 1.0 / rate_hz)
                hostile.go()
                during: list[float] = []
                while hostile.proc.poll() is None:
                    rtts, failed = dealer.round_trips(frames, 1, timeout_s=5.0)
                    during += rtts
                    lost += failed
                    time.sleep(1.0 / rate_hz)
                hostile.finish(server.process.pid, {}, timeout_s)
            finally:
                hostile.kill()
    finally:
        echo.kill()
        echo.wait(10)
    return {"requests": {"before": len(before), "during": len(during)}, "lost": lost,
            "p50_ms": {"before": _p50(before), "during": _p50(during)},
            "p99_ms": {"before": _p99(before), "during": _p99(during)}}


def server_stats(output: str) -> dict[str, int]:
    """The counters `vla-async serve` prints when it stops (`stopped; stats {...}`); {} when absent."""
    for line in reversed(output.splitlines()):
        head, sep, tail = line.partition("stopped; stats ")
        if sep:
            try:
                stats = ast.literal_eval(tail.strip())
            except (ValueError, SyntaxError):
                return {}
            return {k: v for k, v in stats.items() if type(k) is str and type(v) is int}
    return {}


class _HostileProcess:
    """`python -m vla_async.fuzz.hostile_server` as a child process; `done` once it sent everything."""

    def __init__(self, messages: int, seed: int, image_size: tuple[int, int], port: int = 0):
        env = {**os.environ, "PYTHONPATH": _ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cmd = [sys.executable, "-m", "vla_async.fuzz.hostile_server", "--port", str(port), "--messages",
               str(messages), "--seed", str(seed), "--image-size", str(image_size[0]), str(image_size[1])]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.port = 0
        self.report: dict[str, Any] | None = None
        self.lines: list[str] = []
        self._listening = threading.Event()
        self._done = threading.Event()
        threading.Thread(target=self._read, name="hostile-output", daemon=True).start()
        if not self._listening.wait(30.0):
            self.process.kill()
            raise RuntimeError("hostile server did not start:\n" + "\n".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("listening on "):
                self.port = int(line.rsplit(":", 1)[1])
                self._listening.set()
            elif line.startswith("{"):
                self.report = json.loads(line)
                self._done.set()
        self._listening.set()
        self._done.set()

    def wait_done(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s) and self.report is not None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


FAST_NETWORK = {"heartbeat_interval_s": 0.1, "heartbeat_timeout_s": 0.5, "reconnect_min_s": 0.05,
                "reconnect_max_s": 0.3, "request_timeout_s": 10.0}


def client_campaign(messages: int, *, seed: int = 0, rate_hz: float = 30.0, image_size: tuple[int, int] = (8, 8),
                    timeout_s: float = 300.0) -> dict[str, Any]:
    """A correct PolicyClient against a hostile server that sends `messages` malformed messages around
    correct replies; then the hostile server dies and a real server takes its port: the client must
    have delivered every real chunk in order, counted the garbage, and reconnect to the real server."""
    robot = reference_robot_spec(image_size=image_size)
    hostile = _HostileProcess(messages, seed, image_size)
    port = hostile.port
    correct = CorrectClient(NetworkConfig(port=port, **FAST_NETWORK), robot, rate_hz)
    try:
        correct.start()
        correct.phase = "during"
        finished = hostile.wait_done(timeout_s)
        time.sleep(1.0)
        during = len(correct.replies)
        hostile.kill()
        correct.phase = "after"
        with LocalServer(_linear_server_args(image_size), port=port):
            end = time.monotonic() + 30.0
            while time.monotonic() < end and sum(
                    1 for r in correct.replies[during:] if r.latency_s is not None) < 5:
                time.sleep(0.1)
            correct.stop()
    finally:
        hostile.kill()
        correct.stop()
    summary = correct.summary()
    after = correct.replies[during:]
    return {"messages": (hostile.report or {}).get("sent", 0), "hostile_finished": finished,
            "hostile": hostile.report, "correct_client": summary,
            "during": {"requests": during, "chunks": sum(1 for r in correct.replies[:during] if r.latency_s)},
            "after_real_server": {"requests": len(after), "chunks": sum(1 for r in after if r.latency_s)}}
