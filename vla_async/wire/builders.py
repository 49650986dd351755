"""Header `meta` + decoded arrays → message objects, one builder per message type.

`Meta` gives typed access to the untrusted meta map; every failure names the field and shows the
offending value only as a bounded excerpt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vla_async.messages import (
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
from vla_async.wire.codec import IMAGE_PREFIX, INT64_MAX
from vla_async.wire.errors import bad, bounded, excerpt

_NO_TIMING = [0, 0, 0, 0, 0, 1]
# dtype objects, not scalar types: `arr.dtype != np.uint8` converts np.uint8 to a dtype on every call
_UINT8 = np.dtype(np.uint8)
_FLOAT32 = np.dtype(np.float32)
_IMAGE_PREFIX_LEN = len(IMAGE_PREFIX)


def request_id_of(meta: Mapping[str, Any]) -> int | None:
    rid = meta.get("request_id")
    return rid if type(rid) is int and abs(rid) <= INT64_MAX else None


class Meta:
    """Typed access to the untrusted `meta` map; every failure names the field."""

    def __init__(self, data: Mapping[str, Any], kind: str, request_id: int | None = None):
        self.data, self.kind, self.request_id = data, kind, request_id

    def int(self, key: str, default: int | None = None, *, optional: bool = False) -> Any:
        value = self.data.get(key, default)
        if value is None and optional:
            return None
        if type(value) is not int or abs(value) > INT64_MAX:
            raise bad(f"{self.kind}.{key}: expected an integer, got {excerpt(value)}", self.request_id)
        return value

    def float(self, key: str, default: float | None = None) -> float:
        value = self.data.get(key, default)
        if (type(value) is not int and type(value) is not float) or not math.isfinite(value):
            raise bad(f"{self.kind}.{key}: expected a finite number, got {excerpt(value)}", self.request_id)
        return float(value)

    def str(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if type(value) is not str:
            raise bad(f"{self.kind}.{key}: expected a string, got {excerpt(value)}", self.request_id)
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if type(value) is not bool:
            raise bad(f"{self.kind}.{key}: expected true or false, got {excerpt(value)}", self.request_id)
        return value

    def map(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key)
        if type(value) is not dict:
            raise bad(f"{self.kind}.{key}: expected a map, got {excerpt(value)}", self.request_id)
        return value


_SMALL = 64  # up to this many elements, a Python-level check beats numpy's ufunc dispatch (a state vector)


def all_finite(arr: np.ndarray) -> bool:
    """Whether every element of a float array is finite: `np.isfinite(arr).all()` without its overhead
    (`ndarray.all` is a Python-level wrapper; for a few elements the ufunc dispatch alone costs more
    than checking them one by one, and it runs on every message)."""
    if arr.size <= _SMALL:
        return all(map(math.isfinite, arr.ravel().tolist()))
    return np.count_nonzero(np.isfinite(arr)) == arr.size


def _finite(name: str, arr: np.ndarray, rid: int | None) -> np.ndarray:
    if arr.dtype.kind == "f" and not all_finite(arr):
        raise bad(f"array {name!r} contains NaN or infinity", rid)
    return arr


def _observation_extras(arrays: dict[str, np.ndarray], rid: int) -> dict[str, np.ndarray]:
    extra = {}
    for key in ("rollforward_state", "environment_state"):
        value = arrays.pop(key, None)
        if value is not None:
            if value.ndim != 1 or value.dtype.kind != "f":
                raise bad(f"Observation.{key} must be a 1-D float array", rid)
            extra[key] = _finite(key, value, rid)
    return extra


def _action_prefix(meta: Meta, arrays: dict[str, np.ndarray], exec_tick: int, rid: int) -> dict[str, Any]:
    """The committed action prefix and its ticks (real-time chunking), checked; {} when absent."""
    prefix = arrays.pop("action_prefix", None)
    if prefix is None:
        return {}
    if prefix.ndim != 2 or prefix.dtype.kind != "f":
        raise bad("Observation.action_prefix must be a 2-D float array [rows, action_dim]", rid)
    tick, frozen = meta.int("prefix_tick"), meta.int("prefix_frozen")
    if tick != exec_tick:
        raise bad(f"Observation.prefix_tick {tick} must equal exec_tick {exec_tick} (row 0 of the prefix is the "
                  "chunk's row 0)", rid)
    if not 0 <= frozen <= prefix.shape[0]:
        raise bad(f"Observation.prefix_frozen must be in 0..{prefix.shape[0]} (the prefix's rows), got {frozen}", rid)
    return {"action_prefix": _finite("action_prefix", prefix, rid), "prefix_tick": tick, "prefix_frozen": frozen}


def _request_id(meta: Meta) -> int:
    """The message's request id: the one the decoder already read (same checks), else meta's error."""
    return meta.request_id if meta.request_id is not None else meta.int("request_id")


def build_observation(meta: Meta, arrays: dict[str, np.ndarray]) -> Observation:
    rid = _request_id(meta)
    state = arrays.pop("state", None)
    if state is None or state.ndim != 1 or state.dtype.kind != "f":
        raise bad("Observation needs a 1-D float array 'state'", rid)
    extra = _observation_extras(arrays, rid)
    exec_tick = meta.int("exec_tick")
    prefix = _action_prefix(meta, arrays, exec_tick, rid) if "action_prefix" in arrays else {}
    images = {}
    for name, value in arrays.items():
        if not name.startswith(IMAGE_PREFIX) or value.dtype != _UINT8 or value.ndim != 3:
            raise bad(f"Observation: unexpected array {excerpt(name)} (images are {IMAGE_PREFIX}<camera> "
                      "HxWxC uint8)", rid)
        images[name[_IMAGE_PREFIX_LEN:]] = value
    deadline = meta.float("deadline_ms", 1000.0)
    if deadline <= 0:
        raise bad("Observation.deadline_ms must be > 0", rid)
    return Observation(
        request_id=rid, tick=meta.int("tick"), exec_tick=exec_tick, state=_finite("state", state, rid),
        images=images, task=meta.str("task", ""), deadline_ms=deadline, stream=meta.bool("stream", False),
        **extra, **prefix,
    )


def _timing(meta: Meta, rid: int) -> ServerTiming:
    timing = meta.data.get("timing", _NO_TIMING)
    if type(timing) is not list or len(timing) != 6:
        raise bad("ActionChunk.timing must be 6 finite numbers", rid)
    for x in timing:  # plain loop: this runs on every chunk
        if (type(x) is not float and type(x) is not int) or not math.isfinite(x):
            raise bad("ActionChunk.timing must be 6 finite numbers", rid)
    q, pre, model, post, total, batch = timing
    return ServerTiming(float(q), float(pre), float(model), float(post), float(total), int(batch))


def build_chunk(meta: Meta, arrays: dict[str, np.ndarray]) -> ActionChunk:
    rid = _request_id(meta)
    actions = arrays.get("actions")
    if actions is None or len(arrays) != 1 or actions.ndim != 2 or actions.dtype != _FLOAT32:
        raise bad("ActionChunk needs exactly one float32 [H, action_dim] array 'actions'", rid)
    offset, final = meta.int("row_offset", 0), meta.bool("final", True)
    if offset < 0 or actions.shape[0] == 0:
        raise bad(f"ActionChunk rows [{offset}, {offset + actions.shape[0]}): a part needs row_offset >= 0 and at "
                  "least one row", rid)
    return ActionChunk(request_id=rid, start_tick=meta.int("start_tick"), actions=_finite("actions", actions, rid),
                       timing=_timing(meta, rid), row_offset=offset, final=final)


def _spec(meta: Meta, key: str, cls: type) -> Any:
    try:
        return cls.from_dict(meta.map(key))
    except SpecError as exc:
        raise bad(bounded(f"{meta.kind}.{key}: {exc}")) from None


def _no_arrays(kind: str, arrays: dict[str, np.ndarray]) -> None:
    if arrays:
        raise bad(f"{kind} carries no arrays, got {len(arrays)}")


def build_hello(meta: Meta, arrays: dict[str, np.ndarray]) -> Hello:
    _no_arrays("Hello", arrays)
    return Hello(client_name=meta.str("client_name"), robot_spec=_spec(meta, "robot_spec", RobotSpec))


def build_welcome(meta: Meta, arrays: dict[str, np.ndarray]) -> Welcome:
    _no_arrays("Welcome", arrays)
    return Welcome(session_id=meta.str("session_id"), policy_spec=_spec(meta, "policy_spec", PolicySpec),
                   server_name=meta.str("server_name", "vla-async"))


def build_error(meta: Meta, arrays: dict[str, np.ndarray]) -> ErrorMessage:
    _no_arrays("ErrorMessage", arrays)
    try:
        code = ErrorCode(meta.str("code"))
    except ValueError:
        raise bad(f"ErrorMessage.code {excerpt(meta.data.get('code'))} is unknown") from None
    return ErrorMessage(code=code, message=bounded(meta.str("message", "")),
                        request_id=meta.int("request_id", optional=True))


def build_ping(meta: Meta, arrays: dict[str, np.ndarray]) -> Ping:
    _no_arrays("Ping", arrays)
    return Ping(seq=meta.int("seq"))


def build_pong(meta: Meta, arrays: dict[str, np.ndarray]) -> Pong:
    _no_arrays("Pong", arrays)
    return Pong(seq=meta.int("seq"))


BUILDERS: dict[str, Callable[[Meta, dict[str, np.ndarray]], Message]] = {
    "Observation": build_observation, "ActionChunk": build_chunk, "Hello": build_hello,
    "Welcome": build_welcome, "ErrorMessage": build_error, "Ping": build_ping, "Pong": build_pong,
}
ARRAY_MESSAGES = ("Observation", "ActionChunk")
