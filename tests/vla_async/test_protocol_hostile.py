"""The reproducers of the hardening issue at codec level: every one is a ProtocolError, fast and bounded."""

from __future__ import annotations

import resource

import msgpack
import numpy as np
import pytest

from vla_async.fuzz.payloads import header, jpeg_header_bomb, nested_list, packed_nesting_bomb
from vla_async.messages import ErrorCode, Hello, Observation
from vla_async.protocol import ArraySpec, DecodeLimits, ProtocolError, decode, encode, excerpt
from vla_async.reference_specs import policy_spec_for, reference_robot_spec
from vla_async.wire.decoder import _decode  # the checks themselves, without decode()'s last-resort net

LIMITS = DecodeLimits()
ROBOT = reference_robot_spec(image_size=(8, 8))
OBS_SPEC = ArraySpec.for_observation(ROBOT, policy_spec_for(ROBOT, 5, "p"))
OBS_META = {"request_id": 3, "tick": 1, "exec_tick": 1, "task": "", "deadline_ms": 100.0}


def _strict(frames, expect=None):
    """decode's own checks must reject: no other exception type may come out of them."""
    with pytest.raises(ProtocolError) as info:
        _decode(frames, LIMITS, expect)
    return info.value


@pytest.mark.parametrize("expect", [None, OBS_SPEC])
def test_zero_dimension_times_huge_dimensions_is_rejected_before_numpy(expect):
    frames = [header("Observation", OBS_META, [["state", "float32", [0, 2**26, 2**26, 2**26]]]), b""]
    err = _strict(frames, expect)
    assert err.code == ErrorCode.BAD_MESSAGE and err.request_id == 3 and not err.garbage


@pytest.mark.parametrize("shape", [[-1, 14], [2**40], [True, 14], [14.0], [1] * 9, [2**62, 2**62, 0]])
def test_negative_huge_bool_float_and_deep_shapes_are_rejected(shape):
    _strict([header("Observation", OBS_META, [["state", "float32", shape]]), b""])


@pytest.mark.parametrize("where", ["v", "type", "meta_value", "client_name", "state_names", "arrays"])
def test_nesting_bomb_in_any_field_is_garbage_without_recursion(where):
    bomb = nested_list(1010)
    hello = msgpack.unpackb(encode(Hello("r", ROBOT))[0])
    if where in ("v", "type"):
        hello[where] = bomb
    elif where == "meta_value":
        hello["meta"]["task"] = bomb
    elif where == "client_name":
        hello["meta"]["client_name"] = bomb
    elif where == "state_names":
        hello["meta"]["robot_spec"]["state_names"] = bomb
    else:
        hello["arrays"] = bomb
    err = _strict([msgpack.packb(hello)])
    assert err.garbage and "deeper" in err.message


def test_nesting_bomb_at_msgpack_limit_is_garbage():
    assert _strict([packed_nesting_bomb(1023)]).garbage


def test_moderate_nesting_in_error_path_shows_an_excerpt_not_a_repr():
    frames = [header("Ping", {"seq": nested_list(10)}, [])]
    err = _strict(frames)
    assert "<list of 1>" in err.message and "[[[" not in err.message


def test_long_strings_in_errors_are_cut():
    frames = [header("x" * 60_000, {}, [])]
    err = _strict(frames)
    assert len(err.message) < 200


def test_ext_and_bin_types_are_garbage():
    ext = msgpack.packb({"v": 1, "type": "Ping", "meta": {"seq": msgpack.ExtType(5, b"abc")}, "arrays": []})
    binary = msgpack.packb({"v": 1, "type": "Ping", "meta": {"seq": b"\x00" * 10}, "arrays": []}, use_bin_type=True)
    assert _strict([ext]).garbage and _strict([binary]).garbage


def test_jpeg_header_bomb_is_rejected_from_its_header_in_little_time_and_memory():
    pytest.importorskip("simplejpeg")
    bomb = jpeg_header_bomb()
    assert len(bomb) < 1000
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    arrays = [["state", "float32", [14]], *[[f"images/{c.name}", "jpeg", [16384, 16384, 3]] for c in ROBOT.cameras]]
    frames = [header("Observation", OBS_META, arrays), np.zeros(14, np.float32).tobytes()] + [bomb] * 3
    assert "bad shape [16384, 16384, 3]" in _strict(frames).message  # over the frame limit
    smaller = [arrays[0], *[[a[0], "jpeg", [2048, 2048, 3]] for a in arrays[1:]]]
    assert "handshake" in _strict([header("Observation", OBS_META, smaller), *frames[1:]]).message  # no spec: no JPEG
    assert "agreed spec" in _strict([header("Observation", OBS_META, smaller), *frames[1:]], OBS_SPEC).message
    right_shape = [arrays[0], *[[a[0], "jpeg", [8, 8, 3]] for a in arrays[1:]]]
    assert "16384x16384" in _strict([header("Observation", OBS_META, right_shape), *frames[1:]], OBS_SPEC).message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100_000  # KiB: nothing decoded


def test_a_frame_over_the_frame_limit_is_refused_before_the_header():
    limits = DecodeLimits(max_frame_bytes=1000)
    frames = encode(Observation(1, 1, 1, np.zeros(500, np.float32)))
    with pytest.raises(ProtocolError, match="frame"):
        decode(frames, limits=limits)


def test_excerpt_is_bounded_and_never_recursive():
    assert excerpt(nested_list(5000)) == "<list of 1>"
    assert excerpt({"a": nested_list(5000)}) == "<map of 1>"
    assert len(excerpt("\x00" * 10_000)) <= 60 and excerpt(2**200) == "<int of 201 bits>"


def test_decode_turns_an_unexpected_exception_into_a_protocol_error(monkeypatch):
    import vla_async.wire.decoder as decoder

    def broken(*_a, **_k):
        raise RecursionError("a checker bug")

    monkeypatch.setattr(decoder, "decode_arrays", broken)
    with pytest.raises(ProtocolError, match="RecursionError"):
        decode(encode(Observation(1, 1, 1, np.zeros(14, np.float32))), limits=LIMITS)


def _random_tree(rng: np.random.Generator, depth: int) -> object:
    """Maps and lists up to `depth` levels, with strings and numbers whose bytes look like containers."""
    leaves = [0x90, 0xDC, 150.5, -0.0, 2**40 + 0x9F, "\x8f\x9c", 1.0e300, 0x80, 1, "ab", None]
    if depth <= 1 or rng.random() < 0.15:
        return leaves[int(rng.integers(len(leaves)))]
    n = int(rng.integers(1, 3)) if rng.random() < 0.8 else int(rng.integers(0, 5))
    if rng.random() < 0.5:
        return [_random_tree(rng, depth - 1) for _ in range(n)]
    return {f"k{i}": _random_tree(rng, depth - 1) for i in range(n)}


def test_the_byte_count_shortcut_never_lets_a_deep_or_large_header_skip_the_tree_walk():
    from vla_async.wire import codec

    limits = DecodeLimits(max_depth=6, max_items=200)
    rng = np.random.default_rng(7)
    skipped = 0
    for _ in range(3000):
        tree = {"v": 1, "type": "Ping", "meta": _random_tree(rng, 9)}
        raw = memoryview(msgpack.packb(tree))
        if codec._surely_within_tree_limits(raw, limits):
            skipped += 1
            codec._check_tree(tree, limits)  # must not raise: the shortcut only skips headers within limits
    assert skipped > 100  # the shortcut is taken for small headers (and the walk still runs for the rest)
    deep = msgpack.packb({"v": 1, "type": "Ping", "meta": nested_list(40)})
    with pytest.raises(ProtocolError, match="deeper"):
        codec.unpack_header(memoryview(deep), LIMITS)
