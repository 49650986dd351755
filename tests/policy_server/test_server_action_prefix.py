"""A real server passes the committed action prefix to a backend that accepts it, and survives hostile ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
import zmq

from policy_server.backend import PolicyInput
from policy_server.backends.linear import LinearBackend
from policy_server.server import PolicyServer
from vla_async.config import BackendConfig, ServerConfig
from vla_async.messages import ActionChunk, ErrorCode, ErrorMessage, Hello, Observation, Welcome
from vla_async.protocol import DecodeLimits, decode, encode
from vla_async.reference_specs import reference_robot_spec
from vla_async.specs import ACTION_PREFIX_KEY, PolicySpec

pytestmark = pytest.mark.timeout(90)
ROBOT = reference_robot_spec(image_size=(8, 8))


class PrefixInpainting(LinearBackend):
    """The linear policy with its first `prefix_frozen` rows replaced by the prefix (a hard inpainting)."""

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self.seen: list[tuple[np.ndarray | None, int]] = []

    @property
    def spec(self) -> PolicySpec:
        return dataclasses.replace(super().spec, extra={ACTION_PREFIX_KEY: "inpaint"})

    def infer(self, batch: Sequence[PolicyInput]) -> list[np.ndarray]:
        out = super().infer(batch)
        for chunk, x in zip(out, batch, strict=True):
            self.seen.append((None if x.action_prefix is None else np.array(x.action_prefix), x.prefix_frozen))
            if x.action_prefix is not None:
                chunk[: x.prefix_frozen] = x.action_prefix[: x.prefix_frozen]
        return out


def _obs(rid: int, prefix: np.ndarray | None, frozen: int = 0, prefix_tick: int | None = None) -> Observation:
    return Observation(rid, rid, rid + 2, np.zeros(14, np.float32),
                       {c.name: np.zeros(c.shape, np.uint8) for c in ROBOT.cameras},
                       action_prefix=prefix, prefix_tick=rid + 2 if prefix_tick is None else prefix_tick,
                       prefix_frozen=frozen)


def _ask(sock: zmq.Socket, msg) -> object:
    sock.send_multipart(encode(msg))
    assert sock.poll(10_000), "no reply"
    return decode(sock.recv_multipart(), limits=DecodeLimits())


def test_the_prefix_reaches_the_backend_and_hostile_prefixes_get_errors_while_the_server_goes_on():
    config = ServerConfig(backend=BackendConfig(name="linear", options={"image_size": [8, 8], "chunk_length": 20}))
    backend = PrefixInpainting(config.backend)
    srv = PolicyServer(config, backend, port=0).start()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{srv.port}")
    try:
        welcome = _ask(sock, Hello("r", ROBOT))
        assert isinstance(welcome, Welcome) and welcome.policy_spec.extra[ACTION_PREFIX_KEY] == "inpaint"
        prefix = np.linspace(0, 1, 6 * 14).reshape(6, 14).astype(np.float32)
        hostile = [_obs(1, np.zeros((21, 14), np.float32)), _obs(2, np.full((6, 14), np.nan, np.float32)),
                   _obs(3, np.zeros((6, 3), np.float32)), _obs(4, prefix, frozen=7), _obs(5, prefix, prefix_tick=0)]
        for msg in hostile:
            reply = _ask(sock, msg)
            assert isinstance(reply, ErrorMessage) and reply.code == ErrorCode.BAD_MESSAGE, reply
            assert reply.request_id == msg.request_id and len(reply.message) < 300
        chunk = _ask(sock, _obs(6, prefix, frozen=4))
        assert isinstance(chunk, ActionChunk) and chunk.start_tick == 8
        np.testing.assert_array_equal(chunk.actions[:4], prefix[:4])
        got, frozen = backend.seen[-1]
        np.testing.assert_array_equal(got, prefix)
        assert frozen == 4 and len(backend.seen) == 1 + 1  # warm-up has no prefix; hostile ones never got there
        assert isinstance(_ask(sock, _obs(7, None)), ActionChunk) and srv.fatal is None
    finally:
        sock.close()
        srv.stop()
