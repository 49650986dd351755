"""The virtual server: parallel workers, queueing, latest request supersedes the waiting one."""

from __future__ import annotations

import itertools

import pytest

from sim.eval.server_model import ServerModel


def test_one_worker_queues_and_supersedes():
    times = itertools.cycle([0.3])
    server = ServerModel(1, lambda: next(times))
    assert server.submit(0.0, 1, "a") == []
    (s1,) = server.advance(0.0)
    assert (s1.request_id, s1.start_s, s1.arrival_s) == (1, 0.0, 0.3)
    assert server.submit(0.1, 2, "b") == []  # waits: worker busy until 0.3
    assert server.advance(0.2) == []
    assert server.submit(0.2, 3, "c") == [2]  # newer request supersedes the waiting one
    (s3,) = server.advance(0.3)
    assert (s3.request_id, s3.submit_s, s3.start_s) == (3, 0.2, 0.3)
    assert abs(s3.arrival_s - 0.6) < 1e-12


def test_spare_workers_run_in_parallel():
    server = ServerModel(2, lambda: 0.3)
    server.submit(0.0, 1, None)
    server.submit(0.1, 2, None)
    arrivals = [s.arrival_s for s in server.advance(0.1)]
    assert arrivals == pytest.approx([0.3, 0.4])


def test_staggered_requests_on_free_workers_are_never_superseded():
    """Pipelining: requests d/N apart on N workers each start at once and arrive d/N apart."""
    server = ServerModel(2, lambda: 0.3)
    superseded, started = [], []
    for n in range(6):  # one request every 0.15 s = d̂ / max_in_flight
        superseded += server.submit(0.15 * n, n, None)
        started += server.advance(0.15 * n)
    assert superseded == []
    assert [s.request_id for s in started] == list(range(6))
    assert [s.start_s for s in started] == pytest.approx([0.15 * n for n in range(6)])  # no queueing
    assert [s.arrival_s for s in started] == pytest.approx([0.3 + 0.15 * n for n in range(6)])


def test_busy_workers_queue_one_request_and_supersede_older_waiting_ones():
    server = ServerModel(2, lambda: 0.3)
    assert server.submit(0.0, 1, None) == [] and server.submit(0.0, 2, None) == []
    assert server.submit(0.1, 3, None) == []  # both busy: waits
    assert server.submit(0.2, 4, None) == [3]  # latest wins among waiting requests only
    started = server.advance(0.3)
    assert [s.request_id for s in started] == [1, 2, 4] and started[-1].start_s == pytest.approx(0.3)
