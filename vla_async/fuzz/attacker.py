"""`python -m vla_async.fuzz.attacker --port P --messages N`: fuzz a policy server from its own process.

Two DEALERs: one with a session (it said Hello, and says it again now and then, since an oversize
frame makes libzmq drop its connection) and one that never handshakes, which gets every fourth
message ("messages before handshake"). Messages are sent as fast as the socket takes them, without
waiting for replies; replies are drained and counted. Prints one JSON line with the counts.

`--rotate-every N` replaces both DEALERs by fresh connections (new ROUTER identities) every N
messages, as an attacker dodging the server's per-identity penalty box would: N at most the box's
strikes keeps every message reaching the decoder. The new "with session" connection sends its Hello
just ahead of its messages without waiting for the Welcome (so rotating costs the attacker little);
once the server is full of the attacker's own sessions, those messages arrive without a session.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import zmq

from vla_async.fuzz.generator import MessageFuzzer
from vla_async.messages import Hello, Welcome
from vla_async.protocol import DecodeLimits, ProtocolError, decode, encode
from vla_async.reference_specs import reference_robot_spec

_HELLO_EVERY = 500
_DRAIN_EVERY = 100
_SEND_PATIENCE_S = 20.0
_ROTATE_PAUSE_S = 0.001  # at most ~1000 new connections a second
_OPEN_RETIRED = 150  # retired connection pairs kept open (the server's fd limit is usually 1024)
_MAX_SOCKETS = 16_384


def _dealer(ctx: zmq.Context, port: int) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 10_000)
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def _drain(socks: Sequence[zmq.Socket]) -> int:
    n = 0
    for sock in socks:
        while sock.poll(0):
            sock.recv_multipart(copy=False)
            n += 1
    return n


def _send(sock: zmq.Socket, frames: list[bytes], socks: Sequence[zmq.Socket], counts: Counter[str]) -> bool:
    """Send without blocking; while the queue is full (the server is behind), drain replies and retry."""
    end = time.monotonic() + _SEND_PATIENCE_S
    while time.monotonic() < end:
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            counts["replies"] += _drain(socks)
            time.sleep(0.005)
    counts["send_failed"] += 1
    return False


def _handshake(sock: zmq.Socket, hello: list[Any]) -> Welcome:
    sock.send_multipart(hello)
    end = time.monotonic() + 30.0
    while time.monotonic() < end:
        if sock.poll(500):
            try:
                msg = decode(sock.recv_multipart(), limits=DecodeLimits())
            except ProtocolError:
                continue
            if isinstance(msg, Welcome):
                return msg
    raise RuntimeError("the server sent no Welcome to the attacker")


class _Peers:
    """The attacker's two connections: `with_session` (said Hello) and `fresh` (never handshakes)."""

    def __init__(self, ctx: zmq.Context, port: int, hello: list[Any]):
        self.ctx, self.port, self.hello = ctx, port, hello
        self.with_session, self.fresh = _dealer(ctx, port), _dealer(ctx, port)
        self.policy = _handshake(self.with_session, hello).policy_spec
        self._retired: deque[tuple[zmq.Socket, zmq.Socket]] = deque()

    def close(self) -> None:
        """Close every connection, delivering what is still queued."""
        for pair in [*self._retired, self.socks]:
            for sock in pair:
                sock.close(linger=30_000)

    @property
    def socks(self) -> tuple[zmq.Socket, zmq.Socket]:
        return self.with_session, self.fresh

    def rotate(self, counts: Counter[str]) -> None:
        """Fresh connections (new identities). The old ones stay open a while: the server's ROUTER
        discards what it has not read yet from a connection that closes (the server's counters say how
        many messages reached its decoder)."""
        counts["replies"] += _drain(self.socks)
        time.sleep(_ROTATE_PAUSE_S)  # libzmq closes sockets asynchronously: this bounds the open ones
        self._retired.append(self.socks)
        while len(self._retired) > _OPEN_RETIRED:  # by now its messages were sent (or never will be)
            for sock in self._retired.popleft():
                sock.close(linger=0)
        self.with_session, self.fresh = _dealer(self.ctx, self.port), _dealer(self.ctx, self.port)
        counts["rotations"] += 1
        _send(self.with_session, self.hello, self.socks, counts)  # pipelined: no wait for the Welcome


def _raise_open_files_limit() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * _MAX_SOCKETS)), hard))
    except (ImportError, ValueError, OSError):
        pass


def _send_all(peers: _Peers, cases: Iterable[Any], rate: float, rotate_every: int, counts: Counter[str]) -> None:
    """The attack loop: every case on its connection, paced, rotating, Hello now and then."""
    t0 = time.monotonic()
    for i, case in enumerate(cases):
        if rate > 0 and i % 50 == 0:
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        if rotate_every > 0 and i > 0 and i % rotate_every == 0:
            peers.rotate(counts)
        sock = peers.fresh if i % 4 == 3 else peers.with_session
        if not _send(sock, case.frames, peers.socks, counts):
            break  # the server stopped reading for _SEND_PATIENCE_S: report instead of hanging
        counts["sent"] += 1
        counts["category:" + case.category] += 1
        if i % _DRAIN_EVERY == 0:
            counts["replies"] += _drain(peers.socks)
        if i % _HELLO_EVERY == 0:
            _send(peers.with_session, peers.hello, peers.socks, counts)


def attack(port: int, messages: int, seed: int, image_size: tuple[int, int], rate: float = 0.0,
           rotate_every: int = 0, go: Callable[[], object] | None = None, prebuild: bool = False) -> dict[str, Any]:
    """Send `messages` malformed messages; `rate` > 0 paces them (messages/s), 0 sends as fast as possible;
    `rotate_every` > 0: new connections (identities) every that many messages. `go()`, if given, is awaited
    before the first message; with `prebuild` every message is built before that (~1 KB each), so building
    them costs no CPU during the attack (which then runs faster than the server reads)."""
    robot = reference_robot_spec(image_size=image_size)
    hello = encode(Hello("fuzzer", robot))
    ctx = zmq.Context()
    if rotate_every > 0:  # closed connections linger until their messages are out: room for many
        _raise_open_files_limit()
        ctx.set(zmq.MAX_SOCKETS, _MAX_SOCKETS)
    peers = _Peers(ctx, port, hello)
    fuzzer = MessageFuzzer(seed, robot, peers.policy, "to_server")
    cases: Iterable[Any] = fuzzer.cases(messages)
    if prebuild:
        cases = list(cases)
    if go is not None:
        go()
    counts: Counter[str] = Counter()
    t0 = time.monotonic()
    _send_all(peers, cases, rate, rotate_every, counts)
    elapsed = time.monotonic() - t0
    for _ in range(10):
        time.sleep(0.1)
        counts["replies"] += _drain(peers.socks)
    peers.close()  # deliver what is still queued: every counted message reaches the server
    ctx.term()
    return {"elapsed_s": elapsed, **counts}


def main(argv: Sequence[str] | None = None) -> int:
    os.nice(19)  # the attacker should not win the CPU from the server it attacks (as if on another machine)
    parser = argparse.ArgumentParser(prog="python -m vla_async.fuzz.attacker", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, nargs=2, default=(8, 8))
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s (0: as fast as possible)")
    parser.add_argument("--rotate-every", type=int, default=0,
                        help="new connections (ROUTER identities) every N messages (0: never)")
    parser.add_argument("--wait-for-go", action="store_true",
                        help="print 'ready' once connected, and attack once a line arrives on stdin")
    parser.add_argument("--prebuild", action="store_true", help="build every message before anything is sent")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    go = (lambda: (print("ready", flush=True), sys.stdin.readline())) if args.wait_for_go else None
    print(json.dumps(attack(args.port, args.messages, args.seed, tuple(args.image_size), args.rate,
                            args.rotate_every, go, args.prebuild)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
