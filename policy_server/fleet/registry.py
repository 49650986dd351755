"""The fleet's registry: which replicas are live, which robot goes where (pure logic, no Ray).

Replicas register (host, port, CURVE public key) and report their load and health every
`report_interval`; a replica is live while its reports keep coming (within `report_timeout_s`) and say
its server's threads are alive. Robots are assigned by the route: sticky (a robot returns to its replica
while that one is live), else the least-loaded live replica. A robot that lost its connection names the
replica (`failed`): that replica is *suspect* and gets no robot until it has reported twice more, so
a dead replica is avoided at once, long before its reports are overdue, and a live one is back within
two report intervals. The Ray actor in policy_server/fleet/ray_app.py wraps one FleetRegistry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: reports a suspect replica must send after the suspicion before it gets robots again
_SUSPECT_CLEARING_REPORTS = 2
_MAX_ROBOTS_REMEMBERED = 10_000


class NoReplicaError(RuntimeError):
    """No live replica to assign a robot to."""


@dataclass(frozen=True)
class ReplicaLoad:
    """One report of a replica: its server's health and load."""

    robots: tuple[str, ...] = ()  # client names of its sessions
    queue_depth: int = 0  # requests waiting for the inference worker
    latency_ms: float = 0.0  # recent server time per chunk (p50)
    problem: str | None = None  # None: the server and its threads are alive


@dataclass
class ReplicaState:
    replica_id: str
    host: str
    port: int
    public_key: str | None
    pid: int
    node: str
    registered_at: float
    last_report: float
    load: ReplicaLoad = field(default_factory=ReplicaLoad)
    suspect_reports: int | None = None  # reports since a robot said it lost this replica; None: trusted

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class FleetRegistry:
    def __init__(self, *, report_timeout_s: float = 1.0, assignment_hold_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.report_timeout_s = float(report_timeout_s)
        self.assignment_hold_s = float(assignment_hold_s)  # an assigned robot counts before it connects
        self._clock = clock
        self._replicas: dict[str, ReplicaState] = {}
        self._sticky: dict[str, tuple[str, float]] = {}  # robot -> (replica_id, assigned at)
        self.counts = {"assignments": 0, "sticky": 0, "moved": 0, "failure_reports": 0}

    # ------------------------------------------------------------------ replicas

    def register(self, replica_id: str, host: str, port: int, *, public_key: str | None = None, pid: int = 0,
                 node: str = "") -> None:
        now = self._clock()
        self._replicas[replica_id] = ReplicaState(replica_id, host, int(port), public_key, int(pid), node, now, now)

    def unregister(self, replica_id: str) -> None:
        self._replicas.pop(replica_id, None)

    def report(self, replica_id: str, load: ReplicaLoad) -> int:
        """A replica's periodic report; returns the robots the registry counts on it (its load for the
        autoscaler). Unknown replicas (e.g. after a registry restart) must register again: -1."""
        state = self._replicas.get(replica_id)
        if state is None:
            return -1
        state.last_report = self._clock()
        state.load = load
        if state.suspect_reports is not None:
            state.suspect_reports += 1
            if state.suspect_reports >= _SUSPECT_CLEARING_REPORTS:
                state.suspect_reports = None
        return len(self.robots_on(replica_id))

    def is_live(self, state: ReplicaState, now: float) -> bool:
        return (state.load.problem is None and now - state.last_report <= self.report_timeout_s
                and state.suspect_reports is None)

    def live(self) -> list[ReplicaState]:
        now = self._clock()
        return [s for s in self._replicas.values() if self.is_live(s, now)]

    def forget_dead(self, older_than_s: float = 60.0) -> list[str]:
        """Drop replicas silent for `older_than_s` (Serve replaced them); returns their ids."""
        now = self._clock()
        gone = [rid for rid, s in self._replicas.items() if now - s.last_report > older_than_s]
        for rid in gone:
            del self._replicas[rid]
        return gone

    # ------------------------------------------------------------------ robots

    def robots_on(self, replica_id: str) -> set[str]:
        """Robots this replica serves: assigned to it and connected, or assigned recently (still connecting)."""
        state = self._replicas.get(replica_id)
        connected = set(state.load.robots) if state is not None else set()
        now = self._clock()
        return {robot for robot, (rid, at) in self._sticky.items()
                if rid == replica_id and (robot in connected or now - at < self.assignment_hold_s)}

    def assign(self, robot: str, failed: str | None = None) -> ReplicaState:
        """The replica for `robot`: its sticky one while live, else the least-loaded live replica.
        `failed` (host:port) is the replica this robot just lost (made suspect). NoReplicaError if none."""
        if failed:
            self._suspect(failed)
        now = self._clock()
        current = self._sticky.get(robot)
        if current is not None:
            state = self._replicas.get(current[0])
            if state is not None and self.is_live(state, now):
                self.counts["sticky"] += 1
                self._sticky[robot] = (state.replica_id, now)
                return state
        live = self.live()
        if not live:
            raise NoReplicaError("no live policy server replica in the fleet (see `vla-async fleet status`)")
        pick = min(live, key=lambda s: (len(self.robots_on(s.replica_id)), s.load.queue_depth,
                                        s.load.latency_ms, s.replica_id))
        self.counts["assignments"] += 1
        if current is not None:
            self.counts["moved"] += 1
        self._remember(robot, pick.replica_id, now)
        return pick

    def _suspect(self, address: str) -> None:
        self.counts["failure_reports"] += 1
        for state in self._replicas.values():
            if state.address == address:
                state.suspect_reports = 0

    def _remember(self, robot: str, replica_id: str, now: float) -> None:
        self._sticky.pop(robot, None)
        self._sticky[robot] = (replica_id, now)
        while len(self._sticky) > _MAX_ROBOTS_REMEMBERED:  # oldest first (insertion order)
            del self._sticky[next(iter(self._sticky))]

    # ------------------------------------------------------------------ views

    def status(self) -> dict:
        """A JSON-able snapshot for `vla-async fleet status` and the bench."""
        now = self._clock()
        replicas = []
        for s in sorted(self._replicas.values(), key=lambda r: r.registered_at):
            replicas.append({
                "replica": s.replica_id, "address": s.address, "node": s.node, "pid": s.pid,
                "live": self.is_live(s, now), "suspect": s.suspect_reports is not None,
                "report_age_s": round(now - s.last_report, 3), "problem": s.load.problem,
                "robots": sorted(self.robots_on(s.replica_id)), "sessions": len(s.load.robots),
                "queue_depth": s.load.queue_depth, "latency_ms": round(s.load.latency_ms, 2),
                "curve": s.public_key is not None,
            })
        return {"replicas": replicas, "robots": {r: rid for r, (rid, _) in self._sticky.items()},
                "counts": dict(self.counts)}


def route_answer(state: ReplicaState) -> dict:
    """The route's JSON answer for an assignment (parsed by vla_async.route.parse_route_answer)."""
    return {"host": state.host, "port": state.port, "replica": state.replica_id,
            "server_public_key": state.public_key}
