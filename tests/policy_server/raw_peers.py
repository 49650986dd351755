"""Raw DEALER peers for server tests that speak the wire protocol by hand (penalty box, admission)."""

from __future__ import annotations

import numpy as np
import zmq

from vla_async.messages import Observation
from vla_async.protocol import DecodeLimits, decode, encode
from vla_async.reference_specs import reference_robot_spec

ROBOT = reference_robot_spec(image_size=(8, 8))
GARBAGE = [b"\xc1 not msgpack"]


def dealer(port: int) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def obs(rid: int, state_dim: int = 14) -> Observation:
    """A valid Observation of ROBOT (a wrong `state_dim` makes the server reject it)."""
    return Observation(rid, rid, rid, np.zeros(state_dim, np.float32),
                       {c.name: np.zeros(c.shape, np.uint8) for c in ROBOT.cameras})


def reply(sock: zmq.Socket, timeout_ms: int = 5000) -> object:
    assert sock.poll(timeout_ms), "no reply"
    return decode(sock.recv_multipart(), limits=DecodeLimits())


def ask(sock: zmq.Socket, msg: object, timeout_ms: int = 5000) -> object:
    sock.send_multipart(encode(msg))
    return reply(sock, timeout_ms)
