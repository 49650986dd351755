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
