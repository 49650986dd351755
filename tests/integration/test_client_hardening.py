"""The robot client under faults: exceptions on one reply, a dying transport thread, an impostor's Welcome."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zmq

import vla_async.transport as transport_module
from robot_client.kinematic_robot import KinematicRobot, kinematic_spec
from robot_client.loop import RealTimeClient, TransportFailure
from vla_async.config import ClientConfig, NetworkConfig, build_config
from vla_async.local_server import LocalServer, wait_until
from vla_async.messages import ErrorCode, ErrorMessage, Observation, Pong, Welcome
from vla_async.protocol import encode
from vla_async.reference_specs import policy_spec_for, reference_robot_spec
from vla_async.transport import PolicyClient, ReceivedChunk

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
ROBOT = reference_robot_spec(image_size=(8, 8))
FAST = dict(heartbeat_interval_s=0.1, heartbeat_timeout_s=0.5, reconnect_min_s=0.05, reconnect_max_s=0.3)


@pytest.fixture(scope="module")
def server():
    with LocalServer(["--backend.options.image_size=[8,8]", "--log_level=warning"]) as srv:
        yield srv


def _obs(rid: int) -> Observation:
    return Observation(rid, rid, rid, np.zeros(14, np.float32), {c.name: np.zeros(c.shape, np.uint8)
                                                                  for c in ROBOT.cameras})


def _request(client: PolicyClient, rid: int) -> ReceivedChunk | ErrorMessage | None:
    client.submit(_obs(rid))
    for _ in range(100):
        client.wait(0.1)
        for item in client.poll():
            if (item.chunk.request_id if isinstance(item, ReceivedChunk) else item.request_id) == rid:
                return item
    return None


def test_an_exception_on_one_reply_is_counted_and_the_transport_goes_on(server, monkeypatch):
    real = transport_module.decode
    broken = {"n": 0}

    def flaky(frames, **kw):
        msg = real(frames, **kw)
        if isinstance(msg, Pong) and broken["n"] < 3:
            broken["n"] += 1
            raise RuntimeError("a bug on this reply")
        return msg

    monkeypatch.setattr(transport_module, "decode", flaky)
    with PolicyClient(NetworkConfig(port=server.port, **FAST), "robot", ROBOT) as client:
        client.connect(10)
        assert wait_until(lambda: broken["n"] == 3, 10)
        assert isinstance(_request(client, 1), ReceivedChunk)
        assert client.failure is None and client.stats["garbage"] >= 3


def test_a_dead_transport_thread_fails_pending_requests_and_says_why(server, monkeypatch):
    with PolicyClient(NetworkConfig(port=server.port, request_timeout_s=30), "robot", ROBOT) as client:
        client.connect(10)

        def broken(now):
            raise MemoryError("out of memory")

        monkeypatch.setattr(client, "_expire_requests", broken)
        client.submit(_obs(1))  # pending when the thread dies, or submitted after: either way it fails now
        assert wait_until(lambda: client.failure is not None, 10)
        assert "vla-transport" in client.failure and "MemoryError" in client.failure
        client.submit(_obs(2))
        items: list = []
        assert wait_until(lambda: items.extend(client.poll()) or {1, 2} <= {
            i.request_id for i in items if isinstance(i, ErrorMessage)} | {
            i.chunk.request_id for i in items if isinstance(i, ReceivedChunk)}, 10)
        failed = [i for i in items if isinstance(i, ErrorMessage) and i.request_id == 2]
        assert failed and failed[0].code == ErrorCode.DEADLINE_EXCEEDED and "transport stopped" in failed[0].message


def _impostor(policy) -> tuple[zmq.Socket, int, threading.Event, threading.Thread]:
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def run():
        while not stop.is_set():
            if sock.poll(50):
                identity, *_ = sock.recv_multipart()
                sock.send_multipart([identity, *encode(Welcome("fake", policy))])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return sock, port, stop, thread


def test_a_welcome_for_another_robot_is_dropped_not_obeyed():
    other = policy_spec_for(reference_robot_spec(state_dim=6, image_size=(8, 8)), 50, "other")
    sock, port, stop, thread = _impostor(other)
    try:
        with PolicyClient(NetworkConfig(port=port), "robot", ROBOT) as client:
            with pytest.raises(TimeoutError, match="does not fit this robot"):
                client.connect(1.0)
            assert client.stats["garbage"] >= 1 and client.welcome is None
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def test_the_loop_brings_the_arm_to_rest_and_stops_when_the_transport_dies(tmp_path, monkeypatch):
    with LocalServer(["--backend.name=linear", "--backend.options.cameras=[]", "--log_level=warning"]) as server:
        robot = KinematicRobot(kinematic_spec(14, 50.0))
        config = build_config(ClientConfig, {
            "network": {"port": server.port}, "strategy": {"preset": "vlash_rail"},
            "safety": {"watchdog_timeout_s": 0.2},
            "log": {"print_summary": False, "live_status": False}, "stop_on_success": False})
        policy = PolicyClient(config.network, "robot", robot.spec)
        real_expire = policy._expire_requests
        connected_at: list[float] = []

        def expire_then_die(now: float) -> None:  # dies 1 s after the handshake, while the loop runs
            if policy.connected and not connected_at:
                connected_at.append(now)
            if connected_at and now > connected_at[0] + 1.0:
                raise RuntimeError("transport bug")
            real_expire(now)

        monkeypatch.setattr(policy, "_expire_requests", expire_then_die)
        with robot:
            client = RealTimeClient(config, robot, policy)
            with pytest.raises(TransportFailure, match="transport bug.*brought to rest"):
                client.run(duration_s=30.0)
        policy.close()
    assert client.summary is not None and client.summary.ticks < 30 * 50  # it stopped long before the end
    assert client.last_record is not None and client.last_record.watchdog  # at rest under the watchdog
