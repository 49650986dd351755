"""The fleet registry (pure logic): liveness from reports, sticky and least-loaded assignment, failure
reports, and the autoscaling policy's replica count."""

from __future__ import annotations

import pytest

from policy_server.fleet.autoscale import FleetAutoscalingPolicy, desired_replicas
from policy_server.fleet.registry import FleetRegistry, NoReplicaError, ReplicaLoad, route_answer


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _registry(*ids: str) -> tuple[FleetRegistry, Clock]:
    clock = Clock()
    reg = FleetRegistry(report_timeout_s=1.0, assignment_hold_s=10.0, clock=clock)
    for i, rid in enumerate(ids):
        reg.register(rid, "10.0.0.1", 6000 + i, pid=10 + i)
    return reg, clock


def _tick(reg: FleetRegistry, clock: Clock, dt: float, *live: str, robots: dict | None = None) -> None:
    clock.t += dt
    for rid in live:
        reg.report(rid, ReplicaLoad(robots=tuple((robots or {}).get(rid, ()))))


def test_robots_spread_least_loaded_and_stay_sticky():
    reg, clock = _registry("a", "b")
    picks = [reg.assign(f"r{i}").replica_id for i in range(8)]
    assert picks.count("a") == 4 and picks.count("b") == 4
    assert [reg.assign(f"r{i}").replica_id for i in range(8)] == picks  # asking again: same replica
    assert reg.counts["sticky"] == 8 and reg.counts["moved"] == 0


def test_a_silent_replica_is_dead_and_its_robots_move():
    reg, clock = _registry("a", "b")
    first = reg.assign("r0").replica_id
    other = "b" if first == "a" else "a"
    _tick(reg, clock, 0.5, "a", "b")
    _tick(reg, clock, 0.7, other)  # `first` has been silent for 0.7 s: still live
    assert reg.assign("r0").replica_id == first
    _tick(reg, clock, 0.5, other)  # silent for 1.2 s > report_timeout_s
    assert reg.assign("r0").replica_id == other
    assert reg.counts["moved"] == 1


def test_a_failure_report_moves_the_robot_at_once_and_a_live_replica_clears_after_two_reports():
    reg, clock = _registry("a", "b")
    first = reg.assign("r0")
    other = "b" if first.replica_id == "a" else "a"
    moved = reg.assign("r0", failed=first.address)  # reports are fresh, but the robot lost it
    assert moved.replica_id == other
    assert reg.assign("r1").replica_id == other  # suspect: no new robots either
    _tick(reg, clock, 0.2, "a", "b")
    assert first.replica_id not in [s.replica_id for s in reg.live()]
    _tick(reg, clock, 0.2, "a", "b")
    assert first.replica_id in [s.replica_id for s in reg.live()]  # it kept reporting: trusted again


def test_unhealthy_reports_take_a_replica_out():
    reg, clock = _registry("a")
    clock.t += 0.1
    reg.report("a", ReplicaLoad(problem="server thread(s) not alive: server-worker"))
    with pytest.raises(NoReplicaError):
        reg.assign("r0")
    reg.report("a", ReplicaLoad())
    assert reg.assign("r0").replica_id == "a"


def test_load_counts_connected_robots_and_recent_assignments_only():
    reg, clock = _registry("a", "b")
    for i in range(4):
        reg.assign(f"r{i}")
    on_a = reg.robots_on("a")
    assert len(on_a) == 2
    connected = sorted(on_a)[:1]
    _tick(reg, clock, 11.0, "a", "b", robots={"a": connected})  # past assignment_hold_s: only connected count
    assert reg.robots_on("a") == set(connected)
    assert reg.report("a", ReplicaLoad(robots=tuple(connected))) == 1
    assert reg.report("zz", ReplicaLoad()) == -1  # unknown: must register again


def test_route_answer_and_status_are_json_ready():
    reg, _ = _registry("a")
    answer = route_answer(reg.assign("r0"))
    assert answer == {"host": "10.0.0.1", "port": 6000, "replica": "a", "server_public_key": None}
    status = reg.status()
    assert status["robots"] == {"r0": "a"} and status["replicas"][0]["robots"] == ["r0"]


@pytest.mark.parametrize("robots,current,want", [(0, 1, 1), (8, 1, 1), (9, 1, 2), (16, 2, 2), (3, 2, 1)])
def test_desired_replicas_from_robots(robots, current, want):
    assert desired_replicas(robots, 0, 0, current, robots_per_replica=8, max_queue_depth=0, max_latency_ms=0) == want


def test_desired_replicas_adds_one_when_queues_or_latency_are_over_target():
    kw = dict(robots_per_replica=8, max_queue_depth=2.0, max_latency_ms=200.0)
    assert desired_replicas(4, 5, 50, 1, **kw) == 2
    assert desired_replicas(4, 0, 250, 1, **kw) == 2
    assert desired_replicas(4, 1, 50, 1, **kw) == 1


def test_the_serve_policy_reads_the_replicas_custom_metrics():
    class Ctx:
        current_num_replicas = 1
        aggregated_metrics = {"robots": {"x": 5.0}, "queue_depth": {"x": 0.0}, "latency_ms": {"x": 10.0}}

    assert FleetAutoscalingPolicy(robots_per_replica=4)(Ctx())[0] == 2
    Ctx.aggregated_metrics = {}
    assert FleetAutoscalingPolicy(robots_per_replica=4)(Ctx())[0] == 1
