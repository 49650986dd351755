"""Robot-side ZeroMQ transport: one DEALER shared (under a lock) by the caller and a transport thread.

The hot path has no thread hand-off: `submit` sends from the caller's thread and `poll`/`wait`
receive on it, so a round trip costs what ZeroMQ costs. The transport thread does the rest: the
Hello/Welcome handshake, heartbeats, request deadlines on the client's monotonic clock, and on
silence it recreates the socket with bounded exponential back-off, handshakes again and resends
what is still within its deadline. Late replies (past their deadline) are dropped and counted.

Whatever a server sends, the client keeps going: a message that does not decode, a chunk nobody
asked for or a Welcome whose policy does not fit this robot is dropped and counted (`garbage`),
and only valid messages count as hearing from the server, so a babbling impostor is timed out and
the client reconnects. If the transport thread dies anyway, `failure` says why: the caller brings
the robot to rest and stops (see robot_client.loop).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import zmq

from vla_async.config import NetworkConfig
from vla_async.messages import (
    ActionChunk,
    ErrorCode,
    ErrorMessage,
    Hello,
    Message,
    Observation,
    Ping,
    Pong,
    Welcome,
)
from vla_async.protocol import ArraySpec, DecodeLimits, ProtocolError, decode, encode, excerpt
from vla_async.route import ServerTarget
from vla_async.sockets import (
    ServerEndpoint,
    SharedSocket,
    client_frame_limit,
    load_public_key,
    make_dealer,
    wait_readable,
)
from vla_async.specs import RobotSpec, spec_mismatches
from vla_async.supervision import ThreadSupervisor

log = logging.getLogger("vla_async.transport")

__all__ = ["HandshakeError", "PolicyClient", "ReceivedChunk", "ServerEndpoint", "wait_any"]

_HANDSHAKE_FAILURES = {ErrorCode.SPEC_MISMATCH, ErrorCode.VERSION_MISMATCH, ErrorCode.UNAUTHORIZED,
                       ErrorCode.OVERLOADED}
_TICK_S = 0.02  # the transport thread's longest sleep: deadline and heartbeat resolution


class HandshakeError(RuntimeError):
    """The server refused the handshake; the message is the server's (lists every mismatch)."""


@dataclass(frozen=True)
class ReceivedChunk:
    chunk: ActionChunk
    sent_at: float  # time.monotonic() when submit() was called
    received_at: float  # time.monotonic() when the reply was decoded


@dataclass
class _Link:
    """The transport thread's connection state between ticks."""

    backoff: float
    next_attempt: float = 0.0
    hello_at: float = -1e9
    last_ping: float = 0.0
    ping_seq: Iterator[int] = field(default_factory=itertools.count)


@dataclass
class _Pending:
    obs: Observation
    sent_at: float
    deadline_at: float
    on_wire: bool = False


class PolicyClient:
    """Connects a robot to a policy server. `submit`/`poll`/`wait` are thread-safe and never block long."""

    def __init__(self, network: NetworkConfig, client_name: str, robot_spec: RobotSpec):
        if network.port == 0:
            raise ValueError("network.port must name the server's port (0 is only for servers)")
        self._net = network
        curve = network.curve
        pinned = (load_public_key(curve.server_public_key)  # a fleet route must name this key
                  if network.route_url and curve.enabled and curve.server_public_key else None)
        # with a fleet route: asked at start and after every lost connection (see vla_async/route.py)
        self._target = ServerTarget(network.host, network.port, route_url=network.route_url, robot=client_name,
                                    timeout_s=network.route_timeout_s, pinned_key=pinned)
        self._monitor: zmq.Socket | None = None  # fleet clients: the DEALER's disconnect events
        self._hello = Hello(client_name=client_name, robot_spec=robot_spec)
        self._limits = DecodeLimits.from_network(network, client_frame_limit(network))
        self._ctx = zmq.Context()
        self._lock = threading.RLock()  # guards everything below, and the socket's replacement
        self._sock: SharedSocket | None = None
        self._pending: dict[int, _Pending] = {}
        self._inbox: list[ReceivedChunk | ErrorMessage] = []
        self._expect: ArraySpec | None = None
        self._welcome: Welcome | None = None
        self._needed_cameras: frozenset[str] | None = None  # the policy's cameras, once welcomed
        self._handshake_error: str | None = None
        self._rejected_welcome: str | None = None  # why the last Welcome was ignored
        self._handshake_done = threading.Event()
        self._ready = False
        self._handshake_since = 0.0
        self._last_heard = 0.0
        self._stats = {"sent": 0, "received": 0, "dropped_stale": 0, "reconnects": 0, "errors": 0, "garbage": 0,
                       "resent_after_restart": 0}
        if network.route_url:
            self._stats.update(disconnects=0, route_asks=0, route_errors=0)
        self._wake_r, self._wake_w = os.pipe()  # wakes wait() when the transport thread delivers
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._supervisor = ThreadSupervisor("policy client", on_failure=self._on_thread_death)

    # ------------------------------------------------------------------ public API

    def connect(self, timeout_s: float = 10.0) -> Welcome:
        """Start the transport thread and wait for the Welcome (HandshakeError / TimeoutError)."""
        if self._thread is None:
            self._thread = self._supervisor.spawn(self._run, "vla-transport")
        self._handshake_done.wait(timeout_s)
        welcome, error = self._welcome, self._handshake_error or self._supervisor.failure
        if welcome is not None:
            return welcome
        self.close()
        if error is not None:
            raise HandshakeError(error)
        hint = "server down, wrong address, or CURVE key not authorized (a CURVE server drops unknown " \
            "keys without a reply)" if self._net.curve.enabled else "server down or wrong address"
        if self._rejected_welcome is not None:
            hint = f"a server answered with a policy that does not fit this robot: {self._rejected_welcome}"
        where = f"tcp://{self._target.address}"
        if self._target.route_url:
            where += f" (fleet route {self._target.route_url}: {self._target.last_error or 'answered'})"
        raise TimeoutError(f"no Welcome from {where} within {timeout_s} s — {hint}")

    def submit(self, obs: Observation) -> None:
        """Send `obs` now if connected (else as soon as the handshake is done); never blocks."""
        now = time.monotonic()
        needed = self._needed_cameras
        if needed is not None and not needed.issuperset(obs.images):  # never ship cameras the policy does not use
            obs = replace(obs, images={k: v for k, v in obs.images.items() if k in needed})
        pending = _Pending(obs, now, now + self._net.request_timeout_s)
        frames = self._encode(obs)
        with self._lock:
            if self._supervisor.failure is not None:  # nothing would ever answer or expire it
                self._deliver(ErrorMessage(ErrorCode.DEADLINE_EXCEEDED,
                                           f"transport stopped: {self._supervisor.failure}", obs.request_id))
                return
            self._pending[obs.request_id] = pending
            if self._ready and self._sock is not None:
                self._send(frames, pending)

    def poll(self) -> list[ReceivedChunk | ErrorMessage]:
        """What arrived since the last call (chunks, server errors, local deadline errors); drains the
        socket only when nothing is waiting already (after `wait` returned True it drained already)."""
        with self._lock:
            if not self._inbox:  # `wait` usually drained already: the rest comes with the next call
                self._drain()
            items, self._inbox = self._inbox, []
        return items

    def wait(self, timeout_s: float, *, spin_s: float = 0.0) -> bool:
        """Block until `poll` would return something (True) or `timeout_s` passed (False).

        `spin_s` > 0 busy-polls that long before blocking: it saves the wake-up of a sleeping thread
        (~0.1 ms on a loaded VM) at the price of a busy core; for latency-critical callers only.
        """
        return wait_any([self], timeout_s, spin_s=spin_s)

    def _wait_fds(self, signalled: Sequence[int] = ()) -> list[int] | None:
        """None when `poll` has something; otherwise the descriptors that signal new input (none once closed).
        `signalled`: the descriptors a wait just found readable (a signalled socket is always drained)."""
        with self._lock:
            sock = self._sock
            # armed: nothing touched the socket since it said "no input", so its fd signals the next message
            if not self._inbox and (sock is None or not sock.armed or sock.fd in signalled):
                self._drain()
            if self._inbox:
                return None
            if self._closed:
                return []
            return [self._wake_r] + ([sock.fd] if sock is not None else [])

    @property
    def connected(self) -> bool:
        return self._ready

    @property
    def failure(self) -> str | None:
        """Why the transport thread died (nothing will arrive any more), or None while it runs."""
        return self._supervisor.failure

    def _on_thread_death(self, reason: str) -> None:
        with self._lock:
            self._ready = False
            self._handshake_done.set()
            for rid in list(self._pending):
                self._pending.pop(rid)
                self._deliver(ErrorMessage(ErrorCode.DEADLINE_EXCEEDED, f"transport stopped: {reason}", rid))
        self._poke()

    @property
    def welcome(self) -> Welcome | None:
        return self._welcome

    @property
    def server_address(self) -> str:
        """host:port of the server this client connects to (a fleet's route may change it)."""
        return self._target.address

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._handshake_done.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        with self._lock:
            self._ready = False
            self._drop_socket()
        self._ctx.term()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals (lock held)

    def _encode(self, msg: Any) -> list[Any]:
        # Views of the caller's arrays; the socket makes the one copy unless zero_copy is set.
        return encode(msg, image_encoding=self._net.image_encoding, jpeg_quality=self._net.jpeg_quality, copy=False)

    def _send(self, frames: list[Any], pending: _Pending | None = None) -> bool:
        assert self._sock is not None
        sent, received = self._sock.exchange(frames, copy=not self._net.zero_copy)
        if sent and pending is not None:
            pending.on_wire = True
            self._stats["sent"] += 1
        self._handle(received)
        return sent

    def _drain(self) -> None:
        if self._sock is not None:
            self._handle(self._sock.exchange(None)[1])

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _clear_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _deliver(self, item: ReceivedChunk | ErrorMessage) -> None:
        self._inbox.append(item)
        if threading.current_thread() is self._thread:  # callers find their own deliveries
            self._poke()

    def _handle(self, messages: list[list[Any]]) -> None:
        if not messages:
            return
        now = time.monotonic()
        for frames in messages:
            try:
                self._handle_one(frames, now)
            except Exception as exc:  # a bug on some input: drop that message, never the thread
                self._stats["garbage"] += 1
                log.debug("dropped a reply: %s: %s", type(exc).__name__, excerpt(str(exc), 200))

    def _handle_one(self, frames: list[Any], now: float) -> None:
        try:
            msg = decode(frames, limits=self._limits, expect=self._expect)
        except ProtocolError as exc:
            self._stats["garbage"] += 1
            if not exc.garbage and exc.request_id is not None and self._pending.pop(exc.request_id, None):
                self._stats["errors"] += 1
                self._deliver(exc.to_error_message())
            return
        if self._accept(msg):
            self._last_heard = now  # only valid messages: a babbling impostor is still timed out

    def _accept(self, msg: Message) -> bool:
        """Act on one decoded message; False when it is dropped as garbage."""
        if isinstance(msg, ActionChunk):
            return self._on_chunk(msg)
        if isinstance(msg, Welcome):
            return self._ready or self._on_welcome(msg)
        if isinstance(msg, ErrorMessage):
            self._on_error(msg, time.monotonic())
            return True
        if isinstance(msg, Pong):
            return True
        self._stats["garbage"] += 1  # the server never sends anything else
        return False

    def _on_chunk(self, msg: ActionChunk) -> bool:
        if not self._ready:  # no agreed spec yet: its shape is unchecked
            self._stats["garbage"] += 1
            return False
        # a streamed chunk's parts share the request: it stays pending (deadline and all) until its final part
        p = self._pending.pop(msg.request_id, None) if msg.final else self._pending.get(msg.request_id)
        if p is None:
            self._stats["dropped_stale"] += 1
        else:
            self._stats["received"] += 1
            self._deliver(ReceivedChunk(msg, p.sent_at, time.monotonic()))
        return True

    def _on_welcome(self, msg: Welcome) -> bool:
        first = self._welcome
        problems = spec_mismatches(self._hello.robot_spec, msg.policy_spec)
        if first is not None and msg.policy_spec != first.policy_spec:
            problems.append("the policy differs from the one this client started with")
        if problems:  # not the policy this robot agreed to (an impostor or a changed server): ignored
            self._stats["garbage"] += 1
            self._rejected_welcome = excerpt("; ".join(problems), 300)
            return False
        self._welcome = msg
        self._needed_cameras = frozenset(c.name for c in msg.policy_spec.cameras)
        self._expect = ArraySpec.for_chunk(msg.policy_spec)
        self._ready = True
        self._handshake_done.set()
        self._send_unsent()
        return True

    def _send_unsent(self) -> None:
        """(Re)send the requests not on the wire (still within their deadline: expired ones are gone): after a
        Welcome, and on every heartbeat step, for a send that found no peer while the server was restarting."""
        for p in list(self._pending.values()):
            if not p.on_wire and not self._send(self._encode(p.obs), p):
                break

    def _on_error(self, msg: ErrorMessage, now: float) -> None:
        if msg.code == ErrorCode.NO_SESSION:
            if self._ready:
                self._ready = False  # the server restarted and forgot us: handshake again, then resume
                self._handshake_since = now
                self._stats["reconnects"] += 1
            # what the forgotten session had in flight will never be answered, and this request was never
            # processed: all of it is resent after the Welcome, while within its deadline
            for p in self._pending.values():
                p.on_wire = False
            if msg.request_id in self._pending:
                self._stats["resent_after_restart"] += 1
                return
        if msg.request_id is None:
            if not self._ready and msg.code in _HANDSHAKE_FAILURES and self._welcome is None:
                self._handshake_error = msg.message
                self._handshake_done.set()
            self._stats["errors"] += 1
            self._deliver(msg)
        elif self._pending.pop(msg.request_id, None) is not None:
            self._stats["errors"] += 1
            self._deliver(msg)
        else:
            self._stats["dropped_stale"] += 1

    def _drop_socket(self) -> None:
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._ready:
            self._stats["reconnects"] += 1
        self._ready = False
        for p in self._pending.values():
            p.on_wire = False

    # ------------------------------------------------------------------ transport thread

    def _run(self) -> None:
        link = _Link(backoff=self._net.reconnect_min_s)
        while not self._stop.is_set():
            now = time.monotonic()
            if self._sock is None and now >= link.next_attempt:
                self._ask_route()  # HTTP, outside the lock: submit/poll never wait for the route
                now = time.monotonic()
            with self._lock:
                if self._connection_step(link, now):
                    return  # refused at first contact: connect() raises HandshakeError
                self._drain()
                self._expire_requests(now)
                sleep_s = _TICK_S if self._ready or self._sock is None else 0.005
            # Not waiting on the socket: callers receive their own replies (no hand-off); this
            # thread drains on its tick for heartbeats and for replies nobody is polling for.
            self._stop.wait(sleep_s)

    def _connection_step(self, link: _Link, now: float) -> bool:
        """Open, watch, handshake or heartbeat the connection (lock held); True when refused at first contact."""
        if self._sock is None and now >= link.next_attempt:
            self._open_socket(link, now)
        if self._disconnected():
            self._reconnect_later(link, now, immediately=True)
        elif self._sock is not None and not self._ready:
            return self._handshake_step(link, now)
        elif self._sock is not None:
            self._heartbeat_step(link, now)
        return False

    def _ask_route(self) -> None:
        target = self._target
        if target.route_url is None:
            return
        if not target.refresh():
            log.warning("%s; trying the last address %s", target.last_error, target.address)
        with self._lock:
            self._stats["route_asks"], self._stats["route_errors"] = target.asks, target.errors

    def _open_socket(self, link: _Link, now: float) -> None:
        target = self._target
        net = self._net if target.route_url is None else self._net.model_copy(
            update={"host": target.host, "port": target.port})
        dealer = make_dealer(self._ctx, net, server_public_key=target.server_key)
        if target.route_url is not None:  # a replica that dies is noticed at once, not after heartbeat silence
            self._monitor = dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self._monitor.setsockopt(zmq.LINGER, 0)
        self._sock = SharedSocket(dealer)
        self._handshake_since = self._last_heard = now
        link.hello_at = -1e9

    def _disconnected(self) -> bool:
        """Fleet clients: the server closed the connection (its process died or it stopped)."""
        if self._monitor is None:
            return False
        lost = False
        try:
            while self._monitor.poll(0):
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
                lost = lost or int.from_bytes(frames[0][:2], "little") == zmq.EVENT_DISCONNECTED
        except zmq.ZMQError:
            return False
        if lost:
            self._stats["disconnects"] += 1
        return lost

    def _handshake_step(self, link: _Link, now: float) -> bool:
        """Say Hello (at most 4 times a second); True when the server refused us at first contact."""
        net = self._net
        if now - link.hello_at >= min(0.25, net.heartbeat_interval_s) and self._send(encode(self._hello)):
            link.hello_at = now
        if self._handshake_error is not None and self._welcome is None:
            return True
        if now - max(self._handshake_since, self._last_heard) > net.heartbeat_timeout_s:
            self._reconnect_later(link, now)
        return False

    def _heartbeat_step(self, link: _Link, now: float) -> None:
        net = self._net
        link.backoff = net.reconnect_min_s
        self._send_unsent()
        if now - link.last_ping >= net.heartbeat_interval_s and self._send(encode(Ping(next(link.ping_seq)))):
            link.last_ping = now
        if now - self._last_heard > net.heartbeat_timeout_s:
            self._reconnect_later(link, now)

    def _reconnect_later(self, link: _Link, now: float, *, immediately: bool = False) -> None:
        self._drop_socket()
        self._target.mark_lost()
        link.next_attempt = now if immediately else now + link.backoff
        link.backoff = min(self._net.reconnect_max_s, link.backoff * 2)

    def _expire_requests(self, now: float) -> None:
        for rid in [r for r, p in self._pending.items() if now >= p.deadline_at]:
            self._pending.pop(rid)
            self._stats["errors"] += 1
            reason = "" if self._ready else " (not connected to the server)"
            self._deliver(ErrorMessage(ErrorCode.DEADLINE_EXCEEDED,
                                       f"no reply within {self._net.request_timeout_s} s{reason}", request_id=rid))


def wait_any(clients: Sequence[PolicyClient], timeout_s: float, *, spin_s: float = 0.0) -> bool:
    """Block until `poll` of any of `clients` would return something (True) or `timeout_s` passed.

    One thread serving several robots waits on all their sockets at once (see `PolicyClient.wait`
    for `spin_s`). Closed clients are skipped; when all are closed it returns False at once.
    """
    now = time.monotonic()
    end = now + max(0.0, timeout_s)
    spin_end = now + min(max(0.0, spin_s), max(0.0, timeout_s))
    readable: list[int] = []
    while True:
        fds: list[int] = []
        for client in clients:
            mine = client._wait_fds(readable)
            if mine is None:
                return True
            fds += mine
        if not fds:
            return False
        now = time.monotonic()
        if now < spin_end:
            readable = fds  # busy-polling: drain every time round
            continue
        remaining = end - now
        if remaining <= 0:
            return False
        readable = wait_readable(fds, min(remaining, 0.05))
        for client in clients:
            if client._wake_r in readable:
                client._clear_wake()
