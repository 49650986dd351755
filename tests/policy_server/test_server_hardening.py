"""The server under faults of its own: an exception on one message, a dying thread, squatters, a busy port."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

import policy_server.server as server_module
from policy_server.backends.linear import LinearBackend
from policy_server.cli import serve_until_stopped
from policy_server.server import PolicyServer, frame_limit
from vla_async.config import BackendConfig, NetworkConfig, ServerConfig
from vla_async.local_server import LocalServer, wait_until
from vla_async.messages import ErrorCode, ErrorMessage, Hello, Observation, Ping, Welcome
from vla_async.protocol import DecodeLimits, decode, encode
from vla_async.reference_specs import reference_robot_spec
from vla_async.transport import PolicyClient, ReceivedChunk

pytestmark = pytest.mark.timeout(90)
ROBOT = reference_robot_spec(image_size=(8, 8))
SMALL = {"image_size": [8, 8]}


def _server(**cfg: object) -> PolicyServer:
    config = ServerConfig(backend=BackendConfig(name="linear", options=SMALL), **cfg)
    return PolicyServer(config, LinearBackend(config.backend), port=0).start()


def _obs(rid: int) -> Observation:
    return Observation(rid, rid, rid, np.zeros(14, np.float32), {c.name: np.zeros(c.shape, np.uint8)
                                                                  for c in ROBOT.cameras})


def _dealer(port: int) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def _ask(sock: zmq.Socket, msg) -> object:
    sock.send_multipart(encode(msg))
    assert sock.poll(5000), "no reply"
    return decode(sock.recv_multipart(), limits=DecodeLimits())


def test_an_exception_while_handling_one_message_answers_that_peer_and_the_server_goes_on(monkeypatch):
    srv = _server()
    sock = _dealer(srv.port)
    try:
        assert isinstance(_ask(sock, Hello("r", ROBOT)), Welcome)
        real_decode = server_module.decode

        def flaky(frames, **kw):
            msg = real_decode(frames, **kw)
            if isinstance(msg, Ping) and msg.seq == 13:
                raise RuntimeError("a bug triggered by this message")
            return msg

        monkeypatch.setattr(server_module, "decode", flaky)
        reply = _ask(sock, Ping(13))
        assert isinstance(reply, ErrorMessage) and "internal error" in reply.message and "bug" not in reply.message
        assert _ask(sock, Ping(14)).seq == 14
        assert _ask(sock, _obs(5)).request_id == 5
        assert srv.stats["internal_errors"] == 1 and srv.fatal is None
    finally:
        sock.close()
        srv.stop()


def test_a_failing_batch_gets_errors_and_the_worker_goes_on(monkeypatch):
    srv = _server()
    sock = _dealer(srv.port)
    try:
        assert isinstance(_ask(sock, Hello("r", ROBOT)), Welcome)
        real = srv._run_batch
        calls = []

        def once(batch):
            calls.append(1)
            if len(calls) == 1:
                raise MemoryError("allocation failed")
            return real(batch)

        monkeypatch.setattr(srv, "_run_batch", once)
        reply = _ask(sock, _obs(1))
        assert isinstance(reply, ErrorMessage) and reply.code == ErrorCode.BACKEND_ERROR and reply.request_id == 1
        assert _ask(sock, _obs(2)).request_id == 2
        assert srv.fatal is None
    finally:
        sock.close()
        srv.stop()


def test_a_dead_thread_stops_the_server_and_serve_exits_non_zero(monkeypatch, capsys):
    srv = _server()

    def broken(*_a, **_k):
        raise OSError("the socket broke")

    monkeypatch.setattr(srv._router, "exchange", broken)  # outside the per-message guard: the thread dies
    srv._poke()
    assert wait_until(lambda: srv.fatal is not None, 10.0)
    assert "server-io" in srv.fatal and "OSError" in srv.fatal
    assert serve_until_stopped(srv, threading.Event(), poll_s=0.01) == 1
    err = capsys.readouterr().err
    assert "server-io" in err and "restart" in err


def test_squatting_sessions_are_evicted_for_a_new_robot():
    srv = _server(max_clients=3, hello_grace_s=2.0)
    squatters = [_dealer(srv.port) for _ in range(3)]
    try:
        for sock in squatters:
            assert isinstance(_ask(sock, Hello("squatter", ROBOT)), Welcome)
        with PolicyClient(NetworkConfig(port=srv.port), "late", ROBOT) as early:
            with pytest.raises(Exception, match="full"):
                early.connect(5)  # within the grace period the server is really full
        time.sleep(2.1)
        for sock in squatters:
            _ask(sock, Ping(1))  # pings do not count as work
        with PolicyClient(NetworkConfig(port=srv.port), "robot", ROBOT) as client:
            client.connect(5)
            client.submit(_obs(9))
            assert client.wait(5) and isinstance(client.poll()[0], ReceivedChunk)
        assert srv.stats["sessions_evicted"] == 1
        evicted = [s for s in squatters if isinstance(_ask(s, _obs(3)), ErrorMessage)]
        assert len(evicted) == 1  # exactly one squatter lost its session (it gets NO_SESSION)
    finally:
        for sock in squatters:
            sock.close()
        srv.stop()


def test_a_robot_that_works_is_not_evicted():
    srv = _server(max_clients=1, hello_grace_s=0.1, idle_timeout_s=60)
    sock = _dealer(srv.port)
    try:
        assert isinstance(_ask(sock, Hello("robot", ROBOT)), Welcome)
        assert _ask(sock, _obs(1)).request_id == 1
        time.sleep(0.2)
        late = _dealer(srv.port)
        try:
            reply = _ask(late, Hello("late", ROBOT))
            assert isinstance(reply, ErrorMessage) and reply.code == ErrorCode.OVERLOADED
        finally:
            late.close()
    finally:
        sock.close()
        srv.stop()


def test_per_peer_session_limit():
    srv = _server(max_sessions_per_peer=2)
    socks = [_dealer(srv.port) for _ in range(3)]
    try:
        replies = [_ask(s, Hello("r", ROBOT)) for s in socks]
        assert [isinstance(r, Welcome) for r in replies] == [True, True, False]
        assert "per peer" in replies[2].message
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_frame_limit_follows_the_policy_spec():
    config = ServerConfig(backend=BackendConfig(name="linear", options={"image_size": [224, 224]}))
    backend = LinearBackend(config.backend)
    assert frame_limit(config, backend) == 2 * 224 * 224 * 3 + 1024 * 1024
    capped = config.model_copy(update={"network": NetworkConfig(max_frame_bytes=5000)})
    assert frame_limit(capped, backend) == 5000


def test_second_server_on_a_busy_port_says_so_in_one_line():
    with LocalServer(["--backend.options.image_size=[8,8]", "--log_level=warning"]) as first:
        proc = subprocess.run([sys.executable, "-m", "policy_server", "--backend.options.image_size=[8,8]",
                               f"--network.port={first.port}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert f"port {first.port}" in err and "already in use" in err and "--network.port" in err
