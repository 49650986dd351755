"""Fault tests against real processes on 127.0.0.1: a seeded structure-aware fuzz of 20,000 malformed
messages per side while a correct client requests at 30 Hz (server side and client side)."""

from __future__ import annotations

import pytest

from vla_async.fuzz.campaign import client_campaign, machine_reference, server_campaign
from vla_async.fuzz.generator import MessageFuzzer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MESSAGES = 20_000
SEED = 20261130
RSS_GROWTH_LIMIT_MIB = 300


def _categories() -> set[str]:
    from vla_async.reference_specs import policy_spec_for, reference_robot_spec

    robot = reference_robot_spec(image_size=(8, 8))
    return set(MessageFuzzer(0, robot, policy_spec_for(robot, 50, "p")).categories)


def test_server_keeps_serving_a_correct_client_through_20000_malformed_messages():
    # The penalty box and the stranger budget off, so the malformed messages reach the decoder (with
    # them on, most are dropped unread; tests/policy_server/test_penalty_box.py, test_admission.py).
    # The attacker builds its messages as it sends (paced by that), as the CI run always did.
    result = server_campaign(MESSAGES, seed=SEED, rate_hz=30.0, baseline_s=2.0, prebuild=False,
                             server_args=("--penalty_box.strikes=0", "--admission.rate=0"))
    attacker, correct = result["attacker"], result["correct_client"]
    assert result["messages"] >= MESSAGES and attacker.get("send_failed", 0) == 0, str(attacker)
    stats = result["server_stats"]
    # Not all: an oversize frame makes libzmq drop that connection, and the ROUTER discards what it had
    # not read from it yet (more when a loaded machine lets the server fall behind).
    assert stats["received"] >= MESSAGES // 2 and stats["penalty_dropped"] == 0, stats
    assert {k.split(":", 1)[1] for k in attacker if k.startswith("category:")} == _categories()
    assert result["process_exits"] == 0 and result["server_alive_after"] and result["server_exit_code"] == 0
    assert result["thread_deaths"] == 0, result["server_log_tail"]
    assert correct["failure"] is None and correct["errors"] == []
    assert correct["chunks"] >= 30 and correct["lost"] == 0 and correct["in_order"]
    assert result["rss_mib"]["peak_hwm"] - result["rss_mib"]["start"] < RSS_GROWTH_LIMIT_MIB, result["rss_mib"]


def test_client_keeps_its_real_chunks_and_reconnects_through_20000_malformed_replies():
    result = client_campaign(MESSAGES, seed=SEED, rate_hz=30.0)
    correct = result["correct_client"]
    assert result["hostile_finished"] and result["messages"] >= MESSAGES
    assert correct["failure"] is None  # the transport thread never died
    # real chunks keep arriving through the garbage (>= 10 on a quiet machine; 3-5 seen at load 14-15, where
    # the hostile server sends its 20,000 messages more slowly and the client reconnects more often)
    assert correct["lost"] == 0 and correct["in_order"] and result["during"]["chunks"] >= 3
    assert correct["transport"]["garbage"] >= MESSAGES // 2  # dropped and counted
    assert result["after_real_server"]["chunks"] >= 5  # and it reconnected to the real server that took the port


def test_the_penalty_box_stops_a_flood_and_an_attacker_dodging_it_still_reaches_the_decoder():
    """The bench's two attackers on a small scale: one identity pair is boxed (most messages dropped
    unread); new connections every 5 messages (fewer than the box's 10 strikes) are never boxed, and
    without the stranger budget (off here) every one of their messages reaches the decoder."""
    boxed = server_campaign(3000, seed=SEED, rate_hz=30.0, baseline_s=1.0, server_args=("--admission.rate=0",))
    stats = boxed["server_stats"]
    assert stats["peers_boxed"] >= 1 and stats["penalty_dropped"] > 1000, stats
    assert boxed["correct_client"]["lost"] == 0 and boxed["thread_deaths"] == 0
    dodging = server_campaign(600, seed=SEED, rate_hz=30.0, baseline_s=1.0, rotate_every=5,
                              server_args=("--admission.rate=0",))
    stats = dodging["server_stats"]
    assert dodging["attacker"]["rotations"] == 119 and stats["peers_boxed"] == 0, (stats, dodging["attacker"])
    assert stats["penalty_dropped"] == 0 and stats["received"] >= 600
    assert dodging["correct_client"]["lost"] == 0 and dodging["thread_deaths"] == 0


def test_the_machine_reference_times_a_bare_echo_before_and_during_the_same_flood():
    """`vla-async bench fuzz`'s reference: the flood goes to a real server, the timed round trips to a bare
    ZeroMQ echo in another process; both phases are timed and nothing is lost (the echo is not attacked)."""
    ref = machine_reference(MESSAGES, seed=SEED, rate_hz=30.0, baseline_s=1.0)
    assert ref["requests"]["before"] == 30 and ref["requests"]["during"] >= 1 and ref["lost"] == 0, ref
    assert 0 < ref["p50_ms"]["before"] <= ref["p99_ms"]["before"], ref
    assert 0 < ref["p99_ms"]["during"] < 5000, ref


ROTATING_MESSAGES = 3000
BUDGET = ("--admission.rate=200", "--admission.burst=100", "--admission.hello_share=0.5")  # the defaults


def test_the_stranger_budget_keeps_a_rotating_attacker_from_starving_robots_and_lets_a_new_one_in():
    """A new connection (identity) for every malformed message, each with its own valid Hello, paced
    so that the attack lasts a few seconds: the penalty box never engages, the stranger budget drops
    most of it unread; the correct robot loses nothing, and a robot that connects once the attack has
    begun gets its Welcome (from the Hello reserve) while the attack still runs, then all its chunks.
    With `--admission.rate=0` (budget off) the budget assertions fail."""
    result = server_campaign(ROTATING_MESSAGES, seed=SEED, rate_hz=30.0, baseline_s=1.0, rotate_every=1,
                             fuzz_rate=400.0, late_client=True, server_args=BUDGET)
    stats, attacker = result["server_stats"], result["attacker"]
    assert attacker["rotations"] == ROTATING_MESSAGES - 1 and attacker.get("send_failed", 0) == 0, attacker
    assert stats["peers_boxed"] == 0, stats  # the box alone cannot stop this attacker
    # Every message came with a Hello: twice ROTATING_MESSAGES reached the ROUTER (at most 800/s). The
    # budget admits 100 + 200/s, and each admitted Hello buys one message in good standing, so well over
    # half are dropped unread unless the machine slows the attacker to a third of its pace.
    assert stats["budget_dropped"] >= ROTATING_MESSAGES // 2, stats
    assert result["thread_deaths"] == 0 and result["process_exits"] == 0
    correct, late = result["correct_client"], result["late_client"]
    assert correct["failure"] is None and correct["errors"] == []
    assert correct["chunks"] >= 30 and correct["lost"] == 0 and correct["in_order"], correct
    assert late["connected"] and late["during_attack"], late
    assert late["failure"] is None and late["errors"] == [], late
    assert late["chunks"] >= 5 and late["lost"] == 0 and late["in_order"], late
