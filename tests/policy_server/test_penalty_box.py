"""The penalty box: a peer that floods rejected messages is ignored for a cool-down; robots are not.

Behaviour only (what is answered, what is counted), never how fast: the cool-down tests wait for
the release with a generous bound.
"""

from __future__ import annotations

import pytest
import zmq
from raw_peers import GARBAGE, ROBOT
from raw_peers import ask as _ask
from raw_peers import dealer as _dealer
from raw_peers import obs as _obs
from raw_peers import reply as _reply

from policy_server.backends.linear import LinearBackend
from policy_server.penalty_box import PenaltyBox
from policy_server.server import PolicyServer
from vla_async.config import BackendConfig, NetworkConfig, ServerConfig
from vla_async.config.schema import PenaltyBoxConfig
from vla_async.local_server import wait_until
from vla_async.messages import ErrorCode, ErrorMessage, Hello, Ping, Pong, Welcome
from vla_async.protocol import encode
from vla_async.transport import PolicyClient, ReceivedChunk

pytestmark = pytest.mark.timeout(90)


# ------------------------------------------------------------------ the box itself (no sockets)


def test_the_box_engages_at_the_kth_strike_within_the_window_and_releases_after_the_cooldown():
    box = PenaltyBox(strikes=3, window_s=1.0, cooldown_s=5.0)
    assert not box.strike(b"a", 0.0) and not box.strike(b"a", 0.1)
    assert not box.blocked(b"a", 0.2)
    assert box.strike(b"a", 0.2) and box.boxed_total == 1
    assert box.blocked(b"a", 0.3) and box.blocked(b"a", 5.1) and not box.blocked(b"b", 0.3)
    assert not box.blocked(b"a", 5.2)  # cool-down over
    assert not box.strike(b"a", 5.3)  # counting starts afresh after the release
    assert not box.blocked(b"a", 5.4)


def test_strikes_spread_over_more_than_one_window_never_box():
    box = PenaltyBox(strikes=3, window_s=1.0, cooldown_s=5.0)
    for i in range(30):  # one bad message every 0.6 s: at most 2 per window
        assert not box.strike(b"robot", 0.6 * i)
    assert box.boxed_total == 0


def test_zero_strikes_turns_the_box_off_and_memory_stays_bounded():
    off = PenaltyBox(strikes=0, window_s=1.0, cooldown_s=1.0)
    assert not any(off.strike(b"x", 0.0) for _ in range(100)) and len(off) == 0
    box = PenaltyBox(strikes=2, window_s=1.0, cooldown_s=1.0, max_tracked=8)
    for i in range(1000):  # an attacker with a new identity per message
        box.strike(i.to_bytes(4, "little"), 0.001 * i)
    assert len(box) <= 8
    box.sweep(100.0)
    assert len(box) == 0


# ------------------------------------------------------------------ a real server


def _server(strikes: int = 5, cooldown_s: float = 60.0) -> PolicyServer:
    config = ServerConfig(backend=BackendConfig(name="linear", options={"image_size": [8, 8]}),
                          penalty_box=PenaltyBoxConfig(strikes=strikes, window_s=60.0, cooldown_s=cooldown_s))
    return PolicyServer(config, LinearBackend(config.backend), port=0).start()


def _box_peer(srv: PolicyServer, sock: zmq.Socket, strikes: int) -> None:
    """`strikes` rejected messages: the first strikes-1 are answered, the last boxes the peer."""
    assert isinstance(_ask(sock, Hello("attacker", ROBOT)), Welcome)
    for i in range(strikes):
        sock.send_multipart(encode(_obs(i, state_dim=3)))  # wrong state length: bad_message
        reply = _reply(sock)
        assert isinstance(reply, ErrorMessage) and reply.code == ErrorCode.BAD_MESSAGE
    assert srv.stats["peers_boxed"] == 1


def test_a_flooding_peer_is_dropped_unread_while_a_robot_keeps_being_served():
    srv = _server(strikes=5)
    attacker = _dealer(srv.port)
    try:
        _box_peer(srv, attacker, 5)
        for i in range(50):  # garbage, pings, even a valid observation: dropped unread, never answered
            attacker.send_multipart(GARBAGE if i % 3 else encode(Ping(i)))
        attacker.send_multipart(encode(_obs(99)))
        assert wait_until(lambda: srv.stats["penalty_dropped"] == 51, 20.0), srv.stats
        assert not attacker.poll(200)
        received_before = srv.stats["received"]
        with PolicyClient(NetworkConfig(port=srv.port), "robot", ROBOT) as client:
            client.connect(timeout_s=10.0)
            for rid in range(1, 6):
                client.submit(_obs(rid))
                assert client.wait(10.0)
                got = client.poll()
                assert len(got) == 1 and isinstance(got[0], ReceivedChunk) and got[0].chunk.request_id == rid
        assert srv.stats["received"] >= received_before + 6  # the robot's messages were all read
        assert srv.stats["penalty_dropped"] == 51 and srv.fatal is None
    finally:
        attacker.close()
        srv.stop()


def test_a_boxed_peer_is_heard_again_after_the_cooldown():
    srv = _server(strikes=3, cooldown_s=0.5)
    sock = _dealer(srv.port)
    try:
        _box_peer(srv, sock, 3)
        sock.send_multipart(encode(Ping(1)))
        pong = None
        for seq in range(2, 200):  # bounded: the cool-down ends long before
            if sock.poll(100):
                pong = _reply(sock)
                break
            sock.send_multipart(encode(Ping(seq)))
        assert isinstance(pong, Pong), "the peer was never heard again"
        assert srv.stats["penalty_dropped"] >= 1
        reply = _ask(sock, _obs(7))  # its session survived the box
        assert getattr(reply, "request_id", None) == 7 and not isinstance(reply, ErrorMessage)
    finally:
        sock.close()
        srv.stop()


def test_one_malformed_message_from_a_robot_costs_it_one_error_reply_only():
    srv = _server(strikes=3)
    sock = _dealer(srv.port)
    try:
        assert isinstance(_ask(sock, Hello("robot", ROBOT)), Welcome)
        for rid in range(1, 11):  # two bad messages among good ones: fewer than `strikes`
            if rid in (3, 8):
                reply = _ask(sock, _obs(rid, state_dim=3))
                assert isinstance(reply, ErrorMessage) and reply.request_id == rid
            else:
                reply = _ask(sock, _obs(rid))
                assert getattr(reply, "request_id", None) == rid and not isinstance(reply, ErrorMessage)
        assert srv.stats["peers_boxed"] == 0 and srv.stats["penalty_dropped"] == 0
    finally:
        sock.close()
        srv.stop()
