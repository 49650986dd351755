"""rollforward_to: arm — roll forward to where a lagging arm will be when the chunk arrives, not to its command."""

import numpy as np
import pytest
from sched_helpers import drive, make_robot
from test_scheduler_state_lag import _delay_line

from vla_async.config.schema import strategy_config
from vla_async.scheduler import ActionScheduler

ROBOT = make_robot(dof=5, gripper=True)
H = 30
D = 6  # d̂, fixed


def _sched(rollforward_to: str, lag: int = 4, state_lag: str = "fixed", **overrides) -> ActionScheduler:
    cfg = strategy_config("vlash_rail", rollforward="commanded", rollforward_to=rollforward_to, state_lag_ticks=lag,
                          state_lag=state_lag, delay={"mode": "fixed", "fixed_ticks": D}, **overrides)
    return ActionScheduler(cfg, ROBOT, chunk_length=H)


def _moving_requests(run, after: int = 20):
    return [o.request for o in run.outputs if o.request is not None and o.tick > after]


@pytest.mark.parametrize(("lag", "horizon"), [(0, D), (1, D - 1), (4, D - 4), (5, D - 5)])
def test_the_horizon_is_the_delay_less_the_fixed_lag(lag, horizon):
    run = drive(_sched("arm", lag), 120, [D])
    requests = _moving_requests(run)
    assert len(requests) > 10
    assert {r.exec_tick - r.tick for r in requests} == {horizon}
    assert all(r.rollforward_state is not None for r in requests)


@pytest.mark.parametrize("lag", [D, 9])
def test_a_delay_within_the_lag_gets_the_measured_state_placed_by_the_lag(lag):
    """d̂ ≤ lag: no command sent after the capture will have been reached at arrival, so the policy gets the measured
    state (no rollforward state) and the chunk is placed `lag` ticks before the capture, as lag_rail does."""
    requests = _moving_requests(drive(_sched("arm", lag), 120, [D]))
    assert len(requests) > 10
    assert all(r.rollforward_state is None and r.exec_tick == r.tick - lag for r in requests)


def test_the_state_is_the_plans_command_for_the_tick_before_the_shortened_horizon():
    """The committed command the arm will have reached at arrival: the plan's row for exec_tick − 1 (the
    `commanded` rollforward), with exec_tick = capture + d̂ − lag."""
    run = drive(_sched("arm", 4), 120, [D])
    checked = 0
    plans = {o.tick: o.command for o in run.outputs}
    for req in _moving_requests(run):
        if req.exec_tick - 1 > req.tick:  # the command for exec_tick − 1 is the plan's, sent at that tick
            np.testing.assert_allclose(req.rollforward_state, plans[req.exec_tick - 1], atol=1e-9)
            checked += 1
    assert checked > 10


def test_command_is_vlash_and_ignores_the_lag():
    requests = _moving_requests(drive(_sched("command", 4), 120, [D]))
    assert len(requests) > 10 and {r.exec_tick - r.tick for r in requests} == {D}


@pytest.mark.parametrize(("servo_delay", "horizon"), [(3, D - 3), (1, D - 1), (6, D - 4)])
def test_a_measured_lag_shortens_the_horizon_by_the_servo_delay_of_the_moving_arm(servo_delay, horizon):
    """state_lag: measured reads the lag at each capture (at most state_lag_ticks = 4), as the lag placement does."""
    run = drive(_sched("arm", 4, state_lag="measured"), 120, [D], plant=_delay_line(servo_delay))
    requests = _moving_requests(run)
    assert len(requests) > 10 and {r.exec_tick - r.tick for r in requests} == {horizon}


def test_an_arm_at_rest_rolls_forward_the_whole_delay():
    run = drive(_sched("arm", 4, state_lag="measured"), 100, [D], policy=lambda req: np.full((H, 6), 0.2),
                plant=_delay_line(3), start_state=np.full(6, 0.2))
    requests = _moving_requests(run, after=5)
    assert len(requests) > 5 and {r.exec_tick - r.tick for r in requests} == {D}


@pytest.mark.parametrize("rollforward", ["none", "last_command"])
def test_arm_changes_nothing_without_a_shifting_rollforward(rollforward):
    """`none` keeps the lag placement (exec_tick = capture − lag); `last_command` starts at the capture tick."""
    cfg = strategy_config("vlash_rail", rollforward=rollforward, rollforward_to="arm", state_lag_ticks=4,
                          state_lag="fixed", delay={"mode": "fixed", "fixed_ticks": D})
    requests = _moving_requests(drive(ActionScheduler(cfg, ROBOT, chunk_length=H), 120, [D]))
    expected = -4 if rollforward == "none" else 0
    assert len(requests) > 10 and {r.exec_tick - r.tick for r in requests} == {expected}


def test_the_default_rolls_a_vlash_trained_policy_forward_to_the_arm():
    """vlash_rail's `auto` gives a policy trained for exec_offset_s the commanded rollforward to the arm: d̂ less the
    lag read at capture (a servo 3 ticks behind: exec_tick = capture + d̂ − 3), and tells it that offset."""
    from vla_async.messages import Observation
    from vla_async.policy_input import EXEC_OFFSET_KEY, policy_input
    from vla_async.specs import PolicySpec

    spec = PolicySpec("p", ROBOT.state_names, ROBOT.action_names, H, fps=ROBOT.fps, extra={EXEC_OFFSET_KEY: True})
    cfg = strategy_config("vlash_rail", delay={"mode": "fixed", "fixed_ticks": D})
    sched = ActionScheduler(cfg, ROBOT, chunk_length=H, policy=spec)
    assert sched.rollforward_mode == "commanded"
    requests = _moving_requests(drive(sched, 120, [D], plant=_delay_line(3)))
    assert len(requests) > 10 and {r.exec_tick - r.tick for r in requests} == {D - 3}
    assert all(r.rollforward_state is not None for r in requests)
    obs = Observation(request_id=1, tick=10, exec_tick=10 + D - 3, state=np.zeros(6, np.float32))
    assert policy_input(obs, ROBOT.fps, policy=spec).exec_offset_s == pytest.approx((D - 3) / ROBOT.fps)
