"""The stranger budget (policy_server/admission.py): messages not from a session in good standing
share a decode budget; over it they are dropped unread, while robots in good standing are always heard.

Behaviour only: the server tests use a budget that does not refill within the test (rate 0.001/s),
so what is admitted depends on counts, never on speed.
"""

from __future__ import annotations

import pytest
from raw_peers import GARBAGE, ROBOT
from raw_peers import ask as _ask
from raw_peers import dealer as _dealer
from raw_peers import obs as _obs

from policy_server.admission import StrangerBudget, TokenBucket, looks_like_hello
from policy_server.backends.linear import LinearBackend
from policy_server.server import PolicyServer
from policy_server.session import Session, pick_evictee
from vla_async.config import BackendConfig, ServerConfig
from vla_async.config.schema import AdmissionConfig
from vla_async.local_server import wait_until
from vla_async.messages import ActionChunk, ErrorCode, ErrorMessage, Hello, Ping, Welcome
from vla_async.protocol import encode
from vla_async.reference_specs import policy_spec_for

pytestmark = pytest.mark.timeout(90)
HELLO = encode(Hello("robot", ROBOT))


# ------------------------------------------------------------------ the budget itself (no sockets)


def test_a_bucket_gives_its_burst_then_refills_at_its_rate():
    bucket = TokenBucket(rate=10.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.05)  # half a token
    assert bucket.take(0.1) and not bucket.take(0.1)
    assert sum(bucket.take(100.0) for _ in range(10)) == 3  # never more than the burst


def test_a_garbage_flood_leaves_the_hello_reserve_to_new_robots():
    budget = StrangerBudget(rate=0.001, burst=10, hello_share=0.5, now=0.0)  # 2.5 Hellos, 2.5 repeated, 5 others
    admitted = sum(budget.admit(b"x", [b"x", *GARBAGE], 0.0) for _ in range(1000))
    assert admitted == 5  # the non-Hello half of the burst; the rest would be dropped unread
    assert [budget.admit(b"r%d" % i, [b"r%d" % i, *HELLO], 0.0) for i in range(3)] == [True, True, False]
    assert budget.admit(b"r2", [b"r2", *HELLO], 0.0)  # said again: from the reserve for repeated Hellos


def test_a_hello_said_again_gets_through_a_flood_of_hellos_from_ever_new_identities():
    budget = StrangerBudget(rate=0.001, burst=10, hello_share=0.5, now=0.0)
    attack = [budget.admit(b"a%d" % i, [b"a%d" % i, *HELLO], 0.0) for i in range(1000)]  # one Hello each
    assert sum(attack) == 7  # first Hellos' reserve and the general budget
    assert not budget.admit(b"robot", [b"robot", *HELLO], 0.0)
    assert budget.admit(b"robot", [b"robot", *HELLO], 0.0)  # its second Hello: the repeated reserve
    assert len(budget) <= budget.max_tracked


def test_hellos_may_use_the_whole_budget_and_rate_zero_turns_it_off():
    budget = StrangerBudget(rate=0.001, burst=10, hello_share=0.2, now=0.0)  # 1 + 1 Hello tokens, 8 others
    assert sum(budget.admit(b"id", [b"id", *HELLO], 0.0) for _ in range(100)) == 10
    off = StrangerBudget(rate=0, burst=1, hello_share=0.5, now=0.0)
    assert all(off.admit(b"id", [b"id", *GARBAGE], 0.0) for _ in range(1000))


def test_memory_for_unanswered_hellos_is_bounded():
    budget = StrangerBudget(rate=0.001, burst=1, hello_share=1.0, now=0.0, max_tracked=8)
    for i in range(1000):
        budget.admit(i.to_bytes(4, "little"), [b"", *HELLO], 0.0)
    assert len(budget) == 8


def test_the_hello_hint_is_a_byte_check_of_an_encoded_hello():
    assert looks_like_hello([b"id", *HELLO])
    assert not looks_like_hello([b"id", *encode(Ping(1))])
    assert not looks_like_hello([b"id", *GARBAGE]) and not looks_like_hello([b"id"])
    assert not looks_like_hello([b"id", *HELLO, b"extra frame"])


def test_config_validates_the_budget():
    assert AdmissionConfig().rate > 0  # on by default
    for bad in ({"rate": -1}, {"burst": 0}, {"hello_share": 0}, {"hello_share": 1.5}):
        with pytest.raises(ValueError):
            AdmissionConfig(**bad)


def test_a_session_whose_first_message_was_rejected_is_evictable_at_once():
    policy = policy_spec_for(ROBOT, 50, "p")
    squatter, failed = Session(b"a", "s", ROBOT, policy), Session(b"b", "f", ROBOT, policy)
    failed.in_good_standing = False
    now = squatter.created_at + 0.1
    assert not squatter.evictable(now, 5.0, 30.0) and failed.evictable(now, 5.0, 30.0)
    assert pick_evictee([squatter, failed], now, 5.0, 30.0) is failed


# ------------------------------------------------------------------ a real server


def _server(rate: float = 0.001, burst: float = 8.0, hello_share: float = 0.5) -> PolicyServer:
    config = ServerConfig(backend=BackendConfig(name="linear", options={"image_size": [8, 8]}),
                          admission=AdmissionConfig(rate=rate, burst=burst, hello_share=hello_share))
    return PolicyServer(config, LinearBackend(config.backend), port=0).start()


def test_strangers_over_budget_are_dropped_unread_while_robots_in_good_standing_are_always_heard():
    srv = _server()
    stranger, robot = _dealer(srv.port), _dealer(srv.port)
    try:
        for _ in range(100):
            stranger.send_multipart(GARBAGE)
        assert wait_until(lambda: srv.stats["budget_dropped"] == 96, 20.0), srv.stats  # 4 non-Hello tokens
        assert isinstance(_ask(robot, Hello("robot", ROBOT)), Welcome)  # from the Hello reserve
        for rid in range(1, 31):  # far more than the budget: in good standing, every one is decoded
            assert isinstance(_ask(robot, _obs(rid)), ActionChunk)
        assert srv.stats["budget_dropped"] == 96 and srv.stats["chunks"] == 30 and srv.fatal is None
    finally:
        stranger.close()
        robot.close()
        srv.stop()


def test_a_rejected_message_costs_a_session_its_standing_until_it_says_hello_again():
    srv = _server(burst=2.0, hello_share=1.0)  # one first Hello, one repeated Hello, nothing else
    robot = _dealer(srv.port)
    try:
        assert isinstance(_ask(robot, Hello("robot", ROBOT)), Welcome)
        assert isinstance(_ask(robot, _obs(1)), ActionChunk)  # in good standing: no budget needed
        reply = _ask(robot, _obs(2, state_dim=3))  # rejected: the session loses its standing
        assert isinstance(reply, ErrorMessage) and reply.code == ErrorCode.BAD_MESSAGE
        robot.send_multipart(encode(_obs(3)))  # now it needs the budget: none left, dropped unread
        assert wait_until(lambda: srv.stats["budget_dropped"] == 1, 20.0), srv.stats
        robot.send_multipart(HELLO)  # the first-Hello reserve is spent: dropped, and remembered
        assert wait_until(lambda: srv.stats["budget_dropped"] == 2, 20.0), srv.stats
        assert not robot.poll(100)  # neither was answered
        assert isinstance(_ask(robot, Hello("robot", ROBOT)), Welcome)  # said again: the repeated reserve
        assert isinstance(_ask(robot, _obs(4)), ActionChunk)  # a fresh session, in good standing
        assert srv.stats["budget_dropped"] == 2 and srv.fatal is None
    finally:
        robot.close()
        srv.stop()
