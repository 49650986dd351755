"""The messages that cross the wire, as frozen dataclasses.

Encoding and validation live in `vla_async.protocol`; this module is only the vocabulary.
Ticks are the client's control ticks (see DESIGN.md section 3): the server never needs the
client's clock, it only echoes ticks back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from vla_async.specs import PolicySpec, RobotSpec

PROTOCOL_VERSION = 1


class ErrorCode(str, enum.Enum):
    BAD_MESSAGE = "bad_message"  # undecodable, wrong frames/dtypes/shapes, oversize
    VERSION_MISMATCH = "version_mismatch"
    SPEC_MISMATCH = "spec_mismatch"
    NO_SESSION = "no_session"  # observation before a successful Hello
    DEADLINE_EXCEEDED = "deadline_exceeded"
    BACKEND_ERROR = "backend_error"  # the model raised or produced invalid output (e.g. NaN)
    OVERLOADED = "overloaded"
    UNAUTHORIZED = "unauthorized"


@dataclass(frozen=True)
class Hello:
    """Client → server: first message of a session."""

    client_name: str
    robot_spec: RobotSpec
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Welcome:
    """Server → client: the handshake succeeded; here is what the policy is."""

    session_id: str
    policy_spec: PolicySpec
    server_name: str = "vla-async"
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, eq=False)
class Observation:
    """Client → server: what the robot saw at `tick`, and where the new chunk should start.

    `exec_tick` is the tick the returned chunk's action 0 is for (`tick + d̂` with rollforward,
    `tick` without, `tick - state_lag_ticks` with the servo-lag placement of `lag_rail`). `rollforward_state`, when present, replaces `state` as the policy's
    proprioceptive input (VLASH). `deadline_ms` is a relative budget: the server drops the request
    if it could not start it within that many milliseconds of receiving it.

    `action_prefix` (real-time chunking, sent only to a policy whose spec accepts it): the client's
    planned commands for ticks `prefix_tick + i` (`prefix_tick == exec_tick`, so row i is the new
    chunk's row i), at most H rows. The first `prefix_frozen` rows are committed: the robot executes
    them before the chunk can arrive (d̂ ticks from the plan); the rest is the overlap the new chunk
    should stay close to (RTC's soft mask). Ticks are the client's: no clock sync.

    `stream` (streamed chunks, sent only to a policy whose spec declares streaming): the client takes the chunk
    in parts (`ActionChunk.row_offset` / `final`) as its rows are ready.
    """

    request_id: int
    tick: int
    exec_tick: int
    state: np.ndarray
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    task: str = ""
    rollforward_state: np.ndarray | None = None
    environment_state: np.ndarray | None = None
    deadline_ms: float = 1000.0
    action_prefix: np.ndarray | None = None
    prefix_tick: int = 0
    prefix_frozen: int = 0
    stream: bool = False


@dataclass(frozen=True)
class ServerTiming:
    """Where the server spent its time on one chunk, in milliseconds."""

    queue_ms: float = 0.0
    preprocess_ms: float = 0.0
    model_ms: float = 0.0
    postprocess_ms: float = 0.0
    total_ms: float = 0.0
    batch_size: int = 1

    @property
    def overhead_ms(self) -> float:
        """Server time outside the model forward (and outside queueing)."""
        return self.total_ms - self.model_ms - self.queue_ms


@dataclass(frozen=True, eq=False)
class ActionChunk:
    """Server → client: `actions[i]` is the command for tick `start_tick + row_offset + i`.

    A whole chunk has `row_offset` 0 and `final` True. A streamed chunk (FASTER) arrives in parts with the same
    request id and start tick: rows `[row_offset, row_offset + n)` of the chunk, in order, each part starting
    where the previous ended; `final` is True exactly on the part that ends at the chunk's last row (H).
    """

    request_id: int
    start_tick: int
    actions: np.ndarray  # [n, action_dim] float32 (n = H for a whole chunk)
    timing: ServerTiming = field(default_factory=ServerTiming)
    row_offset: int = 0
    final: bool = True

    @property
    def horizon(self) -> int:
        """Rows in this message."""
        return int(self.actions.shape[0])

    @property
    def is_part(self) -> bool:
        """A part of a streamed chunk (not the whole chunk in one message)."""
        return self.row_offset != 0 or not self.final

    @property
    def end_tick(self) -> int:
        """One past the last tick this message covers."""
        return self.start_tick + self.row_offset + self.horizon


@dataclass(frozen=True)
class ErrorMessage:
    """Either direction: a failure with a code and a human-readable message (never a traceback)."""

    code: ErrorCode
    message: str
    request_id: int | None = None


@dataclass(frozen=True)
class Ping:
    seq: int


@dataclass(frozen=True)
class Pong:
    seq: int


Message = Hello | Welcome | Observation | ActionChunk | ErrorMessage | Ping | Pong
