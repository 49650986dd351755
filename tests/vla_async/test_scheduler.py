import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sched_helpers import drive, make_robot, sine_policy

from vla_async.config.schema import SafetyConfig, strategy_config, strategy_names
from vla_async.messages import ActionChunk
from vla_async.scheduler import ActionScheduler

ROBOT = make_robot(dof=5, gripper=True)
H = 30


def _sched(name: str, safety: SafetyConfig | None = None, **overrides) -> ActionScheduler:
    return ActionScheduler(strategy_config(name, **overrides), ROBOT, chunk_length=H, safety=safety)


def test_every_preset_builds_and_vlash_rail_is_the_default():
    assert {"sync", "naive", "lerobot", "aligned", "temporal_ensemble", "vlash", "rail", "vlash_rail"} <= set(
        strategy_names()
    )
    from vla_async.config.schema import StrategyConfig

    assert StrategyConfig().name == "vlash_rail"
    for name in strategy_names():
        _sched(name)


def test_holds_measured_state_before_first_chunk_and_requests_at_once():
    sched = _sched("vlash_rail", SafetyConfig())
    state = np.array([0.1, -0.2, 0.3, 0.0, 0.5, 1.0])
    out = sched.on_tick(0, state)
    np.testing.assert_array_equal(out.command, state)
    assert out.stalled and out.source_request_id == -1 and out.request is not None
    assert out.request.tick == 0
    out = sched.on_tick(1, state + 1.0)  # the measured state moves: the hold stays put
    np.testing.assert_array_equal(out.command, state)
    assert out.request is None  # one in flight at most
    with pytest.raises(ValueError):
        sched.on_tick(1, state)


@pytest.mark.parametrize("safety", [SafetyConfig(), None])
def test_a_non_finite_first_state_is_refused_not_held(safety):
    """The first hold is the measured state: a NaN there would be commanded forever."""
    sched = _sched("vlash_rail", safety)
    state = np.array([0.1, np.nan, 0.3, 0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="not finite"):
        sched.on_tick(0, state)
    state[1] = 0.2
    out = sched.on_tick(1, state)
    np.testing.assert_array_equal(out.command, state)


def test_a_measured_state_of_the_wrong_shape_is_refused():
    sched = _sched("vlash_rail")
    for state in (np.zeros(5), np.zeros(7), np.zeros((1, 6))):
        with pytest.raises(ValueError, match="shape"):
            sched.on_tick(0, state)
    out = sched.on_tick(0, np.arange(6, dtype=np.float32) / 10)  # any float dtype, converted
    np.testing.assert_allclose(out.command, np.arange(6) / 10, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["aligned", "vlash", "naive"]), st.lists(st.integers(1, 40), min_size=1, max_size=8),
       st.integers(0, 6))
def test_commands_come_from_the_chunk_action_for_that_tick(name, latencies, fixed):
    """No command is ever for a past tick; actions for passed ticks are dropped; the plan has no gaps. A chunk
    starts at its exec tick plus the ticks the arm was held (no plan) between its request and its arrival."""
    sched = _sched(name, delay={"mode": "fixed", "fixed_ticks": fixed})
    run = drive(sched, 150, latencies)
    arrival = {rep.request_id: k for k, rep in run.reports}

    def start_of(rid: int) -> int:
        return arrival[rid] if name == "naive" else run.chunk_start(rid)

    for out in run.outputs:
        if out.source_request_id < 0:
            continue
        chunk = run.chunks[out.source_request_id]
        i = out.tick - start_of(chunk.request_id)
        assert 0 <= i < chunk.horizon
        np.testing.assert_array_equal(out.command, chunk.actions[i].astype(float))
    for k_now, rep in run.reports:
        chunk = run.chunks[rep.request_id]
        assert rep.dropped_actions == min(chunk.horizon, max(0, k_now - start_of(rep.request_id)))
    assert sched.stats.late_actions_dropped == sum(rep.dropped_actions for _, rep in run.reports)
    for k_now, start, end in run.plans_after_chunk:
        assert start <= k_now < end or end == start  # the plan covers k_now onwards, contiguous


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["vlash_rail", "rail", "lerobot", "temporal_ensemble", "sync"]),
       st.lists(st.integers(1, 25), min_size=1, max_size=6))
def test_every_strategy_keeps_safety_limits_and_a_gapless_plan(name, latencies):
    safety = SafetyConfig(max_velocity=3.0, max_acceleration=40.0, max_step=0.2)
    sched = _sched(name, safety)
    run = drive(sched, 120, latencies)
    cmds = np.array([o.command for o in run.outputs])
    assert np.all(np.abs(cmds) <= 3.0)
    g = cmds[:, :5]
    v = np.diff(g, axis=0) * ROBOT.fps
    assert np.all(np.abs(v) <= 3.0 + 1e-9)
    assert np.all(np.abs(np.diff(v, axis=0)) * ROBOT.fps <= 40.0 + 1e-6)
    assert [o.tick for o in run.outputs] == list(range(120))
    for k_now, start, end in run.plans_after_chunk:
        assert start <= k_now < end or end == start
    assert sched.stats.stall_ticks == sum(o.stalled for o in run.outputs)


def test_sync_holds_while_waiting_and_executes_s_actions_per_chunk():
    s = 10
    sched = _sched("sync", execution_horizon=s)
    run = drive(sched, 200, [6])
    requests = [o for o in run.outputs if o.request is not None]
    assert len(requests) >= 5
    # each chunk: placed where the robot waited (k_now), exactly s actions executed, then a new request
    executed = {}
    for o in run.outputs:
        if o.source_request_id >= 0:
            executed[o.source_request_id] = executed.get(o.source_request_id, 0) + 1
    assert set(list(executed.values())[:-1]) == {s}
    assert sched.stats.late_actions_dropped == 0
    # while a request is in flight and nothing is planned, the command is held (stall)
    waits = [o for o in run.outputs if o.in_flight and o.source_request_id < 0]
    assert waits and all(o.stalled for o in waits)
    assert sched.stats.stalls >= len(requests) - 1


def test_vlash_with_a_correct_delay_never_stalls_or_drops_after_start():
    sched = _sched("vlash", delay={"mode": "fixed", "fixed_ticks": 5})
    run = drive(sched, 300, [5])
    after_first = [o for o in run.outputs if o.tick > 10]
    assert not any(o.stalled for o in after_first)
    assert all(rep.dropped_actions == 0 for _, rep in run.reports[1:])
    for o in run.outputs:
        if o.request is not None and o.tick > 10:
            assert o.request.exec_tick == o.tick + 5
            assert o.request.rollforward_state is not None


def test_naive_places_chunks_at_arrival_and_aligned_drops_late_actions():
    naive = drive(_sched("naive"), 100, [7])
    aligned = drive(_sched("aligned", delay={"mode": "fixed", "fixed_ticks": 0}), 100, [7])
    assert all(rep.dropped_actions == 0 for _, rep in naive.reports)
    # aligned drops the rows of the ticks the arm moved along a plan since the request: 7 minus the ticks it was
    # held; the first chunk finds the arm where it was captured (held since), so it starts at its first row
    held = {o.tick for o in aligned.outputs if o.source_request_id < 0}
    drops = [(rep.dropped_actions, sum(t in held for t in range(k - 7, k))) for k, rep in aligned.reports]
    assert drops[0] == (0, 7) and len(drops) >= 3
    assert all(dropped == 7 - n_held for dropped, n_held in drops)
    assert any(0 < dropped < 7 for dropped, _ in drops)  # an underrun before the arrival: some rows dropped


def test_max_in_flight_is_respected_and_failures_free_the_slot():
    sched = _sched("temporal_ensemble", max_in_flight=3)
    outs = [sched.on_tick(k, np.zeros(6)) for k in range(10)]
    reqs = [o.request for o in outs if o.request is not None]
    assert len(reqs) == 3 and all(o.in_flight <= 3 for o in outs)
    assert [r.request_id for r in reqs] == sorted({r.request_id for r in reqs})
    sched.on_request_failed(reqs[0].request_id)
    assert sched.stats.failures == 1 and sched.in_flight == 2
    late = ActionChunk(reqs[0].request_id, reqs[0].exec_tick, np.zeros((H, 6), np.float32))
    assert not sched.on_chunk(late, k_now=10).accepted  # its late reply is not used
    assert sched.on_tick(10, np.zeros(6)).request is not None


def test_malformed_chunk_is_rejected():
    sched = _sched("aligned")
    req = sched.on_tick(0, np.zeros(6)).request
    bad = ActionChunk(req.request_id, 0, np.full((H, 6), np.nan, np.float32))
    assert not sched.on_chunk(bad, k_now=1).accepted
    assert sched.stats.chunks_rejected == 1 and sched.in_flight == 0


def test_watchdog_brings_the_arm_to_rest_and_resumes_on_a_chunk():
    safety = SafetyConfig(watchdog_timeout_s=0.5, rest_deceleration=5.0, max_acceleration=50.0)
    sched = _sched("aligned", safety)
    ramp = np.linspace(0, 2.0, H)[:, None] * np.ones((1, 6))
    req = sched.on_tick(0, np.zeros(6)).request
    sched.on_chunk(ActionChunk(req.request_id, 0, ramp.astype(np.float32)), k_now=1)
    outs = [sched.on_tick(k, np.zeros(6)) for k in range(1, 60)]  # the server never answers again
    wd = [o for o in outs if o.watchdog]
    assert wd, "watchdog never engaged"
    first = wd[0].tick
    waiting_since = next(o.tick for o in outs if o.request is not None)
    assert first - waiting_since == int(0.5 * ROBOT.fps) + 1
    cmds = np.array([o.command[0] for o in outs])
    speeds = np.abs(np.diff(cmds)) * ROBOT.fps
    i0 = first - 1
    assert np.all(np.diff(speeds[i0:]) <= 1e-9) and speeds[-1] == 0
    assert sched.stats.watchdog_events == 1
    pending = sched.pending_requests[0]
    rep = sched.on_chunk(ActionChunk(pending.request_id, 60, np.ones((H, 6), np.float32)), k_now=60)
    assert rep.accepted
    out = sched.on_tick(60, np.zeros(6))
    assert not out.watchdog and out.source_request_id == pending.request_id


def test_bench_runs_and_reports_percentiles():
    from vla_async.bench.scheduler import measure_scheduler_cost

    r = measure_scheduler_cost(6, 50, "vlash_rail", 300)
    assert r["chunks"] >= 5 and r["p50_us"] <= r["p99_us"] <= r["max_us"]
    assert r["on_tick_p50_us"] <= r["on_tick_p99_us"]


@pytest.mark.parametrize("name", ["vlash_rail", "vlash", "rail"])
def test_default_presets_request_back_to_back_and_never_stall_after_startup(name):
    """Each chunk's arrival tick sends the next request; with jittery 3..11-tick latencies no tick is held."""
    sched = ActionScheduler(strategy_config(name), make_robot(), chunk_length=50, safety=SafetyConfig())
    rng = np.random.default_rng(0)
    lats = rng.integers(3, 12, size=200).tolist()
    run = drive(sched, 400, lats)
    first = next(i for i, o in enumerate(run.outputs) if not o.stalled)
    assert not any(o.stalled for o in run.outputs[first:])
    request_ticks = {o.tick for o in run.outputs if o.request is not None}
    arrival_ticks = {k for k, rep in run.reports if rep.accepted}
    assert arrival_ticks and arrival_ticks <= request_ticks  # back-to-back: a new request on every arrival
    assert all(o.in_flight <= 1 for o in run.outputs)


def test_pipelined_requests_are_staggered_and_never_exceed_max_in_flight():
    fixed = {"mode": "fixed", "fixed_ticks": 6}
    one = drive(_sched("vlash_rail", delay=fixed), 150, [6])
    two_sched = _sched("vlash_rail", delay=fixed, max_in_flight=2)
    two = drive(two_sched, 150, [6])
    assert all(o.in_flight <= 2 for o in two.outputs) and max(o.in_flight for o in two.outputs) == 2
    ticks = [o.tick for o in two.outputs if o.request is not None]
    assert all(b - a >= 3 for a, b in zip(ticks[1:], ticks[2:], strict=False))  # ≈ d̂/N = 3 ticks apart
    assert len(ticks) > 1.7 * sum(o.request is not None for o in one.outputs)  # a chunk every half cycle
    assert two_sched.stats.stall_ticks == sum(o.stalled for o in two.outputs[:8])  # no stall after start-up


def test_an_older_chunk_never_overwrites_a_newer_chunks_ticks():
    sched = _sched("vlash_rail", delay={"mode": "fixed", "fixed_ticks": 6}, max_in_flight=2)
    state = np.zeros(6)
    reqs = []
    for k in range(4):
        out = sched.on_tick(k, state)
        if out.request is not None:
            reqs.append(out.request)
    old, new = reqs[0], reqs[1]
    assert new.tick - old.tick == 3
    newer = ActionChunk(new.request_id, new.exec_tick, np.full((H, 6), 0.5, np.float32))
    assert sched.on_chunk(newer, k_now=4).accepted
    older = ActionChunk(old.request_id, old.exec_tick, np.full((H, 6), -0.5, np.float32))
    report = sched.on_chunk(older, k_now=5)
    assert not report.accepted and sched.stats.chunks_superseded == 1
    assert old.request_id not in set(sched.plan.rows().source.tolist())
    for k in range(5, 40):
        out = sched.on_tick(k, state)
        assert out.source_request_id in (-1, new.request_id) or out.source_request_id > new.request_id


def test_rail_blend_starts_moving_on_the_arrival_tick():
    """The blend is anchored at the last commanded tick, so the chunk's first usable tick already moves."""
    sched = _sched("vlash_rail", delay={"mode": "fixed", "fixed_ticks": 4})
    state = np.zeros(6)
    first = sched.on_tick(0, state).request
    for k in range(1, 4):
        sched.on_tick(k, state)
    sched.on_chunk(ActionChunk(first.request_id, first.exec_tick, np.zeros((H, 6), np.float32)), k_now=4)
    second = sched.on_tick(4, state).request
    for k in range(5, 8):
        sched.on_tick(k, state)
    before = sched.plan.row(7).copy()
    ramp = (0.02 * (second.exec_tick + np.arange(H)))[:, None] * np.ones((1, 6))
    ramp[:, 5] = 0.0
    assert sched.on_chunk(ActionChunk(second.request_id, second.exec_tick, ramp.astype(np.float32)), k_now=8).accepted
    for got, want in zip(sched.plan.row(7), before, strict=True):  # C2: the anchor row is untouched
        np.testing.assert_array_equal(got, want)
    out = sched.on_tick(8, state)
    assert out.source_request_id == second.request_id and np.all(out.command[:5] > 1e-4)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(strategy_names()), st.integers(1, 3), st.integers(0, 200), st.integers(0, 60),
       st.floats(0.0, 30.0), st.one_of(st.none(), st.integers(0, 200)))
def test_unconditional_trigger_requests_in_every_state(name, max_in_flight, tick, ticks_left, delay, last):
    """A trigger marked `unconditional` (the scheduler then skips it) says yes whatever the state; the others
    are asked every time."""
    from vla_async.triggers import TriggerState, create_trigger

    strategy = strategy_config(name).model_copy(update={"max_in_flight": max_in_flight})
    trigger = create_trigger(strategy)
    if trigger.unconditional:
        for in_flight in range(max_in_flight):
            assert trigger.should_request(TriggerState(tick, ticks_left, in_flight, delay, last, 50))


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["vlash_rail", "rail"]), st.lists(st.integers(1, 25), min_size=1, max_size=6),
       st.integers(0, 1000))
def test_deferring_plan_rows_never_changes_a_command(name, latencies, seed):
    """Chunk arrival writes only the rows the next ticks read and defers the rest: with jittery latencies (late
    chunks read deferred rows, early ones replace them) every command, request and rollforward state equals
    the run that writes whole chunks at once."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 0.05, (200, H, 6))
    policy = lambda req: sine_policy(req, H, 6) + noise[req.request_id % 200]  # noqa: E731
    runs = []
    for defer in (True, False):
        sched = _sched(name, SafetyConfig())
        if not defer:  # every row written on arrival (write_until=None)
            whole = sched.fusion.fuse
            sched.fusion.fuse = lambda plan, chunk, k_now, write_until=None, fuse=whole: fuse(plan, chunk, k_now)
        runs.append(drive(sched, 150, latencies, policy=policy))
    deferred, eager = runs
    for a, b in zip(deferred.outputs, eager.outputs, strict=True):
        np.testing.assert_allclose(a.command, b.command, rtol=0, atol=1e-12)
        assert (a.request is None) == (b.request is None) and a.source_request_id == b.source_request_id
        if a.request is not None and a.request.rollforward_state is not None:
            np.testing.assert_allclose(a.request.rollforward_state, b.request.rollforward_state, atol=1e-12)


def test_the_constructor_builds_the_operators_chunks_on_time_or_late_will_need():
    sched = _sched("vlash_rail", SafetyConfig())
    built = sched.fusion.operators_built
    assert built >= 1 + 16  # the anchored on-time key and chunks up to half a second late
    run = drive(sched, 200, [2, 5, 3, 7, 4, 9])  # on time, early and up to a few ticks late
    assert sum(rep.accepted for _, rep in run.reports) > 20
    assert sched.fusion.operators_built == built  # no tick built an operator
