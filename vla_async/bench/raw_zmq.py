"""The reference for `vla-async bench transport`: a bare ZeroMQ DEALER/ROUTER exchange of the same frames.

`python -m vla_async.bench.raw_zmq` is an echo server that answers every message with the
pre-encoded frames of a reference chunk (no decoding, no validation, no threads of its own);
`raw_round_trips` sends pre-encoded observation frames from a bare DEALER and times the replies.
The difference to the real PolicyClient/PolicyServer round trip is what the protocol costs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import zmq

from vla_async.messages import ActionChunk
from vla_async.protocol import encode


def wait_for_slot(start: float, i: int, period_s: float) -> None:
    """Paced mode: sleep until request `i`'s slot (start + i·period); back-to-back when period_s <= 0."""
    if period_s > 0:
        delay = start + i * period_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def reference_chunk_frames() -> list[bytes]:
    return [bytes(f) for f in encode(ActionChunk(0, 0, np.zeros((50, 14), np.float32)))]


def serve_echo() -> None:
    """ROUTER on 127.0.0.1 (any free port, printed); replies to every message with the chunk frames."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    reply = reference_chunk_frames()
    print(f"listening on tcp://127.0.0.1:{port}", flush=True)
    while True:
        identity, *_ = sock.recv_multipart(copy=False)
        sock.send_multipart([identity, *reply])


class RawDealer:
    """A bare DEALER connected to the echo server; `round_trips` may be called many times (the bench
    interleaves blocks of it with blocks of the real client, so load drift hits both alike)."""

    def __init__(self, port: int):
        self._ctx = zmq.Context()
        self.socket = self._ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(f"tcp://127.0.0.1:{port}")

    def round_trips(self, frames: Sequence[Any], n: int, period_s: float = 0.0,
                    timeout_s: float = 5.0) -> tuple[list[float], int]:
        """`n` exchanges of `frames` (one in flight); returns (round trips in s, failures)."""
        sock = self.socket
        rtts: list[float] = []
        failures = 0
        start = time.perf_counter()
        for i in range(n):
            wait_for_slot(start, i, period_s)
            t0 = time.perf_counter()
            sock.send_multipart(frames)
            if not sock.poll(int(timeout_s * 1000)):
                failures += 1
                continue
            sock.recv_multipart(copy=False)
            rtts.append(time.perf_counter() - t0)
        return rtts, failures

    def close(self) -> None:
        self.socket.close(0)
        self._ctx.term()

    def __enter__(self) -> RawDealer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_round_trips(port: int, frames: Sequence[Any], n: int, period_s: float = 0.0,
                    timeout_s: float = 5.0) -> tuple[list[float], int]:
    """`n` exchanges of `frames` with the echo server on a fresh DEALER; returns (round trips in s, failures)."""
    with RawDealer(port) as dealer:
        return dealer.round_trips(frames, n, period_s, timeout_s)


if __name__ == "__main__":
    serve_echo()
    sys.exit(0)
