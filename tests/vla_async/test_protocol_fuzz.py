"""Property tests: the decoder round-trips valid messages and never fails other than ProtocolError.

The "only ProtocolError" properties call `_decode` (the checks themselves): `decode` would also turn a
checker's unexpected exception into a ProtocolError, which would hide the bug from these tests."""

from __future__ import annotations

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_async.messages import ActionChunk, Observation
from vla_async.protocol import DTYPES, ArraySpec, DecodeLimits, ProtocolError, decode, encode
from vla_async.reference_specs import policy_spec_for, reference_robot_spec
from vla_async.wire.decoder import _decode

LIMITS = DecodeLimits(max_message_bytes=1 << 20)
ROBOT = reference_robot_spec(state_dim=4, cameras=("a",), image_size=(4, 6))
OBS_SPEC = ArraySpec.for_observation(ROBOT, policy_spec_for(ROBOT, 5, "p"))
finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=150, deadline=None)
@given(state=st.lists(finite, min_size=4, max_size=4), tick=st.integers(-2**40, 2**40),
       pixels=st.binary(min_size=72, max_size=72), task=st.text(max_size=50))
def test_valid_observations_round_trip(state, tick, pixels, task):
    obs = Observation(1, tick, tick + 3, np.array(state, np.float32),
                      {"a": np.frombuffer(pixels, np.uint8).reshape(4, 6, 3)}, task=task)
    out = decode(encode(obs), limits=LIMITS, expect=OBS_SPEC)
    assert out.tick == tick and out.task == task
    np.testing.assert_array_equal(out.state, obs.state)
    np.testing.assert_array_equal(out.images["a"], obs.images["a"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=5))
def test_random_frames_only_raise_protocol_error(frames):
    try:
        _decode(frames, LIMITS, OBS_SPEC)
    except ProtocolError:
        pass


json_like = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=10),
                         lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                         max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(meta=st.dictionaries(st.sampled_from(["request_id", "tick", "exec_tick", "task", "deadline_ms", "start_tick",
                                             "timing", "seq", "code", "message"]), json_like),
       kind=st.sampled_from(["Observation", "ActionChunk", "Ping", "Pong", "ErrorMessage", "Hello", "Welcome"]),
       arrays=st.lists(st.tuples(st.sampled_from(["state", "actions", "images/a", "x"]),
                                 st.sampled_from([*DTYPES, "object", "jpeg"]),
                                 st.lists(st.integers(-2, 8), max_size=3)), max_size=3),
       payload=st.binary(max_size=64))
def test_structured_junk_headers_only_raise_protocol_error(meta, kind, arrays, payload):
    header = {"v": 1, "type": kind, "meta": meta, "arrays": [list(a[:2]) + [a[2]] for a in arrays]}
    frames = [msgpack.packb(header)] + [payload] * len(arrays)
    for expect in (None, OBS_SPEC):
        try:
            msg = _decode(frames, LIMITS, expect)
        except ProtocolError:
            continue
        if isinstance(msg, ActionChunk):
            assert msg.actions.dtype == np.float32 and np.isfinite(msg.actions).all()
        if isinstance(msg, Observation):
            assert msg.state.dtype.kind == "f" and np.isfinite(msg.state).all()


def test_generated_hostile_messages_only_raise_protocol_error_in_both_directions():
    from vla_async.fuzz.generator import MessageFuzzer

    policy = policy_spec_for(ROBOT, 5, "p")
    for direction, spec in (("to_server", OBS_SPEC), ("to_client", ArraySpec.for_chunk(policy))):
        fuzzer = MessageFuzzer(7, ROBOT, policy, direction)
        for case in fuzzer.cases(3000):
            for expect in (None, spec):
                try:
                    _decode(case.frames, LIMITS, expect)
                except ProtocolError as exc:
                    assert len(exc.message) <= 2000 and "Traceback" not in exc.message
