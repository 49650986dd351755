"""Codec round trips and rejection of bad input (dtype, shape, byte count, frames, version, size)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from vla_async.messages import (
    PROTOCOL_VERSION,
    ActionChunk,
    ErrorCode,
    ErrorMessage,
    Hello,
    Observation,
    Ping,
    Pong,
    ServerTiming,
    Welcome,
)
from vla_async.protocol import ArraySpec, DecodeLimits, ProtocolError, decode, encode
from vla_async.reference_specs import policy_spec_for, reference_robot_spec

LIMITS = DecodeLimits()
ROBOT = reference_robot_spec(image_size=(32, 48))
POLICY = policy_spec_for(ROBOT, 50, "p")
OBS_SPEC = ArraySpec.for_observation(ROBOT, POLICY)


def _obs(**kw: object) -> Observation:
    rng = np.random.default_rng(1)
    base = dict(request_id=7, tick=3, exec_tick=5, state=np.arange(14, dtype=np.float32),
                images={c.name: rng.integers(0, 256, c.shape, dtype=np.uint8) for c in ROBOT.cameras},
                task="pick the red cube", rollforward_state=np.ones(14, np.float64), deadline_ms=250.0)
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


def _header(frames: list) -> dict:
    return msgpack.unpackb(frames[0])


def _with_header(frames: list, **changes: object) -> list:
    header = _header(frames)
    header.update(changes)
    return [msgpack.packb(header), *frames[1:]]


def test_observation_round_trip_keeps_every_field_and_dtype():
    obs = _obs()
    out = decode(encode(obs), limits=LIMITS, expect=OBS_SPEC)
    assert isinstance(out, Observation)
    assert (out.request_id, out.tick, out.exec_tick, out.task, out.deadline_ms) == (7, 3, 5, "pick the red cube", 250.0)
    np.testing.assert_array_equal(out.state, obs.state)
    assert out.rollforward_state.dtype == np.float64
    assert set(out.images) == set(obs.images)
    for name, img in obs.images.items():
        np.testing.assert_array_equal(out.images[name], img)


@pytest.mark.parametrize("copy", [True, False])
def test_chunk_round_trip_with_timing(copy):
    actions = np.random.default_rng(0).standard_normal((50, 14)).astype(np.float32)
    chunk = ActionChunk(3, 17, actions, ServerTiming(1.0, 2.0, 3.0, 4.0, 10.0, 2))
    out = decode(encode(chunk, copy=copy), limits=LIMITS, expect=ArraySpec.for_chunk(POLICY))
    assert isinstance(out, ActionChunk) and out.start_tick == 17 and out.timing == chunk.timing
    np.testing.assert_array_equal(out.actions, actions)


@pytest.mark.parametrize("msg", [
    Hello("robot", ROBOT), Welcome("s1", POLICY), Ping(4), Pong(5),
    ErrorMessage(ErrorCode.SPEC_MISMATCH, "no", None), ErrorMessage(ErrorCode.BACKEND_ERROR, "x", 9),
])
def test_control_messages_round_trip(msg):
    assert decode(encode(msg), limits=LIMITS) == msg


def test_jpeg_images_decode_to_the_right_shape_and_close_values():
    img = np.tile(np.linspace(0, 255, 48, dtype=np.uint8)[None, :, None], (32, 1, 3))
    obs = _obs(images={c.name: img for c in ROBOT.cameras})
    frames = encode(obs, image_encoding="jpeg", jpeg_quality=90)
    assert sum(len(bytes(f)) for f in frames[1:]) < 3 * img.nbytes
    out = decode(frames, limits=LIMITS, expect=OBS_SPEC)
    for got in out.images.values():
        assert got.shape == img.shape and np.abs(got.astype(int) - img).mean() < 3


def test_object_dtype_cannot_be_encoded_or_decoded():
    with pytest.raises(ProtocolError):
        encode(_obs(state=np.array([object()] * 14)))
    frames = encode(_obs())
    header = _header(frames)
    header["arrays"][0][1] = "object"
    with pytest.raises(ProtocolError, match="not allowed"):
        decode([msgpack.packb(header), *frames[1:]], limits=LIMITS, expect=OBS_SPEC)


@pytest.mark.parametrize("mutate,match", [
    (lambda h: h["arrays"][0].__setitem__(1, "complex128"), "not allowed"),
    (lambda h: h["arrays"][0].__setitem__(2, [15]), "shape"),
    (lambda h: h["arrays"][2].__setitem__(0, "images/cam_unknown"), "not in the agreed spec"),
    (lambda h: h["meta"].__setitem__("tick", "soon"), "tick"),
    (lambda h: h["meta"].__setitem__("deadline_ms", -1.0), "deadline_ms"),
    (lambda h: h.__setitem__("type", "Launch"), "unknown message type"),
])
def test_invalid_headers_are_rejected_with_bad_message(mutate, match):
    frames = encode(_obs())
    header = _header(frames)
    mutate(header)
    with pytest.raises(ProtocolError, match=match) as info:
        decode([msgpack.packb(header), *frames[1:]], limits=LIMITS, expect=OBS_SPEC)
    assert info.value.code == ErrorCode.BAD_MESSAGE and not info.value.garbage
    assert info.value.request_id == 7


def test_truncated_frame_and_wrong_frame_count():
    frames = [bytes(f) for f in encode(_obs())]
    with pytest.raises(ProtocolError, match="truncated"):
        decode([frames[0], frames[1][:-4], *frames[2:]], limits=LIMITS, expect=OBS_SPEC)
    with pytest.raises(ProtocolError, match="data frames"):
        decode(frames[:-1], limits=LIMITS, expect=OBS_SPEC)


def test_missing_required_camera_is_named():
    obs = _obs(images={"cam_high": np.zeros((32, 48, 3), np.uint8)})
    with pytest.raises(ProtocolError, match="cam_left_wrist"):
        decode(encode(obs), limits=LIMITS, expect=OBS_SPEC)


def test_nan_state_is_rejected():
    with pytest.raises(ProtocolError, match="NaN"):
        decode(encode(_obs(state=np.full(14, np.nan, np.float32))), limits=LIMITS, expect=OBS_SPEC)


def test_wrong_protocol_version_has_its_own_code():
    frames = _with_header(encode(Hello("r", ROBOT)), v=PROTOCOL_VERSION + 1)
    with pytest.raises(ProtocolError) as info:
        decode(frames, limits=LIMITS)
    assert info.value.code == ErrorCode.VERSION_MISMATCH


def test_oversize_message_and_too_many_frames():
    small = DecodeLimits(max_message_bytes=10_000, max_frames=4)
    with pytest.raises(ProtocolError, match="limit"):
        decode(encode(_obs()), limits=small)
    with pytest.raises(ProtocolError, match="frames"):
        decode([encode(Ping(1))[0]] + [b""] * 10, limits=small)


@pytest.mark.parametrize("garbage", [b"", b"\xff\xfe\x00garbage", msgpack.packb([1, 2, 3]), b"\xc1"])
def test_garbage_is_flagged_as_garbage(garbage):
    with pytest.raises(ProtocolError) as info:
        decode([garbage], limits=LIMITS)
    assert info.value.garbage


def test_huge_string_in_header_is_refused_before_allocation():
    limits = DecodeLimits(max_str_len=100)
    frames = encode(Hello("x" * 1000, ROBOT))
    with pytest.raises(ProtocolError):
        decode(frames, limits=limits)


def test_hello_with_bad_robot_spec_names_the_field():
    header = _header(encode(Hello("r", ROBOT)))
    header["meta"]["robot_spec"]["fps"] = -5
    with pytest.raises(ProtocolError, match="fps"):
        decode([msgpack.packb(header)], limits=LIMITS)


def test_a_cached_layout_still_checks_byte_counts_types_and_spec():
    spec = ArraySpec.for_observation(ROBOT, POLICY)  # fresh spec: empty layout cache
    good = encode(_obs())
    for _ in range(2):  # the second decode takes the cached-layout path
        assert isinstance(decode(good, limits=LIMITS, expect=spec), Observation)
    assert spec._layouts  # the layout was remembered
    truncated = [*good[:-1], bytes(good[-1])[:-1]]
    with pytest.raises(ProtocolError, match="truncated or corrupt"):
        decode(truncated, limits=LIMITS, expect=spec)
    header = _header(good)
    cam = header["arrays"][-1]
    float_shape = [[*e[:2], [float(n) for n in e[2]]] if e is cam else e for e in header["arrays"]]
    with pytest.raises(ProtocolError, match="bad shape"):
        decode(_with_header(good, arrays=float_shape), limits=LIMITS, expect=spec)
    wrong_dtype = [[e[0], "int32" if e is cam else e[1], e[2]] for e in header["arrays"]]
    with pytest.raises(ProtocolError, match="not allowed"):
        decode(_with_header(good, arrays=wrong_dtype), limits=LIMITS, expect=spec)


def test_chunk_timing_rejects_bools_and_non_finite_numbers():
    frames = encode(ActionChunk(1, 2, np.zeros((50, 14), np.float32), ServerTiming(1, 2, 3, 4, 5, 1)))
    meta = _header(frames)["meta"]
    for bad in ([True, 0, 0, 0, 0, 1], [0, 0, float("nan"), 0, 0, 1], [0, 0, 0, 0, 0], "x"):
        with pytest.raises(ProtocolError, match="timing"):
            decode(_with_header(frames, meta={**meta, "timing": bad}), limits=LIMITS)
    out = decode(frames, limits=LIMITS)
    assert out.timing == ServerTiming(1.0, 2.0, 3.0, 4.0, 5.0, 1)


def test_a_welcome_is_encoded_from_its_own_policy_spec_every_time():
    """The codec computes a spec's dict once per spec object (a Hello flood must not pay `asdict` each time):
    the bytes must equal a fresh encoding, and another spec object, even an equal-looking one, its own."""
    import dataclasses

    def packed(spec):
        return msgpack.unpackb(msgpack.packb(spec.to_dict()))

    first = encode(Welcome("s1", POLICY))
    assert encode(Welcome("s2", POLICY))[0] != first[0]  # the session id differs, the spec part is the same
    assert msgpack.unpackb(first[0])["meta"]["policy_spec"] == packed(POLICY)
    other = dataclasses.replace(POLICY, name=POLICY.name + "-b", extra={"note": 1})
    meta = msgpack.unpackb(encode(Welcome("s1", other))[0])["meta"]["policy_spec"]
    assert meta == packed(other) and meta["name"] == POLICY.name + "-b" and meta["extra"] == {"note": 1}
    for i in range(20):  # more specs than the cache holds: each still encodes as itself
        spec = dataclasses.replace(POLICY, name=f"p{i}")
        assert msgpack.unpackb(encode(Welcome("s", spec))[0])["meta"]["policy_spec"]["name"] == f"p{i}"
    assert decode(encode(Welcome("s1", POLICY)), limits=DecodeLimits()) == Welcome("s1", POLICY)
