"""A real server process under bad input: each gets an Error reply (garbage is dropped) and a
well-behaved client on the same server keeps being served throughout."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq

from vla_async.config import NetworkConfig
from vla_async.fuzz.campaign import proc_status
from vla_async.fuzz.payloads import header, jpeg_header_bomb, packed_nesting_bomb
from vla_async.local_server import LocalServer
from vla_async.messages import PROTOCOL_VERSION, ErrorCode, ErrorMessage, Hello, Observation, Ping, Welcome
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


# ---------------------------------------------------------------- the hardening issue's reproducers

OBS_META = {"request_id": 77, "tick": 1, "exec_tick": 1, "task": "", "deadline_ms": 100.0}


def _fresh(server) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{server.port}")
    return sock


def _reply(sock: zmq.Socket):
    assert sock.poll(5000), "no reply"
    return decode(sock.recv_multipart(), limits=DecodeLimits())


@pytest.mark.parametrize("handshake", [False, True])
def test_zero_times_huge_shape_gets_an_error_and_the_server_keeps_serving(handshake, server, good_client):
    sock = _fresh(server)
    try:
        if handshake:
            sock.send_multipart(encode(Hello("attacker", ROBOT)))
            assert isinstance(_reply(sock), Welcome)
        sock.send_multipart([header("Observation", OBS_META, [["state", "float32", [0, 2**26, 2**26, 2**26]]]), b""])
        reply = _reply(sock)
        assert isinstance(reply, ErrorMessage) and reply.request_id == 77
        assert reply.code == (ErrorCode.BAD_MESSAGE if handshake else ErrorCode.NO_SESSION)
        _good_round_trip(good_client, 5000 + handshake)
    finally:
        sock.close()


@pytest.mark.parametrize("where", ["v", "type", "meta", "client_name", "state_names"])
def test_nesting_bombs_are_dropped_and_the_server_keeps_serving(where, raw, good_client):
    hello = msgpack.unpackb(encode(Hello("r", ROBOT))[0])
    target = {"v": hello, "type": hello, "meta": hello["meta"], "client_name": hello["meta"],
              "state_names": hello["meta"]["robot_spec"]}[where]
    target[{"meta": "task"}.get(where, where)] = "\x00bomb\x00"
    packed = msgpack.packb(hello).replace(msgpack.packb("\x00bomb\x00"), packed_nesting_bomb(1010))
    raw.send_multipart([packed])
    assert not raw.poll(300)  # garbage: dropped, never answered
    _good_round_trip(good_client, 6000 + len(where))
    raw.send_multipart(encode(_obs(102)))
    assert _reply(raw).request_id == 102


def test_jpeg_header_bombs_are_refused_from_the_header_before_and_after_the_handshake(server, raw, good_client):
    pytest.importorskip("simplejpeg")
    bomb = jpeg_header_bomb()
    state = np.zeros(14, np.float32).tobytes()
    for shape in ([16384, 16384, 3], [8, 8, 3]):
        arrays = [["state", "float32", [14]], *[[f"images/{c.name}", "jpeg", shape] for c in ROBOT.cameras]]
        frames = [header("Observation", OBS_META, arrays), state, bomb, bomb, bomb]
        fresh = _fresh(server)
        try:
            fresh.send_multipart(frames)
            assert _reply(fresh).code == ErrorCode.NO_SESSION  # before any handshake: not even looked at
        finally:
            fresh.close()
        rss = _server_status(server)["VmHWM"]
        raw.send_multipart(frames)
        reply = _reply(raw)
        assert isinstance(reply, ErrorMessage) and reply.code == ErrorCode.BAD_MESSAGE
        assert _server_status(server)["VmHWM"] - rss < 50 * 1024  # KiB: nothing was decoded
        _good_round_trip(good_client, 7000 + shape[0])


def test_oversize_frames_are_refused_by_libzmq_before_buffering(server, raw, good_client):
    before = _server_status(server)["VmHWM"]
    raw.send_multipart([encode(Ping(1))[0]] + [b"\0" * (1 << 20)] * 24)  # 24 frames of 1 MiB, limit 200 kB
    assert not raw.poll(500)  # the connection was dropped: no reply
    _good_round_trip(good_client, 8000)
    assert _server_status(server)["VmHWM"] - before < 20 * 1024  # KiB: the 24 MiB were never held


def _server_status(server) -> dict[str, int]:
    return proc_status(server.process.pid)
