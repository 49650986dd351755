import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sched_helpers import drive, make_robot

from vla_async.config.schema import strategy_config
from vla_async.rollforward import TrackingRollForward, create_rollforward
from vla_async.scheduler import ActionScheduler


def test_commanded_and_delta_predictions():
    committed = np.array([[1.0, 2.0], [3.0, 4.0]])
    measured = np.array([0.5, 0.5])
    np.testing.assert_array_equal(create_rollforward("commanded", 2).predict(measured, committed, None), [3, 4])
    np.testing.assert_array_equal(
        create_rollforward("commanded", 2).predict(measured, committed[:0], np.array([9.0, 9.0])), [9, 9]
    )
    np.testing.assert_array_equal(create_rollforward("delta", 2).predict(measured, committed, None), [4.5, 6.5])
    assert create_rollforward("none", 2).predict(measured, committed, None) is None
    with pytest.raises(ValueError):
        create_rollforward("bogus", 2)


def _run_plant(model: TrackingRollForward, alpha: np.ndarray, commands: np.ndarray) -> np.ndarray:
    s = np.zeros(commands.shape[1])
    prev_cmd = None
    for c in commands:
        model.observe(s, prev_cmd)
        s = s + alpha * (c - s)
        prev_cmd = c
    return s


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 10))
def test_tracking_is_exact_for_an_ideal_tracker(seed, horizon):
    rng = np.random.default_rng(seed)
    commands = np.cumsum(rng.normal(0, 0.05, (60, 3)), axis=0)
    model = TrackingRollForward(3)
    s = _run_plant(model, np.ones(3), commands)
    committed = s + np.cumsum(rng.normal(0, 0.05, (horizon, 3)), axis=0)
    commanded = create_rollforward("commanded", 3).predict(s, committed, commands[-1])
    np.testing.assert_allclose(model.predict(s, committed, commands[-1]), commanded, atol=1e-9)


def test_tracking_identifies_a_lagging_joint_and_beats_commanded():
    rng = np.random.default_rng(3)
    alpha = np.array([0.3, 0.6, 1.0])
    commands = np.cumsum(rng.normal(0, 0.05, (300, 3)), axis=0)
    model = TrackingRollForward(3)
    s = _run_plant(model, alpha, commands)
    np.testing.assert_allclose(model.alpha, alpha, atol=5e-3)  # the prior (α = 1) fades with forgetting
    # predict 6 ticks ahead over fresh committed commands and compare with the truth
    committed = commands[-1] + np.cumsum(rng.normal(0, 0.05, (6, 3)), axis=0)
    truth = s.copy()
    for c in committed:
        truth = truth + alpha * (c - truth)
    err_tracking = np.linalg.norm(model.predict(s, committed, commands[-1]) - truth)
    err_commanded = np.linalg.norm(create_rollforward("commanded", 3).predict(s, committed, None) - truth)
    assert err_tracking < 0.05 * err_commanded


def _lagging_plant(alpha: float):
    return lambda state, cmd: state + alpha * (cmd - state)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_scheduler_logs_rollforward_error_and_tracking_shrinks_it(alpha):
    robot = make_robot(dof=3, gripper=False)
    errors = {}
    for mode in ("commanded", "tracking"):
        cfg = strategy_config("vlash", rollforward=mode, delay={"mode": "fixed", "fixed_ticks": 4})
        sched = ActionScheduler(cfg, robot, chunk_length=30)
        run = drive(sched, 400, [4], plant=_lagging_plant(alpha))
        errs = [o.rollforward_error for o in run.outputs if o.rollforward_error is not None]
        assert len(errs) >= 10
        errors[mode] = float(np.mean(errs[5:]))
    if alpha == 1.0:
        assert errors["commanded"] < 1e-9 and errors["tracking"] < 1e-9
    else:
        assert errors["tracking"] < 0.5 * errors["commanded"]


def test_a_non_finite_reading_neither_poisons_the_tracking_model_nor_the_prediction():
    alpha = np.array([0.4, 0.9])
    rng = np.random.default_rng(3)
    commands = np.cumsum(rng.normal(0, 0.05, (300, 2)), axis=0)
    model = TrackingRollForward(2)
    s, prev_cmd = np.zeros(2), None
    for k, c in enumerate(commands):
        reading = np.array([np.nan, s[1]]) if k % 50 == 25 else s  # a dropped sensor value now and then
        model.observe(reading, prev_cmd)
        s = s + alpha * (c - s)
        prev_cmd = c
    assert np.all(np.isfinite(model.alpha)) and np.all(np.isfinite(model.p))
    np.testing.assert_allclose(model.alpha, alpha, atol=0.05)
    committed = commands[-3:]
    pred = model.predict(np.array([np.inf, 0.0]), committed, commands[-4])
    np.testing.assert_array_equal(pred, committed[-1])  # falls back to the commanded state


def test_last_command_conditions_on_the_command_without_shifting_the_chunk():
    """`last_command`: the request's state is the previous command and its chunk still starts at the capture tick."""
    from vla_async.messages import ActionChunk

    cfg = strategy_config("aligned", rollforward="last_command", trigger="every_tick")
    robot = make_robot()
    sched = ActionScheduler(cfg, robot, 10)
    first = sched.on_tick(0, np.zeros(6))
    assert first.request is not None and first.request.exec_tick == 0
    np.testing.assert_array_equal(first.request.rollforward_state, np.zeros(6))
    sched.on_chunk(ActionChunk(first.request.request_id, 0, np.full((10, 6), 0.5)), k_now=3)
    out = sched.on_tick(3, np.full(6, 0.1))
    assert out.request is not None and out.request.exec_tick == 3
    np.testing.assert_allclose(out.request.rollforward_state, np.full(6, 0.5))


def test_auto_rolls_forward_only_for_a_policy_declaring_exec_offset_training():
    """`auto` (the vlash_rail default): VLASH rollforward for a policy whose spec says it was trained for
    exec_offset_s, the last command at the capture tick for any other (and without a spec)."""
    from vla_async.messages import ActionChunk
    from vla_async.policy_input import EXEC_OFFSET_KEY
    from vla_async.rollforward import resolve_rollforward
    from vla_async.specs import PolicySpec

    assert resolve_rollforward("auto", True) == "commanded"
    assert resolve_rollforward("auto", False) == "last_command"
    assert resolve_rollforward("auto", True, True, True) == "commanded"  # VLASH-trained, cameras or not
    assert resolve_rollforward("auto", False, True, True) == "none"  # an image policy: the measured state + lag
    assert resolve_rollforward("auto", False, True, False) == "last_command"  # ... but not without a lag placement
    assert resolve_rollforward("auto", False, False, True) == "last_command"  # no cameras (the scripted expert)
    assert resolve_rollforward("tracking", True) == "tracking"  # an explicit mode is kept
    robot = make_robot()
    cfg = strategy_config("vlash_rail")
    assert cfg.rollforward == "auto"

    def exec_ticks(policy):
        sched = ActionScheduler(cfg, robot, 10, policy=policy)
        first = sched.on_tick(0, np.zeros(6))
        sched.on_chunk(ActionChunk(first.request.request_id, first.request.exec_tick, np.full((10, 6), 0.5)),
                       k_now=3)
        out = sched.on_tick(3, np.full(6, 0.1))
        assert out.request is not None
        return sched.rollforward_mode, out.request.exec_tick

    def spec(extra):
        return PolicySpec("p", robot.state_names, robot.action_names, 10, fps=robot.fps, extra=extra)

    assert exec_ticks(None) == ("last_command", 3)
    assert exec_ticks(spec({})) == ("last_command", 3)
    mode, exec_tick = exec_ticks(spec({EXEC_OFFSET_KEY: True}))
    assert mode == "commanded" and exec_tick > 3  # the chunk is planned for when it will execute
    from vla_async.specs import CameraSpec

    camera = (CameraSpec("wrist", 8, 8),)
    with_cameras = PolicySpec("p", robot.state_names, robot.action_names, 10, fps=robot.fps, cameras=camera)
    assert exec_ticks(with_cameras)[0] == "none"  # an image policy: the measured state (placement: state_lag tests)
    trained = PolicySpec("p", robot.state_names, robot.action_names, 10, fps=robot.fps, cameras=camera,
                         extra={EXEC_OFFSET_KEY: True})
    assert exec_ticks(trained)[0] == "commanded"


def test_action_prefix_auto_commits_for_a_prefix_taking_policy_unless_the_state_is_measured():
    from vla_async.rollforward import resolve_action_prefix

    assert resolve_action_prefix("auto", "auto", True) == "committed"
    assert resolve_action_prefix("auto", "last_command", True) == "committed"
    assert resolve_action_prefix("auto", "commanded", True) == "committed"  # a VLASH + RTC policy: vlash_rtc
    assert resolve_action_prefix("auto", "auto", False) == "none"  # the spec decides
    assert resolve_action_prefix("auto", "none", True) == "none"  # the lag placement a prefix would contradict
    assert resolve_action_prefix("committed", "none", False) == "committed"  # an explicit mode is kept
    assert resolve_action_prefix("none", "auto", True) == "none"
