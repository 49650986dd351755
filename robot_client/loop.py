"""The real-time client loop: one control thread on absolute deadlines, driving the ActionScheduler.

Each tick k (see DESIGN.md section 3 and the scheduler contract):
  1. wait for k's absolute deadline (TickClock; an overrun skips ticks instead of bursting);
  2. apply every chunk that arrived since the last tick (`on_chunk(k_now=k)`), so a chunk that
     landed during the sleep already shapes this tick's command; errors and deadline misses free
     the scheduler's in-flight slot (`on_request_failed`);
  3. read the robot state, `on_tick(k, state)`, send the command;
  4. if the scheduler asks for inference, capture the observation at k (images only when the
     policy has cameras) and submit it (non-blocking: the transport runs on its own thread);
  5. hand a TickRecord to the log writer thread and the summary accumulator.

If the policy client's transport thread dies (`PolicyClient.failure`), the loop stops requesting,
lets the scheduler's watchdog bring the arm to rest, then ends and `run` raises TransportFailure.

Nothing here formats strings or touches the disk per tick.
"""

from __future__ import annotations

import gc
import math
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_client.clock import TickClock, TickTiming
from robot_client.controlled_stop import ServerLossGuard, StopOutcome, controlled_stop, stop_reason
from robot_client.summary import RunStats, RunSummary
from robot_client.tick_log import TickLogWriter, TickRecord
from vla_async.config import ClientConfig
from vla_async.messages import ActionChunk, ErrorMessage, Observation
from vla_async.policy_input import prefix_fields
from vla_async.robot import Robot, RobotObservation
from vla_async.scheduler import ActionScheduler, InferenceRequest
from vla_async.specs import PolicySpec
from vla_async.transport import PolicyClient, ReceivedChunk

#: GIL switch interval while the loop runs (CPython's default is 5 ms)
_GIL_SWITCH_INTERVAL_S = 0.0002
#: how often (in seconds) the loop asks a simulated robot whether its task succeeded
_SUCCESS_CHECK_PERIOD_S = 0.2
#: after a transport failure: at most this long past the watchdog timeout to reach rest
_REST_GRACE_S = 3.0


class TransportFailure(RuntimeError):
    """The policy client's transport thread died; the arm was brought to rest before the loop ended."""


class RealTimeClient:
    """Runs the control loop for `duration_s` (or until `stop()` / task success).

    The robot must already be connected (use it as a context manager); the policy client is
    connected here. A policy client created here is also closed here; one passed in is left open.
    """

    def __init__(self, config: ClientConfig, robot: Robot, policy: PolicyClient | None = None,
                 *, connect_timeout_s: float = 10.0) -> None:
        self.config = config
        self.connect_timeout_s = float(connect_timeout_s)
        self.robot = robot
        self._policy = policy
        self._stop = threading.Event()
        self._stop_note: str | None = None
        self.policy_spec: PolicySpec | None = None
        self.last_record: TickRecord | None = None  # read by the live status printer
        self.stats: RunStats | None = None
        self.summary: RunSummary | None = None
        self.transport_failure: str | None = None  # why the transport died (the loop then came to rest)
        self._rest_by_tick = 0
        self._previous_command: np.ndarray | None = None
        self.stop_outcome: StopOutcome | None = None  # how the arm was stopped (set when the loop has run)

    def stop(self, reason: str | None = None) -> None:
        """Ask the loop to end after the current tick (thread- and signal-safe); `reason` names it in the
        controlled stop's message (default: a stop request, e.g. Ctrl-C)."""
        self._stop_note = reason
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ run

    def run(self, duration_s: float | None = None) -> RunSummary:
        cfg = self.config
        duration = cfg.duration_s if duration_s is None else float(duration_s)
        owned = self._policy is None
        policy = self._policy or PolicyClient(cfg.network, cfg.client_name, self.robot.spec)
        writer = TickLogWriter(cfg.log.path) if cfg.log.path else None
        try:
            welcome = policy.connect(timeout_s=self.connect_timeout_s)
            self.policy_spec = welcome.policy_spec
            chunk_length = welcome.policy_spec.chunk_length
            # builds every operator chunks of this length need, so that no tick pays for one
            scheduler = ActionScheduler(cfg.strategy, self.robot.spec, chunk_length, cfg.safety, welcome.policy_spec)
            if writer is not None:
                writer.open()
            self.stats = RunStats(self.robot.spec.fps)
            errors = self._run_then_stop(policy, scheduler, writer, duration)
        finally:
            if writer is not None:
                writer.close()
            if owned:
                policy.close()
        self.summary = self.stats.finish(errors=errors, transport=dict(policy.stats), extra=self._task_extra())
        if self.transport_failure is not None:
            raise TransportFailure(f"{self.transport_failure}; the arm was brought to rest")
        return self.summary

    def _run_then_stop(self, policy: PolicyClient, scheduler: ActionScheduler, writer: TickLogWriter | None,
                       duration_s: float) -> int:
        """The loop, then the controlled stop however it ended (robot_client/controlled_stop.py)."""
        failure: BaseException | None = None
        try:
            return self._loop(policy, scheduler, writer, duration_s)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            ended_by = f"transport failed: {self.transport_failure}" if self.transport_failure else self._stop_note
            reason = stop_reason(failure, self._stop.is_set(), ended_by)
            self.stop_outcome = controlled_stop(self.robot, scheduler.safety, self.config, reason)

    def _loop(self, policy: PolicyClient, scheduler: ActionScheduler, writer: TickLogWriter | None,
              duration_s: float) -> int:
        spec = self.robot.spec
        fps = float(spec.fps)
        cameras = tuple(c.name for c in self.policy_spec.cameras) if self.policy_spec else ()
        task = self.config.task_instruction or str(getattr(self.robot, "instruction", "") or "")
        deadline_ms = self.config.network.request_timeout_s * 1000.0
        task_status = getattr(self.robot, "task_status", None) if self.config.stop_on_success else None
        success_every = max(1, round(_SUCCESS_CHECK_PERIOD_S * fps))
        end_tick = max(1, math.ceil(duration_s * fps))
        stats = self.stats
        assert stats is not None

        capture: dict[int, tuple[int, float]] = {}  # request_id -> (capture tick, capture time)
        server_guard = ServerLossGuard(self.config.safety.server_lost_stop_s)
        errors = 0
        clock = TickClock(fps)
        gc.collect()
        gc.freeze()  # long-lived setup objects leave the collector's view: shorter GC pauses in the loop
        # The transport (and a simulated arm's physics) run on threads in this process: a short GIL
        # switch interval lets the control thread take the GIL soon after its deadline (default 5 ms).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(_GIL_SWITCH_INTERVAL_S)
        t0 = clock.start()
        try:
            k = 0
            while k < end_tick and not self._stop.is_set():
                timing = clock.wait(k)
                if timing.tick >= end_tick:  # overran past the end: count the skipped ticks of the run
                    stats.missed += end_tick - k
                    break
                k = timing.tick
                arrivals, failed = self._apply_arrivals(policy, scheduler, capture, k)
                errors += failed
                obs = self.robot.get_observation(with_images=False)
                out = scheduler.on_tick(k, obs.state)
                self.robot.send_action(out.command)
                request_id = exec_tick = -1
                if out.request is not None:
                    request_id = self._submit(policy, out.request, obs, timing, cameras, task, deadline_ms, capture)
                    exec_tick = out.request.exec_tick
                work_ms = (time.monotonic() - timing.woke_at) * 1e3
                source = out.source_request_id
                age = k - capture[source][0] if source in capture else None
                record = TickRecord(
                    tick=k, time_s=timing.woke_at - t0, lateness_ms=timing.lateness_s * 1e3, work_ms=work_ms,
                    missed=timing.missed, command=np.array(out.command, copy=True), state=np.array(obs.state, copy=True),
                    source_request_id=source, observation_age_ticks=age, stalled=bool(out.stalled),
                    watchdog=bool(out.watchdog), delay_ticks=float(out.delay_ticks),
                    rollforward_error=None if out.rollforward_error is None else float(out.rollforward_error),
                    request_id=request_id, chunks_arrived=len(arrivals), request_exec_tick=exec_tick,
                    arrivals=arrivals,
                )
                stats.add(record)
                if writer is not None:
                    writer.write(record)
                self.last_record = record
                if len(capture) > 256 and source >= 0:
                    for rid in [r for r in capture if r < source]:
                        del capture[rid]
                if task_status is not None and k % success_every == 0 and task_status().success:
                    break
                server_guard.check(policy.connected, timing.woke_at)
                k += 1
        finally:
            sys.setswitchinterval(switch_interval)
            gc.unfreeze()
        return errors

    def _apply_arrivals(self, policy: PolicyClient, scheduler: ActionScheduler,
                        capture: Mapping[int, tuple[int, float]], k_now: int
                        ) -> tuple[tuple[tuple[int, int, bool], ...], int]:
        """Feed arrived chunks and failures to the scheduler; returns
        ((request_id, dropped actions, accepted) per chunk, errors)."""
        if policy.failure is not None:
            self._come_to_rest(policy.failure, k_now)
        chunks: list[tuple[int, int, bool]] = []
        failed = 0
        for item in policy.poll():
            if isinstance(item, ReceivedChunk):
                chunk: ActionChunk = item.chunk
                captured = capture.get(chunk.request_id)
                latency = item.received_at - captured[1] if captured is not None else None
                # a streamed chunk's first part is when it became usable; its later parts are not new requests
                if latency is not None and self.stats is not None and chunk.row_offset == 0:
                    self.stats.add_request_latency(latency)
                report = scheduler.on_chunk(chunk, k_now=k_now, latency_s=latency)
                chunks.append((chunk.request_id, int(report.dropped_actions), bool(report.accepted)))
            elif isinstance(item, ErrorMessage):
                failed += 1
                if item.request_id is not None:
                    scheduler.on_request_failed(item.request_id)
        return tuple(chunks), failed

    def _come_to_rest(self, failure: str, k_now: int) -> None:
        """The transport is gone: no more requests; stop once the watchdog has the arm at rest (its
        command unchanged between ticks), or `_REST_GRACE_S` after the watchdog timeout at the latest."""
        if self.transport_failure is None:
            self.transport_failure = failure
            fps = float(self.robot.spec.fps)
            self._rest_by_tick = k_now + math.ceil((self.config.safety.watchdog_timeout_s + _REST_GRACE_S) * fps)
        record = self.last_record
        command = None if record is None else record.command
        at_rest = (record is not None and record.watchdog and self._previous_command is not None
                   and np.array_equal(command, self._previous_command))
        self._previous_command = command
        if at_rest or k_now >= self._rest_by_tick:
            self._stop.set()

    def _submit(self, policy: PolicyClient, request: InferenceRequest, obs: RobotObservation, timing: TickTiming,
                cameras: tuple[str, ...], task: str, deadline_ms: float,
                capture: dict[int, tuple[int, float]]) -> int:
        if self.transport_failure is not None:
            return -1
        images: dict[str, np.ndarray] = {}
        env_state = obs.environment_state
        if cameras:
            with_images = self.robot.get_observation(with_images=True)
            images = {name: with_images.images[name] for name in cameras}
            if with_images.environment_state is not None:
                env_state = with_images.environment_state
        capture[request.request_id] = (request.tick, timing.woke_at)
        policy.submit(Observation(
            request_id=request.request_id, tick=request.tick, exec_tick=request.exec_tick, state=obs.state,
            images=images, task=task, rollforward_state=request.rollforward_state,
            environment_state=env_state, deadline_ms=deadline_ms, stream=request.stream,
            **prefix_fields(request, self.policy_spec),
        ))
        return request.request_id

    def _task_extra(self) -> dict[str, Any]:
        task_status = getattr(self.robot, "task_status", None)
        if task_status is None:
            return {}
        try:
            status = task_status()
        except Exception as exc:  # the summary must not fail because a status read did
            return {"task_status_error": str(exc)}
        return {"task_success": bool(status.success), "task_progress": round(float(status.progress), 3)}

    def status_line(self) -> str:
        """One human line about the latest tick (for the live display; called from another thread).

        Fields are documented in robot_client/live_status.py; stalls count as in the report."""
        r, stats = self.last_record, self.stats
        if stats is None:
            net = self.config.network
            return (f"waiting for the policy server at tcp://{net.host}:{net.port} "
                    f"(up to {self.connect_timeout_s:.0f} s; Ctrl-C to stop)")
        if r is None:
            return "connected; starting the control loop"
        src = f"chunk {r.source_request_id} age {r.observation_age_ticks}" if r.source_request_id >= 0 else "holding"
        flags = " WATCHDOG" if r.watchdog else (" stalled" if r.stalled else "")
        return (f"t={r.time_s:6.1f}s tick {r.tick:6d}  {src}  d̂={r.delay_ticks:4.1f}  lateness {r.lateness_ms:5.2f} ms  "
                f"chunks {stats.chunks_received}  stalls {stats.stalls_after_first} "
                f"(start-up {stats.stalls - stats.stalls_after_first})  missed {stats.missed}{flags}")

