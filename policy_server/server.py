"""PolicyServer: an I/O thread (ROUTER, sessions, validation) and an inference worker (backend).

The worker runs the model and sends its replies on the shared ROUTER. One exception, the inline
path: when a hand-off could not change the outcome (the worker is idle, nothing else is pending or
waiting to be read, no batch could form) and the model has proven fast (its last `_INLINE_AFTER`
runs each within `batching.inline_max_ms`, no injected latency), the I/O thread runs that request
itself, saving a thread wake-up and a GIL hand-off per request; a slow (GPU) model keeps the worker,
and another robot's message waits at most one such fast run. Bad input
is answered with an ErrorMessage (unparseable garbage is dropped and counted) and never stops the
server or another client's work: both threads catch every exception per message (per batch), and
if one dies anyway the server records `fatal`, stops serving and `vla-async serve` exits non-zero.
The ROUTER refuses frames over the policy spec's largest frame (plus margin) inside libzmq, and a
full server evicts sessions that never sent an observation, or went idle, to admit a new robot; a
peer whose messages keep being rejected is ignored for a cool-down (`penalty_box.py`), and messages
not from a session in good standing share a decode budget (`admission.py`).
Usable in-process (`with PolicyServer(cfg, backend) as srv: srv.port`) or via `vla-async serve`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import zmq

from policy_server.admission import StrangerBudget
from policy_server.backend import PolicyBackend, create_backend
from policy_server.penalty_box import PenaltyBox
from policy_server.session import PendingRequest, Session, pick_evictee
from vla_async.config import ServerConfig
from vla_async.messages import (
    ActionChunk,
    ErrorCode,
    ErrorMessage,
    Hello,
    Message,
    Observation,
    Ping,
    Pong,
    ServerTiming,
    Welcome,
)
from vla_async.policy_input import policy_input
from vla_async.protocol import DecodeLimits, ProtocolError, decode, encode, excerpt, largest_frame_bytes
from vla_async.registry import load
from vla_async.sockets import ServerEndpoint, SharedSocket, wait_readable
from vla_async.specs import SpecError, SpecMismatchError, spec_mismatches, streaming_plan
from vla_async.supervision import ThreadSupervisor
from vla_async.wire.builders import all_finite
from vla_async.wire.errors import bounded

log = logging.getLogger("policy_server")
_ACTIVE_WINDOW_S = 1.0  # a session that sent an observation this recently may join a batch being filled
_COUNTERS = ("received", "chunks", "errors_sent", "garbage_dropped", "superseded", "deadline_dropped",
             "backend_errors", "sessions_opened", "sessions_expired", "sessions_evicted", "batch_fill_waits",
             "internal_errors", "penalty_dropped", "peers_boxed", "inline_runs", "budget_dropped")
_FRAME_MARGIN_BYTES = 1024 * 1024
# Messages taken from the ROUTER per pass: small, so that a robot's request that arrives while a
# flood is being handled waits for a few messages, not for a thousand (ROUTER queues fairly per peer).
_IO_BATCH = 16
_INTERNAL_ERROR = "the server could not handle this message (internal error; see the server log)"
_FLOAT32 = np.dtype(np.float32)
_INLINE_AFTER = 8  # consecutive model runs within batching.inline_max_ms before the I/O thread may run one


def frame_limit(config: ServerConfig, backend: PolicyBackend) -> int:
    """ZMQ_MAXMSGSIZE of the server: the configured cap, or the policy spec's largest frame x2 + 1 MiB."""
    net = config.network
    derived = 2 * largest_frame_bytes(backend.spec) + _FRAME_MARGIN_BYTES
    return min(int(net.max_frame_bytes) or derived, int(net.max_message_bytes))


# how a server emulates a slow model: "module:factory", factory(InjectedLatencyConfig) -> an object with
# `sample_s()`; imported only by servers that inject latency
LATENCY_INJECTION: dict[str, str] = {"sampled": "sim.injected_latency:LatencySampler"}


def _make_latency_sampler(config: ServerConfig) -> Any:
    lat = config.injected_latency
    if lat.mean_ms <= 0 and lat.min_ms <= 0 and (lat.spike_probability <= 0 or lat.spike_ms <= 0):
        return None
    return load(LATENCY_INJECTION["sampled"])(lat)


class PolicyServer:
    """Serves one backend to many robot clients. `port=0` binds any free port (see `.port`)."""

    def __init__(self, config: ServerConfig, backend: PolicyBackend | None = None, *, port: int | None = None,
                 name: str = "vla-async"):
        self.config = config
        self.name = name
        self._owns_backend = backend is None
        self.backend = backend if backend is not None else create_backend(config.backend)
        self._port_override = port
        self.max_frame_bytes = frame_limit(config, self.backend)
        self._limits = DecodeLimits.from_network(config.network, self.max_frame_bytes)
        self._sampler = _make_latency_sampler(config)
        self._cond = threading.Lock()  # sessions, counters, _running
        # Wakes the worker (new work, or stop). A C-level queue: far less Python per hand-off than a
        # threading.Condition; a stale signal only costs the worker one look at the sessions.
        self._work_signal: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._sessions: dict[bytes, Session] = {}
        self._running = False
        self._threads: list[threading.Thread] = []
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._io_errors_sent = 0  # written by the I/O thread only (see _reply)
        self._ctx: zmq.Context | None = None
        self._endpoint: ServerEndpoint | None = None
        self._router: SharedSocket | None = None
        self._io_input_ready = False  # the I/O thread's own send saw input waiting: do not sleep
        self._io_queued = 0  # messages of sessions in good standing in the current read, yet to handle
        self._io_read_had_strangers = False  # the current read held messages not from a session in good standing
        self._supervisor = ThreadSupervisor("policy server", on_failure=self._on_thread_death)
        self._last_internal_log = float("-inf")
        self._batch_ms: deque[float] = deque(maxlen=64)  # recent inference times (a fleet's load report)
        self._worker_busy = False  # the worker holds a batch (under _cond)
        # model runs in a row within inline_max_ms; never counts up with injected latency (it emulates a slow model)
        self._fast_runs = 0
        batching = config.batching
        self._inline_max_ms = batching.inline_max_ms if self._sampler is None else 0.0
        self._batch_may_form = self.backend.supports_batching and batching.max_batch > 1 and batching.max_wait_ms > 0
        self._last_box_log = float("-inf")
        box = config.penalty_box
        # Changed by the I/O thread only; the worker reads `blocked` (one dict lookup) when counting batch partners.
        self._box = PenaltyBox(box.strikes, box.window_s, box.cooldown_s, box.max_tracked)
        budget = config.admission
        self._budget = StrangerBudget(budget.rate, budget.burst, budget.hello_share, time.monotonic())  # I/O only

    @property
    def fatal(self) -> str | None:
        """Why a server thread died (the server then stops serving), or None while healthy."""
        return self._supervisor.failure

    def health(self) -> str | None:
        """None while the server serves (running, its I/O thread and worker alive); else what is wrong.
        A fleet's health checks call this (policy_server/fleet)."""
        if self.fatal is not None:
            return self.fatal
        if not self._running or self._ctx is None:
            return "the server is not running"
        dead = [t.name for t in self._threads if not t.is_alive()]
        return f"server thread(s) not alive: {', '.join(dead)}" if dead else None

    @property
    def recent_batch_ms(self) -> float:
        """Median time of the recent batches in the backend (0 before the first)."""
        recent = sorted(self._batch_ms)
        return recent[len(recent) // 2] if recent else 0.0

    @property
    def queue_depth(self) -> int:
        """Requests waiting for the inference worker (one per session at most)."""
        with self._cond:
            return sum(1 for s in self._sessions.values() if s.pending is not None)

    def _on_thread_death(self, reason: str) -> None:
        with self._cond:
            self._running = False
        self._work_signal.put(None)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PolicyServer:
        self.backend.warmup()
        self._ctx = zmq.Context()
        try:
            self._endpoint = ServerEndpoint(self._ctx, self.config.network, port=self._port_override,
                                            max_frame_bytes=self.max_frame_bytes)
        except BaseException:
            self._ctx.term()
            raise
        self._router = SharedSocket(self._endpoint.socket)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._running = True
        self._threads = [self._supervisor.spawn(self._io_loop, "server-io"),
                         self._supervisor.spawn(self._work_loop, "server-worker")]
        log.info("serving %s on %s", self.backend.spec.name, self.endpoint)
        return self

    def stop(self) -> None:
        with self._cond:
            if self._ctx is None:
                return
            self._running = False
        self._work_signal.put(None)
        self._poke()
        for t in self._threads:
            t.join(timeout=5.0)
        if self._endpoint is not None:
            self._endpoint.close()
        self._ctx.term()
        self._ctx = None
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._endpoint is not None, "start() the server first"
        return self._endpoint.port

    @property
    def endpoint(self) -> str:
        assert self._endpoint is not None, "start() the server first"
        return self._endpoint.endpoint

    @property
    def stats(self) -> dict[str, int]:
        with self._cond:
            out = dict(self._counts)
            out["sessions"] = len(self._sessions)
        out["errors_sent"] += self._io_errors_sent
        return out

    def session_stats(self) -> list[dict[str, Any]]:
        with self._cond:
            return [{"session_id": s.session_id, "client_name": s.client_name, "received": s.received,
                     "superseded": s.superseded, "served": s.served, "errors": s.errors}
                    for s in self._sessions.values()]

    # ------------------------------------------------------------------ I/O thread

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # pipe full: the I/O thread is already due to wake
            pass

    def _io_loop(self) -> None:
        next_sweep = time.monotonic() + 1.0
        fds = [self._router.fd, self._wake_r]
        while self._running:
            # A reply this thread sent may have consumed the socket's edge-triggered ZMQ_FD signal
            # with input waiting (`_send` sets the flag): drain again before sleeping on the fd.
            timeout_s = 0.0 if self._io_input_ready else 0.2
            self._io_input_ready = False
            if self._wake_r in wait_readable(fds, timeout_s):
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except OSError:
                    pass
            received = self._router.exchange(None, max_recv=_IO_BATCH)[1]
            if len(received) >= _IO_BATCH:  # more may be waiting: the fd will not signal it again
                self._io_input_ready = True
            handled, known = self._triage(received)
            self._io_read_had_strangers = len(received) > known
            self._io_queued = known
            for frames in handled:
                # Sessions' messages of this read still to handle (the inline path waits for none of them;
                # strangers' messages come after them and may wait for one fast model run).
                self._io_queued = max(0, self._io_queued - 1)
                try:
                    self._on_frames(frames)
                except Exception as exc:  # a bug or an exhausted resource: that message fails, not the server
                    self._internal_error(frames, exc)
            now = time.monotonic()
            if now >= next_sweep:
                self._expire_sessions(now)
                self._box.sweep(now)
                next_sweep = now + 1.0

    def _triage(self, received: list[list[Any]]) -> tuple[list[list[Any]], int]:
        """The messages of one read worth handling, those of sessions in good standing first (a robot's
        request is not queued behind strangers'), and how many of them are sessions'; a boxed peer's, and
        strangers' over the budget (admission.py), are dropped unread and unanswered."""
        now = time.monotonic()
        known: list[list[Any]] = []
        unknown: list[list[Any]] = []
        for frames in received:
            key = frames[0].bytes
            session = self._sessions.get(key)
            if self._box.blocked(key, now):
                self._counts["penalty_dropped"] += 1
            elif session is not None and session.in_good_standing:
                known.append(frames)
            elif self._budget.admit(key, frames, now):
                unknown.append(frames)
            else:
                self._counts["budget_dropped"] += 1
        return (known + unknown if known and unknown else known or unknown), len(known)

    def _strike(self, key: bytes) -> None:
        """One protocol error of peer `key`: enough of them in a window put it in the penalty box."""
        now = time.monotonic()
        if not self._box.strike(key, now):
            return
        self._counts["peers_boxed"] += 1
        if now - self._last_box_log >= 1.0:  # at most one line a second, whatever a flood does
            self._last_box_log = now
            log.warning("peer %s sent %d rejected messages within %.1f s: ignored for %.1f s (%d peers boxed "
                        "so far)", key[:16].hex(), self._box.strikes, self._box.window_s, self._box.cooldown_s,
                        self._counts["peers_boxed"])

    def _send(self, frames: Sequence[Any]) -> None:
        """Send from any thread; wake the I/O thread if this call swallowed its input signal."""
        _, input_ready = self._router.send(frames, copy=True)
        if input_ready:
            if threading.current_thread() is self._threads[0]:
                self._io_input_ready = True
            else:
                self._poke()

    def _reply(self, identity: Any, msg: Message) -> None:
        """I/O thread only. Its error counter is its own: taking `_cond` for every error of a flood
        would make the worker queue behind the I/O thread for that lock (and the GIL) on every request."""
        if isinstance(msg, ErrorMessage):
            self._io_errors_sent += 1
        self._send([identity, *encode(msg)])

    def _internal_error(self, frames: list[Any], exc: Exception) -> None:
        """An exception escaped the handling of one message: count it, log it (at most once a second,
        with the traceback at debug level), answer that peer with an error and carry on."""
        self._counts["internal_errors"] += 1
        now = time.monotonic()
        if now - self._last_internal_log >= 1.0:
            self._last_internal_log = now
            log.warning("internal error on one message (%d so far): %s: %s", self._counts["internal_errors"],
                        type(exc).__name__, excerpt(str(exc), 200))
        log.debug("internal error", exc_info=exc)
        if len(frames) >= 2:
            try:
                self._reply(frames[0], ErrorMessage(ErrorCode.BAD_MESSAGE, _INTERNAL_ERROR))
            except Exception:  # noqa: BLE001 - replying is best effort; the loop must go on
                pass

    def _on_frames(self, frames: list[Any]) -> None:
        if len(frames) < 2:
            self._counts["garbage_dropped"] += 1
            self._strike(frames[0].bytes)
            return
        identity = frames[0]
        key = identity.bytes
        session = self._sessions.get(key)
        self._counts["received"] += 1
        try:
            msg = decode(frames[1:], limits=self._limits, expect=session.observation_spec if session else None,
                         need_spec=True)
        except ProtocolError as exc:
            self._strike(key)
            if session is not None:
                session.in_good_standing = False  # its next messages share the stranger budget
            if exc.garbage:
                self._counts["garbage_dropped"] += 1
            else:
                if session is not None:
                    session.errors += 1
                self._reply(identity, exc.to_error_message())
            return
        now = time.monotonic()
        if session is not None:
            session.last_seen = now
        if isinstance(msg, Observation):
            self._on_observation(identity, session, msg, now)  # type: ignore[arg-type]  # need_spec: has a session
        elif isinstance(msg, Ping):
            self._send([identity, *encode(Pong(msg.seq))])
        elif isinstance(msg, Hello):
            self._reply(identity, self._handshake(key, msg, _peer_address(frames[1])))
        else:
            self._reply(identity, ErrorMessage(
                ErrorCode.BAD_MESSAGE, f"the server does not accept {type(msg).__name__} messages"))

    def _on_observation(self, identity: Any, session: Session, msg: Observation, now: float) -> None:
        with self._cond:
            old = session.offer(msg, now)
            if old is not None:
                self._counts["superseded"] += 1
            inline = old is None and self._may_run_inline(session, now)
            request = session.take() if inline else None
        if request is not None:
            self._counts["inline_runs"] += 1  # written by the I/O thread only
            self._serve([(session, request)])
            return
        self._work_signal.put(None)
        if old is not None:
            self._reply(identity, ErrorMessage(
                ErrorCode.OVERLOADED, f"request {old.obs.request_id} superseded by newer request "
                f"{msg.request_id} before inference started", old.obs.request_id))

    def _may_run_inline(self, session: Session, now: float) -> bool:
        """Whether the I/O thread may run `session`'s new request itself (lock held; see the module doc):
        the worker would run exactly this request alone and at once, and the model is proven fast."""
        if self._fast_runs < _INLINE_AFTER or self._worker_busy:
            return False
        active = 0
        for other in self._sessions.values():
            if other.pending is not None and other is not session:
                return False  # the worker owes that one a reply (and might batch the two)
            active += self._is_active(other, now)
        if active > 1 and self._batch_may_form:
            return False  # the worker would wait for another robot's request to fill a batch
        # Other sessions' messages of this read must not wait for the model; strangers' may (what arrives
        # meanwhile waits for one fast run at most). More input waiting in the socket keeps the worker,
        # unless this read was a stranger's flood: then the robot would queue behind the flood for the GIL.
        return self._io_queued == 0 and (not self._io_input_ready or self._io_read_had_strangers)

    def _handshake(self, key: bytes, hello: Hello, peer: str | None) -> Welcome | ErrorMessage:
        policy = self.backend.spec
        problems = self._spec_problems(hello)
        if problems:
            return ErrorMessage(ErrorCode.SPEC_MISMATCH, bounded(str(SpecMismatchError(problems)), 4000))
        with self._cond:
            refusal = self._admit(key, peer)
            if refusal is not None:
                return refusal
            session = Session(key, hello.client_name, hello.robot_spec, policy, peer=peer)
            self._sessions[key] = session  # a repeated Hello replaces the old session
            self._counts["sessions_opened"] += 1
        log.info("session %s: client %s (%s)", session.session_id, excerpt(hello.client_name),
                 excerpt(hello.robot_spec.name))
        return Welcome(session_id=session.session_id, policy_spec=policy, server_name=self.name)

    def _spec_problems(self, hello: Hello) -> list[str]:
        problems = spec_mismatches(hello.robot_spec, self.backend.spec)
        try:
            self.backend.check_robot(hello.robot_spec)
        except SpecMismatchError as exc:
            problems += exc.mismatches
        except SpecError as exc:
            problems.append(str(exc))
        except Exception as exc:  # a buggy backend check must not stop the I/O thread
            problems.append(f"backend could not check the robot: {type(exc).__name__}: {exc}"[:500])
        return problems

    def _admit(self, key: bytes, peer: str | None) -> ErrorMessage | None:
        """Room for a (new) session of `key`: per-peer limit, then evict a squatter if full (lock held)."""
        cfg = self.config
        if key in self._sessions:
            return None
        if cfg.max_sessions_per_peer and peer is not None and sum(
                1 for s in self._sessions.values() if s.peer == peer) >= cfg.max_sessions_per_peer:
            return ErrorMessage(ErrorCode.OVERLOADED, f"too many sessions from this address "
                                f"(limit {cfg.max_sessions_per_peer} per peer)")
        if len(self._sessions) < cfg.max_clients:
            return None
        victim = pick_evictee(self._sessions.values(), time.monotonic(), cfg.hello_grace_s, cfg.idle_timeout_s)
        if victim is None:
            return ErrorMessage(ErrorCode.OVERLOADED, f"server is full ({cfg.max_clients} clients)")
        del self._sessions[victim.identity]
        self._counts["sessions_evicted"] += 1
        log.info("session %s evicted to admit a new robot (no recent observation)", victim.session_id)
        return None

    def _expire_sessions(self, now: float) -> None:
        limit = 2 * self.config.network.heartbeat_timeout_s
        with self._cond:
            for key in [k for k, s in self._sessions.items() if now - s.last_seen > limit]:
                log.info("session %s expired (silent for %.1f s)", self._sessions[key].session_id, limit)
                del self._sessions[key]
                self._counts["sessions_expired"] += 1

    # ------------------------------------------------------------------ inference worker

    def _take_ready(self, limit: int) -> list[tuple[Session, PendingRequest]]:
        """Oldest pending requests first, at most one per session (caller holds the lock)."""
        ready = sorted((s for s in self._sessions.values() if s.pending is not None),
                       key=lambda s: s.pending.received_at)  # type: ignore[union-attr]
        return [(s, s.take()) for s in ready[:limit]]  # type: ignore[misc]

    def _is_active(self, session: Session, now: float) -> bool:
        """Whether `session` may send a request worth waiting for (to fill a batch): its last observation
        is under _ACTIVE_WINDOW_S old, and its messages are neither being rejected nor dropped in the
        penalty box, so an attacker that slips in one valid observation does not cost robots a batch wait."""
        return (now - session.last_observation_at < _ACTIVE_WINDOW_S and session.in_good_standing
                and not self._box.blocked(session.identity, now))

    def _active_sessions(self, now: float) -> int:
        """Sessions that are `_is_active` (caller holds the lock)."""
        return sum(1 for s in self._sessions.values() if self._is_active(s, now))

    def _work_loop(self) -> None:
        max_batch = self.config.batching.max_batch if self.backend.supports_batching else 1
        while True:
            batch = self._next_batch(max_batch)
            if batch is None:
                return
            if batch:
                replies = self._batch_replies(batch)
                # free before the replies go out: a robot's next request, sent the moment its reply lands, must
                # find the worker idle, or it loses the inline path to a race with this thread
                with self._cond:
                    self._worker_busy = False
                self._send_all(replies)

    def _serve(self, batch: list[tuple[Session, PendingRequest]]) -> None:
        """Run `batch` and send its replies (the I/O thread's inline path)."""
        self._send_all(self._batch_replies(batch))

    def _send_all(self, replies: list[list[Any]]) -> None:
        for frames in replies:
            self._send(frames)

    def _batch_replies(self, batch: list[tuple[Session, PendingRequest]]) -> list[list[Any]]:
        """Run `batch`; its replies' frames (an error reply per request if anything outside the model fails)."""
        try:
            return self._run_batch(batch)
        except Exception as exc:  # anything outside the model call: these requests fail, the thread goes on
            with self._cond:
                self._counts["internal_errors"] += 1
            log.warning("batch failed: %s: %s", type(exc).__name__, excerpt(str(exc), 200))
            return [[s.identity, *encode(ErrorMessage(ErrorCode.BACKEND_ERROR, _INTERNAL_ERROR,
                                                      r.obs.request_id))] for s, r in batch]

    def _next_batch(self, max_batch: int) -> list[tuple[Session, PendingRequest]] | None:
        """The next batch (maybe empty after a timeout), or None once stopped."""
        batching = self.config.batching
        self._await_work(0.5)
        with self._cond:
            if not self._running:
                return None
            batch = self._take_ready(max_batch)
            self._worker_busy = bool(batch)
            # Only wait to fill a batch when other clients could still contribute: sessions that
            # sent an observation recently (an idle, connected robot must not cost max_wait_ms).
            now = time.monotonic()
            fill_until = now + batching.max_wait_ms / 1000.0
            fill_to = min(max_batch, self._active_sessions(now)) if batching.max_wait_ms > 0 else 0
        while batch and len(batch) < fill_to and self._running:
            remaining = fill_until - time.monotonic()
            if remaining <= 0:
                break
            with self._cond:
                self._counts["batch_fill_waits"] += 1
            self._await_work(remaining)
            with self._cond:
                batch += self._take_ready(max_batch - len(batch))
        return batch

    def _await_work(self, timeout_s: float) -> None:
        """Return at once if a request is pending or the server stops, else at the next signal or timeout."""
        with self._cond:
            if not self._running or any(s.pending is not None for s in self._sessions.values()):
                return
        try:
            self._work_signal.get(timeout=timeout_s)
            while True:  # one look serves every signal given so far
                self._work_signal.get_nowait()
        except queue.Empty:
            pass

    def _run_batch(self, batch: list[tuple[Session, PendingRequest]]) -> list[list[Any]]:
        """Run one batch through the backend; one reply (chunk or error) per request."""
        t_start = time.monotonic()
        replies: list[tuple[Session, Message]] = []
        live: list[tuple[Session, PendingRequest]] = []
        for session, req in batch:
            waited_ms = (t_start - req.received_at) * 1000.0
            if waited_ms > req.obs.deadline_ms:
                self._counts["deadline_dropped"] += 1
                replies.append((session, ErrorMessage(ErrorCode.DEADLINE_EXCEEDED, f"waited {waited_ms:.1f} ms, "
                                f"over its {req.obs.deadline_ms:.1f} ms budget", req.obs.request_id)))
            else:
                live.append((session, req))
        if live:
            replies += self._infer(live, t_start)
        out = []
        with self._cond:
            for session, msg in replies:
                if isinstance(msg, ActionChunk):
                    session.served += 1
                    self._counts["chunks"] += 1
                else:
                    session.errors += 1
                    self._counts["errors_sent"] += 1
        for session, msg in replies:
            out.append([session.identity, *encode(msg)])
        return out

    def _infer(self, live: list[tuple[Session, PendingRequest]], t_start: float) -> list[tuple[Session, Message]]:
        spec = self.backend.spec
        inputs = []
        for session, req in live:
            inputs.append(policy_input(req.obs, session.robot_spec.fps, session.session_id, policy=spec))
        t_pre = time.monotonic()
        injected_s = max(0.0, float(self._sampler.sample_s())) if self._sampler is not None else 0.0
        try:
            outputs, sent = self._run_model(live, inputs, injected_s, (t_start, t_pre))
        except Exception as exc:  # a failing model must not take the server down
            self._counts["backend_errors"] += len(live)
            log.warning("backend failed: %s: %s", type(exc).__name__, exc)
            text = f"backend {spec.name!r} failed: {type(exc).__name__}: {exc}"[:500]
            return [(s, ErrorMessage(ErrorCode.BACKEND_ERROR, text, r.obs.request_id)) for s, r in live]
        t_model = time.monotonic()
        model_ms = (t_model - t_pre) * 1e3
        self._batch_ms.append(model_ms)
        self._fast_runs = self._fast_runs + 1 if model_ms <= self._inline_max_ms else 0
        checked = [_checked_actions(actions, (spec.chunk_length, spec.action_dim)) for actions in outputs]
        t_post = time.monotonic()
        replies: list[tuple[Session, Message]] = []
        for (session, req), result in zip(live, checked, strict=True):
            if isinstance(result, str):
                self._counts["backend_errors"] += 1
                replies.append((session, ErrorMessage(ErrorCode.BACKEND_ERROR, result, req.obs.request_id)))
                continue
            timing = ServerTiming(
                queue_ms=(t_start - req.received_at) * 1e3, preprocess_ms=(t_pre - t_start) * 1e3,
                model_ms=(t_model - t_pre) * 1e3, postprocess_ms=(t_post - t_model) * 1e3,
                total_ms=(t_post - req.received_at) * 1e3, batch_size=len(live),
            )
            offset = sent if req.obs.stream else 0  # the rest of a streamed chunk, or the whole chunk
            replies.append((session, ActionChunk(req.obs.request_id, req.obs.exec_tick, result[offset:], timing,
                                                 row_offset=offset, final=True)))
        return replies

    def _run_model(self, live: list[tuple[Session, PendingRequest]], inputs: list[Any], injected_s: float,
                   times: tuple[float, float]) -> tuple[list[Any], int]:
        """The backend's chunks for `inputs` and the rows already sent of each to the requests that asked for
        a stream. A streaming policy's first final rows go out as a part as soon as the backend yields them (an
        injected latency is spread over the run in proportion); the caller sends the rest. (chunks, 0) otherwise."""
        streamers = [(s, r) for s, r in live if r.obs.stream]
        plan = streaming_plan(self.backend.spec) if streamers else None
        if plan is None:
            outputs = self.backend.infer(inputs)
            if injected_s:
                time.sleep(injected_s)
            _check_count(outputs, inputs)
            return outputs, 0
        sent, outputs, spec = 0, None, self.backend.spec
        shares = iter([step / plan.steps for step, _ in plan.sends])
        done = 0.0  # share of the injected latency slept so far
        for rows, outputs in self.backend.infer_stream(inputs):
            _check_count(outputs, inputs)
            if rows >= spec.chunk_length:
                break
            share = next(shares, done)
            time.sleep(injected_s * (share - done))
            done = share
            if rows > sent:
                self._send_parts(streamers, live, outputs, (sent, rows), times)
                sent = rows
        injected_s *= 1.0 - done
        if injected_s:
            time.sleep(injected_s)
        return outputs, sent

    def _send_parts(self, streamers: list[tuple[Session, PendingRequest]], live: list[tuple[Session, PendingRequest]],
                    outputs: list[Any], rows: tuple[int, int], times: tuple[float, float]) -> None:
        """Rows [lo, hi) of each streaming request's chunk, sent now as a part (not final)."""
        spec = self.backend.spec
        lo, hi = rows
        t_start, t_pre = times
        now = time.monotonic()
        index = {id(r): i for i, (_, r) in enumerate(live)}
        for session, req in streamers:
            actions = _checked_actions(outputs[index[id(req)]], (spec.chunk_length, spec.action_dim))
            if isinstance(actions, str):
                raise ValueError(actions)
            timing = ServerTiming(queue_ms=(t_start - req.received_at) * 1e3, preprocess_ms=(t_pre - t_start) * 1e3,
                                  model_ms=(now - t_pre) * 1e3, total_ms=(now - req.received_at) * 1e3,
                                  batch_size=len(live))
            part = ActionChunk(req.obs.request_id, req.obs.exec_tick, actions[lo:hi], timing, row_offset=lo,
                               final=False)
            self._send([session.identity, *encode(part)])


def _peer_address(frame: Any) -> str | None:
    """The peer's IP address from a received frame's metadata (None when unavailable)."""
    try:
        return str(frame.get("Peer-Address"))
    except Exception:  # noqa: BLE001 - not a zmq.Frame, or no metadata (inproc): no per-peer limit
        return None


def _check_count(outputs: Sequence[Any], inputs: Sequence[Any]) -> None:
    if len(outputs) != len(inputs):
        raise ValueError(f"backend returned {len(outputs)} chunks for {len(inputs)} inputs")


def _checked_actions(actions: Any, want: tuple[int, int]) -> np.ndarray | str:
    """A backend's output for one request as a contiguous float32 [H, A] array, or the error text."""
    if type(actions) is np.ndarray and actions.dtype == _FLOAT32 and actions.flags.c_contiguous \
            and actions.shape == want:  # the usual case, without the conversions below (same result)
        return actions if all_finite(actions) else "backend returned NaN or infinite actions"
    try:
        arr = np.asarray(actions, dtype=np.float32)
    except (TypeError, ValueError) as exc:  # ragged or non-numeric output: that request's error only
        return f"backend returned actions that are not a float array: {exc}"[:500]
    if arr.shape != want:
        return f"backend returned actions of shape {arr.shape}, spec says {want}"
    if not all_finite(arr):
        return "backend returned NaN or infinite actions"
    return np.ascontiguousarray(arr)
