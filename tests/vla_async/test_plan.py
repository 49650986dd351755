import numpy as np
import pytest
from core_reference import state_at
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_async.plan import HOLD_SOURCE, MATERIALIZE_BLOCK, Plan, Trajectory


def _traj(start: int, n: int, dim: int = 2, source: int = 0) -> Trajectory:
    pos = np.arange(n * dim, dtype=float).reshape(n, dim) + start
    return Trajectory(start, pos, np.zeros_like(pos), np.zeros_like(pos), source)


def _check_invariants(plan: Plan) -> None:
    n = len(plan)
    rows = plan.rows()
    assert rows.pos.shape == rows.vel.shape == rows.acc.shape == (n, plan.action_dim)
    assert rows.source.shape == rows.count.shape == (n,)
    assert plan.end_tick == plan.start_tick + n == rows.end_tick


def test_hold_until_fills_from_empty_and_extends_with_last_position():
    plan = Plan(2)
    plan.hold_until(5, 7, np.array([1.0, 2.0]))
    assert (plan.start_tick, plan.end_tick) == (5, 8)
    assert np.all(plan.rows().pos == [1.0, 2.0]) and np.all(plan.rows().source == HOLD_SOURCE)
    t = _traj(8, 3)
    plan.write_rows(8, t.pva, 4)
    plan.hold_until(5, 12, np.zeros(2))
    assert plan.end_tick == 13
    np.testing.assert_array_equal(plan.rows().pos[-2:], np.broadcast_to(t.pos[-1], (2, 2)))
    _check_invariants(plan)


def test_write_rows_rejects_a_gap():
    plan = Plan(2)
    plan.hold_until(0, 3, np.zeros(2))
    t = _traj(6, 2)
    with pytest.raises(ValueError, match="gap"):
        plan.write_rows(6, t.pva, 0)


def test_trajectory_from_tick_and_positions_window():
    t = _traj(10, 5)
    tail = t.from_tick(12)
    assert tail.start_tick == 12 and len(tail) == 3
    np.testing.assert_array_equal(tail.pos, t.pos[2:])
    assert len(t.from_tick(99)) == 0
    plan = Plan(2)
    plan.write_rows(10, t.pva, 0)
    np.testing.assert_array_equal(plan.positions(11, 13), t.pos[1:3])
    assert plan.positions(20, 30).shape == (0, 2)
    assert plan.ticks_left(12) == 3 and plan.ticks_left(15) == 0 and plan.index(9) == -1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["drop", "hold", "replace"]), st.integers(0, 6), st.integers(1, 8)),
                min_size=1, max_size=25))
def test_random_operations_keep_the_plan_contiguous(ops):
    plan = Plan(2)
    now = 0
    for op, step, n in ops:
        now += step
        plan.drop_before(now)
        if op == "hold":
            plan.hold_until(now, now + n, np.full(2, float(now)))
        elif op == "replace":
            plan.hold_until(now, now, np.zeros(2))
            t = _traj(now, n)
            plan.write_rows(now, t.pva, 1)
            assert plan.end_tick == now + n
        _check_invariants(plan)
        if len(plan):
            assert plan.start_tick >= now - 0  # nothing for a past tick survives a drop
            assert plan.index(plan.start_tick) == 0 and plan.index(plan.end_tick) == -1


class _RebuildPlan:
    """The straightforward plan the buffer replaces: new arrays on every change (reference for the in-place one)."""

    def __init__(self, dim: int):
        self.start, self.pos, self.src = 0, np.empty((0, dim)), np.empty(0, dtype=np.int64)

    def drop_before(self, tick: int) -> None:
        cut = min(max(0, tick - self.start), len(self.pos))
        self.start = tick if cut == len(self.pos) else self.start + cut
        self.pos, self.src = self.pos[cut:], self.src[cut:]

    def hold_until(self, first: int, tick: int, position: np.ndarray) -> None:
        if len(self.pos) == 0:
            self.start = first
        last = self.pos[-1] if len(self.pos) else position
        n = max(0, tick + 1 - (self.start + len(self.pos)))
        self.pos = np.concatenate([self.pos, np.broadcast_to(last, (n, self.pos.shape[1]))])
        self.src = np.concatenate([self.src, np.full(n, HOLD_SOURCE)])

    def replace_from(self, tick: int, pos: np.ndarray, source: int) -> None:
        if len(self.pos) == 0:
            self.start = tick
        keep = tick - self.start
        self.pos = np.concatenate([self.pos[:keep], pos])
        self.src = np.concatenate([self.src[:keep], np.full(len(pos), source)])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["drop", "hold", "replace"]), st.integers(0, 40), st.integers(1, 90),
                          st.integers(0, 30)), min_size=1, max_size=40))
def test_in_place_buffer_equals_rebuilding_the_arrays(ops):
    """Buffer reuse, moves to the front and growth (small capacity) never change the plan's rows."""
    plan, ref = Plan(2, capacity=8), _RebuildPlan(2)
    now = 0
    for op, step, n, back in ops:
        now += step
        plan.drop_before(now)
        ref.drop_before(now)
        if op == "hold":
            plan.hold_until(now, now + n, np.full(2, float(now)))
            ref.hold_until(now, now + n, np.full(2, float(now)))
        elif op == "replace":
            tick = max(now, plan.end_tick - back) if len(plan) else now
            t = _traj(tick, n, source=now)
            plan.write_rows(tick, t.pva, t.source)
            ref.replace_from(tick, t.pos, t.source)
        assert plan.start_tick == ref.start or len(plan) == 0
        np.testing.assert_array_equal(plan.rows().pos, ref.pos)
        np.testing.assert_array_equal(plan.rows().source, ref.src)


def test_rows_are_copies_that_survive_a_write():
    plan = Plan(2)
    t = _traj(0, 4)
    plan.write_rows(0, t.pva, 1)
    p, _, _ = state_at(plan, 2)
    rows = plan.rows()
    plan.write_rows(1, t.pva + 10.0, 2)
    np.testing.assert_array_equal(p, t.pos[2])
    np.testing.assert_array_equal(rows.pva, t.pva)
    with pytest.raises(IndexError):
        plan.row(9)


class _CopyWriter:
    """A segment copied from a stacked [3, n, D] array, counting its calls."""

    def __init__(self, pva: np.ndarray):
        self.pva, self.calls = pva, 0

    def write(self, rows: np.ndarray, first: int, stop: int) -> None:
        self.calls += 1
        rows[...] = self.pva[:, first:stop]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["drop", "hold", "replace", "read", "read_range", "state"]),
                          st.integers(0, 12), st.integers(1, 40), st.integers(0, 40)), min_size=1, max_size=40))
def test_deferred_rows_read_like_rows_written_at_once(ops):
    """Rows a segment leaves to the plan are written on first read (or never, when replaced first): every accessor
    sees what an eagerly written plan holds, through drops, holds, replacements, moves and growth (small capacity)."""
    lazy, eager = Plan(2, capacity=8), Plan(2, capacity=8)
    now = 0
    for op, step, n, x in ops:
        now += step
        for plan in (lazy, eager):
            plan.drop_before(now)
        if op == "hold":
            for plan in (lazy, eager):
                plan.hold_until(now, now + n, np.full(2, float(now)))
        elif op == "replace":
            tick = max(now, lazy.end_tick - x) if len(lazy) else now
            pva = np.random.default_rng(now).normal(size=(3, n, 2))
            eager.write_rows(tick, pva, now)
            lazy.write_segment(tick, n, _CopyWriter(pva), now, write_now=min(n, x % 5))
        elif op == "read" and len(eager):
            t = eager.start_tick + x % len(eager)
            np.testing.assert_array_equal(lazy.position(t), eager.position(t))
        elif op == "read_range":
            np.testing.assert_array_equal(lazy.positions(now + x % 7, now + x % 7 + n), eager.positions(now + x % 7, now + x % 7 + n))
        elif op == "state" and len(eager):
            t = eager.start_tick + x % len(eager)
            np.testing.assert_array_equal(lazy.row(t), eager.row(t))
            assert lazy.source_at(t) == eager.source_at(t) and lazy.count_at(t) == eager.count_at(t)
        assert (lazy.start_tick, lazy.end_tick) == (eager.start_tick, eager.end_tick) or len(eager) == 0
    a, b = lazy.rows(), eager.rows()
    np.testing.assert_array_equal(a.pva, b.pva)
    np.testing.assert_array_equal(a.source, b.source)


def test_deferred_rows_are_written_in_blocks_and_dropped_when_replaced():
    plan = Plan(1)
    pva = np.arange(3 * 40, dtype=float).reshape(3, 40, 1)
    writer = _CopyWriter(pva)
    plan.write_segment(0, 40, writer, 1, write_now=2)
    assert writer.calls == 1  # the two rows written now
    assert plan.position(1)[0] == 1.0 and writer.calls == 1  # written rows: no call
    assert plan.position(2)[0] == 2.0 and writer.calls == 2
    assert plan.position(2 + MATERIALIZE_BLOCK - 1)[0] == 1.0 + MATERIALIZE_BLOCK and writer.calls == 2  # a block
    assert plan.position(2 + MATERIALIZE_BLOCK)[0] == 2.0 + MATERIALIZE_BLOCK and writer.calls == 3
    plan.write_rows(5, np.full((3, 10, 1), -1.0), 2)  # rows from tick 5 replaced: the rest is never written
    assert plan.position(12)[0] == -1.0 and writer.calls == 3
    assert plan.source_at(4) == 1 and plan.source_at(5) == 2 and plan.source_at(15) == HOLD_SOURCE


def test_mix_overlap_weighs_the_old_rows_by_their_count():
    plan = Plan(1)
    plan.hold_until(0, 1, np.zeros(1))  # a hold (count 0) is replaced, never mixed
    plan.write_rows(2, np.ones((3, 4, 1)), 1)
    new = np.full((3, 6, 1), 3.0)
    mixed = plan.mix_overlap(1, new, 2, lambda count: np.where(count > 0, 0.25, 0.0)[:, None])
    assert mixed == 5  # ticks 1..5 covered by the plan
    rows = plan.rows()
    np.testing.assert_allclose(rows.pos[:, 0], [0.0, 3.0, 2.5, 2.5, 2.5, 2.5, 3.0])  # 0.25·1 + 0.75·3
    np.testing.assert_array_equal(rows.count, [0, 1, 2, 2, 2, 2, 1])
    np.testing.assert_array_equal(rows.vel[1:, 0], 3.0)  # velocities and accelerations are the new chunk's
