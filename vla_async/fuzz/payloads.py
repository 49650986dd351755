"""Building blocks of hostile messages: nesting bombs and JPEG header bombs.

Kept apart from the generator so tests can use the exact reproducers from the hardening issue.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack


def nested_list(depth: int) -> Any:
    """A list nested `depth` levels deep (msgpack itself accepts up to 1024)."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def packed_nesting_bomb(depth: int) -> bytes:
    """msgpack bytes of a list nested `depth` deep, without building it in Python (no recursion)."""
    return b"\x91" * depth + b"\x00"


def jpeg_header_bomb(height: int = 16384, width: int = 16384) -> bytes:
    """A valid tiny JPEG whose frame header (SOF0) claims `height` x `width` pixels.

    Decoding it would allocate height*width*3 bytes and take seconds; its header alone says so.
    """
    import numpy as np
    import simplejpeg

    data = bytearray(simplejpeg.encode_jpeg(np.zeros((8, 8, 3), np.uint8), quality=50, colorsubsampling="420"))
    at = data.find(b"\xff\xc0")
    if at < 0:
        raise RuntimeError("simplejpeg did not write a baseline SOF0 marker")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


def header(kind: Any, meta: Any, arrays: Any, version: Any = 1) -> bytes:
    """A header frame with exactly these (possibly wrong) fields."""
    return msgpack.packb({"v": version, "type": kind, "meta": meta, "arrays": arrays})
