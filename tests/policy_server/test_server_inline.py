"""The server's inline path: the I/O thread runs a request itself only when a hand-off could not change
the outcome and the model has proven fast; otherwise (slow model, injected latency, a batch that could
form) the inference worker keeps it. Real PolicyServer, real loopback ZeroMQ, real PolicyClient."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import raw_peers

import policy_server.server as server_module
from policy_server.backend import BackendError
from policy_server.backends.linear import LinearBackend
from policy_server.server import _INLINE_AFTER, PolicyServer
from vla_async.config import BackendConfig, NetworkConfig, ServerConfig
from vla_async.messages import ActionChunk, ErrorCode, ErrorMessage, Hello, Observation, Welcome
from vla_async.reference_specs import reference_robot_spec
from vla_async.transport import PolicyClient, ReceivedChunk

pytestmark = pytest.mark.timeout(120)
SMALL = {"image_size": [8, 8]}
ROBOT = reference_robot_spec(image_size=(8, 8))
GENEROUS = {"max_batch": 8, "max_wait_ms": 2.0, "inline_max_ms": 100.0}
QUIET = {"heartbeat_interval_s": 30.0, "heartbeat_timeout_s": 300.0}  # no Ping can arrive beside a request


class ThreadRecordingBackend(LinearBackend):
    """The linear model, recording which server thread ran each call; optionally sleeping or failing."""

    def __init__(self, delay_s: float = 0.0, fail_from: int | None = None, nan_from: int | None = None,
                 fail_on: str | None = None, failures: int | None = None):
        """`fail_from` / `nan_from`: raise / return NaN from that call on (1-based); with `fail_on` (a thread name)
        from the first call at or after it that runs on that thread; with `failures`, for that many calls only."""
        super().__init__(BackendConfig(options=SMALL))
        self.delay_s, self.fail_from, self.nan_from = delay_s, fail_from, nan_from
        self.fail_on, self.failures = fail_on, failures
        self.threads: list[str] = []
        self.first_failure: int | None = None  # the call that failed first

    def infer(self, batch):
        if threading.current_thread() is threading.main_thread():  # the warm-up at start: not a request
            return super().infer(batch)
        self.threads.append(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        n = len(self.threads)
        out = super().infer(batch)
        start = self.fail_from if self.fail_from is not None else self.nan_from
        if self.first_failure is None and start is not None and n >= start and self.fail_on in (None, self.threads[-1]):
            self.first_failure = n
        if self.first_failure is None or (self.failures is not None and n >= self.first_failure + self.failures):
            return out
        if self.fail_from is not None:
            raise BackendError("model exploded")
        return [np.full_like(a, np.nan) for a in out]


def _obs(rid: int) -> Observation:
    images = {c.name: np.full(c.shape, rid % 255, np.uint8) for c in ROBOT.cameras}
    return Observation(request_id=rid, tick=rid, exec_tick=rid, state=np.full(14, 0.01 * rid, np.float32),
                       images=images)


def _round_trips(srv: PolicyServer, rids: range, name: str = "c") -> list:
    """One request at a time (the bench's and a robot's pattern); the replies in order."""
    out = []
    with PolicyClient(NetworkConfig(port=srv.port, **QUIET), name, ROBOT) as client:
        client.connect(10)
        for rid in rids:
            client.submit(_obs(rid))
            got: list = []
            end = time.monotonic() + 20
            while not got and time.monotonic() < end:
                client.wait(0.2)
                got = client.poll()
            out += got
    return out


def _serve(backend: LinearBackend, **cfg: object) -> PolicyServer:
    srv = PolicyServer(ServerConfig(network=QUIET, **cfg), backend, port=0)
    if srv._inline_max_ms >= 100.0:  # GENEROUS: every run counts as fast, however loaded the machine
        srv._inline_max_ms = float("inf")
    return srv.start()


def test_a_proven_fast_model_runs_on_the_io_thread_with_identical_replies():
    inline_backend, worker_backend = ThreadRecordingBackend(), ThreadRecordingBackend()
    with _serve(inline_backend, batching=GENEROUS) as srv:
        inline = _round_trips(srv, range(1, 31))
        stats = srv.stats
    with _serve(worker_backend, batching={**GENEROUS, "inline_max_ms": 0.0}) as srv:  # 0 = always hand off
        handed_off = _round_trips(srv, range(1, 31))
    # the first runs prove the model fast on the worker; from then on the I/O thread runs the requests,
    # except one read together with another message (a heartbeat) or met by a worker not yet back to
    # idle: the rule hands those off, so a loaded machine may see a few
    assert inline_backend.threads[:_INLINE_AFTER] == ["server-worker"] * _INLINE_AFTER
    after = inline_backend.threads[_INLINE_AFTER:]
    assert set(after) <= {"server-io", "server-worker"} and after.count("server-io") >= len(after) * 3 // 4, after
    assert stats["inline_runs"] == after.count("server-io") and stats["chunks"] == 30
    assert set(worker_backend.threads) == {"server-worker"}
    assert all(isinstance(r, ReceivedChunk) for r in inline + handed_off)
    assert [r.chunk.request_id for r in inline] == list(range(1, 31))
    for a, b in zip(inline, handed_off, strict=True):  # the same chunks whichever thread ran the model
        assert a.chunk.start_tick == b.chunk.start_tick
        np.testing.assert_array_equal(a.chunk.actions, b.chunk.actions)


def test_a_slow_model_keeps_the_worker():
    backend = ThreadRecordingBackend(delay_s=0.005)  # 5 ms a run: over the default inline_max_ms (1 ms)
    with _serve(backend) as srv:
        replies = _round_trips(srv, range(1, 16))
        assert srv.stats["inline_runs"] == 0
    assert set(backend.threads) == {"server-worker"} and len(replies) == 15


def test_injected_latency_never_runs_inline():
    backend = ThreadRecordingBackend()
    with _serve(backend, batching=GENEROUS, injected_latency={"mean_ms": 0.001}) as srv:
        _round_trips(srv, range(1, 16))
        assert srv.stats["inline_runs"] == 0
    assert set(backend.threads) == {"server-worker"}


def test_no_inline_run_while_another_active_robot_could_join_a_batch(monkeypatch):
    monkeypatch.setattr(server_module, "_ACTIVE_WINDOW_S", 3600.0)  # both robots stay "active" however slow
    backend = ThreadRecordingBackend()
    with _serve(backend, batching={**GENEROUS, "max_wait_ms": 1.0}) as srv:
        _round_trips(srv, range(1, 12), name="a")  # proves the model fast; runs inline once proven
        proven_inline = srv.stats["inline_runs"]
        _round_trips(srv, range(100, 101), name="b")  # a second robot becomes active
        _round_trips(srv, range(12, 20), name="a")
        assert srv.stats["inline_runs"] == proven_inline > 0
    assert backend.threads[-9:] == ["server-worker"] * 9  # b's request and a's later ones: the worker batches


def test_a_peer_whose_latest_message_was_rejected_is_not_a_robot_worth_a_batch_wait(monkeypatch):
    """An attacker that slips in one valid observation, then floods rejected ones, must not make the
    server wait `max_wait_ms` on every robot request for a batch partner that never comes."""
    monkeypatch.setattr(server_module, "_ACTIVE_WINDOW_S", 3600.0)
    backend = ThreadRecordingBackend()
    with _serve(backend, batching={**GENEROUS, "max_wait_ms": 1.0}) as srv, \
            PolicyClient(NetworkConfig(port=srv.port, **QUIET), "a", ROBOT) as robot:
        robot.connect(10)

        def round_trips(rids: range) -> None:
            for rid in rids:
                robot.submit(_obs(rid))
                assert robot.wait(20.0)
                got = robot.poll()
                assert len(got) == 1 and isinstance(got[0], ReceivedChunk) and got[0].chunk.request_id == rid

        round_trips(range(1, 12))  # proves the model fast; runs inline once proven
        peer = raw_peers.dealer(srv.port)
        try:
            assert isinstance(raw_peers.ask(peer, Hello("b", ROBOT)), Welcome)
            assert isinstance(raw_peers.ask(peer, raw_peers.obs(500)), ActionChunk)  # b is now active
            round_trips(range(12, 16))
            worker_runs, waits = backend.threads.count("server-worker"), srv.stats["batch_fill_waits"]
            assert backend.threads[-4:] == ["server-worker"] * 4 and waits > 0  # a's requests wait for b
            assert isinstance(raw_peers.ask(peer, raw_peers.obs(501, state_dim=3)), ErrorMessage)  # rejected
            round_trips(range(16, 24))
        finally:
            peer.close()
        assert srv.stats["batch_fill_waits"] == waits  # b is no batch partner any more
        assert backend.threads[-8:].count("server-io") >= 6, backend.threads[-8:]  # a is back inline
        assert backend.threads.count("server-worker") <= worker_runs + 2


@pytest.mark.parametrize("mode,code,needle", [("raise", ErrorCode.BACKEND_ERROR, "model exploded"),
                                              ("nan", ErrorCode.BACKEND_ERROR, "NaN")])
def test_a_model_failing_on_the_io_thread_fails_that_request_only(mode, code, needle):
    """The model fails on the I/O thread's inline path (from the first inline run on, three calls): those requests
    get errors, the server keeps both threads and serves the next requests. (Which request first runs inline
    depends on the model's measured times, so the failure is placed there rather than at a fixed request.)"""
    backend = ThreadRecordingBackend(**{"fail_from" if mode == "raise" else "nan_from": _INLINE_AFTER + 1},
                                     fail_on="server-io", failures=3)
    n = 3 * _INLINE_AFTER
    with _serve(backend, batching=GENEROUS) as srv:
        replies = _round_trips(srv, range(1, n + 1))
        assert srv.health() is None  # both threads alive, still serving
        assert srv.stats["backend_errors"] == 3
    first = backend.first_failure
    assert first is not None and first <= n - 3 and backend.threads[first - 1] == "server-io"
    errors = [r for r in replies if isinstance(r, ErrorMessage)]
    assert [e.request_id for e in errors] == [first, first + 1, first + 2]
    assert all(e.code == code and needle in e.message for e in errors)
    assert sum(isinstance(r, ReceivedChunk) for r in replies) == n - 3


def test_the_request_after_a_worker_run_finds_the_worker_free(monkeypatch):
    """The worker frees itself before its replies go out: a robot's next request, sent the moment its reply lands,
    runs inline once the model is proven fast, however long the worker takes to return from sending (here 50 ms)."""
    send = PolicyServer._send

    def slow_return_on_the_worker(self, frames):
        send(self, frames)
        if threading.current_thread().name == "server-worker":
            time.sleep(0.05)

    monkeypatch.setattr(PolicyServer, "_send", slow_return_on_the_worker)
    backend = ThreadRecordingBackend()
    with _serve(backend, batching=GENEROUS) as srv:
        replies = _round_trips(srv, range(1, _INLINE_AFTER + 3))
    assert sum(isinstance(r, ReceivedChunk) for r in replies) == _INLINE_AFTER + 2
    assert backend.threads[:_INLINE_AFTER] == ["server-worker"] * _INLINE_AFTER  # not yet proven fast
    assert backend.threads[_INLINE_AFTER:] == ["server-io"] * 2, backend.threads
