"""The per-tick record and its JSONL writer, which formats and writes off the control thread.

The control loop only builds a small `TickRecord` (arrays copied, no formatting) and hands it to
`TickLogWriter.write`, a lock-free queue put. A background thread turns records into JSON lines
and writes them through a buffered file, so disk and `json.dumps` never sit in the hot loop.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

#: Field names of every line in the log, in order (documented for readers of the file).
TICK_FIELDS = (
    "tick", "time_s", "lateness_ms", "work_ms", "missed", "command", "state", "source_request_id",
    "observation_age_ticks", "stalled", "watchdog", "delay_ticks", "rollforward_error",
    "request_id", "chunks_arrived", "request_exec_tick", "arrivals",
)


@dataclass(frozen=True, eq=False, slots=True)
class TickRecord:
    """What happened at one control tick (see TICK_FIELDS)."""

    tick: int
    time_s: float  # since the run started (the clock's t0)
    lateness_ms: float  # wake-up time minus the tick's absolute deadline
    work_ms: float  # wake-up to command sent and observation submitted (client CPU per tick)
    missed: int  # ticks skipped right before this one (overrun)
    command: np.ndarray  # the command sent to the robot
    state: np.ndarray  # measured state at this tick
    source_request_id: int  # chunk the command came from; -1 when held / watchdog
    observation_age_ticks: int | None  # tick - capture tick of the source chunk's observation
    stalled: bool
    watchdog: bool
    delay_ticks: float  # d̂
    rollforward_error: float | None
    request_id: int  # observation sent at this tick; -1 when none
    chunks_arrived: int  # chunks applied right before this tick's command
    request_exec_tick: int = -1  # exec tick of the observation sent at this tick (its chunk's first action)
    #: per chunk applied before this tick's command: (request_id, actions dropped as late, accepted)
    arrivals: tuple[tuple[int, int, bool], ...] = ()

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = [round(float(x), 6) for x in value]
            elif isinstance(value, (np.floating, np.integer, np.bool_)):
                value = value.item()
            elif isinstance(value, tuple):
                value = [list(item) for item in value]
            out[f.name] = value
        return out


_STOP = object()


class TickLogWriter:
    """Writes TickRecords as JSON lines from a background thread. Use as a context manager."""

    def __init__(self, path: str | Path, *, flush_every: int = 256) -> None:
        self.path = Path(path)
        self.flush_every = max(1, int(flush_every))
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.written = 0

    def open(self) -> TickLogWriter:
        if self._thread is not None:
            raise RuntimeError("TickLogWriter is already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("w", encoding="utf-8", buffering=1 << 16)
        self._thread = threading.Thread(target=self._run, args=(handle,), name="tick-log", daemon=True)
        self._thread.start()
        return self

    def write(self, record: TickRecord) -> None:
        """Queue one record (never blocks on disk)."""
        self._queue.put(record)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write everything queued, close the file; re-raise a writer-thread failure."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        self._thread = None
        if self._error is not None:
            raise RuntimeError(f"tick log {self.path}: {self._error}") from self._error

    def _run(self, handle: Any) -> None:
        try:
            with handle:
                pending = 0
                while True:
                    item = self._queue.get()
                    if item is _STOP:
                        break
                    handle.write(json.dumps(item.to_json_dict(), separators=(",", ":")))
                    handle.write("\n")
                    self.written += 1
                    pending += 1
                    if pending >= self.flush_every:
                        handle.flush()
                        pending = 0
        except BaseException as exc:  # surfaced by close()
            self._error = exc

    def __enter__(self) -> TickLogWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_tick_log(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the log's lines as dicts."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
