"""ActionScheduler: the clock-agnostic heart of asynchronous inference (DESIGN.md sections 3, 4, 6).

Pure: no clock, no I/O, no threads. The caller owns time and passes ticks:

    for k in ticks:
        out = sched.on_tick(k, measured_state)      # command for tick k (+ maybe a request)
        robot.send_action(out.command)
        if out.request: send an observation captured at k with out.request's exec_tick/rollforward_state
        # a chunk that arrives before tick k+1 is commanded:
        sched.on_chunk(chunk, k_now=k + 1, latency_s=...)

`on_tick` is a lookup in the plan plus the safety layer. `on_chunk` validates and places a chunk (row i at
exec_tick + i, later by the ticks the arm was held between the request and the arrival: a held arm did not
move along any plan, so those rows are not skipped — at start-up the first chunk starts at its row 0), then
hands it to the strategy's `ChunkFusion` (smoothing, blending, their caches), which may leave rows the
next ticks do not need to the plan to write when first read (see plan.py): a tick that reads such a
row pays for a block of them. The real-time client and the virtual-time evaluator drive this same
object, so what is benchmarked is what runs on the robot.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from vla_async.chunk_fusion import PlacedChunk, create_fusion
from vla_async.config.schema import SafetyConfig, StrategyConfig
from vla_async.latency import DelayEstimator
from vla_async.messages import ActionChunk
from vla_async.plan import Plan, index_selector
from vla_async.policy_input import reads_images, uses_exec_offset
from vla_async.rollforward import RollForward, create_rollforward, resolve_action_prefix, resolve_rollforward
from vla_async.safety import SafetyLayer
from vla_async.specs import PolicySpec, RobotSpec, accepts_action_prefix, streaming_plan
from vla_async.triggers import TriggerState, create_trigger

_LAG_TOLERANCE = 1e-3  # state_lag measured: lags whose command is this close to the nearest one count as it (units)

_EAGER_MARGIN_TICKS = 2  # plan rows written on a chunk's arrival beyond d̂ (the rest may be deferred, see plan.py)


class Conditioning(NamedTuple):
    """What a strategy's `auto` fields resolve to for one served policy (`resolve_conditioning`)."""

    action_prefix: str  # "none" | "committed" (real-time chunking)
    rollforward: str  # the conditioning state's mode (vla_async.rollforward)
    lag_ticks: int  # the servo lag (ticks) the placement or `rollforward_to: arm` may use; 0 with a prefix

    def describe(self) -> str:
        """One line for people: what the policy is sent."""
        state = {"none": "the measured state" + (f", chunks placed by the servo lag (≤ {self.lag_ticks} ticks)"
                                                 if self.lag_ticks else ""),
                 "last_command": "the command at the capture tick",
                 "commanded": "VLASH's rollforward (the state at the chunk's start)"}.get(self.rollforward,
                                                                                        f"rollforward {self.rollforward}")
        return f"real-time chunking (the committed plan as a prefix) + {state}" if self.action_prefix == "committed" \
            else state


def resolve_conditioning(strategy: StrategyConfig, policy: PolicySpec | None) -> Conditioning:
    """`action_prefix: auto` first (a prefix rules out the lag placement), then `rollforward: auto`."""
    prefix = resolve_action_prefix(strategy.action_prefix, strategy.rollforward, accepts_action_prefix(policy))
    lag_ticks = strategy.state_lag_ticks if prefix == "none" else 0
    rollforward = resolve_rollforward(strategy.rollforward, uses_exec_offset(policy), reads_images(policy), lag_ticks > 0)
    return Conditioning(prefix, rollforward, lag_ticks)


# Results are immutable NamedTuples: as cheap to build on the tick path as a slots dataclass, where a frozen
# dataclass's __init__ costs ~2 µs per object. Read their fields by name (== compares arrays elementwise: don't).
class InferenceRequest(NamedTuple):
    request_id: int  # unique, increasing, assigned by the scheduler
    tick: int  # capture tick k: the observation must be taken at this tick
    exec_tick: int  # tick the returned chunk's action 0 is meant for (k + d̂ with rollforward, else k - state lag)
    rollforward_state: np.ndarray | None
    # strategy action_prefix=committed (real-time chunking): the plan for ticks exec_tick.. (≤ H rows, a copy),
    # sent only to a policy whose spec accepts it; its first `prefix_frozen` rows run before the chunk can arrive
    action_prefix: np.ndarray | None = None
    prefix_frozen: int = 0
    stream: bool = False  # ask the server to stream the chunk in parts (strategy streaming + a streaming policy)


class TickOutput(NamedTuple):
    tick: int
    command: np.ndarray  # the safe command for tick k (after the safety layer)
    request: InferenceRequest | None  # when not None, capture an observation now and send it
    stalled: bool  # no fresh planned action for this tick: last command held
    source_request_id: int  # chunk this command came from; -1 when held / watchdog
    watchdog: bool  # watchdog is bringing the arm to rest
    delay_ticks: float  # current d̂ in ticks
    rollforward_error: float | None  # ‖ŝ − s_k‖ when k is the exec_tick of a rolled-forward request
    ticks_left: int = 0  # planned ticks from k (inclusive) after this tick's decision
    in_flight: int = 0  # requests in flight after this tick
    planned: np.ndarray | None = None  # the plan's action for tick k before safety (a view into the plan: copy to keep; None: held / watchdog)


class ChunkReport(NamedTuple):
    request_id: int
    latency_ticks: float
    dropped_actions: int  # actions for ticks < k_now, discarded
    accepted: bool  # false: unknown/failed request, malformed, or every action already late


@dataclass
class SchedulerStats:
    ticks: int = 0
    stalls: int = 0  # stall episodes (runs of consecutive held ticks)
    stall_ticks: int = 0
    chunks: int = 0  # accepted
    chunks_rejected: int = 0
    chunks_superseded: int = 0  # arrived after a newer request's chunk (pipelining): not fused
    parts: int = 0  # parts of streamed chunks fused (a whole chunk streamed in two parts counts 2 here, 1 in chunks)
    parts_rejected: int = 0  # parts out of order, past the chunk or malformed: the rest of that stream is dropped
    late_actions_dropped: int = 0
    requests: int = 0
    failures: int = 0  # on_request_failed calls
    watchdog_events: int = 0
    watchdog_ticks: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _action_state_index(robot: RobotSpec) -> np.ndarray:
    """Where each action's joint is in the measured state vector."""
    if all(name in robot.state_names for name in robot.action_names):
        return np.array([robot.state_names.index(n) for n in robot.action_names])
    if robot.state_dim == robot.action_dim:
        return np.arange(robot.action_dim)
    raise ValueError(
        f"robot {robot.name!r}: cannot map actions {list(robot.action_names)} onto state {list(robot.state_names)}"
    )


def _part_rows(part: ActionChunk, received: int, chunk_length: int, action_dim: int) -> np.ndarray | None:
    """The rows of a streamed part that extend the `received` ones (a repeat of received rows adds none), or None
    when the part leaves a gap, overruns the chunk, is final anywhere but at its end, or is malformed."""
    actions = part.actions
    if type(actions) is not np.ndarray or actions.dtype.kind != "f":
        actions = np.asarray(actions, dtype=float)
    stop = part.row_offset + (len(actions) if actions.ndim == 2 else 0)
    if (actions.ndim != 2 or actions.shape[1] != action_dim or not 0 <= part.row_offset <= received
            or not part.row_offset < stop <= chunk_length or part.final != (stop == chunk_length)
            or np.count_nonzero(np.isfinite(actions)) != actions.size):
        return None
    return actions[received - part.row_offset:]


class ActionScheduler:
    def __init__(
        self, strategy: StrategyConfig, robot: RobotSpec, chunk_length: int, safety: SafetyConfig | None = None,
        policy: PolicySpec | None = None,
    ):
        """`policy`: the served policy's spec (from the handshake); it resolves `rollforward: auto`."""
        if chunk_length < 1:
            raise ValueError(f"chunk_length must be >= 1, got {chunk_length}")
        self.strategy = strategy
        self.robot = robot
        self.chunk_length = chunk_length
        self.fps = float(robot.fps)
        self.action_dim = robot.action_dim
        index = _action_state_index(robot)
        self._state_shape = (robot.state_dim,)
        self._state_index = None if np.array_equal(index, np.arange(robot.state_dim)) else index_selector(index)
        safety_cfg = safety if safety is not None else SafetyConfig(enabled=False)
        self.safety = SafetyLayer(safety_cfg, robot)
        self.watchdog_ticks = max(1, math.ceil(safety_cfg.watchdog_timeout_s * self.fps))
        self.delay = DelayEstimator(strategy.delay, self.fps)
        self.fusion = create_fusion(
            strategy, robot, chunk_length, (self.safety.max_velocity, self.safety.max_acceleration)
        )
        # the servo-lag placement: chunks planned from the measured state, without a prefix (`auto` may resolve to none)
        self.conditioning = resolve_conditioning(strategy, policy)
        self.action_prefix_mode, self.rollforward_mode, lag_ticks = self.conditioning
        self.rollforward = create_rollforward(self.rollforward_mode, self.action_dim, strategy.tracking_forgetting)
        self._rf_last_only = self.rollforward.last_only
        self._rf_observes = type(self.rollforward).observe is not RollForward.observe
        self._rolls_forward = self.rollforward_mode != "none"
        self._shifts_exec = self.rollforward.shifts_exec
        self._init_lag(strategy, robot, lag_ticks)
        self._max_in_flight = strategy.max_in_flight
        self._sends_prefix = self.action_prefix_mode == "committed"
        self._prefix_rows = strategy.prefix_rows
        self._streams = bool(strategy.streaming) and streaming_plan(policy) is not None
        self._parts: dict[int, np.ndarray] = {}  # request id -> rows of its streamed chunk received so far
        self._part_held: dict[int, int] = {}  # request id -> held ticks before its stream's first part (see _place)
        self._sync = strategy.sync
        self._align = strategy.fuser.align and not strategy.sync
        self.trigger = create_trigger(strategy)
        self.plan = Plan(self.action_dim)
        self.stats = SchedulerStats()
        self._in_flight: dict[int, InferenceRequest] = {}
        self._predictions: dict[int, tuple[int, np.ndarray]] = {}  # exec_tick -> (request_id, ŝ)
        self._next_request_id = 0
        self._newest_fused = -1  # request id of the newest chunk fused into the plan
        self._last_request_tick: int | None = None
        self._last_tick: int | None = None
        self._last_command: np.ndarray | None = None
        self._waiting_since: int | None = None  # first request sent since the last accepted chunk
        # ticks the arm was held (no planned action: start-up, underrun, watchdog), the newest few chunk lives
        self._held_ticks: deque[int] = deque(maxlen=4 * chunk_length + self.watchdog_ticks)
        self._stalled = False
        self._watchdog = False

    def _init_lag(self, strategy: StrategyConfig, robot: RobotSpec, lag_ticks: int) -> None:
        """The servo lag: the placement of chunks planned from the measured state (`_state_lag`), or with
        `rollforward_to: arm` how much shorter than d̂ a shifting rollforward is (`_rf_lag`)."""
        self._state_lag = lag_ticks if self.rollforward_mode == "none" else 0
        to_arm = strategy.rollforward_to == "arm" and self._shifts_exec and self._rolls_forward
        self._rf_lag = lag_ticks if to_arm else 0
        lag = max(self._state_lag, self._rf_lag)
        # state_lag measured: the gradual joints of the commands sent for the last `lag` ticks, newest first
        self._measures_lag = strategy.state_lag == "measured" and lag > 0
        self._lag_columns = np.flatnonzero(~np.asarray(robot.stepwise_mask, bool))  # the gradual joints
        self._sent = np.zeros((lag if self._measures_lag else 0, len(self._lag_columns)))
        self._n_sent = 0

    # ------------------------------------------------------------------ per tick

    def on_tick(self, k: int, measured_state: np.ndarray) -> TickOutput:
        """The command for tick `k`, given the state measured at `k`; maybe a request to send now."""
        if self._last_tick is not None and k <= self._last_tick:
            raise ValueError(f"ticks must increase: got {k} after {self._last_tick}")
        s = self._action_state(measured_state)
        self._last_tick = k
        if self._rf_observes:
            self.rollforward.observe(s, self._last_command)
        safety, plan = self.safety, self.plan
        if safety.position is None:
            if np.count_nonzero(np.isfinite(s)) != s.size:  # the hold would carry NaN/inf to the robot
                raise ValueError(f"tick {k}: measured state is not finite ({s}); refusing to command the robot")
            safety.reset(s)  # before the first chunk: hold the measured state, never jump
        rf_error = self._rollforward_error(k, s) if self._predictions else None
        plan.drop_before(k)

        command, source, watchdog, planned = self._command(k)
        stalled = source < 0
        stats = self.stats
        stats.ticks += 1
        if stalled:
            self._held_ticks.append(k)
            stats.stall_ticks += 1
            stats.stalls += not self._stalled
        self._stalled = stalled

        request = self._maybe_request(k, s, command) if len(self._in_flight) < self._max_in_flight else None
        self._last_command = command
        if self._measures_lag:
            self._remember_sent(command)
        return TickOutput(
            k, command, request, stalled, source, watchdog, self.delay.delay_ticks, rf_error,
            plan.ticks_left(k), len(self._in_flight), planned,
        )

    def _command(self, k: int) -> tuple[np.ndarray, int, bool, np.ndarray | None]:
        """(safe command, source request id or -1, watchdog, the plan's action before safety) for tick k."""
        safety, plan = self.safety, self.plan
        watchdog = self._waiting_since is not None and k - self._waiting_since > self.watchdog_ticks
        if watchdog:
            if not self._watchdog:
                self.stats.watchdog_events += 1
                plan.clear(k)
            self.stats.watchdog_ticks += 1
            command, source, planned = safety.come_to_rest(), -1, None
        else:
            source = plan.source_at(k)
            planned = plan.position(k) if source >= 0 else None
            command = safety.apply(planned) if planned is not None else safety.hold()
        self._watchdog = watchdog
        return command, source, watchdog, planned

    def _action_state(self, measured_state: np.ndarray) -> np.ndarray:
        """The measured state of the action joints (a view of `measured_state` when it already is exactly that)."""
        s = measured_state
        if type(s) is not np.ndarray or s.dtype != np.float64:
            s = np.asarray(s, dtype=float)
        if s.shape != self._state_shape:
            raise ValueError(f"measured state has shape {s.shape}, the robot spec says {self._state_shape}")
        return s if self._state_index is None else s[self._state_index]

    def _rollforward_error(self, k: int, s: np.ndarray) -> float | None:
        hit = self._predictions.pop(k, None)
        if self._predictions and min(self._predictions) < k:
            self._predictions = {t: v for t, v in self._predictions.items() if t > k}
        if hit is None:
            return None
        return math.dist(hit[1].tolist(), s.tolist())  # a few floats: cheaper than numpy's calls

    def _maybe_request(self, k: int, s: np.ndarray, command: np.ndarray) -> InferenceRequest | None:
        """A request to send now if the trigger fires (the caller checked that a slot is free)."""
        in_flight, delay = self._in_flight, self.delay
        trigger = self.trigger
        if not trigger.unconditional and not trigger.should_request(
            TriggerState(
                k, self.plan.ticks_left(k), len(in_flight), delay.delay_ticks, self._last_request_tick,
                self.chunk_length,
            )
        ):
            return None
        rid = self._next_request_id
        self._next_request_id += 1
        exec_tick, rf_state = self._placement(k, s, command)
        if rf_state is not None:
            self._predictions[exec_tick] = (rid, rf_state)
        prefix, frozen = self._action_prefix(k, exec_tick) if self._sends_prefix else (None, 0)
        request = InferenceRequest(rid, k, exec_tick, rf_state, prefix, frozen, self._streams)
        in_flight[rid] = request
        self._last_request_tick = k
        if self._waiting_since is None:
            self._waiting_since = k
        self.stats.requests += 1
        return request

    def _placement(self, k: int, s: np.ndarray, command: np.ndarray) -> tuple[int, np.ndarray | None]:
        """(exec_tick, ŝ or None for the measured state) of a request made at tick k."""
        lag = self._measured_lag(s, command) if self._measures_lag else self._state_lag + self._rf_lag
        d_hat = self.delay.delay_ticks_ceil
        # rollforward_to arm with d̂ ≤ the lag: the arm will not have reached any command sent after the capture when
        # the chunk arrives, so the measured state, placed by the lag, is as far ahead as is known (lag_rail's)
        if not self._rolls_forward or (self._rf_lag and d_hat <= lag):
            return k - lag, None
        if not self._shifts_exec:
            return k, self.rollforward.predict(s, command[None], self._last_command)
        exec_tick = k + d_hat - lag
        if self._in_flight:  # beyond the plan, an in-flight chunk may still change the commands
            exec_tick = min(exec_tick, max(self.plan.end_tick, k))
        return exec_tick, self.rollforward.predict(s, self._committed(k, exec_tick, command), self._last_command)

    def _action_prefix(self, k: int, exec_tick: int) -> tuple[np.ndarray | None, int]:
        """(the plan for ticks exec_tick .. exec_tick+H-1 it covers, at most `prefix_rows` of them (never fewer than
        the committed ones); how many of them run before the chunk is expected, k + d̂); (None, 0) when the plan does
        not cover exec_tick (start-up, watchdog)."""
        plan = self.plan
        if self._watchdog or plan.index(exec_tick) < 0:
            return None, 0
        frozen = max(0, k + self.delay.delay_ticks_ceil - exec_tick)
        end = exec_tick + self.chunk_length
        if self._prefix_rows is not None:
            end = min(end, exec_tick + max(frozen, self._prefix_rows))
        rows = plan.positions(exec_tick, end).copy()
        return rows, min(len(rows), frozen)

    def _remember_sent(self, command: np.ndarray) -> None:
        sent = self._sent
        sent[1:] = sent[:-1]
        sent[0] = command[self._lag_columns]
        self._n_sent = min(self._n_sent + 1, len(sent))

    def _measured_lag(self, s: np.ndarray, command: np.ndarray) -> int:
        """Ticks back (0 = this tick's command) to the command the measured state `s` is nearest to, over the
        gradual joints; the smallest such lag within `_LAG_TOLERANCE` of the nearest (a resting arm: 0)."""
        cols = self._lag_columns
        here = s[cols]
        gaps = [float(np.abs(command[cols] - here).max())] if len(cols) else [0.0]
        if self._n_sent and len(cols):
            gaps += np.abs(self._sent[: self._n_sent] - here).max(axis=1).tolist()
        best = min(gaps)
        return next(lag for lag, gap in enumerate(gaps) if gap <= best + _LAG_TOLERANCE)

    def _committed(self, k: int, exec_tick: int, command: np.ndarray) -> np.ndarray:
        """Commands for ticks k .. exec_tick-1: this tick's, the plan's, then a hold of the last one
        (only the last of them, [1, D], when the rollforward reads no more: `RollForward.last_only`)."""
        n = exec_tick - k
        plan = self.plan
        if n > 0 and self._rf_last_only:
            last = min(exec_tick, plan.end_tick) - 1  # the last planned tick before exec_tick
            if n > 1 and not self._watchdog and last > k and last >= plan.start_tick:
                return plan.position(last)[None]
            return command[None]
        out = np.empty((n, self.action_dim))
        if n == 0:
            return out
        out[0] = command
        planned = plan.positions(k + 1, exec_tick) if not self._watchdog else out[:0]
        out[1 : 1 + len(planned)] = planned
        out[1 + len(planned) :] = out[len(planned)]
        return out

    # ------------------------------------------------------------------ chunks

    def on_chunk(self, chunk: ActionChunk, k_now: int, latency_s: float | None = None) -> ChunkReport:
        """Fuse a chunk (or a part of a streamed one) into the plan from `k_now`, the first tick not commanded yet."""
        if chunk.is_part or chunk.request_id in self._parts:
            return self._on_part(chunk, k_now, latency_s)
        request = self._in_flight.pop(chunk.request_id, None)
        if request is None:
            self.stats.chunks_rejected += 1
            return ChunkReport(chunk.request_id, math.nan, 0, False)
        lat_s = latency_s if latency_s is not None else (k_now - request.tick) / self.fps
        self.delay.add_sample(lat_s)
        return self._accept(chunk, k_now, lat_s, held=self._held_since(request, chunk.start_tick, k_now))

    def _on_part(self, part: ActionChunk, k_now: int, latency_s: float | None) -> ChunkReport:
        """A part of a streamed chunk: rows extending the ones received in order are fused (the whole received
        prefix, re-placed from `k_now`), so the plan never holds a row that has not arrived; past its end an
        underrun holds and the watchdog stays armed until the final part. A part that leaves a gap, overruns the
        chunk or is malformed drops the rest of that stream (its final part ends the request)."""
        rid = part.request_id
        request = self._in_flight.get(rid)
        have = self._parts.get(rid)
        n_have = 0 if have is None else len(have)
        rows = _part_rows(part, n_have, self.chunk_length, self.action_dim)
        if request is None or rows is None:
            self._end_stream(rid, rejected=request is not None)
            return ChunkReport(rid, math.nan, 0, False)
        if len(rows) == 0:  # a repeat of rows already fused (a resent request): nothing new
            return ChunkReport(rid, math.nan, 0, False)
        lat_s = latency_s if latency_s is not None else (k_now - request.tick) / self.fps
        if n_have == 0:  # the first rows: what the robot waits for (d̂ is the delay until they are usable)
            self.delay.add_sample(lat_s)
            self._part_held[rid] = self._held_since(request, part.start_tick, k_now)  # every part placed alike
        received = rows if have is None else np.concatenate([have, rows])
        held = self._part_held.get(rid, 0)
        if part.final:
            self._in_flight.pop(rid, None)
            self._parts.pop(rid, None)
            self._part_held.pop(rid, None)
        else:
            self._parts[rid] = received
        report = self._accept(ActionChunk(rid, part.start_tick, received), k_now, lat_s, n_have, part.final, held)
        if report.accepted:
            self.stats.parts += 1
            if not part.final:
                self._waiting_since = request.tick  # the watchdog stays armed until the final part
        return report

    def _end_stream(self, request_id: int, rejected: bool) -> None:
        """Drop a stream after a bad part: forget its rows and free its request."""
        self.stats.chunks_rejected += 1
        self.stats.parts_rejected += rejected
        self._parts.pop(request_id, None)
        self._part_held.pop(request_id, None)
        if self._in_flight.pop(request_id, None) is not None:
            self.stats.failures += 1

    def _accept(self, chunk: ActionChunk, k_now: int, lat_s: float, counted: int = 0,
                complete: bool = True, held: int = 0) -> ChunkReport:
        """Place and fuse a chunk of a request that was in flight (`counted` leading rows were placed before;
        `complete`: its last rows, so it counts as a chunk; `held`: see `_place`)."""
        placed, dropped = self._place(chunk, k_now, counted, held)
        if placed is None:
            self.stats.chunks_rejected += 1
        elif chunk.request_id < self._newest_fused:  # pipelining: never overwrite a newer chunk's ticks
            self.stats.chunks_rejected += 1
            self.stats.chunks_superseded += 1
            placed = None
        else:
            self._fuse(placed, k_now)
            self.stats.chunks += complete
        return ChunkReport(chunk.request_id, lat_s * self.fps, dropped, placed is not None)

    def _held_since(self, request: InferenceRequest, start_tick: int, k_now: int) -> int:
        """How many ticks from the request (or the chunk's start, when later) to k_now the arm was held (no plan)."""
        held, lo = self._held_ticks, max(request.tick, start_tick)
        if not held or held[-1] < lo:
            return 0
        return bisect.bisect_left(held, k_now) - bisect.bisect_left(held, lo)

    def _place(self, chunk: ActionChunk, k_now: int, counted: int = 0, held: int = 0) -> tuple[PlacedChunk | None, int]:
        """The chunk's finite actions on the tick grid, and how many of them are for ticks < k_now (dropped; the
        first `counted` rows were counted before); None when malformed or every action is late. `held`: ticks since
        the request (or its exec tick, when later) that the arm was held; the chunk starts that much later, since a
        held arm did not move along any plan (at start-up it is still where the chunk starts: nothing is skipped)."""
        actions = chunk.actions
        if type(actions) is not np.ndarray or actions.dtype.kind != "f":
            actions = np.asarray(actions, dtype=float)
        if actions.ndim != 2 or actions.shape[1] != self.action_dim or len(actions) == 0 or (
            np.count_nonzero(np.isfinite(actions)) != actions.size
        ):
            return None, 0
        if self._sync:
            actions = actions[: self.strategy.execution_horizon]
        start = chunk.start_tick + held if self._align else k_now
        dropped = min(len(actions), max(0, k_now - start))
        self.stats.late_actions_dropped += max(0, dropped - counted)
        if dropped == len(actions):
            return None, dropped
        return PlacedChunk(start, actions, chunk.request_id), dropped

    def _fuse(self, chunk: PlacedChunk, k_now: int) -> None:
        """Make the plan cover the junction (a hold over an underrun), then let the fusion merge the chunk."""
        self._newest_fused = chunk.source
        plan = self.plan
        if self._watchdog:  # resume from where the arm came to rest
            plan.clear(k_now)
            self._watchdog = False
        self._waiting_since = None
        plan.drop_before(k_now - 1)  # keep the last commanded tick: a blend may be anchored there
        here = self.safety.position
        if here is None:
            here = self.fusion.first_position(chunk.actions)
        plan.hold_until(k_now, max(k_now, chunk.start_tick), here)
        # rows up to the next chunk's likely junction now (it is requested this tick), the rest may wait until read
        self.fusion.fuse(plan, chunk, k_now, k_now + self.delay.delay_ticks_ceil + _EAGER_MARGIN_TICKS)

    def on_request_failed(self, request_id: int) -> None:
        """An error or a missed deadline: free the in-flight slot (the caller drops any late reply)."""
        self._parts.pop(request_id, None)
        self._part_held.pop(request_id, None)
        if self._in_flight.pop(request_id, None) is not None:
            self.stats.failures += 1
            self._predictions = {t: v for t, v in self._predictions.items() if v[0] != request_id}

    # ------------------------------------------------------------------ read-only views

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def pending_requests(self) -> list[InferenceRequest]:
        return list(self._in_flight.values())
