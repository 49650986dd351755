"""Streamed chunks on the wire: parts round-trip, hostile row ranges and flags are rejected with a ProtocolError,
a whole chunk's header is unchanged, and a policy's streaming declaration is read defensively."""

from __future__ import annotations

import dataclasses

import msgpack
import numpy as np
import pytest

from vla_async.messages import ActionChunk, Observation
from vla_async.protocol import ArraySpec, DecodeLimits, ProtocolError, decode, encode
from vla_async.reference_specs import policy_spec_for, reference_robot_spec
from vla_async.specs import STREAMING_KEY, streaming_plan
from vla_async.wire.decoder import _decode

H, D = 10, 14
LIMITS = DecodeLimits()
ROBOT = reference_robot_spec(image_size=(4, 4))
DECLARATION = {"steps": 5, "clean_rows": [1, 3, 5, 8, 10], "first_rows": 3}
STREAMING = dataclasses.replace(policy_spec_for(ROBOT, H, "p"), extra={STREAMING_KEY: DECLARATION})
PLAIN = policy_spec_for(ROBOT, H, "p")


def _rows(lo: int, hi: int) -> np.ndarray:
    return (np.arange(lo, hi)[:, None] + np.zeros(D)).astype(np.float32)


def _part_frames(lo, n, final, override: dict | None = None) -> list[bytes]:
    frames = [bytes(f) for f in encode(ActionChunk(3, 40, np.zeros((n, D), np.float32), row_offset=1, final=False))]
    header = msgpack.unpackb(frames[0])
    header["meta"].update({"row_offset": lo, "final": final, **(override or {})})
    return [msgpack.packb(header), *frames[1:]]


def test_parts_round_trip_with_their_range_and_flag():
    spec = ArraySpec.for_chunk(STREAMING)
    first = decode(encode(ActionChunk(3, 40, _rows(0, 3), row_offset=0, final=False)), limits=LIMITS, expect=spec)
    rest = decode(encode(ActionChunk(3, 40, _rows(3, H), row_offset=3, final=True)), limits=LIMITS, expect=spec)
    assert (first.request_id, first.start_tick, first.row_offset, first.final, first.horizon) == (3, 40, 0, False, 3)
    assert (rest.row_offset, rest.final, rest.horizon, rest.end_tick) == (3, True, 7, 40 + H)
    assert first.is_part and rest.is_part
    np.testing.assert_array_equal(np.concatenate([first.actions, rest.actions]), _rows(0, H))


def test_a_whole_chunk_keeps_its_header_and_is_not_a_part():
    frames = encode(ActionChunk(3, 40, _rows(0, H)))
    assert "row_offset" not in msgpack.unpackb(frames[0])["meta"]
    whole = decode(frames, limits=LIMITS, expect=ArraySpec.for_chunk(STREAMING))
    assert not whole.is_part and whole.final and whole.row_offset == 0


@pytest.mark.parametrize(("lo", "n", "final", "why"), [
    (0, 3, True, "final before the last row"),
    (7, 3, False, "ends at H but not final"),
    (8, 3, True, "past the chunk"),
    (H, 1, True, "starts at H"),
    (-1, 3, False, "negative offset"),
    (2**63 - 1, 1, True, "huge offset"),
    (0, 0, False, "no rows"),
    (0, H + 1, True, "more rows than a chunk"),
])
def test_hostile_ranges_are_rejected(lo, n, final, why):
    with pytest.raises(ProtocolError):
        decode(_part_frames(lo, n, final), limits=LIMITS, expect=ArraySpec.for_chunk(STREAMING))


@pytest.mark.parametrize("meta", [{"final": "true"}, {"final": 1}, {"final": None}, {"row_offset": "1"},
                                  {"row_offset": True}, {"row_offset": 1.0}, {"row_offset": None}])
def test_badly_typed_part_fields_are_rejected(meta):
    with pytest.raises(ProtocolError):
        _decode(_part_frames(0, 3, False, meta), LIMITS, ArraySpec.for_chunk(STREAMING))


def test_a_client_of_a_policy_that_does_not_stream_rejects_parts():
    with pytest.raises(ProtocolError):
        decode(encode(ActionChunk(3, 40, _rows(0, 3), final=False)), limits=LIMITS, expect=ArraySpec.for_chunk(PLAIN))


def test_the_stream_flag_round_trips_and_must_be_a_boolean():
    spec = ArraySpec.for_observation(ROBOT, STREAMING)
    images = {c.name: np.zeros(c.shape, np.uint8) for c in ROBOT.cameras}
    obs = Observation(1, 5, 5, np.zeros(ROBOT.state_dim, np.float32), images, stream=True)
    assert decode(encode(obs), limits=LIMITS, expect=spec).stream is True
    plain = encode(dataclasses.replace(obs, stream=False))
    assert "stream" not in msgpack.unpackb(plain[0])["meta"]
    header = msgpack.unpackb(encode(obs)[0])
    header["meta"]["stream"] = 1
    with pytest.raises(ProtocolError):
        _decode([msgpack.packb(header), *encode(obs)[1:]], LIMITS, spec)


def test_every_generated_stream_part_is_rejected_in_both_directions():
    from vla_async.fuzz.generator import MessageFuzzer

    for direction, spec in (("to_client", ArraySpec.for_chunk(STREAMING)),
                            ("to_server", ArraySpec.for_observation(ROBOT, STREAMING))):
        fuzzer = MessageFuzzer(11, ROBOT, STREAMING, direction)
        for _ in range(300):
            with pytest.raises(ProtocolError):
                _decode(fuzzer.categories["stream_part"](), LIMITS, spec)


def test_streaming_plan_reads_a_declaration_and_ignores_malformed_ones():
    plan = streaming_plan(STREAMING)
    assert (plan.steps, plan.first_step, plan.first_rows, plan.fraction) == (5, 2, 3, 0.4)
    assert plan.sends == ((2, 3), (3, 5), (4, 8), (5, 10))  # every later step's new rows, then the whole chunk
    once = streaming_plan(dataclasses.replace(PLAIN, extra={STREAMING_KEY: {**DECLARATION, "every_step": False}}))
    assert once.sends == ((2, 3), (5, 10))
    assert streaming_plan(PLAIN) is None and streaming_plan(None) is None
    bad = [{"steps": 5, "clean_rows": [1, 3, 5, 8, 9], "first_rows": 3},  # not all rows clean at the end
           {"steps": 5, "clean_rows": [3, 1, 5, 8, 10], "first_rows": 3},  # decreasing
           {"steps": 4, "clean_rows": [1, 3, 5, 8, 10], "first_rows": 3},  # length
           {"steps": 5, "clean_rows": [1, 3, 5, 8, 10], "first_rows": 0},
           {"steps": 5, "clean_rows": [1, 3, 5, 8, 10], "first_rows": True},
           {"steps": 5, "clean_rows": "abcde", "first_rows": 3},
           {"steps": 2**40, "clean_rows": [10], "first_rows": 3}, "yes", None,
           {"steps": 2, "clean_rows": [10, 10], "first_rows": 3}]  # nothing to stream before the end
    for decl in bad:
        assert streaming_plan(dataclasses.replace(PLAIN, extra={STREAMING_KEY: decl})) is None, decl
