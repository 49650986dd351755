"""Arrays of a message, checked against the spec agreed at handshake before any is built.

Every declared shape is checked with integer arithmetic (rank, each dimension, the element count
and the byte count against the frame and the frame limit) before `np.frombuffer`; JPEG images are
accepted only against an agreed spec, and their dimensions are read from the JPEG header and
checked before anything is decoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_async.specs import PolicySpec, RobotSpec, accepts_action_prefix, streaming_plan
from vla_async.wire.codec import DTYPES, FLOAT_DTYPES, IMAGE_PREFIX, JPEG, DecodeLimits
from vla_async.wire.errors import bad, excerpt


@dataclass(frozen=True)
class ExpectedArray:
    shape: tuple[int, ...]
    dtypes: frozenset[str]
    required: bool = True
    up_to_rows: bool = False  # the first dimension may be 0..shape[0] (the action prefix)

    def fits(self, shape: tuple[int, ...]) -> bool:
        if shape == self.shape:
            return True
        return self.up_to_rows and len(shape) == len(self.shape) and shape[1:] == self.shape[1:] \
            and 0 <= shape[0] <= self.shape[0]


_Layout = tuple  # (name, dtype or None for jpeg, shape, byte count or -1 for jpeg)
_MAX_LAYOUTS = 64


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
        if accepts_action_prefix(policy):
            arrays["action_prefix"] = ExpectedArray((policy.chunk_length, robot.action_dim), FLOAT_DTYPES,
                                                    required=False, up_to_rows=True)
        needed = {c.name for c in policy.cameras}
        for cam in robot.cameras:
            arrays[IMAGE_PREFIX + cam.name] = ExpectedArray(
                cam.shape, frozenset({"uint8", JPEG}), required=cam.name in needed
            )
        return cls(arrays)

    @classmethod
    def for_chunk(cls, policy: PolicySpec) -> ArraySpec:
        """A whole chunk [H, A]; up to H rows when the policy streams its chunks in parts."""
        return cls({"actions": ExpectedArray((policy.chunk_length, policy.action_dim), frozenset({"float32"}),
                                             up_to_rows=streaming_plan(policy) is not None)})


def check_chunk_rows(row_offset: int, rows: int, final: bool, expect: ArraySpec, rid: int | None) -> None:
    """A chunk's (or a streamed part's) rows `[row_offset, row_offset + rows)` within the agreed chunk length H, and
    `final` exactly when they end at H (a whole chunk is `[0, H)`, final)."""
    want = expect.arrays.get("actions")
    if want is None:
        return
    h = want.shape[0]
    stop = row_offset + rows
    if not 0 <= row_offset < stop <= h or final != (stop == h):
        raise bad(f"ActionChunk rows [{row_offset}, {stop}) final={final}: parts must lie within the chunk's {h} "
                  f"rows, and only the part ending at row {h} is final", rid)


def largest_frame_bytes(policy: PolicySpec) -> int:
    """Bytes of the largest array frame a session with `policy` legitimately sends or receives."""
    chunk_itemsize = 8 if accepts_action_prefix(policy) else 4  # a float64 action prefix is up to H rows
    sizes = [policy.chunk_length * policy.action_dim * chunk_itemsize,
             8 * max(policy.state_dim, policy.environment_state_dim)]
    sizes += [c.height * c.width * c.channels for c in policy.cameras]
    return max(sizes)


def element_count(shape: Any, limits: DecodeLimits) -> int | None:
    """Elements of a declared shape, or None unless it is a list of at most `max_ndim` ints in
    0..max_frame_bytes whose product (zero dimensions counted as 1, as numpy's own size check
    does) stays within `max_frame_bytes` — so numpy can never be asked for an impossible array."""
    if type(shape) is not list or len(shape) > limits.max_ndim:
        return None
    count, nonzero = 1, 1
    cap = limits.max_frame_bytes
    for n in shape:
        if type(n) is not int or not 0 <= n <= cap:  # bool is not int here
            return None
        count *= n
        nonzero *= n or 1
        if nonzero > cap:
            return None
    return count


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


def decode_arrays(entries: Any, frames: Sequence[memoryview], limits: DecodeLimits, expect: ArraySpec | None,
                  rid: int | None) -> dict[str, np.ndarray]:
    """The arrays declared in a header's `arrays` list, built from `frames` after every check."""
    if expect is not None and type(entries) is list and len(entries) == len(frames):
        key = _layout_key(entries)
        layout = expect._layouts.get(key) if key is not None else None
        if layout is not None:
            return _decode_known(layout, frames, limits, rid)
        out = _decode_checked(entries, frames, limits, expect, rid)
        if key is not None and len(expect._layouts) < _MAX_LAYOUTS:
            expect._layouts[key] = tuple(
                (name, None if dtype_name == JPEG else DTYPES[dtype_name], tuple(shape),
                 -1 if dtype_name == JPEG else out[name].nbytes) for name, dtype_name, shape in entries)
        return out
    return _decode_checked(entries, frames, limits, expect, rid)


def _decode_known(layout: tuple[_Layout, ...], frames: Sequence[memoryview], limits: DecodeLimits,
                  rid: int | None) -> dict[str, np.ndarray]:
    """Arrays of a layout that passed `_decode_checked` against the same spec: byte counts still checked."""
    out: dict[str, np.ndarray] = {}
    for (name, dtype, shape, nbytes), buf in zip(layout, frames, strict=True):
        if dtype is None:
            out[name] = _decode_jpeg(name, buf, shape, limits, rid)
        elif buf.nbytes != nbytes:
            raise bad(f"array {excerpt(name)}: {buf.nbytes} bytes for shape {shape} {dtype.name} "
                      f"(needs {nbytes}); truncated or corrupt frame", rid)
        else:
            out[name] = np.ndarray(shape, dtype, buf)  # = frombuffer + reshape in one call
    return out


def _decode_jpeg(name: str, buf: memoryview, shape: tuple[int, ...], limits: DecodeLimits,
                 rid: int | None) -> np.ndarray:
    """A JPEG image whose header dimensions match `shape` (from the agreed spec), checked before decoding."""
    if not name.startswith(IMAGE_PREFIX) or len(shape) != 3:
        raise bad(f"array {excerpt(name)}: jpeg is only for HxWxC images", rid)
    if shape[0] * shape[1] * shape[2] > limits.max_frame_bytes:
        raise bad(f"array {excerpt(name)}: a {shape} image is over the frame limit of {limits.max_frame_bytes} "
                  "bytes", rid)
    from vla_async.image_codec import ImageCodecError, decode_jpeg

    try:
        return decode_jpeg(buf, shape)
    except ImageCodecError as exc:
        raise bad(f"array {excerpt(name)}: {exc}", rid) from None


def _entry_parts(entry: Any, rid: int | None) -> tuple[str, str, list[Any]]:
    if not (type(entry) is list and len(entry) == 3 and type(entry[0]) is str and type(entry[1]) is str
            and type(entry[2]) is list):
        raise bad(f"array entry {excerpt(entry)} must be [name, dtype, shape]", rid)
    return entry[0], entry[1], entry[2]


def _check_against_spec(name: str, dtype_name: str, shape: tuple[int, ...], expect: ArraySpec,
                        rid: int | None) -> None:
    want = expect.arrays.get(name)
    if want is None:
        raise bad(f"array {excerpt(name)} is not in the agreed spec (allowed: {sorted(expect.arrays)})", rid)
    if dtype_name not in want.dtypes:
        raise bad(f"array {excerpt(name)}: dtype {excerpt(dtype_name)} not allowed here "
                  f"(allowed: {sorted(want.dtypes)})", rid)
    if not want.fits(shape):
        limit = f"up to {want.shape[0]} rows of {want.shape[1:]}" if want.up_to_rows else str(want.shape)
        raise bad(f"array {excerpt(name)}: shape {excerpt(list(shape))} but the agreed spec says {limit}", rid)


def _decode_one(name: str, dtype_name: str, shape_raw: list[Any], buf: memoryview, limits: DecodeLimits,
                expect: ArraySpec | None, rid: int | None) -> np.ndarray:
    count = element_count(shape_raw, limits)
    if count is None:
        raise bad(f"array {excerpt(name)}: bad shape {excerpt(shape_raw)} (at most {limits.max_ndim} "
                  f"dimensions, each an int, at most {limits.max_frame_bytes} elements)", rid)
    shape = tuple(shape_raw)
    if expect is not None:
        _check_against_spec(name, dtype_name, shape, expect, rid)
    if dtype_name == JPEG:
        if expect is None:
            raise bad(f"array {excerpt(name)}: jpeg images are accepted only after the handshake", rid)
        return _decode_jpeg(name, buf, shape, limits, rid)
    dtype = DTYPES.get(dtype_name)
    if dtype is None:
        raise bad(f"array {excerpt(name)}: dtype {excerpt(dtype_name)} not allowed (allowed: {sorted(DTYPES)})", rid)
    expected_bytes = count * dtype.itemsize
    if buf.nbytes != expected_bytes:
        raise bad(f"array {excerpt(name)}: {buf.nbytes} bytes for shape {excerpt(shape_raw)} {dtype_name} "
                  f"(needs {expected_bytes}); truncated or corrupt frame", rid)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _decode_checked(entries: Any, frames: Sequence[memoryview], limits: DecodeLimits, expect: ArraySpec | None,
                    rid: int | None) -> dict[str, np.ndarray]:
    if type(entries) is not list:
        raise bad("header.arrays must be a list", rid)
    if len(entries) != len(frames):
        raise bad(f"header lists {len(entries)} arrays but {len(frames)} data frames arrived", rid)
    out: dict[str, np.ndarray] = {}
    for entry, buf in zip(entries, frames, strict=True):
        name, dtype_name, shape_raw = _entry_parts(entry, rid)
        if name in out:
            raise bad(f"array {excerpt(name)} appears twice", rid)
        out[name] = _decode_one(name, dtype_name, shape_raw, buf, limits, expect, rid)
    if expect is not None:
        missing = sorted(n for n, want in expect.arrays.items() if want.required and n not in out)
        if missing:
            raise bad(f"missing arrays required by the agreed spec: {missing}", rid)
    return out
