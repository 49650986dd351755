"""The private Ray head's ports (no Ray needed): the worker range never holds a component's port."""

from __future__ import annotations

import pytest

from vla_async import local_ray
from vla_async.local_ray import WORKER_PORTS, worker_port_range


def test_worker_range_skips_a_start_that_would_hold_a_components_port(monkeypatch):
    offered = iter([49779, 65500, 50100])  # the CI collision (49809 inside), past 65535, then a clear start
    monkeypatch.setattr(local_ray, "free_ports", lambda count: [next(offered)])
    assert worker_port_range([40039, 49809, 53761]) == 50100


def test_worker_range_gives_up_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(local_ray, "free_ports", lambda count: [49779])
    with pytest.raises(RuntimeError, match="worker range"):
        worker_port_range([49779 + WORKER_PORTS], tries=3)


def test_real_ports_give_a_clear_range():
    taken = local_ray.free_ports(8)
    lo = worker_port_range(taken)
    assert lo + WORKER_PORTS <= 65535 and not any(lo <= p <= lo + WORKER_PORTS for p in taken)
