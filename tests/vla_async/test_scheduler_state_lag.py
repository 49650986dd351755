"""state_lag_ticks (the lag_rail preset): chunks planned from the measured state are placed by the servo lag."""

import numpy as np
import pytest
from sched_helpers import drive, make_robot

from vla_async.config.schema import strategy_config
from vla_async.messages import Observation
from vla_async.policy_input import EXEC_OFFSET_KEY, policy_input
from vla_async.scheduler import ActionScheduler
from vla_async.specs import PolicySpec

ROBOT = make_robot(dof=5, gripper=True)
H = 30


def _sched(lag: int, **overrides) -> ActionScheduler:
    """lag_rail with a fixed lag unless `state_lag` is given (the preset measures it)."""
    overrides = {"state_lag": "fixed", **overrides}
    return ActionScheduler(strategy_config("lag_rail", state_lag_ticks=lag, **overrides), ROBOT, chunk_length=H)


@pytest.mark.parametrize("lag", [0, 1, 4])
def test_requests_condition_on_the_measured_state_and_start_lag_ticks_before_capture(lag):
    sched = _sched(lag)
    run = drive(sched, 60, [3])
    requests = [o.request for o in run.outputs if o.request is not None]
    assert len(requests) > 5
    for req in requests:
        assert req.rollforward_state is None  # the server uses the measured state of the observation
        assert req.exec_tick == req.tick - lag
    for k_now, rep in run.reports:  # rows for ticks before the arrival are dropped, the lag's included
        assert rep.dropped_actions == min(H, k_now - run.chunk_start(rep.request_id))
        if rep.request_id > 0:  # after the start-up chunk the arm is never held here: placed by the lag alone
            assert run.chunk_start(rep.request_id) == run.chunks[rep.request_id].start_tick


def test_the_plan_follows_the_chunk_rows_for_the_lagged_ticks():
    """A chunk placed at tick − lag joins the plan at the row for the arrival tick (the policy's row i is for
    tick exec_tick + i), not at its row 0; with lag 0 it would start `lag` rows earlier in the chunk."""
    lag = 4
    sched = _sched(lag, smoother={"enabled": False}, fuser={"kind": "latest_only", "align": True})
    run = drive(sched, 40, [2])
    checked = 0
    for out in run.outputs:
        if out.source_request_id < 0:
            continue
        chunk = run.chunks[out.source_request_id]
        np.testing.assert_array_equal(out.command, chunk.actions[out.tick - run.chunk_start(chunk.request_id)].astype(float))
        checked += 1
    assert checked > 20


def test_state_lag_applies_only_to_chunks_planned_from_the_measured_state():
    """The measured state with a committed prefix is refused (RTC with the lag placement lost); under any other
    conditioning the lag is ignored, so a preset's value survives an override such as rollforward: commanded."""
    with pytest.raises(ValueError, match="state_lag_ticks=4 .* needs action_prefix: none"):
        strategy_config("lag_rail", action_prefix="committed")
    for other in ("commanded", "last_command"):
        cfg = strategy_config("lag_rail", rollforward=other)
        assert cfg.state_lag_ticks == 4 and ActionScheduler(cfg, make_robot(), 10)._state_lag == 0
    assert ActionScheduler(strategy_config("lag_rail"), make_robot(), 10)._state_lag == 4
    assert strategy_config("rail").state_lag_ticks == 0  # presets without a lag are unchanged
    assert strategy_config("lag_rail").state_lag == "measured"  # the preset reads the lag at each capture
    assert strategy_config("vlash_rail").state_lag == "measured"  # ... and so does the default, for image policies


def test_a_chunk_placed_before_its_capture_tick_is_planned_for_the_capture_time():
    """A VLASH-trained policy is told exec_offset_s = 0 (never negative) for a lag-placed chunk."""
    spec = PolicySpec("p", ROBOT.state_names, ROBOT.action_names, H, fps=ROBOT.fps, extra={EXEC_OFFSET_KEY: True})
    obs = Observation(request_id=1, tick=10, exec_tick=6, state=np.zeros(6, np.float32))
    assert policy_input(obs, 30.0, policy=spec).exec_offset_s == 0.0
    ahead = Observation(request_id=2, tick=10, exec_tick=13, state=np.zeros(6, np.float32))
    assert policy_input(ahead, 30.0, policy=spec).exec_offset_s == pytest.approx(0.1)


def _delay_line(ticks: int):
    """A plant whose measured state is the command sent `ticks` ticks earlier (a pure servo delay)."""
    sent: list[np.ndarray] = []

    def plant(state: np.ndarray, command: np.ndarray) -> np.ndarray:
        sent.append(command.copy())
        return sent[-ticks].copy() if len(sent) >= ticks else state

    return plant


@pytest.mark.parametrize(("servo_delay", "expected"), [(3, 3), (1, 1), (6, 4)])
def test_a_measured_lag_is_the_servo_delay_of_the_moving_arm_up_to_state_lag_ticks(servo_delay, expected):
    """state_lag: measured places each chunk by the lag the measured state shows (s_k = c_{k-d}: d ticks, at most
    state_lag_ticks = 4); the plant's state at tick k is the command of tick k - servo_delay."""
    sched = _sched(4, state_lag="measured")
    run = drive(sched, 80, [3], plant=_delay_line(servo_delay))
    lags = [o.request.tick - o.request.exec_tick for o in run.outputs if o.request is not None and o.tick > 20]
    assert len(lags) > 10 and set(lags) == {expected}, lags


def test_a_measured_lag_is_zero_for_an_arm_at_rest():
    """Holding still (every command the same), no past command is nearer than this tick's: no lag, where the fixed
    lag would still skip state_lag_ticks rows of each chunk (the fine approach of a grasp)."""
    sched = _sched(4, state_lag="measured")
    run = drive(sched, 40, [3], policy=lambda req: np.full((H, 6), 0.2), plant=_delay_line(3),
                start_state=np.full(6, 0.2))
    requests = [o.request for o in run.outputs if o.request is not None]
    assert len(requests) > 5 and all(r.exec_tick == r.tick for r in requests)
    fixed = drive(_sched(4), 40, [3], policy=lambda req: np.full((H, 6), 0.2), start_state=np.full(6, 0.2))
    assert all(o.request.exec_tick == o.request.tick - 4 for o in fixed.outputs if o.request is not None)


def test_the_default_gives_an_image_policy_the_measured_state_placed_by_the_lag_and_the_expert_the_last_command():
    """vlash_rail's `auto`: a plain policy with cameras gets lag_rail's conditioning (the measured state its images
    agree with, the chunk placed by the lag read at capture); one without cameras the command at capture."""
    from vla_async.specs import CameraSpec

    cameras = (CameraSpec("wrist", 8, 8),)
    image_policy = PolicySpec("p", ROBOT.state_names, ROBOT.action_names, H, fps=ROBOT.fps, cameras=cameras)
    expert_like = PolicySpec("p", ROBOT.state_names, ROBOT.action_names, H, fps=ROBOT.fps)
    cfg = strategy_config("vlash_rail")
    image = drive(ActionScheduler(cfg, ROBOT, chunk_length=H, policy=image_policy), 80, [3], plant=_delay_line(3))
    moving = [o.request for o in image.outputs if o.request is not None and o.tick > 20]
    assert len(moving) > 10 and all(r.rollforward_state is None and r.tick - r.exec_tick == 3 for r in moving)
    expert = drive(ActionScheduler(cfg, ROBOT, chunk_length=H, policy=expert_like), 80, [3], plant=_delay_line(3))
    sent = [o for o in expert.outputs if o.request is not None and o.tick > 20]
    assert len(sent) > 10 and all(o.request.exec_tick == o.tick for o in sent)
    for o in sent:
        np.testing.assert_allclose(o.request.rollforward_state, o.command)  # the command of the capture tick


def _outputs_key(run):
    return [(o.tick, o.command.tobytes(), None if o.request is None else
             (o.request.exec_tick, None if o.request.action_prefix is None else o.request.action_prefix.tobytes(),
              o.request.prefix_frozen, None if o.request.rollforward_state is None else
              o.request.rollforward_state.tobytes())) for o in run.outputs]


def test_the_default_gives_a_prefix_taking_policy_real_time_chunking_as_vlash_rtc_rail_does():
    """vlash_rail's `action_prefix: auto`: a policy whose spec accepts the committed prefix (an RTC-exported flow
    policy) gets vlash_rtc_rail's configuration — the plan from the capture tick, its first d̂ rows committed, and
    the command at that tick as the state, not the lag placement — tick for tick; a plain image policy gets none."""
    from vla_async.specs import ACTION_PREFIX_KEY, CameraSpec

    cameras = (CameraSpec("wrist", 8, 8),)
    rtc_policy = PolicySpec("p", ROBOT.state_names, ROBOT.action_names, H, fps=ROBOT.fps, cameras=cameras,
                            extra={ACTION_PREFIX_KEY: "inpaint"})
    plain = PolicySpec("p", ROBOT.state_names, ROBOT.action_names, H, fps=ROBOT.fps, cameras=cameras)
    latencies = [3, 5, 4, 6]

    def run(preset: str, policy: PolicySpec):
        sched = ActionScheduler(strategy_config(preset), ROBOT, chunk_length=H, policy=policy)
        return sched, drive(sched, 120, latencies, plant=_delay_line(3))

    default, by_default = run("vlash_rail", rtc_policy)
    assert (default.action_prefix_mode, default.rollforward_mode) == ("committed", "last_command")
    sent = [o for o in by_default.outputs if o.request is not None and o.tick > 20]
    assert len(sent) > 10 and all(o.request.exec_tick == o.tick and o.request.prefix_frozen >= 3 for o in sent)
    assert all(o.request.action_prefix is not None for o in sent)
    for o in sent:
        np.testing.assert_allclose(o.request.rollforward_state, o.command)  # where the committed prefix starts
    _, composed = run("vlash_rtc_rail", rtc_policy)
    assert _outputs_key(by_default) == _outputs_key(composed)
    without, by_plain = run("vlash_rail", plain)
    assert (without.action_prefix_mode, without.rollforward_mode) == ("none", "none")
    assert all(o.request.action_prefix is None for o in by_plain.outputs if o.request is not None)
    # an explicit measured-state conditioning keeps its lag placement and sends no prefix, even to such a policy
    explicit = ActionScheduler(strategy_config("vlash_rail", rollforward="none"), ROBOT, chunk_length=H,
                               policy=rtc_policy)
    assert (explicit.action_prefix_mode, explicit._state_lag) == ("none", 4)
