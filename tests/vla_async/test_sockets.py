"""Frame-level send/receive of `vla_async.sockets` over real ZeroMQ sockets (inproc PAIR)."""

from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from vla_async.sockets import recv_frames, send_frames


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://frames")
    b.connect("inproc://frames")
    yield a, b
    a.close(0)
    b.close(0)
    ctx.term()


@pytest.mark.parametrize("copy", [True, False])
def test_a_multipart_message_arrives_whole_and_alone(pair, copy: bool) -> None:
    a, b = pair
    big = np.arange(100_000, dtype=np.uint8)  # over pyzmq's copy threshold
    send_frames(a, [b"head", memoryview(big), zmq.Frame(b"tail")], copy)
    send_frames(a, [b"next"], copy)
    assert b.poll(5000)
    got = recv_frames(b)
    assert [bytes(f.buffer) for f in got] == [b"head", big.tobytes(), b"tail"]
    assert [bytes(f.buffer) for f in recv_frames(b)] == [b"next"]


def test_a_frame_that_is_not_bytes_sends_nothing(pair) -> None:
    a, b = pair
    with pytest.raises(TypeError):
        send_frames(a, [b"head", "not bytes"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        send_frames(a, [])
    send_frames(a, [b"whole"])
    assert b.poll(5000)
    assert [bytes(f.buffer) for f in recv_frames(b)] == [b"whole"]  # no half message before it
