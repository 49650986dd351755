"""A robot client with a fleet route (no Ray here): a stdlib HTTP route backed by the real FleetRegistry,
two real policy server processes. The client asks the route at start, and when its replica is killed it
notices the closed connection, re-asks at once naming the lost replica, and gets chunks from the other."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from policy_server.fleet.registry import FleetRegistry, NoReplicaError, ReplicaLoad, route_answer
from vla_async.config import NetworkConfig
from vla_async.local_server import LocalServer, backend_args, wait_until
from vla_async.messages import Observation
from vla_async.reference_specs import joint_names
from vla_async.specs import RobotSpec
from vla_async.transport import PolicyClient, ReceivedChunk

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
NAMES = joint_names(6)
ROBOT = RobotSpec(name="kin", fps=30.0, state_names=NAMES, action_names=NAMES,
                  position_limits=tuple((-3.0, 3.0) for _ in NAMES))


class Route:
    """GET /route?robot=&failed= over a FleetRegistry; replicas report while their process lives."""

    def __init__(self, servers: list[LocalServer]):
        self.registry = FleetRegistry(report_timeout_s=1.0)
        self.lock = threading.Lock()
        self.asks: list[dict] = []
        self.servers = {f"replica{i}": s for i, s in enumerate(servers)}
        for rid, s in self.servers.items():
            self.registry.register(rid, "127.0.0.1", s.port, pid=s.process.pid)
        route = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
                with route.lock:
                    route.asks.append(query)
                    try:
                        body, code = route_answer(route.registry.assign(query["robot"], query.get("failed"))), 200
                    except NoReplicaError as exc:
                        body, code = {"error": str(exc)}, 503
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/route"
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.http.serve_forever, daemon=True),
                         threading.Thread(target=self._report, daemon=True)]
        for t in self._threads:
            t.start()

    def _report(self):
        while not self._stop.wait(0.2):
            with self.lock:
                for rid, s in self.servers.items():
                    if s.alive():
                        self.registry.report(rid, ReplicaLoad())

    def close(self):
        self._stop.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture()
def fleet():
    args = [*backend_args("linear", ROBOT), "--log_level=warning"]
    with LocalServer(args) as a, LocalServer(args) as b:
        route = Route([a, b])
        try:
            yield route, a, b
        finally:
            route.close()


def _obs(rid: int) -> Observation:
    return Observation(rid, rid, rid, np.zeros(6, np.float32), {})


def _chunks_after(client: PolicyClient, first_rid: int, count: int, timeout_s: float) -> list[ReceivedChunk]:
    """Submit requests one at a time from `first_rid` until `count` chunks answering them arrived (or the
    timeout). A late reply to an earlier call's request (ids below `first_rid`) is not counted."""
    got: list[ReceivedChunk] = []
    rid, end = first_rid, time.monotonic() + timeout_s
    client.submit(_obs(rid))
    while len(got) < count and time.monotonic() < end:
        client.wait(0.1)
        for item in client.poll():
            if isinstance(item, ReceivedChunk) and item.chunk.request_id >= first_rid and len(got) < count:
                got.append(item)
            rid += 1
            client.submit(_obs(rid))
    return got


def test_the_client_follows_the_route_and_fails_over_when_its_replica_dies(fleet):
    route, a, b = fleet
    net = NetworkConfig(route_url=route.url, port=1)  # port 1: only the fallback, never used here
    with PolicyClient(net, "arm-1", ROBOT) as client:
        client.connect(30)
        first = client.server_address
        assert first in (f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}")
        assert route.asks[0] == {"robot": "arm-1"}
        assert len(_chunks_after(client, 1, 3, 30)) == 3
        victim, survivor = (a, b) if first.endswith(f":{a.port}") else (b, a)
        victim.kill()
        killed_at = time.monotonic()
        after = _chunks_after(client, 100, 2, 30)
        assert len(after) == 2 and after[0].received_at > killed_at
        assert client.server_address == f"127.0.0.1:{survivor.port}"
        assert {"robot": "arm-1", "failed": first} in route.asks  # re-asked naming the lost replica
        stats = client.stats
        assert stats["disconnects"] >= 1 and stats["route_asks"] >= 2 and stats["reconnects"] >= 1


def test_an_unreachable_route_falls_back_to_the_configured_address(fleet):
    route, a, _ = fleet
    net = NetworkConfig(route_url="http://127.0.0.1:9/route", port=a.port, route_timeout_s=0.5)
    with PolicyClient(net, "arm-2", ROBOT) as client:
        client.connect(30)
        assert client.server_address == f"127.0.0.1:{a.port}"
        assert client.stats["route_errors"] >= 1
        assert len(_chunks_after(client, 1, 2, 30)) == 2


def test_a_robot_asking_again_keeps_its_replica(fleet):
    route, _, _ = fleet
    net = NetworkConfig(route_url=route.url, port=1)
    addresses = set()
    for _ in range(3):
        with PolicyClient(net, "arm-3", ROBOT) as client:
            client.connect(30)
            addresses.add(client.server_address)
    assert len(addresses) == 1
    assert wait_until(lambda: route.registry.counts["sticky"] >= 2, 1.0)


class StaticRoute:
    """An HTTP route that always gives the same answer."""

    def __init__(self, answer: dict):
        body = json.dumps(answer).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/route"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


def test_the_route_hands_over_the_curve_key_and_a_pinned_key_refuses_another(tmp_path):
    import shutil

    import zmq.auth

    from vla_async.keys import make_key_pair

    for name in ("server", "robot", "other"):
        make_key_pair(tmp_path, name)
    (tmp_path / "authorized").mkdir()
    shutil.copy(tmp_path / "robot.key", tmp_path / "authorized" / "robot.key")
    args = [*backend_args("linear", ROBOT), "--log_level=warning", "--network.curve.enabled=true",
            f"--network.curve.server_secret_key={tmp_path / 'server.key_secret'}",
            f"--network.curve.authorized_keys_dir={tmp_path / 'authorized'}"]
    key = zmq.auth.load_certificate(str(tmp_path / "server.key"))[0].decode()
    with LocalServer(args) as server:
        route = StaticRoute({"host": "127.0.0.1", "port": server.port, "replica": "r", "server_public_key": key})
        try:
            curve = {"enabled": True, "client_secret_key": str(tmp_path / "robot.key_secret")}
            with PolicyClient(NetworkConfig(route_url=route.url, port=1, curve=curve), "arm-5", ROBOT) as client:
                client.connect(30)  # no server key file: the route's key
                assert len(_chunks_after(client, 1, 1, 30)) == 1
            pinned = {**curve, "server_public_key": str(tmp_path / "other.key")}
            with PolicyClient(NetworkConfig(route_url=route.url, port=1, curve=pinned), "arm-6", ROBOT) as client:
                with pytest.raises(TimeoutError, match="differs from network.curve.server_public_key"):
                    client.connect(2)
        finally:
            route.close()
