"""Wire codec: frame 0 is a msgpack header, frames 1..n are raw C-contiguous array buffers.

Header: `{"v": version, "type": name, "meta": {...}, "arrays": [[name, dtype, shape], ...]}`.
Everything that comes off the network is untrusted: the header is unpacked with strict size
limits, dtypes come from an allow-list (never `object`), every shape and byte count is checked
(against the spec agreed at handshake when one is given) and arrays are built with
`np.frombuffer`. Nothing is ever unpickled. Images may travel as JPEG (dtype tag "jpeg").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    ServerTiming,
    Welcome,
)
from vla_async.specs import PolicySpec, RobotSpec, SpecError

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
_INT64_MAX = 2**63 - 1
_ARRAY_MESSAGES = ("Observation", "ActionChunk")
_NO_TIMING = [0, 0, 0, 0, 0, 1]


class ProtocolError(ValueError):
    """A message was rejected. `garbage` means it could not even be parsed (drop, do not reply)."""

    def __init__(self, code: ErrorCode, message: str, *, request_id: int | None = None, garbage: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.garbage = garbage

    def to_error_message(self) -> ErrorMessage:
        return ErrorMessage(code=self.code, message=self.message, request_id=self.request_id)


@dataclass(frozen=True)
class DecodeLimits:
    """Caps applied before anything is allocated from untrusted input."""

    max_message_bytes: int = 64 * 1024 * 1024
    max_frames: int = 64
    max_header_bytes: int = 256 * 1024
    max_str_len: int = 64 * 1024
    max_container_len: int = 4096
    max_ndim: int = 8

    @classmethod
    def from_network(cls, network: Any) -> DecodeLimits:
        return cls(max_message_bytes=int(network.max_message_bytes))


@dataclass(frozen=True)
class ExpectedArray:
    shape: tuple[int, ...]
    dtypes: frozenset[str]
    required: bool = True


@dataclass(frozen=True)
class ArraySpec:
    """The arrays a message may carry: name -> expected shape and allowed dtypes."""

    arrays: Mapping[str, ExpectedArray] = field(default_factory=dict)
    # Array layouts (header `arrays` lists) this spec already validated, keyed by `_layout_key`:
    # a message with the same layout skips the per-entry checks (only byte counts are re-checked).
    _layouts: dict[tuple[Any, ...], tuple[_Layout, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @classmethod
    def for_observation(cls, robot: RobotSpec, policy: PolicySpec) -> ArraySpec:
        """What an Observation must look like once `robot` and `policy` agreed at handshake."""
        state = ExpectedArray((robot.state_dim,), FLOAT_DTYPES)
        arrays: dict[str, ExpectedArray] = {
            "state": state,
            "rollforward_state": ExpectedArray((robot.state_dim,), FLOAT_DTYPES, required=False),
        }
        if robot.environment_state_dim:
            arrays["environment_state"] = ExpectedArray(
                (robot.environment_state_dim,), FLOAT_DTYPES, required=policy.environment_state_dim > 0
            )
        needed = {c.name for c in policy.cameras}
        for cam in robot.cameras:
            arrays[IMAGE_PREFIX + cam.name] = ExpectedArray(
                cam.shape, frozenset({"uint8", JPEG}), required=cam.name in needed
            )
        return cls(arrays)

    @classmethod
    def for_chunk(cls, policy: PolicySpec) -> ArraySpec:
        return cls({"actions": ExpectedArray((policy.chunk_length, policy.action_dim), frozenset({"float32"}))})


_Layout = tuple  # (name, dtype or None for jpeg, shape, byte count or -1 for jpeg)
_MAX_LAYOUTS = 64


# ------------------------------------------------------------------ encode


def _array_entry(name: str, arr: np.ndarray, out: list[list[Any]], frames: list[Any], copy: bool) -> None:
    arr = np.asarray(arr)
    dtype_name = _WIRE_NAMES.get(arr.dtype)
    if dtype_name is None or not arr.flags.c_contiguous:  # the fast path above is the usual case
        dtype_name = arr.dtype.name
        if dtype_name not in DTYPES:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"array {name!r}: dtype {arr.dtype} is not allowed")
        arr = np.ascontiguousarray(arr, dtype=DTYPES[dtype_name])
    out.append([name, dtype_name, list(arr.shape)])
    frames.append(arr.tobytes() if copy else memoryview(arr).cast("B"))


def encode(
    msg: Message, *, image_encoding: str = "raw", jpeg_quality: int = 90, copy: bool = True
) -> list[bytes | memoryview]:
    """Frames for `msg`. With `copy=False` array frames are views of the caller's arrays."""
    arrays: list[list[Any]] = []
    frames: list[Any] = []
    version = PROTOCOL_VERSION
    if isinstance(msg, Observation):
        meta: dict[str, Any] = {
            "request_id": int(msg.request_id), "tick": int(msg.tick), "exec_tick": int(msg.exec_tick),
            "task": msg.task, "deadline_ms": float(msg.deadline_ms),
        }
        _array_entry("state", msg.state, arrays, frames, copy)
        for key in ("rollforward_state", "environment_state"):
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
    elif isinstance(msg, ActionChunk):
        t = msg.timing
        meta = {"request_id": int(msg.request_id), "start_tick": int(msg.start_tick), "timing": [
            t.queue_ms, t.preprocess_ms, t.model_ms, t.postprocess_ms, t.total_ms, t.batch_size]}
        _array_entry("actions", np.asarray(msg.actions, dtype=np.float32), arrays, frames, copy)
    elif isinstance(msg, Hello):
        version = int(msg.protocol_version)
        meta = {"client_name": msg.client_name, "robot_spec": msg.robot_spec.to_dict()}
    elif isinstance(msg, Welcome):
        version = int(msg.protocol_version)
        meta = {"session_id": msg.session_id, "policy_spec": msg.policy_spec.to_dict(), "server_name": msg.server_name}
    elif isinstance(msg, ErrorMessage):
        meta = {"code": ErrorCode(msg.code).value, "message": msg.message, "request_id": msg.request_id}
    elif isinstance(msg, Ping | Pong):
        meta = {"seq": int(msg.seq)}
    else:
        raise TypeError(f"cannot encode {type(msg).__name__}")
    header = msgpack.packb({"v": version, "type": type(msg).__name__, "meta": meta, "arrays": arrays})
    return [header, *frames]


# ------------------------------------------------------------------ decode


def _bad(message: str, request_id: int | None = None) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_MESSAGE, message, request_id=request_id)


def _buffer(frame: Any) -> memoryview:
    """bytes, memoryview or a zmq.Frame (its `.buffer`) as a byte view."""
    view = memoryview(getattr(frame, "buffer", frame))
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class _Meta:
    """Typed access to the untrusted `meta` map; every failure names the field."""

    def __init__(self, data: Mapping[str, Any], kind: str, request_id: int | None = None):
        self.data, self.kind, self.request_id = data, kind, request_id

    def int(self, key: str, default: int | None = None, *, optional: bool = False) -> Any:
        value = self.data.get(key, default)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > _INT64_MAX:
            raise _bad(f"{self.kind}.{key}: expected an integer, got {_show(value)}", self.request_id)
        return value

    def float(self, key: str, default: float | None = None) -> float:
        value = self.data.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise _bad(f"{self.kind}.{key}: expected a finite number, got {_show(value)}", self.request_id)
        return float(value)

    def str(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise _bad(f"{self.kind}.{key}: expected a string, got {_show(value)}", self.request_id)
        return value

    def map(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key)
        if not isinstance(value, Mapping):
            raise _bad(f"{self.kind}.{key}: expected a map, got {_show(value)}", self.request_id)
        return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unpack_header(frame: Any, limits: DecodeLimits) -> dict[str, Any]:
    raw = _buffer(frame)
    if raw.nbytes > limits.max_header_bytes:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"header is {raw.nbytes} bytes, limit {limits.max_header_bytes}",
                            garbage=True)
    try:
        header = msgpack.unpackb(
            raw, raw=False, strict_map_key=True, use_list=True, max_str_len=limits.max_str_len,
            max_bin_len=0, max_ext_len=0, max_array_len=limits.max_container_len,
            max_map_len=limits.max_container_len,
        )
    except Exception as exc:  # msgpack raises many types on garbage; all mean "not our protocol"
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"header is not msgpack: {type(exc).__name__}",
                            garbage=True) from None
    if not isinstance(header, dict) or "type" not in header or "v" not in header:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "header is not a protocol header", garbage=True)
    return header


def decode(frames: Sequence[Any], *, limits: DecodeLimits, expect: ArraySpec | None = None) -> Message:
    """Parse and validate one message. Raises ProtocolError (with an ErrorCode) on any problem."""
    if not frames:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "empty message", garbage=True)
    if len(frames) > limits.max_frames + 1:
        raise _bad(f"message has {len(frames)} frames, limit {limits.max_frames + 1}")
    buffers = [_buffer(f) for f in frames]
    total = sum(b.nbytes for b in buffers)
    # Checked before the header is parsed, so this error carries no request id: the client sees it
    # as an error without a request (and its request then times out). A frame over MAXMSGSIZE never
    # gets here at all: ZeroMQ drops the connection and the client reconnects.
    if total > limits.max_message_bytes:
        raise _bad(f"message is {total} bytes, limit {limits.max_message_bytes}")
    header = _unpack_header(buffers[0], limits)
    kind = header.get("type")
    meta_raw = header.get("meta", {})
    if not isinstance(meta_raw, dict):
        raise _bad("header.meta must be a map")
    rid = meta_raw.get("request_id")
    rid = rid if isinstance(rid, int) and not isinstance(rid, bool) and abs(rid) <= _INT64_MAX else None
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.VERSION_MISMATCH,
                            f"protocol version {_show(version)} not supported; this side speaks {PROTOCOL_VERSION}",
                            request_id=rid)
    meta = _Meta(meta_raw, str(kind), rid)
    if kind not in _ARRAY_MESSAGES:
        expect = None  # control messages carry no arrays; their builders reject any
    arrays = _decode_arrays(header.get("arrays", []), buffers[1:], limits, expect, rid)
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise _bad(f"unknown message type {_show(kind)}", rid)
    return builder(meta, arrays)


def _shape_ok(shape: list[Any], limits: DecodeLimits) -> bool:
    if len(shape) > limits.max_ndim:
        return False
    for n in shape:
        if type(n) is not int or not 0 <= n <= limits.max_message_bytes:  # bool is not int here
            return False
    return True


def _layout_key(entries: list[Any]) -> tuple[Any, ...] | None:
    """A hashable copy of a header `arrays` list, or None unless it is exactly [[str, str, [int, ...]], ...]
    (type-strict: 224.0 or True never match a cached 224 or 1)."""
    key = []
    for e in entries:
        if type(e) is not list or len(e) != 3:
            return None
        name, dtype_name, shape = e
        if type(name) is not str or type(dtype_name) is not str or type(shape) is not list:
            return None
        for n in shape:
            if type(n) is not int:
                return None
        key.append((name, dtype_name, *shape))
    return tuple(key)


def _decode_arrays(
    entries: Any, frames: Sequence[memoryview], limits: DecodeLimits, expect: ArraySpec | None, rid: int | None
) -> dict[str, np.ndarray]:
    if expect is not None and type(entries) is list and len(entries) == len(frames):
        key = _layout_key(entries)
        layout = expect._layouts.get(key) if key is not None else None
        if layout is not None:
            return _decode_known(layout, frames, rid)
        out = _decode_arrays_checked(entries, frames, limits, expect, rid)
        if key is not None and len(expect._layouts) < _MAX_LAYOUTS:
            expect._layouts[key] = tuple(
                (name, None if dtype_name == JPEG else DTYPES[dtype_name], tuple(shape),
                 -1 if dtype_name == JPEG else out[name].nbytes) for name, dtype_name, shape in entries)
        return out
    return _decode_arrays_checked(entries, frames, limits, expect, rid)


def _decode_known(layout: tuple[_Layout, ...], frames: Sequence[memoryview], rid: int | None) -> dict[str, np.ndarray]:
    """Arrays of a layout that passed `_decode_arrays_checked` against the same spec: byte counts still checked."""
    out: dict[str, np.ndarray] = {}
    for (name, dtype, shape, nbytes), buf in zip(layout, frames, strict=True):
        if dtype is None:
            out[name] = _decode_jpeg_entry(name, buf, shape, rid)
        elif buf.nbytes != nbytes:
            raise _bad(f"array {name!r}: {buf.nbytes} bytes for shape {shape} {dtype.name} "
                       f"(needs {nbytes}); truncated or corrupt frame", rid)
        else:
            out[name] = np.frombuffer(buf, dtype=dtype).reshape(shape)
    return out


def _decode_jpeg_entry(name: str, buf: memoryview, shape: tuple[int, ...], rid: int | None) -> np.ndarray:
    if not name.startswith(IMAGE_PREFIX) or len(shape) != 3:
        raise _bad(f"array {name!r}: jpeg is only for HxWxC images", rid)
    from vla_async.image_codec import ImageCodecError, decode_jpeg

    try:
        return decode_jpeg(buf, shape)
    except ImageCodecError as exc:
        raise _bad(f"array {name!r}: {exc}", rid) from None


def _decode_arrays_checked(
    entries: Any, frames: Sequence[memoryview], limits: DecodeLimits, expect: ArraySpec | None, rid: int | None
) -> dict[str, np.ndarray]:
    if not isinstance(entries, list):
        raise _bad("header.arrays must be a list", rid)
    if len(entries) != len(frames):
        raise _bad(f"header lists {len(entries)} arrays but {len(frames)} data frames arrived", rid)
    out: dict[str, np.ndarray] = {}
    for entry, frame in zip(entries, frames, strict=True):
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                and isinstance(entry[1], str) and isinstance(entry[2], list)):
            raise _bad(f"array entry {_show(entry)} must be [name, dtype, shape]", rid)
        name, dtype_name, shape_raw = entry
        if name in out:
            raise _bad(f"array {name!r} appears twice", rid)
        if not _shape_ok(shape_raw, limits):
            raise _bad(f"array {name!r}: bad shape {_show(shape_raw)}", rid)
        shape = tuple(shape_raw)
        if expect is not None:
            want = expect.arrays.get(name)
            if want is None:
                raise _bad(f"array {name!r} is not in the agreed spec (allowed: {sorted(expect.arrays)})", rid)
            if dtype_name not in want.dtypes:
                raise _bad(f"array {name!r}: dtype {dtype_name!r} not allowed here (allowed: {sorted(want.dtypes)})", rid)
            if shape != want.shape:
                raise _bad(f"array {name!r}: shape {shape} but the agreed spec says {want.shape}", rid)
        buf = frame
        if dtype_name == JPEG:
            out[name] = _decode_jpeg_entry(name, buf, shape, rid)
            continue
        dtype = DTYPES.get(dtype_name)
        if dtype is None:
            raise _bad(f"array {name!r}: dtype {dtype_name!r} not allowed (allowed: {sorted(DTYPES)})", rid)
        expected_bytes = math.prod(shape) * dtype.itemsize
        if buf.nbytes != expected_bytes:
            raise _bad(f"array {name!r}: {buf.nbytes} bytes for shape {shape} {dtype_name} "
                       f"(needs {expected_bytes}); truncated or corrupt frame", rid)
        out[name] = np.frombuffer(buf, dtype=dtype).reshape(shape)
    if expect is not None:
        missing = sorted(n for n, want in expect.arrays.items() if want.required and n not in out)
        if missing:
            raise _bad(f"missing arrays required by the agreed spec: {missing}", rid)
    return out


def _finite(name: str, arr: np.ndarray, rid: int | None) -> np.ndarray:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise _bad(f"array {name!r} contains NaN or infinity", rid)
    return arr


def _build_observation(meta: _Meta, arrays: dict[str, np.ndarray]) -> Observation:
    rid = meta.int("request_id")
    state = arrays.pop("state", None)
    if state is None or state.ndim != 1 or state.dtype.kind != "f":
        raise _bad("Observation needs a 1-D float array 'state'", rid)
    extra = {}
    for key in ("rollforward_state", "environment_state"):
        value = arrays.pop(key, None)
        if value is not None:
            if value.ndim != 1 or value.dtype.kind != "f":
                raise _bad(f"Observation.{key} must be a 1-D float array", rid)
            extra[key] = _finite(key, value, rid)
    images = {}
    for name, value in arrays.items():
        if not name.startswith(IMAGE_PREFIX) or value.dtype != np.uint8 or value.ndim != 3:
            raise _bad(f"Observation: unexpected array {name!r} (images are {IMAGE_PREFIX}<camera> HxWxC uint8)", rid)
        images[name[len(IMAGE_PREFIX):]] = value
    deadline = meta.float("deadline_ms", 1000.0)
    if deadline <= 0:
        raise _bad("Observation.deadline_ms must be > 0", rid)
    return Observation(
        request_id=rid, tick=meta.int("tick"), exec_tick=meta.int("exec_tick"), state=_finite("state", state, rid),
        images=images, task=meta.str("task", ""), deadline_ms=deadline, **extra,
    )


def _build_chunk(meta: _Meta, arrays: dict[str, np.ndarray]) -> ActionChunk:
    rid = meta.int("request_id")
    actions = arrays.get("actions")
    if actions is None or len(arrays) != 1 or actions.ndim != 2 or actions.dtype != np.float32:
        raise _bad("ActionChunk needs exactly one float32 [H, action_dim] array 'actions'", rid)
    timing = meta.data.get("timing", _NO_TIMING)
    if type(timing) is not list or len(timing) != 6:
        raise _bad("ActionChunk.timing must be 6 finite numbers", rid)
    for x in timing:  # plain loop: this runs on every chunk
        if (type(x) is not float and type(x) is not int) or not math.isfinite(x):
            raise _bad("ActionChunk.timing must be 6 finite numbers", rid)
    q, pre, model, post, total, batch = timing
    return ActionChunk(
        request_id=rid, start_tick=meta.int("start_tick"), actions=_finite("actions", actions, rid),
        timing=ServerTiming(float(q), float(pre), float(model), float(post), float(total), int(batch)),
    )


def _build_spec(meta: _Meta, key: str, cls: type) -> Any:
    try:
        return cls.from_dict(meta.map(key))
    except SpecError as exc:
        raise _bad(f"{meta.kind}.{key}: {exc}") from None


def _no_arrays(kind: str, arrays: dict[str, np.ndarray]) -> None:
    if arrays:
        raise _bad(f"{kind} carries no arrays, got {sorted(arrays)}")


def _build_hello(meta: _Meta, arrays: dict[str, np.ndarray]) -> Hello:
    _no_arrays("Hello", arrays)
    return Hello(client_name=meta.str("client_name"), robot_spec=_build_spec(meta, "robot_spec", RobotSpec))


def _build_welcome(meta: _Meta, arrays: dict[str, np.ndarray]) -> Welcome:
    _no_arrays("Welcome", arrays)
    return Welcome(session_id=meta.str("session_id"), policy_spec=_build_spec(meta, "policy_spec", PolicySpec),
                   server_name=meta.str("server_name", "vla-async"))


def _build_error(meta: _Meta, arrays: dict[str, np.ndarray]) -> ErrorMessage:
    _no_arrays("ErrorMessage", arrays)
    try:
        code = ErrorCode(meta.str("code"))
    except ValueError:
        raise _bad(f"ErrorMessage.code {_show(meta.data.get('code'))} is unknown") from None
    return ErrorMessage(code=code, message=meta.str("message", ""), request_id=meta.int("request_id", optional=True))


def _build_ping(meta: _Meta, arrays: dict[str, np.ndarray]) -> Ping:
    _no_arrays("Ping", arrays)
    return Ping(seq=meta.int("seq"))


def _build_pong(meta: _Meta, arrays: dict[str, np.ndarray]) -> Pong:
    _no_arrays("Pong", arrays)
    return Pong(seq=meta.int("seq"))


_BUILDERS = {
    "Observation": _build_observation, "ActionChunk": _build_chunk, "Hello": _build_hello,
    "Welcome": _build_welcome, "ErrorMessage": _build_error, "Ping": _build_ping, "Pong": _build_pong,
}
