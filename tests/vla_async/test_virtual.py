import numpy as np
from sched_helpers import make_robot

from vla_async.config.schema import strategy_config
from vla_async.messages import ActionChunk
from vla_async.scheduler import ActionScheduler
from vla_async.virtual import VirtualDriver

ROBOT = make_robot(dof=2, gripper=False)


def _driver(**overrides) -> VirtualDriver:
    strategy = strategy_config("aligned", max_in_flight=3, **overrides)  # requests whenever a slot is free
    return VirtualDriver(ActionScheduler(strategy, ROBOT, chunk_length=10))


def test_chunks_reach_the_scheduler_on_the_first_tick_at_or_after_their_arrival_in_arrival_order():
    driver = _driver(trigger="every_tick")
    requests = [driver.step(k, np.zeros(2)).output.request for k in range(3)]
    assert all(r is not None for r in requests)
    a, b, c = (ActionChunk(r.request_id, r.exec_tick, np.full((10, 2), float(r.request_id))) for r in requests)
    driver.send(b, arrival_s=4 / 30.0)  # exactly tick 4's time
    driver.send(c, arrival_s=3.5 / 30.0, latency_s=0.05)  # between ticks 3 and 4: shapes tick 4
    driver.send_at_tick(a, 5)
    assert driver.pending == 3
    assert driver.step(3, np.zeros(2)).deliveries == []
    step = driver.step(4, np.zeros(2))
    assert [d.chunk.request_id for d in step.deliveries] == [c.request_id, b.request_id]  # by arrival
    assert [d.latency_s for d in step.deliveries] == [0.05, None]
    assert [d.report.accepted for d in step.deliveries] == [True, False]  # b is older than c: superseded
    assert step.output.source_request_id == c.request_id
    late = driver.step(5, np.zeros(2)).deliveries
    assert [d.chunk.request_id for d in late] == [a.request_id] and not late[0].report.accepted  # superseded
    assert driver.pending == 0


def test_a_timer_measures_the_scheduler_and_fail_frees_the_slot():
    ticks = iter(range(0, 10_000, 7))
    driver = VirtualDriver(ActionScheduler(strategy_config("aligned"), ROBOT, chunk_length=10), timer=lambda: next(ticks))
    step = driver.step(0, np.zeros(2))
    assert step.tick_cost == 7 and step.cost == 7
    req = step.output.request
    assert driver.scheduler.in_flight == 1
    driver.fail(req.request_id)
    assert driver.scheduler.in_flight == 0 and driver.scheduler.stats.failures == 1
