"""Frames ↔ (header, buffers): frame 0 is a msgpack header, frames 1..n are raw C-contiguous arrays.

Header: `{"v": version, "type": name, "meta": {...}, "arrays": [[name, dtype, shape], ...]}`.
Unpacking is bounded before anything else happens: header bytes, string/container sizes (the
Unpacker's `max_*_len`), no bin or ext types, and then the nesting depth and the total element
count of the unpacked tree (msgpack itself allows 1024 levels, deep enough to crash `repr`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from vla_async.messages import (
    PROTOCOL_VERSION,
    ActionChunk,
    ErrorCode,
    ErrorMessage,
    Hello,
    Message,
    Observation,
    Ping,
    Pong,
    Welcome,
)
from vla_async.wire.errors import bad, excerpt, garbage

# Little-endian only; the allow-list is the whole set of dtypes that may cross the wire.
DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
}
_WIRE_NAMES = {dtype: name for name, dtype in DTYPES.items()}  # native wire dtypes: no conversion on encode
JPEG = "jpeg"
IMAGE_PREFIX = "images/"
FLOAT_DTYPES = frozenset({"float32", "float64"})
INT64_MAX = 2**63 - 1
# Optional Observation arrays (attribute name = array name); `action_prefix` is 2-D [rows, action_dim].
OPTIONAL_OBSERVATION_ARRAYS = ("rollforward_state", "environment_state", "action_prefix")
_MAP_FIRST_BYTES = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])  # msgpack fixmap, map 16, map 32
# first bytes of msgpack maps and arrays: fixmap, fixarray, array 16/32, map 16/32
_CONTAINER_BYTES = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])


@dataclass(frozen=True)
class DecodeLimits:
    """Caps applied before anything is allocated or formatted from untrusted input."""

    max_message_bytes: int = 64 * 1024 * 1024  # all frames of one message together
    max_frame_bytes: int = 16 * 1024 * 1024  # one frame; also the largest array (or decoded JPEG) accepted
    max_frames: int = 64
    max_header_bytes: int = 256 * 1024
    max_str_len: int = 64 * 1024
    max_container_len: int = 4096
    max_depth: int = 16  # nesting of maps/lists in a header (a legitimate one needs 5)
    max_items: int = 65_536  # elements of all containers in a header together
    max_ndim: int = 8

    @classmethod
    def from_network(cls, network: Any, max_frame_bytes: int | None = None) -> DecodeLimits:
        """Limits from a NetworkConfig; `max_frame_bytes` overrides the config's (0 there: the default)."""
        frame = max_frame_bytes or int(network.max_frame_bytes) or cls.max_frame_bytes
        return cls(max_message_bytes=int(network.max_message_bytes), max_frame_bytes=int(frame))


# ------------------------------------------------------------------ encode


def _array_entry(name: str, arr: np.ndarray, out: list[list[Any]], frames: list[Any], copy: bool) -> None:
    arr = np.asarray(arr)
    dtype_name = _WIRE_NAMES.get(arr.dtype)
    if dtype_name is None or not arr.flags.c_contiguous:  # the fast path above is the usual case
        dtype_name = arr.dtype.name
        if dtype_name not in DTYPES:
            raise bad(f"array {name!r}: dtype {arr.dtype} is not allowed")
        arr = np.ascontiguousarray(arr, dtype=DTYPES[dtype_name])
    out.append([name, dtype_name, list(arr.shape)])
    frames.append(arr.tobytes() if copy else memoryview(arr).cast("B"))


def _observation_meta(msg: Observation, image_encoding: str, jpeg_quality: int, arrays: list[list[Any]],
                      frames: list[Any], copy: bool) -> dict[str, Any]:
    _array_entry("state", msg.state, arrays, frames, copy)
    for key in OPTIONAL_OBSERVATION_ARRAYS:
        value = getattr(msg, key)
        if value is not None:
            _array_entry(key, value, arrays, frames, copy)
    for cam, img in msg.images.items():
        if image_encoding == JPEG:
            from vla_async.image_codec import encode_jpeg

            img = np.asarray(img)
            arrays.append([IMAGE_PREFIX + cam, JPEG, list(img.shape)])
            frames.append(encode_jpeg(img, jpeg_quality))
        else:
            _array_entry(IMAGE_PREFIX + cam, img, arrays, frames, copy)
    meta = {"request_id": int(msg.request_id), "tick": int(msg.tick), "exec_tick": int(msg.exec_tick),
            "task": msg.task, "deadline_ms": float(msg.deadline_ms)}
    if msg.action_prefix is not None:
        meta["prefix_tick"], meta["prefix_frozen"] = int(msg.prefix_tick), int(msg.prefix_frozen)
    if msg.stream:
        meta["stream"] = True
    return meta


_SPEC_DICTS: dict[int, tuple[Any, dict[str, Any]]] = {}  # id(spec) -> (spec, spec.to_dict()), a few entries
_SPEC_DICTS_MAX = 8


def _spec_dict(spec: Any) -> dict[str, Any]:
    """`spec.to_dict()`, computed once per spec object: a server sends its one PolicySpec in every Welcome, and
    `dataclasses.asdict` costs ~0.5 ms a time, which a flood of Hellos would pay on the I/O thread. The entry
    holds the spec, so its id is not reused while cached; the dict is only ever packed, never handed out."""
    hit = _SPEC_DICTS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    data = spec.to_dict()
    if len(_SPEC_DICTS) >= _SPEC_DICTS_MAX:
        _SPEC_DICTS.clear()
    _SPEC_DICTS[id(spec)] = (spec, data)
    return data


def _control_meta(msg: Message) -> dict[str, Any]:
    if isinstance(msg, Hello):
        return {"client_name": msg.client_name, "robot_spec": msg.robot_spec.to_dict()}
    if isinstance(msg, Welcome):
        return {"session_id": msg.session_id, "policy_spec": _spec_dict(msg.policy_spec), "server_name": msg.server_name}
    if isinstance(msg, ErrorMessage):
        return {"code": ErrorCode(msg.code).value, "message": msg.message, "request_id": msg.request_id}
    if isinstance(msg, Ping | Pong):
        return {"seq": int(msg.seq)}
    raise TypeError(f"cannot encode {type(msg).__name__}")


def encode(
    msg: Message, *, image_encoding: str = "raw", jpeg_quality: int = 90, copy: bool = True
) -> list[bytes | memoryview]:
    """Frames for `msg`. With `copy=False` array frames are views of the caller's arrays."""
    arrays: list[list[Any]] = []
    frames: list[Any] = []
    version = getattr(msg, "protocol_version", PROTOCOL_VERSION)
    if isinstance(msg, Observation):
        meta = _observation_meta(msg, image_encoding, jpeg_quality, arrays, frames, copy)
    elif isinstance(msg, ActionChunk):
        t = msg.timing
        meta = {"request_id": int(msg.request_id), "start_tick": int(msg.start_tick), "timing": [
            t.queue_ms, t.preprocess_ms, t.model_ms, t.postprocess_ms, t.total_ms, t.batch_size]}
        if msg.row_offset or not msg.final:  # a part of a streamed chunk (a whole chunk's header is unchanged)
            meta["row_offset"], meta["final"] = int(msg.row_offset), bool(msg.final)
        _array_entry("actions", np.asarray(msg.actions, dtype=np.float32), arrays, frames, copy)
    else:
        meta = _control_meta(msg)
    header = msgpack.packb({"v": int(version), "type": type(msg).__name__, "meta": meta, "arrays": arrays})
    return [header, *frames]


# ------------------------------------------------------------------ decode (framing only)


def as_buffer(frame: Any) -> memoryview:
    """bytes, memoryview or a zmq.Frame (any object with the buffer protocol) as a byte view."""
    view = frame if type(frame) is memoryview else memoryview(frame)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def split_frames(frames: Sequence[Any], limits: DecodeLimits) -> list[memoryview]:
    """Byte views of `frames` after the frame-count and size caps."""
    if not frames:
        raise garbage("empty message")
    if len(frames) > limits.max_frames + 1:
        raise bad(f"message has {len(frames)} frames, limit {limits.max_frames + 1}")
    buffers = [as_buffer(f) for f in frames]
    # Checked before the header is parsed, so this error carries no request id. A single frame
    # over MAXMSGSIZE never gets here at all: ZeroMQ drops that connection and the peer reconnects.
    total = 0
    for b in buffers[1:]:
        if b.nbytes > limits.max_frame_bytes:
            raise bad(f"a data frame is {b.nbytes} bytes, limit {limits.max_frame_bytes}")
        total += b.nbytes
    total += buffers[0].nbytes
    if total > limits.max_message_bytes:
        raise bad(f"message is {total} bytes, limit {limits.max_message_bytes}")
    return buffers


def _check_tree(root: Any, limits: DecodeLimits) -> None:
    """Nesting depth and total element count of an unpacked header, without recursion."""
    stack = [(root, 1)]
    items = 0
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise garbage(f"header nests deeper than {limits.max_depth} levels")
        children = node.values() if type(node) is dict else node
        items += len(children)
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
    if items > limits.max_items:
        raise garbage(f"header has {items} elements, limit {limits.max_items}")


def _surely_within_tree_limits(raw: memoryview, limits: DecodeLimits) -> bool:
    """True when the bytes alone prove the depth and element caps, so the tree walk can be skipped:
    every element takes at least one byte, and every map or array starts with one of
    `_CONTAINER_BYTES`, so the nesting depth is at most the count of such bytes (an overcount, since
    string and number bytes may match too). Holds for every header a vla-async peer sends."""
    if raw.nbytes > limits.max_items:
        return False
    data = raw.tobytes()
    return len(data) - len(data.translate(None, _CONTAINER_BYTES)) <= limits.max_depth


def unpack_header(raw: memoryview, limits: DecodeLimits) -> dict[str, Any]:
    """The header map, bounded in bytes, sizes, depth and element count; garbage otherwise."""
    if raw.nbytes > limits.max_header_bytes:
        raise garbage(f"header is {raw.nbytes} bytes, limit {limits.max_header_bytes}")
    if raw.nbytes == 0 or raw[0] not in _MAP_FIRST_BYTES:  # cheap reject of most garbage, before msgpack
        raise garbage("header is not a msgpack map")
    try:
        header = msgpack.unpackb(
            raw, raw=False, strict_map_key=True, use_list=True, max_str_len=limits.max_str_len,
            max_bin_len=0, max_ext_len=0, max_array_len=limits.max_container_len,
            max_map_len=limits.max_container_len,
        )
    except Exception as exc:  # msgpack raises many types on garbage; all mean "not our protocol"
        raise garbage(f"header is not msgpack: {type(exc).__name__}") from None
    if type(header) is not dict:
        raise garbage(f"header is not a protocol header: {excerpt(header)}")
    if not _surely_within_tree_limits(raw, limits):
        _check_tree(header, limits)
    if "type" not in header or "v" not in header:
        raise garbage("header is not a protocol header")
    return header
