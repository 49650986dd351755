"""ProtocolError and the bounded, sanitised excerpts every error text is built from.

Error texts never contain `repr` of attacker data: containers are described by type and size only
(a 1000-deep list cannot recurse), strings are cut before they are escaped, and every message is
capped, so formatting an error costs O(1) whatever arrived.
"""

from __future__ import annotations

from typing import Any

from vla_async.messages import ErrorCode, ErrorMessage

MAX_ERROR_CHARS = 2000  # an error text sent back to a peer is never longer than this
_EXCERPT_CHARS = 60
_SCALARS = (int, float, bool, type(None))


class ProtocolError(ValueError):
    """A message was rejected. `garbage` means it could not even be parsed (drop, do not reply)."""

    def __init__(self, code: ErrorCode, message: str, *, request_id: int | None = None, garbage: bool = False):
        message = bounded(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.garbage = garbage

    def to_error_message(self) -> ErrorMessage:
        return ErrorMessage(code=self.code, message=self.message, request_id=self.request_id)


def bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` cut to `limit` characters (marked with '...')."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_text(value: int) -> str:
    return repr(value) if -10**18 < value < 10**18 else f"<int of {value.bit_length()} bits>"


def _list_text(value: list[Any] | tuple[Any, ...]) -> str:
    if len(value) <= 8 and all(type(v) in _SCALARS for v in value):  # short lists of numbers: shapes
        return "[" + ", ".join(excerpt(v, 24) for v in value) + "]"
    return f"<list of {len(value)}>"


_FORMATTERS: dict[type, Any] = {
    type(None): repr, bool: repr, float: repr, int: _int_text, list: _list_text, tuple: _list_text,
    dict: lambda v: f"<map of {len(v)}>",
}


def excerpt(value: Any, limit: int = _EXCERPT_CHARS) -> str:
    """A short, safe description of untrusted `value` for an error text (never recursive)."""
    kind = type(value)
    if kind is str:
        return bounded(repr(value[:limit]), limit)
    formatter = _FORMATTERS.get(kind)
    return bounded(formatter(value) if formatter is not None else f"<{kind.__name__}>", limit)


def bad(message: str, request_id: int | None = None) -> ProtocolError:
    """A BAD_MESSAGE error (answered to the peer, unlike garbage)."""
    return ProtocolError(ErrorCode.BAD_MESSAGE, message, request_id=request_id)


def garbage(message: str) -> ProtocolError:
    """Not our protocol at all: dropped and counted, never answered."""
    return ProtocolError(ErrorCode.BAD_MESSAGE, message, garbage=True)
