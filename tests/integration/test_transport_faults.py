"""Real server processes: kill + restart → the client reconnects and resumes; late replies are dropped."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vla_async.config import NetworkConfig
from vla_async.local_server import LocalServer, wait_until
from vla_async.messages import ErrorCode, ErrorMessage, Observation
from vla_async.reference_specs import reference_robot_spec
from vla_async.transport import PolicyClient, ReceivedChunk

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
ROBOT = reference_robot_spec(image_size=(8, 8))
SERVER_ARGS = ["--backend.options.image_size=[8,8]", "--log_level=warning"]
FAST_NET = dict(heartbeat_interval_s=0.1, heartbeat_timeout_s=0.5, reconnect_min_s=0.05, reconnect_max_s=0.3)


def _obs(rid: int) -> Observation:
    return Observation(rid, rid, rid, np.zeros(14, np.float32),
                       {c.name: np.zeros(c.shape, np.uint8) for c in ROBOT.cameras})


def _request(client: PolicyClient, rid: int, timeout_s: float = 5.0) -> ReceivedChunk | ErrorMessage | None:
    client.submit(_obs(rid))
    return _reply(client, rid, timeout_s)


def _reply(client: PolicyClient, rid: int, timeout_s: float) -> ReceivedChunk | ErrorMessage | None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        client.wait(0.1)
        for item in client.poll():
            if (item.chunk.request_id if isinstance(item, ReceivedChunk) else item.request_id) == rid:
                return item
    return None


def test_server_killed_and_restarted_client_reconnects_and_resumes():
    server = LocalServer(SERVER_ARGS)
    port = server.port
    try:
        with PolicyClient(NetworkConfig(port=port, **FAST_NET), "robot", ROBOT) as client:
            first = client.connect(10)
            assert isinstance(_request(client, 1), ReceivedChunk)
            server.kill()
            assert wait_until(lambda: not client.connected, 5.0)
            failed = _request(client, 2, timeout_s=5.0)  # nobody is there: it must fail, not hang
            assert isinstance(failed, ErrorMessage) and failed.code == ErrorCode.DEADLINE_EXCEEDED
            server = LocalServer(SERVER_ARGS, port=port)
            assert wait_until(lambda: client.connected, 15.0)
            assert client.welcome is not None and client.welcome.session_id  # a fresh session
            assert isinstance(_request(client, 3), ReceivedChunk)
            assert client.stats["reconnects"] >= 1
            assert first.policy_spec == client.welcome.policy_spec
    finally:
        server.stop()


def test_a_request_made_while_the_server_restarts_is_answered_by_the_new_one():
    """The server dies and a new one takes the port before the heartbeat notices (a supervisor restart): the
    request submitted in the gap found no peer, and the new server has no session for this client. Both are
    resent (after the new Welcome), not left to their deadline or failed with no_session."""
    server = LocalServer(SERVER_ARGS)
    port = server.port
    net = NetworkConfig(port=port, **{**FAST_NET, "heartbeat_timeout_s": 30.0}, request_timeout_s=30.0)
    try:
        with PolicyClient(net, "robot", ROBOT) as client:
            client.connect(10)
            assert isinstance(_request(client, 1), ReceivedChunk)
            server.kill()
            client.submit(_obs(2))  # nobody is there
            server = LocalServer(SERVER_ARGS, port=port)
            got = _reply(client, 2, timeout_s=20.0)
            assert isinstance(got, ReceivedChunk), got
            assert isinstance(_request(client, 3), ReceivedChunk)
            assert client.stats["errors"] == 0
    finally:
        server.stop()


def test_reply_after_the_deadline_is_dropped():
    # The server emulates a 600 ms model; the client gives up after 200 ms.
    with LocalServer([*SERVER_ARGS, "--injected_latency.mean_ms=600"]) as server:
        net = NetworkConfig(port=server.port, request_timeout_s=0.2)
        with PolicyClient(net, "robot", ROBOT) as client:
            client.connect(10)
            result = _request(client, 1, timeout_s=5.0)
            assert isinstance(result, ErrorMessage) and result.code == ErrorCode.DEADLINE_EXCEEDED
            assert wait_until(lambda: client.stats["dropped_stale"] >= 1, 5.0)
            assert client.stats["dropped_stale"] == 1 and client.stats["received"] == 0
            assert client.poll() == []  # the late chunk never reaches the caller
