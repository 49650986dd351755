"""The live status line of a running client (`vla-async client`, `vla-async demo`).

On a terminal it is rewritten in place (`\\r`) twice a second. Into a file or pipe it writes whole
lines only, and only when the text changed and at most every `file_period_s` (a log file gets a
line every few seconds, the "waiting for the server" message once).

Fields of `RealTimeClient.status_line()` (README, "The live status line"):
  t=         seconds since the control loop started
  tick       control tick index
  chunk N    id of the chunk the current command comes from ("holding": no chunk yet / stalled)
  age        ticks since that chunk's observation was captured
  d̂          the delay estimate in ticks (capture → chunk usable)
  lateness   how late the tick woke up after its deadline
  chunks     chunks received so far
  stalls     ticks held for lack of a planned action after the first chunk started (as in the report)
  start-up   ticks held before the first chunk (not stalls)
  missed     ticks skipped by overruns
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


class LiveStatus:
    """Prints `line()` from a daemon thread until the context exits."""

    def __init__(self, line: Callable[[], str], stream: TextIO = sys.stderr, period_s: float = 0.5,
                 file_period_s: float = 2.0, width: int = 150) -> None:
        self._line = line
        self._stream = stream
        self._period_s = period_s
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._file_period_s = file_period_s
        self._width = width
        self._last = ""
        self._last_at = -float("inf")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-status", daemon=True)

    def __enter__(self) -> LiveStatus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(2.0)
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()

    def _run(self) -> None:
        while not self._done.wait(self._period_s):
            try:
                self._show(self._line()[: self._width])
            except Exception as exc:  # a status line must never take the run down; say it once
                self._show(f"(live status unavailable: {exc})")

    def _show(self, text: str) -> None:
        now = time.monotonic()
        if self._tty:
            self._stream.write("\r" + text.ljust(len(self._last)))
        elif text != self._last and now - self._last_at >= self._file_period_s:
            self._stream.write(text + "\n")
        else:
            return
        self._stream.flush()
        self._last, self._last_at = text, now
