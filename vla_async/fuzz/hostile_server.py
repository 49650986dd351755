"""`python -m vla_async.fuzz.hostile_server --messages N`: a policy server that also sends garbage.

It answers like a real server (a Welcome for the reference robot with the linear backend's policy
spec, a correct chunk for every Observation, Pongs), but before every reply, and between replies,
it sends malformed messages (`MessageFuzzer`, direction to_client) to each connected client until
`--messages` were sent. Hostile messages never reuse a real request id, so every real request
still gets exactly one correct chunk. Prints `listening on tcp://HOST:PORT`, then one JSON line with
the counts when done; it keeps serving until killed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import zmq

from vla_async.fuzz.generator import FuzzCase, MessageFuzzer
from vla_async.messages import ActionChunk, Hello, Observation, Ping, Pong, Welcome
from vla_async.protocol import ArraySpec, DecodeLimits, ProtocolError, decode, encode
from vla_async.reference_specs import policy_spec_for, reference_robot_spec

_BURST = 20  # hostile messages sent ahead of each real reply


class HostileServer:
    def __init__(self, port: int, messages: int, seed: int, image_size: tuple[int, int]):
        robot = reference_robot_spec(image_size=image_size)
        self.policy = policy_spec_for(robot, 50, "linear")
        self.obs_spec = ArraySpec.for_observation(robot, self.policy)
        self.cases: Iterator[FuzzCase] = MessageFuzzer(seed, robot, self.policy, "to_client").cases(messages)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # EAGAIN instead of silent drops: exact counts
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1") if port == 0 else port
        if port:
            self.sock.bind(f"tcp://127.0.0.1:{port}")
        self.counts: Counter[str] = Counter()
        self.peers: set[bytes] = set()
        self.done = False

    def _send(self, frames: list[Any]) -> bool:
        try:
            self.sock.send_multipart(frames, flags=zmq.NOBLOCK)
            return True
        except zmq.ZMQError:  # full or gone: that message is not sent (and not counted)
            return False

    def _hostile(self, identity: bytes, n: int) -> None:
        for _ in range(n):
            case = next(self.cases, None)
            if case is None:
                if not self.done:
                    self.done = True
                    print(json.dumps({"sent": self.counts["sent"], **self.counts}), flush=True)
                return
            if self._send([identity, *case.frames]):
                self.counts["sent"] += 1
                self.counts["category:" + case.category] += 1

    def _answer(self, identity: bytes, msg: Any) -> list[Any] | None:
        if isinstance(msg, Hello):
            return encode(Welcome("hostile", self.policy, server_name="hostile"))
        if isinstance(msg, Observation):
            actions = np.zeros((self.policy.chunk_length, self.policy.action_dim), np.float32)
            return encode(ActionChunk(msg.request_id, msg.exec_tick, actions))
        if isinstance(msg, Ping):
            return encode(Pong(msg.seq))
        return None

    def serve(self) -> None:
        print(f"listening on tcp://127.0.0.1:{self.port}", flush=True)
        limits = DecodeLimits()
        while True:
            if self.sock.poll(2):
                identity, *frames = self.sock.recv_multipart()
                self.peers.add(identity)
                try:
                    msg = decode(frames, limits=limits, expect=self.obs_spec)
                except ProtocolError:
                    continue
                self._hostile(identity, _BURST)
                reply = self._answer(identity, msg)
                if reply is not None:
                    self._send([identity, *reply])
            for peer in list(self.peers):
                self._hostile(peer, _BURST)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vla_async.fuzz.hostile_server", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, nargs=2, default=(8, 8))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    HostileServer(args.port, args.messages, args.seed, tuple(args.image_size)).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
