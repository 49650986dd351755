"""Many kinematic robots, each with its own real-time client loop and policy client, in one process:
the load of a fleet benchmark or test. Every chunk, request and command is recorded per robot, so the
caller can compute round trips, lost and misordered chunks, failover times and limit violations.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_client.kinematic_robot import KinematicRobot, kinematic_spec
from robot_client.loop import RealTimeClient
from vla_async.config import ClientConfig, NetworkConfig, SafetyConfig
from vla_async.messages import ErrorMessage, Observation
from vla_async.specs import RobotSpec
from vla_async.transport import PolicyClient, ReceivedChunk


class RecordingPolicyClient(PolicyClient):
    """A PolicyClient that keeps (request id, sent, received) of every chunk and every submitted id."""

    def __init__(self, network: NetworkConfig, client_name: str, robot_spec: RobotSpec):
        super().__init__(network, client_name, robot_spec)
        self.submitted: list[tuple[int, float]] = []
        self.chunks: list[tuple[int, int, float, float]] = []  # request id, start tick, sent, received
        self.errors: list[tuple[int | None, int, float]] = []  # request id, code, time
        self.addresses: list[tuple[float, str]] = []  # (time, host:port) when the address changed

    def submit(self, obs: Observation) -> None:
        self.submitted.append((obs.request_id, time.monotonic()))
        super().submit(obs)

    def poll(self) -> list[ReceivedChunk | ErrorMessage]:
        items = super().poll()
        now = time.monotonic()
        if not self.addresses or self.addresses[-1][1] != self.server_address:
            self.addresses.append((now, self.server_address))
        for item in items:
            if isinstance(item, ReceivedChunk):
                self.chunks.append((item.chunk.request_id, item.chunk.start_tick, item.sent_at, item.received_at))
            else:
                self.errors.append((item.request_id, int(item.code), now))
        return items


class LimitCheckedRobot(KinematicRobot):
    """Counts commands outside the position limits or moving more than `max_step` in one tick."""

    def __init__(self, spec: RobotSpec, max_step: float):
        super().__init__(spec)
        self.max_step = float(max_step)
        self.violations = 0
        self.commands = 0
        self._last: np.ndarray | None = None
        self._low, self._high = (np.asarray(spec.position_limits, dtype=np.float64).T if spec.position_limits
                                 else (None, None))

    def send_action(self, action: np.ndarray) -> np.ndarray:
        cmd = np.asarray(action, dtype=np.float64).reshape(self.spec.action_dim)
        bad = self._low is not None and (np.any(cmd < self._low - 1e-9) or np.any(cmd > self._high + 1e-9))
        if self._last is not None and np.max(np.abs(cmd - self._last)) > self.max_step + 1e-6:
            bad = True
        self.violations += int(bool(bad))
        self.commands += 1
        self._last = cmd.copy()
        return super().send_action(cmd)


@dataclass
class RobotRun:
    name: str
    policy: RecordingPolicyClient
    robot: LimitCheckedRobot
    client: RealTimeClient
    error: str | None = None
    summary: Any = None
    thread: threading.Thread | None = field(default=None, repr=False)


def robot_network(base: NetworkConfig, **fields: Any) -> NetworkConfig:
    return base.model_copy(update=fields)


def start_robots(networks: dict[str, NetworkConfig], *, joints: int = 6, fps: float = 30.0, duration_s: float,
                 connect_timeout_s: float = 60.0) -> list[RobotRun]:
    """Start one RealTimeClient per robot name (each in a thread) for `duration_s`; join with `join_robots`."""
    spec = kinematic_spec(joints, fps)
    safety = SafetyConfig()
    runs = []
    for name, network in networks.items():
        config = ClientConfig(network=network, safety=safety, duration_s=duration_s, stop_on_success=False,
                              client_name=name, log={"print_summary": False, "live_status": False})
        robot = LimitCheckedRobot(spec, max_step=float(np.max(safety.max_step)))
        policy = RecordingPolicyClient(network, name, spec)
        runs.append(RobotRun(name, policy, robot, RealTimeClient(config, robot, policy,
                                                                 connect_timeout_s=connect_timeout_s)))
    for run in runs:
        run.thread = threading.Thread(target=_run_one, args=(run,), name=f"robot-{run.name}", daemon=True)
        run.thread.start()
    return runs


def _run_one(run: RobotRun) -> None:
    run.robot.connect()
    try:
        run.summary = run.client.run()
    except Exception as exc:  # noqa: BLE001 - reported per robot by the caller
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        run.robot.disconnect()


def join_robots(runs: list[RobotRun], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    for run in runs:
        assert run.thread is not None
        run.thread.join(max(0.1, end - time.monotonic()))
        if run.thread.is_alive():
            run.client.stop("benchmark over")
            run.thread.join(10.0)
    for run in runs:
        run.policy.close()


@dataclass(frozen=True)
class RobotResult:
    """One robot's numbers over a window of its run."""

    name: str
    server: str
    round_trip_p50_ms: float
    round_trip_p99_ms: float
    chunks: int
    lost: int  # requests sent that ended with an error or no reply (in flight at the end excluded)
    misordered: int  # chunks whose request id or start tick went backwards
    reconnects: int
    violations: int
    resume_s: float | None  # first chunk after `since` (failover), None when none came


def robot_result(run: RobotRun, start: float, end: float, *, since: float | None = None) -> RobotResult:
    """Numbers of `run` for requests submitted in [start, end); `since`: the time of a replica kill."""
    chunks = [c for c in run.policy.chunks if start <= c[2] < end]
    rtt = [(received - sent) * 1e3 for _, _, sent, received in chunks]
    got = {c[0] for c in run.policy.chunks}
    last_chunk_sent = max((c[2] for c in run.policy.chunks), default=start)
    submitted = [rid for rid, t in run.policy.submitted if start <= t < min(end, last_chunk_sent + 1e-9)]
    lost = sum(1 for rid in submitted if rid not in got)
    misordered = sum(1 for a, b in zip(chunks, chunks[1:], strict=False) if b[0] < a[0] or b[1] < a[1])
    resume = None
    if since is not None:
        after = [received for _, _, _, received in run.policy.chunks if received > since]
        resume = (min(after) - since) if after else None
    server = run.policy.addresses[0][1] if run.policy.addresses else "?"
    return RobotResult(run.name, server, _pct(rtt, 50), _pct(rtt, 99), len(chunks), lost, misordered,
                       int(run.policy.stats.get("reconnects", 0)), run.robot.violations, resume)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
