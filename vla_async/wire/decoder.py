"""`decode`: whatever bytes arrive, a validated message or a ProtocolError — nothing else.

Order: frame caps → bounded header → version → message type → arrays (against the agreed spec) →
the type's builder. Any exception other than ProtocolError escaping from these steps would be a
bug; it is converted to a ProtocolError here too, so a caller's loop can never be stopped by input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vla_async.messages import PROTOCOL_VERSION, ActionChunk, ErrorCode, Message
from vla_async.wire.builders import ARRAY_MESSAGES, BUILDERS, Meta, request_id_of
from vla_async.wire.codec import DecodeLimits, split_frames, unpack_header
from vla_async.wire.errors import ProtocolError, bad, excerpt
from vla_async.wire.validation import ArraySpec, check_chunk_rows, decode_arrays


def decode(frames: Sequence[Any], *, limits: DecodeLimits, expect: ArraySpec | None = None,
           need_spec: bool = False) -> Message:
    """Parse and validate one message. Raises ProtocolError (with an ErrorCode) on any problem.

    `need_spec`: an array message without an agreed spec (`expect` None) is refused with NO_SESSION
    before its arrays are looked at (the server: observations only after a handshake).
    """
    try:
        return _decode(frames, limits, expect, need_spec)
    except ProtocolError:
        raise
    except Exception as exc:  # a checker missed something: still a rejected message, never a dead loop
        raise bad(f"message rejected ({type(exc).__name__})") from None


def _decode(frames: Sequence[Any], limits: DecodeLimits, expect: ArraySpec | None,
            need_spec: bool = False) -> Message:
    buffers = split_frames(frames, limits)
    header = unpack_header(buffers[0], limits)
    meta_raw = header.get("meta", {})
    if type(meta_raw) is not dict:
        raise bad("header.meta must be a map")
    rid = request_id_of(meta_raw)
    version = header["v"]
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.VERSION_MISMATCH,
                            f"protocol version {excerpt(version)} not supported; this side speaks {PROTOCOL_VERSION}",
                            request_id=rid)
    kind = header["type"]
    builder = BUILDERS.get(kind) if type(kind) is str else None
    if builder is None:
        raise bad(f"unknown message type {excerpt(kind)}", rid)
    if kind not in ARRAY_MESSAGES:
        expect = None  # control messages carry no arrays; their builders reject any
    elif need_spec and expect is None:
        raise ProtocolError(ErrorCode.NO_SESSION, "send Hello first (or again: the server restarted)",
                            request_id=rid)
    arrays = decode_arrays(header.get("arrays", []), buffers[1:], limits, expect, rid)
    msg = builder(Meta(meta_raw, kind, rid), arrays)
    if expect is not None and type(msg) is ActionChunk:
        check_chunk_rows(msg.row_offset, msg.horizon, msg.final, expect, rid)
    return msg
