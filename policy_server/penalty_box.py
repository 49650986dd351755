"""Per-peer penalty box: a ZeroMQ identity that keeps sending rejected messages is ignored for a while.

Decoding and answering a malformed message costs the server's I/O thread ~0.1 ms of Python; a peer
that floods garbage would take that thread (and the GIL) from the robots it serves. After `strikes`
protocol errors within `window_s`, the identity's messages are dropped unread and unanswered for
`cooldown_s`; then it is heard again. A robot that sends the odd bad message still gets every error
reply (it is boxed only after `strikes` of them within one window), and a robot that reconnects gets
a new identity. Memory is bounded: at most `max_tracked` identities are remembered.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Record:
    window_start: float
    strikes: int
    until: float  # boxed until this time.monotonic(); -inf when not boxed


class PenaltyBox:
    """Strike counting per identity (fixed windows) and the cool-down. `strikes` 0 turns it off."""

    def __init__(self, strikes: int, window_s: float, cooldown_s: float, max_tracked: int = 4096):
        self.strikes, self.window_s, self.cooldown_s = int(strikes), float(window_s), float(cooldown_s)
        self.max_tracked = max(1, int(max_tracked))
        self._records: dict[bytes, _Record] = {}
        self.boxed_total = 0  # identities put in the box so far

    def blocked(self, key: bytes, now: float) -> bool:
        """True while `key` serves its cool-down (its message is to be dropped unread)."""
        record = self._records.get(key)
        return record is not None and now < record.until

    def strike(self, key: bytes, now: float) -> bool:
        """Count one protocol error of `key`; True when this strike puts it in the box."""
        if self.strikes <= 0:
            return False
        record = self._records.get(key)
        if record is None or now - record.window_start > self.window_s:
            if record is None and len(self._records) >= self.max_tracked:
                self._make_room(now)
            record = self._records[key] = _Record(now, 0, float("-inf"))
        record.strikes += 1
        if record.strikes < self.strikes:
            return False
        record.until = now + self.cooldown_s
        record.window_start, record.strikes = record.until, 0  # counting starts afresh after the cool-down
        self.boxed_total += 1
        return True

    def sweep(self, now: float) -> None:
        """Forget identities whose window and cool-down are both over."""
        stale = [k for k, r in self._records.items() if now >= r.until and now - r.window_start > self.window_s]
        for key in stale:
            del self._records[key]

    def _make_room(self, now: float) -> None:
        self.sweep(now)
        while len(self._records) >= self.max_tracked:  # still full: forget the oldest record
            del self._records[next(iter(self._records))]

    def __len__(self) -> int:
        return len(self._records)
