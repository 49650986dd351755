"""A real server process under bad input: each gets an Error reply (garbage is dropped) and a
well-behaved client on the same server keeps being served throughout."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq

from vla_async.config import NetworkConfig
from vla_async.local_server import LocalServer
from vla_async.messages import PROTOCOL_VERSION, ErrorCode, ErrorMessage, Hello, Observation, Welcome
from vla_async.protocol import DecodeLimits, decode, encode
from vla_async.reference_specs import reference_robot_spec
from vla_async.transport import PolicyClient, ReceivedChunk

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
ROBOT = reference_robot_spec(image_size=(8, 8))
LIMIT = 200_000


def _obs(rid: int, **kw: object) -> Observation:
    base = dict(request_id=rid, tick=rid, exec_tick=rid, state=np.zeros(14, np.float32),
                images={c.name: np.zeros(c.shape, np.uint8) for c in ROBOT.cameras})
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


def _mutated(rid: int, fn) -> list[bytes]:
    frames = [bytes(f) for f in encode(_obs(rid))]
    header = msgpack.unpackb(frames[0])
    frames = fn(header, frames)
    return frames


def _set_header(header: dict, frames: list[bytes]) -> list[bytes]:
    return [msgpack.packb(header), *frames[1:]]


BAD = {
    "truncated_frame": lambda h, f: [f[0], f[1][:-1], *f[2:]],
    "wrong_frame_count": lambda h, f: f[:-1],
    "object_dtype": lambda h, f: _set_header({**h, "arrays": [[h["arrays"][0][0], "object", [14]], *h["arrays"][1:]]}, f),
    "unknown_dtype": lambda h, f: _set_header({**h, "arrays": [[h["arrays"][0][0], "int128", [14]], *h["arrays"][1:]]}, f),
    "wrong_state_shape": lambda h, f: _set_header({**h, "arrays": [["state", "float32", [7]], *h["arrays"][1:]]},
                                                  [f[0], f[1][:28], *f[2:]]),
    "unknown_camera": lambda h, f: _set_header({**h, "arrays": [*h["arrays"][:-1], ["images/cam_x", "uint8", [8, 8, 3]]]}, f),
    "many_frames_oversize": lambda h, f: _set_header({**h, "arrays": h["arrays"] + [["images/x", "uint8", [60000]]] * 5},
                                                     f + [b"\0" * 60000] * 5),
    "wrong_version": lambda h, f: _set_header({**h, "v": PROTOCOL_VERSION + 7}, f),
}
EXPECTED_CODE = {"wrong_version": ErrorCode.VERSION_MISMATCH}


@pytest.fixture(scope="module")
def server():
    with LocalServer(["--backend.options.image_size=[8,8]", f"--network.max_message_bytes={LIMIT}",
                      "--log_level=warning"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def good_client(server):
    with PolicyClient(NetworkConfig(port=server.port, max_message_bytes=LIMIT), "good", ROBOT) as client:
        client.connect(10)
        yield client


@pytest.fixture
def raw(server):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{server.port}")
    sock.send_multipart(encode(Hello("attacker", ROBOT)))
    assert sock.poll(5000) and isinstance(decode(sock.recv_multipart(), limits=DecodeLimits()), Welcome)
    yield sock
    sock.close()


def _good_round_trip(client: PolicyClient, rid: int) -> None:
    client.submit(_obs(rid))
    for _ in range(50):
        client.wait(0.1)
        items = client.poll()
        if items:
            assert isinstance(items[0], ReceivedChunk) and items[0].chunk.request_id == rid
            return
    raise AssertionError("the good client was not served")


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_message_gets_error_reply_and_others_keep_working(name, raw, good_client):
    raw.send_multipart(_mutated(100, BAD[name]))
    assert raw.poll(5000), f"no reply to {name}"
    reply = decode(raw.recv_multipart(), limits=DecodeLimits())
    assert isinstance(reply, ErrorMessage)
    assert reply.code == EXPECTED_CODE.get(name, ErrorCode.BAD_MESSAGE)
    # an oversize message is refused before its header is read, so its request id is unknown
    assert reply.request_id == (None if name == "many_frames_oversize" else 100)
    assert "Traceback" not in reply.message
    _good_round_trip(good_client, 1000 + len(name))
    raw.send_multipart(encode(_obs(101)))  # the misbehaving client's session still works too
    assert raw.poll(5000) and decode(raw.recv_multipart(), limits=DecodeLimits()).request_id == 101


@pytest.mark.parametrize("garbage", [[b"\xff\x00garbage"], [b""], [msgpack.packb([1, 2]), b"x"]])
def test_garbage_is_dropped_silently(garbage, raw, good_client):
    raw.send_multipart(garbage)
    assert not raw.poll(300)
    _good_round_trip(good_client, 2000 + len(garbage[0]))


def test_single_frame_over_max_message_size_disconnects_only_that_peer(raw, good_client):
    raw.send_multipart([b"\0" * (LIMIT + 10)])
    assert not raw.poll(300)
    _good_round_trip(good_client, 3000)


def test_flood_from_one_client_is_bounded_by_latest_wins(raw, good_client):
    for rid in range(10_000, 10_500):
        raw.send_multipart(encode(_obs(rid)))
    replies = []
    while raw.poll(1000):
        replies.append(decode(raw.recv_multipart(), limits=DecodeLimits()))
    chunk_ids = [r.request_id for r in replies if not isinstance(r, ErrorMessage)]
    superseded = [r for r in replies if isinstance(r, ErrorMessage) and r.code == ErrorCode.OVERLOADED]
    assert 10_499 in chunk_ids and len(chunk_ids) + len(superseded) == 500
    _good_round_trip(good_client, 4000)
