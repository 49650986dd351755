"""The committed action prefix (real-time chunking) on the wire: round trip, hostile prefixes, the spec gate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vla_async.messages import Observation
from vla_async.policy_input import policy_input
from vla_async.protocol import ArraySpec, DecodeLimits, ProtocolError, decode, encode
from vla_async.reference_specs import policy_spec_for, reference_robot_spec
from vla_async.specs import ACTION_PREFIX_KEY, accepts_action_prefix

LIMITS = DecodeLimits()
ROBOT = reference_robot_spec(image_size=(8, 8))
PLAIN = policy_spec_for(ROBOT, 20, "p")
RTC = dataclasses.replace(PLAIN, extra={ACTION_PREFIX_KEY: "inpaint"})
SPEC = ArraySpec.for_observation(ROBOT, RTC)


def _obs(prefix: np.ndarray | None, **kw: object) -> Observation:
    base = dict(request_id=4, tick=10, exec_tick=10, state=np.zeros(14, np.float32),
                images={c.name: np.zeros(c.shape, np.uint8) for c in ROBOT.cameras},
                action_prefix=prefix, prefix_tick=10, prefix_frozen=0 if prefix is None else min(3, len(prefix)))
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


def _prefix(rows: int, dtype=np.float32) -> np.ndarray:
    return (np.arange(rows * 14, dtype=np.float64).reshape(rows, 14) / 100).astype(dtype)


@pytest.mark.parametrize("rows", [0, 1, 7, 20])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prefix_round_trips_with_its_ticks_and_frozen_rows(rows, dtype):
    obs = _obs(_prefix(rows, dtype), prefix_frozen=min(rows, 5))
    out = decode(encode(obs), limits=LIMITS, expect=SPEC)
    assert (out.prefix_tick, out.prefix_frozen) == (10, min(rows, 5))
    assert out.action_prefix.dtype == dtype
    np.testing.assert_array_equal(out.action_prefix, obs.action_prefix)
    got = policy_input(out, 30.0, policy=RTC)  # what the backend receives
    np.testing.assert_array_equal(got.action_prefix, obs.action_prefix)
    assert got.prefix_frozen == min(rows, 5)


def test_no_prefix_means_no_prefix_fields():
    out = decode(encode(_obs(None)), limits=LIMITS, expect=SPEC)
    assert out.action_prefix is None and out.prefix_frozen == 0


def test_a_policy_that_does_not_accept_a_prefix_neither_allows_it_on_the_wire_nor_receives_it():
    assert not accepts_action_prefix(PLAIN) and accepts_action_prefix(RTC)
    with pytest.raises(ProtocolError, match="action_prefix.*not in the agreed spec"):
        decode(encode(_obs(_prefix(4))), limits=LIMITS, expect=ArraySpec.for_observation(ROBOT, PLAIN))
    assert policy_input(_obs(_prefix(4)), 30.0, policy=PLAIN).action_prefix is None


@pytest.mark.parametrize(("obs", "message"), [
    (_obs(_prefix(21)), r"up to 20 rows"),  # longer than H
    (_obs(np.zeros((4, 13), np.float32)), r"up to 20 rows"),  # wrong action_dim
    (_obs(np.zeros((4, 14, 1), np.float32)), r"up to 20 rows"),  # wrong rank
    (_obs(np.zeros((4, 14), np.int32)), r"dtype 'int32' not allowed"),
    (_obs(np.full((4, 14), np.nan, np.float32)), r"NaN or infinity"),
    (_obs(np.full((4, 14), np.inf)), r"NaN or infinity"),
    (_obs(_prefix(4), prefix_tick=9), r"prefix_tick 9 must equal exec_tick 10"),
    (_obs(_prefix(4), prefix_frozen=5), r"prefix_frozen must be in 0..4"),
    (_obs(_prefix(4), prefix_frozen=-1), r"prefix_frozen must be in 0..4"),
])
def test_hostile_prefixes_are_rejected_with_a_clear_error(obs, message):
    with pytest.raises(ProtocolError, match=message) as info:
        decode(encode(obs), limits=LIMITS, expect=SPEC)
    assert info.value.request_id == 4 and not info.value.garbage


@pytest.mark.parametrize("meta", [{"prefix_tick": "10"}, {"prefix_frozen": 2.5}, {"prefix_frozen": None},
                                  {"prefix_tick": [1]}])
def test_prefix_ticks_of_the_wrong_type_are_rejected(meta):
    import msgpack

    frames = encode(_obs(_prefix(4)))
    header = msgpack.unpackb(frames[0])
    header["meta"].update(meta)
    with pytest.raises(ProtocolError, match=r"prefix_(tick|frozen): expected an integer"):
        decode([msgpack.packb(header), *frames[1:]], limits=LIMITS, expect=SPEC)
