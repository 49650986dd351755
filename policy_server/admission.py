"""Admission: a global decode budget for strangers, so robots keep the server's I/O thread.

The per-identity penalty box (`penalty_box.py`) cannot stop an attacker that opens a new connection
(a new ROUTER identity) every few messages: each identity is new, none collects enough strikes. So
the I/O thread splits what it reads in two. Messages from a session *in good standing* (a Hello
answered with a Welcome and no message rejected since, or a valid Observation since the last
rejected one) are always decoded, and first. Everything else — peers without a session, sessions
whose last message was rejected — shares one token bucket of `rate` messages/s (`burst` at once);
over budget, a message is dropped unread and unanswered (only its ROUTER identity was looked at).
A share of the budget is reserved for messages that look like a Hello (a byte check, no decoding),
so a new robot still gets its Hello through a flood of garbage; Hellos may also use the rest. Half
of that reserve is kept for Hellos *repeated* by an identity whose Hello was dropped: a robot says
Hello again on the same connection until it is answered (4 times a second), while an attacker
dodging the penalty box uses each identity for a few messages, so its Hellos rarely come back.

Costs for an attacker: one admitted Hello buys one decoded message in good standing; any rejected
message ends that standing. Costs for a robot: none while its messages are valid; after a rejected
message its next ones share the budget until one of its Observations is accepted again. Under a
flood of *valid* Hellos repeated from each of ever new identities a robot's Hello gets its share
of the reserve only: against that, use CurveZMQ (unknown keys never complete the ZeroMQ handshake).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# How the header of an encoded Hello begins (`{"v": 1, "type": "Hello", ...}`, vla_async/wire/codec.py):
# the map key "type" (fixstr 4) and the value "Hello" (fixstr 5). Only a hint for the budget: a
# message that carries it and is not a Hello just spends the Hello reserve, as a real Hello would.
_HELLO_MARK = b"\xa4type\xa5Hello"
_HELLO_SCAN_BYTES = 32


def looks_like_hello(frames: Sequence[Any]) -> bool:
    """True for [identity, header] whose header starts like an encoded Hello (no decoding)."""
    if len(frames) != 2:
        return False
    try:
        head = bytes(memoryview(frames[1])[:_HELLO_SCAN_BYTES])
    except TypeError:  # not a buffer: the decoder will say what it is
        return False
    return _HELLO_MARK in head


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take` spends one if there is one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.stamp = self.burst, now

    def take(self, now: float) -> bool:
        tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


class StrangerBudget:
    """The decode budget for messages not from a session in good standing. `rate` 0 turns it off."""

    def __init__(self, rate: float, burst: float, hello_share: float, now: float, max_tracked: int = 4096):
        self.enabled = rate > 0
        share = min(max(float(hello_share), 0.0), 1.0) / 2.0  # first Hellos, and Hellos said again
        self._hellos = TokenBucket(rate * share, max(1.0, burst * share), now)
        self._repeated = TokenBucket(rate * share, max(1.0, burst * share), now)
        self._others = TokenBucket(rate * (1.0 - 2.0 * share), burst * (1.0 - 2.0 * share), now)
        self._unanswered: dict[bytes, None] = {}  # identities whose Hello was dropped (oldest first)
        self.max_tracked = max(1, int(max_tracked))

    def admit(self, key: bytes, frames: Sequence[Any], now: float) -> bool:
        """True: decode this message of peer `key`. False: it is over budget (to be dropped unread)."""
        if not self.enabled:
            return True
        if not looks_like_hello(frames):
            return self._others.take(now)
        repeated = key in self._unanswered
        if repeated:
            del self._unanswered[key]
        if (repeated and self._repeated.take(now)) or self._hellos.take(now) or self._others.take(now):
            return True
        if len(self._unanswered) >= self.max_tracked:  # forget the oldest: memory stays bounded
            del self._unanswered[next(iter(self._unanswered))]
        self._unanswered[key] = None
        return False

    def __len__(self) -> int:
        return len(self._unanswered)
