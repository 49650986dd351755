"""The per-tick JSONL log: every record written, in order, with every field, off the caller's thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from robot_client.tick_log import TICK_FIELDS, TickLogWriter, TickRecord, read_tick_log


def make_record(k: int, dim: int = 6) -> TickRecord:
    return TickRecord(
        tick=k, time_s=k / 30, lateness_ms=0.1 * k, work_ms=0.05, missed=0,
        command=np.full(dim, k, np.float32), state=np.arange(dim, dtype=np.float64) + k,
        source_request_id=k // 10 if k >= 10 else -1,
        observation_age_ticks=(k % 10) if k >= 10 else None,
        stalled=k < 10, watchdog=False, delay_ticks=np.float64(2.5),
        rollforward_error=None if k % 2 else 0.01, request_id=k if k % 10 == 0 else -1,
        chunks_arrived=int(k % 10 == 3),
    )


def test_records_round_trip_in_order_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ticks.jsonl"
    with TickLogWriter(path, flush_every=7) as log:
        for k in range(500):
            log.write(make_record(k))
    rows = list(read_tick_log(path))
    assert len(rows) == 500
    assert [r["tick"] for r in rows] == list(range(500))
    for row in rows:
        assert tuple(row) == TICK_FIELDS
    r = rows[42]
    assert r["command"] == [42.0] * 6
    assert r["state"] == [42.0 + i for i in range(6)]
    assert r["source_request_id"] == 4 and r["observation_age_ticks"] == 2
    assert r["stalled"] is False and r["delay_ticks"] == 2.5 and r["rollforward_error"] == 0.01
    assert rows[3]["observation_age_ticks"] is None and rows[3]["stalled"] is True


def test_formatting_happens_on_the_writer_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: set[str] = set()
    original = TickRecord.to_json_dict

    def spy(self: TickRecord) -> dict:
        threads.add(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(TickRecord, "to_json_dict", spy)
    with TickLogWriter(tmp_path / "t.jsonl") as log:
        for k in range(20):
            log.write(make_record(k))
    assert threads == {"tick-log"}


def test_writer_errors_surface_on_close(tmp_path: Path) -> None:
    log = TickLogWriter(tmp_path / "t.jsonl").open()
    log.write(make_record(0))
    log.write("not a record")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="tick log"):
        log.close()
