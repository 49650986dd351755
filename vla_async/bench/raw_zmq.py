"""The references for `vla-async bench transport`: a bare ZeroMQ DEALER/ROUTER exchange of the same frames.

`python -m vla_async.bench.raw_zmq` is an echo server that answers every message with the
pre-encoded frames of a reference chunk (no decoding, no validation, no threads of its own);
`raw_round_trips` sends pre-encoded observation frames from a bare DEALER and times the replies.
The difference to the real PolicyClient/PolicyServer round trip is what the protocol costs.

The floor (`--mode`, and `ClientCodec` on the client side): the least a Python peer can do with
this protocol, without sessions, locks, a second thread or bookkeeping. `decode`: the echo decodes each
observation (the real, hardened decoder) before answering; `model`: it also computes a linear chunk
from the state (the reference backend's arithmetic) and encodes it; `model_hop`: the same with the model
on a second thread (one hand-off each way, as a server with an inference worker). A codec client encodes
each observation and decodes each chunk. What the real stack costs beyond these is its own.
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


FLOOR_MODES = ("decode", "model", "model_hop")


class _FloorModel:
    """The floor's server work: the hardened decode of an observation of the reference robot, then (with
    `model`) the linear backend's chunk arithmetic on its state and the chunk's encoding."""

    def __init__(self, with_model: bool):
        from vla_async.protocol import ArraySpec, DecodeLimits
        from vla_async.reference_specs import policy_spec_for, reference_robot_spec

        robot = reference_robot_spec()
        self.with_model = with_model
        self.expect = ArraySpec.for_observation(robot, policy_spec_for(robot, 50, "floor"))
        self.limits = DecodeLimits()
        rng = np.random.default_rng(0)
        dim = robot.state_dim
        self.weights = (rng.standard_normal((dim, dim)) * 0.1 / np.sqrt(dim)).astype(np.float32)
        self.bias = (rng.standard_normal(dim) * 0.05).astype(np.float32)
        self.ramp = (np.arange(1, 51, dtype=np.float32) / 50)[:, None]
        self.echo = reference_chunk_frames()

    def decode(self, frames: Sequence[Any]) -> Any:
        from vla_async.protocol import decode

        return decode(frames, limits=self.limits, expect=self.expect, need_spec=True)

    def reply(self, obs: Any) -> list[Any]:
        if not self.with_model:
            return self.echo
        state = np.asarray(obs.state, np.float32)
        goal = state @ self.weights + self.bias
        actions = state + self.ramp * (goal - state)
        return encode(ActionChunk(obs.request_id, obs.exec_tick, actions))


def serve_echo(mode: str = "raw") -> None:
    """ROUTER on 127.0.0.1 (any free port, printed); replies to every message with the chunk frames
    (`raw`), or does a floor mode's work first (see the module doc)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    reply = reference_chunk_frames()
    floor = _FloorModel(with_model=mode != "decode") if mode in FLOOR_MODES else None
    print(f"listening on tcp://127.0.0.1:{port}", flush=True)
    if mode == "model_hop":
        _serve_with_hop(sock, floor)  # type: ignore[arg-type]
    while True:
        identity, *frames = sock.recv_multipart(copy=False)
        sock.send_multipart([identity, *(floor.reply(floor.decode(frames)) if floor else reply)])


def _serve_with_hop(sock: zmq.Socket, floor: _FloorModel) -> None:
    """Decode on this thread, model + encode + send on a second one (the socket under a lock; this
    thread waits on its ZMQ_FD instead of inside libzmq, as the real server's I/O thread does)."""
    import queue
    import select
    import threading

    work: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
    lock = threading.Lock()

    def worker() -> None:
        while True:
            identity, obs = work.get()
            frames = [identity, *floor.reply(obs)]
            with lock:
                sock.send_multipart(frames)

    threading.Thread(target=worker, daemon=True).start()
    while True:
        select.select([sock.fd], [], [], 0.2)
        while True:
            with lock:
                if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    break
                identity, *frames = sock.recv_multipart(copy=False)
            work.put((identity, floor.decode(frames)))


class RawDealer:
    """A bare DEALER connected to the echo server; `round_trips` may be called many times (the bench
    interleaves blocks of it with blocks of the real client, so load drift hits both alike)."""

    def __init__(self, port: int):
        self._ctx = zmq.Context()
        self.socket = self._ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(f"tcp://127.0.0.1:{port}")

    def round_trips(self, frames: Sequence[Any] | None, n: int, period_s: float = 0.0, timeout_s: float = 5.0,
                    codec: ClientCodec | None = None) -> tuple[list[float], int]:
        """`n` exchanges of `frames` (one in flight); returns (round trips in s, failures). With `codec`
        (the floor's client), each observation is encoded and each reply decoded inside the timed span
        instead (the observation is built outside it, as for the real client)."""
        sock = self.socket
        rtts: list[float] = []
        failures = 0
        start = time.perf_counter()
        for i in range(n):
            wait_for_slot(start, i, period_s)
            obs = codec.observation(i) if codec is not None else None
            t0 = time.perf_counter()
            if codec is None:
                sock.send_multipart(frames)  # type: ignore[arg-type]
            else:
                codec.send(sock, obs)
            if not sock.poll(int(timeout_s * 1000)):
                failures += 1
                continue
            reply = sock.recv_multipart(copy=False)
            if codec is not None:
                codec.decode(reply)
            rtts.append(time.perf_counter() - t0)
        return rtts, failures

    def close(self) -> None:
        self.socket.close(0)
        self._ctx.term()

    def __enter__(self) -> RawDealer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ClientCodec:
    """The floor's client work: encode each observation (as views, as the real client does), decode each
    chunk against the agreed spec."""

    def __init__(self, images: dict[str, np.ndarray]):
        from vla_async.protocol import ArraySpec, DecodeLimits
        from vla_async.reference_specs import policy_spec_for, reference_robot_spec

        self.images = images
        self.expect = ArraySpec.for_chunk(policy_spec_for(reference_robot_spec(), 50, "floor"))
        self.limits = DecodeLimits()

    def observation(self, i: int) -> Any:
        from vla_async.bench.transport import reference_observation

        return reference_observation(i, self.images)

    def send(self, sock: zmq.Socket, obs: Any) -> None:
        from vla_async.sockets import send_frames

        send_frames(sock, encode(obs, copy=False))

    def decode(self, frames: Sequence[Any]) -> Any:
        from vla_async.protocol import decode

        return decode(frames, limits=self.limits, expect=self.expect)


def raw_round_trips(port: int, frames: Sequence[Any], n: int, period_s: float = 0.0,
                    timeout_s: float = 5.0) -> tuple[list[float], int]:
    """`n` exchanges of `frames` with the echo server on a fresh DEALER; returns (round trips in s, failures)."""
    with RawDealer(port) as dealer:
        return dealer.round_trips(frames, n, period_s, timeout_s)


if __name__ == "__main__":
    serve_echo(sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--mode" else "raw")
    sys.exit(0)
