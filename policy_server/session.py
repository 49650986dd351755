"""Per-client sessions: the agreed specs, the latest pending observation, and counters.

Latest observation wins: a client that sends faster than the model runs replaces its own pending
request (the replaced one is counted and answered with an error, never silently queued), so a
flood from one robot bounds memory and never delays another robot's work.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from vla_async.messages import Observation
from vla_async.protocol import ArraySpec
from vla_async.specs import PolicySpec, RobotSpec

_session_ids = itertools.count(1)


@dataclass(eq=False)
class PendingRequest:
    obs: Observation
    received_at: float  # time.monotonic() on the server when the I/O thread decoded it


@dataclass(eq=False)
class Session:
    identity: bytes  # ROUTER routing id of the client's DEALER
    client_name: str
    robot_spec: RobotSpec
    policy_spec: PolicySpec
    peer: str | None = None  # the peer's IP address, when the transport reports it
    session_id: str = field(default_factory=lambda: f"s{next(_session_ids)}")
    created_at: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)
    pending: PendingRequest | None = None
    last_observation_at: float = float("-inf")  # time.monotonic() of the latest offer()
    # No message rejected since the Hello or since the latest valid Observation: its messages skip the
    # server's stranger budget (policy_server/admission.py).
    in_good_standing: bool = True
    received: int = 0
    superseded: int = 0
    served: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self.observation_spec = ArraySpec.for_observation(self.robot_spec, self.policy_spec)

    def offer(self, obs: Observation, now: float) -> PendingRequest | None:
        """Make `obs` the pending request; returns the request it superseded, if any."""
        old = self.pending
        self.pending = PendingRequest(obs, now)
        self.last_observation_at = now
        self.in_good_standing = True
        self.received += 1
        if old is not None:
            self.superseded += 1
        return old

    def take(self) -> PendingRequest | None:
        request, self.pending = self.pending, None
        return request

    def evictable(self, now: float, hello_grace_s: float, idle_timeout_s: float) -> bool:
        """No Observation within `hello_grace_s` of the Hello (at once if a message was rejected before
        the first Observation), or none for `idle_timeout_s` since the last. Pings do not count: a
        squatter that only keeps its connection alive is evictable."""
        if self.last_observation_at == float("-inf"):
            return not self.in_good_standing or now - self.created_at > hello_grace_s
        return now - self.last_observation_at > idle_timeout_s


def pick_evictee(sessions: Iterable[Session], now: float, hello_grace_s: float,
                 idle_timeout_s: float) -> Session | None:
    """The evictable session whose last sign of work (Hello or Observation) is oldest, if any."""
    candidates = [s for s in sessions if s.evictable(now, hello_grace_s, idle_timeout_s)]
    return min(candidates, key=lambda s: max(s.created_at, s.last_observation_at), default=None)
