"""In-process PolicyServer over real loopback ZeroMQ: handshake, chunks, errors, latest-wins, batching."""

from __future__ import annotations

import dataclasses
import os
import select
import threading
import time

import numpy as np
import pytest
import zmq

from policy_server.backend import BackendError, PolicyBackend, PolicyInput
from policy_server.backends.linear import LinearBackend
from policy_server.server import PolicyServer
from vla_async.config import BackendConfig, NetworkConfig, ServerConfig
from vla_async.messages import ErrorCode, ErrorMessage, Hello, Observation, Welcome
from vla_async.policy_input import EXEC_OFFSET_KEY
from vla_async.protocol import DecodeLimits, decode, encode
from vla_async.reference_specs import reference_robot_spec
from vla_async.transport import HandshakeError, PolicyClient, ReceivedChunk, wait_any

pytestmark = pytest.mark.timeout(60)
SMALL = {"image_size": [8, 8]}
ROBOT = reference_robot_spec(image_size=(8, 8))


def _images(value: int = 0) -> dict[str, np.ndarray]:
    return {c.name: np.full(c.shape, value, np.uint8) for c in ROBOT.cameras}


def _obs(rid: int, **kw: object) -> Observation:
    base = dict(request_id=rid, tick=rid, exec_tick=rid + 2, state=np.full(14, 0.1, np.float32), images=_images())
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


def _linear(**opts: object) -> LinearBackend:
    return LinearBackend(BackendConfig(options={**SMALL, **opts}))


def _collect(client: PolicyClient, n: int, timeout_s: float = 10.0) -> list:
    out: list = []
    end = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < end:
        client.wait(0.1)
        out += client.poll()
    return out


class SlowBackend(LinearBackend):
    def __init__(self, delay_s: float, **kw: object):
        super().__init__(BackendConfig(options=SMALL))
        self.delay_s = delay_s
        self.batch_sizes: list[int] = []

    def infer(self, batch):
        self.batch_sizes.append(len(batch))
        time.sleep(self.delay_s)
        return super().infer(batch)


class BrokenBackend(LinearBackend):
    def __init__(self, mode: str):
        super().__init__(BackendConfig(options=SMALL))
        self.mode = mode

    def warmup(self) -> None:
        pass

    def infer(self, batch):
        if self.mode == "raise":
            raise BackendError("model exploded")
        out = super().infer(batch)
        if self.mode == "ragged":
            return [[[1.0, 2.0], [3.0]] for _ in out]
        return [np.full_like(a, np.nan) for a in out] if self.mode == "nan" else [a[:3] for a in out]


@pytest.fixture
def server_for():
    servers: list[PolicyServer] = []

    def make(backend: PolicyBackend, **cfg: object) -> PolicyServer:
        srv = PolicyServer(ServerConfig(**cfg), backend, port=0).start()
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        s.stop()


def _client(srv: PolicyServer, robot=ROBOT, name: str = "c", **net: object) -> PolicyClient:
    return PolicyClient(NetworkConfig(port=srv.port, **net), name, robot)


def test_chunk_starts_at_exec_tick_and_uses_rollforward_state(server_for):
    backend = _linear()
    srv = server_for(backend)
    with _client(srv) as client:
        welcome = client.connect(5)
        assert welcome.policy_spec.chunk_length == 50
        roll = np.full(14, 0.7, np.float32)
        client.submit(_obs(1, rollforward_state=roll))
        (got,) = _collect(client, 1)
    assert isinstance(got, ReceivedChunk) and got.chunk.start_tick == 3
    expected = backend.infer([PolicyInput(state=roll, images=_images())])[0]
    np.testing.assert_allclose(got.chunk.actions, expected, rtol=1e-6)
    t = got.chunk.timing
    assert t.total_ms >= t.model_ms >= 0 and t.queue_ms >= 0 and t.batch_size == 1
    assert got.received_at >= got.sent_at


def test_spec_mismatch_lists_every_problem(server_for):
    srv = server_for(_linear())
    bad = reference_robot_spec(state_dim=12, cameras=("cam_high",), image_size=(8, 8))
    client = _client(srv, robot=bad)
    with pytest.raises(HandshakeError) as info:
        client.connect(5)
    text = str(info.value)
    assert "state names" in text and "cam_left_wrist" in text and "action names" in text


class CheckCrashBackend(LinearBackend):
    def check_robot(self, robot):
        raise KeyError("no such joint table")


def test_backend_check_robot_crash_is_a_handshake_error_and_server_keeps_serving(server_for):
    srv = server_for(CheckCrashBackend(BackendConfig(options=SMALL)))
    for name in ("first", "second"):  # the second Hello is answered too: the I/O thread survived
        with _client(srv, name=name) as client, pytest.raises(HandshakeError) as info:
            client.connect(5)
        assert "KeyError" in str(info.value) and "no such joint table" in str(info.value)
    assert srv.stats["sessions"] == 0


@pytest.mark.parametrize("mode,needle", [("raise", "model exploded"), ("nan", "NaN"), ("shape", "shape"),
                                               ("ragged", "not a float array")])
def test_backend_failures_reach_only_that_request_and_server_keeps_serving(server_for, mode, needle):
    srv = server_for(BrokenBackend(mode))
    with _client(srv) as client:
        client.connect(5)
        client.submit(_obs(1))
        (err,) = _collect(client, 1)
        assert isinstance(err, ErrorMessage) and err.code == ErrorCode.BACKEND_ERROR and err.request_id == 1
        assert needle in err.message
        client.submit(_obs(2))
        assert _collect(client, 1)[0].request_id == 2
    assert srv.stats["backend_errors"] == 2


def test_latest_observation_wins_and_superseded_ones_are_answered(server_for):
    srv = server_for(SlowBackend(0.3))
    with _client(srv) as client:
        client.connect(5)
        for rid in range(1, 6):
            client.submit(_obs(rid))
        got = _collect(client, 5)
    chunks = [g.chunk.request_id for g in got if isinstance(g, ReceivedChunk)]
    superseded = [g.request_id for g in got if isinstance(g, ErrorMessage) and g.code == ErrorCode.OVERLOADED]
    assert 5 in chunks and len(chunks) <= 2  # the one in progress (maybe) and the latest
    assert sorted(chunks + superseded) == [1, 2, 3, 4, 5]
    assert srv.stats["superseded"] == len(superseded) >= 3


def test_requests_from_several_clients_are_batched(server_for):
    backend = SlowBackend(0.2)
    srv = server_for(backend, batching={"max_batch": 4, "max_wait_ms": 50})
    clients = [_client(srv, name=f"c{i}") for i in range(3)]
    try:
        for c in clients:
            c.connect(5)
        clients[0].submit(_obs(1))
        time.sleep(0.05)  # the worker is now busy with request 1; the next two queue up
        clients[1].submit(_obs(2))
        clients[2].submit(_obs(3))
        results = [_collect(c, 1)[0] for c in clients]
    finally:
        for c in clients:
            c.close()
    assert all(isinstance(r, ReceivedChunk) for r in results)
    assert results[1].chunk.timing.batch_size == 2 and max(backend.batch_sizes) == 2
    assert srv.stats["sessions"] == 3


def test_idle_connected_client_does_not_hold_up_a_batch(server_for):
    srv = server_for(_linear(), batching={"max_batch": 4, "max_wait_ms": 1000})
    with _client(srv, name="idle") as idle, _client(srv, name="busy") as busy:
        idle.connect(5)
        busy.connect(5)
        for rid in (1, 2, 3):
            busy.submit(_obs(rid))
            (got,) = _collect(busy, 1)
            assert isinstance(got, ReceivedChunk) and got.chunk.timing.batch_size == 1
    # only the busy robot was sending: the worker never waited for the idle one to fill a batch
    assert srv.stats["batch_fill_waits"] == 0 and srv.stats["chunks"] == 3


def test_wait_any_wakes_for_whichever_client_got_a_reply(server_for):
    srv = server_for(_linear())
    quiet, loud = _client(srv, name="quiet"), _client(srv, name="loud")
    try:
        quiet.connect(5)
        loud.connect(5)
        assert not wait_any([quiet, loud], 0.05)  # nothing in flight
        loud.submit(_obs(7))
        assert wait_any([quiet, loud], 10.0)
        got = loud.poll() or (_collect(loud, 1) if wait_any([loud], 10.0) else [])
        assert [g.chunk.request_id for g in got] == [7]
        assert quiet.poll() == []
    finally:
        quiet.close()
        loud.close()
    assert not wait_any([quiet, loud], 10.0)  # all closed: returns at once instead of waiting


def test_queued_request_past_its_budget_is_dropped(server_for):
    srv = server_for(SlowBackend(0.3))
    with _client(srv) as client:
        client.connect(5)
        client.submit(_obs(1))
        time.sleep(0.05)
        client.submit(_obs(2, deadline_ms=10.0))
        got = {g.request_id if isinstance(g, ErrorMessage) else g.chunk.request_id: g for g in _collect(client, 2)}
    assert isinstance(got[1], ReceivedChunk)
    assert isinstance(got[2], ErrorMessage) and got[2].code == ErrorCode.DEADLINE_EXCEEDED


def test_observation_before_hello_gets_no_session(server_for):
    srv = server_for(_linear())
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{srv.port}")
    try:
        sock.send_multipart(encode(_obs(9)))
        assert sock.poll(5000)
        msg = decode(sock.recv_multipart(), limits=DecodeLimits())
        assert isinstance(msg, ErrorMessage) and msg.code == ErrorCode.NO_SESSION and msg.request_id == 9
        sock.send_multipart(encode(Hello("raw", ROBOT)))
        assert sock.poll(5000) and isinstance(decode(sock.recv_multipart(), limits=DecodeLimits()), Welcome)
    finally:
        sock.close()


def test_max_clients_is_enforced(server_for):
    srv = server_for(_linear(), max_clients=1)
    with _client(srv, name="a") as first:
        first.connect(5)
        with pytest.raises(HandshakeError, match="full"):
            _client(srv, name="b").connect(5)


def test_linear_single_input_path_matches_the_batched_path():
    backend = LinearBackend(BackendConfig(options={**SMALL, "use_images": False}))
    rng = np.random.default_rng(3)
    inputs = [PolicyInput(state=rng.standard_normal(backend.spec.state_dim).astype(np.float32), task=t)
              for t in ("pick", "place")]
    batched = backend.infer(inputs)
    for x, want in zip(inputs, batched, strict=True):
        (one,) = backend.infer([x])
        assert one.dtype == np.float32 and one.shape == want.shape
        np.testing.assert_allclose(one, want, rtol=1e-6, atol=1e-6)


class _RouterStub:
    """Stands in for the ROUTER: every send reports that input is waiting."""

    def send(self, frames, *, copy=True):
        return True, True


def test_a_send_that_sees_input_waiting_never_lets_the_io_thread_sleep_on_it():
    srv = PolicyServer(ServerConfig(backend=BackendConfig(name="linear", options=SMALL)), port=0)
    srv._router = _RouterStub()
    srv._wake_r, srv._wake_w = os.pipe()
    try:
        srv._threads = [threading.current_thread()]  # as if this were the I/O thread: it re-drains
        srv._send([b"id", b"x"])
        assert srv._io_input_ready
        assert not select.select([srv._wake_r], [], [], 0)[0]
        srv._io_input_ready = False
        other = threading.Thread(target=srv._send, args=([b"id", b"x"],))  # the worker: wakes the I/O thread
        other.start()
        other.join(5)
        assert not srv._io_input_ready
        assert select.select([srv._wake_r], [], [], 0)[0]
    finally:
        os.close(srv._wake_r)
        os.close(srv._wake_w)


class OffsetRecordingBackend(LinearBackend):
    """Records the exec_offset_s the server hands the model; declares the offset input when asked to."""

    def __init__(self, declares_offset: bool):
        super().__init__(BackendConfig(options=SMALL))
        if declares_offset:
            self._spec = dataclasses.replace(self._spec, extra={**self._spec.extra, EXEC_OFFSET_KEY: True})
        self.offsets: list[float] = []

    def infer(self, batch):
        self.offsets += [inp.exec_offset_s for inp in batch]
        return super().infer(batch)


@pytest.mark.parametrize("declares", [True, False])
def test_exec_offset_reaches_the_model_only_when_the_policy_declares_it(server_for, declares):
    backend = OffsetRecordingBackend(declares)
    srv = server_for(backend)
    with _client(srv) as client:
        client.connect(5)
        client.submit(_obs(3, exec_tick=9))  # 6 ticks ahead at the reference robot's fps
        (got,) = _collect(client, 1)
    assert isinstance(got, ReceivedChunk)
    expected = 6 / float(ROBOT.fps) if declares else 0.0
    assert backend.offsets[-1] == pytest.approx(expected)
