"""A seeded, structure-aware generator of malformed protocol messages.

Each case starts from a valid message for the agreed specs and breaks one thing the decoder must
catch: nesting bombs, huge/negative/zero shapes, dtype/shape/byte mismatches, truncated and extra
frames, msgpack ext/bin types, wrong versions, wrong meta types, bad specs, JPEG header bombs,
random bit flips, plain garbage, and parts of streamed chunks with hostile row ranges or flags. `to_server` cases attack a policy server, `to_client` cases a
robot client. The same seed gives the same cases.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from vla_async.fuzz.payloads import jpeg_header_bomb, packed_nesting_bomb
from vla_async.messages import ActionChunk, ErrorCode, ErrorMessage, Hello, Observation, Ping, Welcome
from vla_async.protocol import encode
from vla_async.specs import PolicySpec, RobotSpec

HOSTILE_RID_BASE = 1 << 40
_BOMB_MARK = "\x00nesting-bomb\x00"  # request ids of hostile messages: never those of a real request

_SHAPES = ([0, 2**26, 2**26, 2**26], [-1], [2**40], [2**63 - 1], [0], [], [1] * 9, [True, 3], [3.0], ["3"],
           [2**31, 2**31], [None], [[3]], [16384, 16384, 3])
_DTYPES = ("object", "complex128", "<f4", "int128", "float32", "uint8", "jpeg", "", "float16", "bool", "O")
_VERSIONS = (0, 2, -1, "1", 1.0, None, 2**64 - 1, [1], {"v": 1}, True)
_BAD_VALUES = ("x", -1, 2**64 - 1, -(2**63), float("nan"), float("inf"), True, None, [], {}, [1, 2], 1e308,
               "\x00" * 100, "é" * 1000)
_BAD_ROW_OFFSETS = (-1, -(2**63), 2**63 - 1, 2**64 - 1, "1", 1.5, True, None, [], {})
_BAD_FLAGS = ("true", 1, 0, None, [], {}, 1.0, "yes")
_META_KEYS = ("request_id", "tick", "exec_tick", "task", "deadline_ms", "start_tick", "timing", "seq", "code",
              "message", "client_name", "robot_spec", "policy_spec", "session_id")


@dataclass(frozen=True)
class FuzzCase:
    category: str
    frames: list[bytes]


def _bytes(frames: list[Any]) -> list[bytes]:
    return [bytes(f) for f in frames]


class MessageFuzzer:
    """`cases(n)` yields n malformed messages, cycling through the categories in a seeded order."""

    def __init__(self, seed: int, robot: RobotSpec, policy: PolicySpec, direction: str = "to_server"):
        if direction not in ("to_server", "to_client"):
            raise ValueError("direction is to_server or to_client")
        self.rng = random.Random(seed)
        self.robot, self.policy, self.direction = robot, policy, direction
        self._jpeg_bomb = _maybe_jpeg_bomb()
        state = np.zeros(robot.state_dim, np.float32)
        images = {c.name: np.zeros(c.shape, np.uint8) for c in policy.cameras}
        self._obs = _bytes(encode(Observation(HOSTILE_RID_BASE, 1, 1, state, images)))
        self._chunk = _bytes(encode(ActionChunk(HOSTILE_RID_BASE, 1, np.zeros(
            (policy.chunk_length, policy.action_dim), np.float32))))
        self._hello = _bytes(encode(Hello("fuzz", robot)))
        self._welcome = _bytes(encode(Welcome("s-fuzz", policy)))
        self._control = [_bytes(encode(Ping(1))), _bytes(encode(ErrorMessage(ErrorCode.BACKEND_ERROR, "x", None)))]
        self.categories: dict[str, Callable[[], list[bytes]]] = {
            "nesting_bomb": self._nesting_bomb, "shape": self._shape, "dtype": self._dtype,
            "byte_count": self._byte_count, "frame_count": self._frame_count, "ext_type": self._ext_type,
            "version": self._version, "meta_type": self._meta_type, "bad_spec": self._bad_spec,
            "wrong_direction": self._wrong_direction, "bitflip": self._bitflip, "garbage": self._garbage,
            "jpeg_bomb": self._jpeg, "stream_part": self._stream_part,
        }

    # ------------------------------------------------------------------ helpers

    def _array_message(self) -> list[bytes]:
        return list(self._obs if self.direction == "to_server" else self._chunk)

    def _template(self) -> list[bytes]:
        pool = [self._array_message(), self._hello if self.direction == "to_server" else self._welcome,
                *self._control]
        return list(self.rng.choice(pool))

    @staticmethod
    def _header(frames: list[bytes]) -> dict[str, Any]:
        return msgpack.unpackb(frames[0])

    @staticmethod
    def _with(header: dict[str, Any], frames: list[bytes]) -> list[bytes]:
        return [msgpack.packb(header), *frames[1:]]

    def cases(self, n: int) -> Iterator[FuzzCase]:
        names = sorted(self.categories)
        for i in range(n):
            if i % len(names) == 0:
                self.rng.shuffle(names)
            name = names[i % len(names)]
            yield FuzzCase(name, self.categories[name]())

    # ------------------------------------------------------------------ categories

    def _nesting_bomb(self) -> list[bytes]:
        depth = self.rng.choice((17, 100, 1010, 1023, 5000))
        if depth > 1023 or self.rng.random() < 0.2:
            return [packed_nesting_bomb(depth)]  # raw bytes: deeper than msgpack itself allows
        frames = self._template()
        header = self._header(frames)
        where = self.rng.choice(("v", "type", "meta", "arrays", "shape", "name"))
        bomb = _BOMB_MARK  # spliced in as bytes below: msgpack's packer refuses more than 511 levels
        if where in ("v", "type", "arrays"):
            header[where] = bomb
        elif where == "meta":
            header["meta"][self.rng.choice(_META_KEYS)] = bomb
        elif where == "shape" and header["arrays"]:
            header["arrays"][0][2] = [bomb]
        elif header["meta"].get("robot_spec") or header["meta"].get("policy_spec"):
            spec = header["meta"].get("robot_spec") or header["meta"]["policy_spec"]
            spec[self.rng.choice(("state_names", "name", "cameras", "action_names"))] = bomb
        else:
            header["meta"]["task"] = bomb
        packed = msgpack.packb(header).replace(msgpack.packb(_BOMB_MARK), packed_nesting_bomb(depth), 1)
        return [packed, *frames[1:]]

    def _shape(self) -> list[bytes]:
        frames = self._array_message()
        header = self._header(frames)
        i = self.rng.randrange(len(header["arrays"]))
        header["arrays"][i][2] = list(self.rng.choice(_SHAPES))
        if self.rng.random() < 0.5:
            frames[1 + i] = b"" if self.rng.random() < 0.5 else frames[1 + i][: self.rng.randrange(64)]
        return self._with(header, frames)

    def _dtype(self) -> list[bytes]:
        frames = self._array_message()
        header = self._header(frames)
        i = self.rng.randrange(len(header["arrays"]))
        header["arrays"][i][1] = self.rng.choice(_DTYPES)
        return self._with(header, frames)

    def _byte_count(self) -> list[bytes]:
        frames = self._array_message()
        i = 1 + self.rng.randrange(len(frames) - 1)
        n = len(frames[i])
        frames[i] = frames[i][: self.rng.randrange(n)] if n and self.rng.random() < 0.5 else \
            frames[i] + b"\0" * self.rng.choice((1, 3, 4, 100))
        return frames

    def _frame_count(self) -> list[bytes]:
        frames = self._template()
        roll = self.rng.random()
        if roll < 0.3 and len(frames) > 1:
            return frames[:-1]
        if roll < 0.6:
            return frames + [b"\0" * self.rng.choice((0, 1, 56))]
        if roll < 0.8:
            return frames + [b""] * self.rng.choice((10, 70))
        return [b""]

    def _ext_type(self) -> list[bytes]:
        frames = self._template()
        header = self._header(frames)
        value = self.rng.choice((msgpack.ExtType(self.rng.randrange(128), b"\x01" * 8), b"\x00" * 16,
                                 msgpack.Timestamp(1, 0)))
        target = self.rng.choice(("meta", "v", "arrays"))
        if target == "meta":
            header["meta"][self.rng.choice(_META_KEYS)] = value
        else:
            header[target] = value
        return [msgpack.packb(header, use_bin_type=True), *frames[1:]]

    def _version(self) -> list[bytes]:
        frames = self._template()
        header = self._header(frames)
        header["v"] = self.rng.choice(_VERSIONS)
        return self._with(header, frames)

    def _meta_type(self) -> list[bytes]:
        frames = self._template()
        header = self._header(frames)
        if self.rng.random() < 0.1:
            header["meta"] = self.rng.choice(_BAD_VALUES)
        else:
            header["meta"][self.rng.choice(_META_KEYS)] = self.rng.choice(_BAD_VALUES)
        return self._with(header, frames)

    def _bad_spec(self) -> list[bytes]:
        frames = list(self._hello if self.direction == "to_server" else self._welcome)
        header = self._header(frames)
        spec = header["meta"]["robot_spec" if self.direction == "to_server" else "policy_spec"]
        key = self.rng.choice(sorted(spec) + ["unknown_field"])
        roll = self.rng.random()
        if roll < 0.3:
            spec[key] = self.rng.choice(_BAD_VALUES)
        elif roll < 0.5:
            spec["cameras"] = [{"name": "big", "height": 8192, "width": 8192, "channels": 3}] * 3
        elif roll < 0.7:
            spec["state_names"] = [f"j{i}" for i in range(self.rng.choice((0, 4000)))]
        else:
            spec.pop(key, None)
        return self._with(header, frames)

    def _wrong_direction(self) -> list[bytes]:
        """Valid messages the other side never sends (e.g. a Welcome to the server)."""
        if self.direction == "to_server":
            return list(self.rng.choice((self._chunk, self._welcome)))
        obs, hello = list(self._obs), list(self._hello)
        return self.rng.choice((obs, hello, self._control[0]))

    def _bitflip(self) -> list[bytes]:
        frames = self._template()
        header = bytearray(frames[0])
        for _ in range(self.rng.randint(1, 4)):
            header[self.rng.randrange(len(header))] ^= 1 << self.rng.randrange(8)
        return [bytes(header), *frames[1:]]

    def _garbage(self) -> list[bytes]:
        roll = self.rng.random()
        if roll < 0.4:
            return [self.rng.randbytes(self.rng.randrange(1, 200))]
        if roll < 0.7:
            return [msgpack.packb(self.rng.choice(([1, 2], "x", 3, None, {"v": 1}, {"type": "Hello"})))]
        frames = self._template()
        return [frames[0][: self.rng.randrange(1, len(frames[0]))], *frames[1:]]  # truncated header

    def _jpeg(self) -> list[bytes]:
        frames = list(self._obs if self.direction == "to_server" else self._chunk)
        header = self._header(frames)
        bomb = self._jpeg_bomb or b"\xff\xd8\xff\xc0" + b"\x00" * 16
        if self.direction == "to_server" and self.policy.cameras:
            i = next(i for i, e in enumerate(header["arrays"]) if e[0].startswith("images/"))
            shape = self.rng.choice((list(header["arrays"][i][2]), [16384, 16384, 3], [2048, 2048, 3]))
        else:
            i, shape = 0, self.rng.choice(([16384, 16384, 3], [64, 64, 3]))
        header["arrays"][i] = [header["arrays"][i][0], "jpeg", shape]
        frames[1 + i] = bomb
        return self._with(header, frames)


    def _stream_part(self) -> list[bytes]:
        """To a client: a part of a streamed chunk whose rows leave the chunk, are empty, or whose row_offset or
        final flag is of the wrong type or value (final only on the part ending at row H). To a server: an
        Observation whose `stream` flag is not a boolean."""
        if self.direction == "to_server":
            header = self._header(self._obs)
            header["meta"]["stream"] = self.rng.choice(_BAD_FLAGS)
            return self._with(header, list(self._obs))
        h, d = self.policy.chunk_length, self.policy.action_dim
        roll = self.rng.random()
        lo, n, final = self.rng.randrange(h), 1, False
        if roll < 0.25:  # past the end, or final where the part does not end the chunk / not final where it does
            lo, n, final = self.rng.choice(((h - 1, 2, True), (h, 1, True), (h - 1, 1, False), (0, 1, True),
                                            (max(0, h - 2), 1, True), (1, h, True)))
        elif roll < 0.4:  # no rows, or more rows than a chunk has
            n = self.rng.choice((0, h + 1, 2 * h))
        frames = _bytes(encode(ActionChunk(HOSTILE_RID_BASE, 1, np.zeros((n, d), np.float32), row_offset=1, final=False)))
        header = self._header(frames)
        header["meta"]["row_offset"], header["meta"]["final"] = lo, final
        if 0.4 <= roll < 0.7:
            header["meta"]["row_offset"] = self.rng.choice(_BAD_ROW_OFFSETS)
        elif roll >= 0.7:
            header["meta"]["final"] = self.rng.choice(_BAD_FLAGS)
        return self._with(header, frames)


def _maybe_jpeg_bomb() -> bytes | None:
    try:
        return jpeg_header_bomb()
    except ModuleNotFoundError:  # no simplejpeg: a JPEG-looking header stands in
        return None
