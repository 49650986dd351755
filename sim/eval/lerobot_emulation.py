"""LeRobot 0.4.4's async inference (RobotClient + PolicyServer) emulated in virtual time: the `lerobot` preset.

Our scheduler's plan is indexed by control ticks; LeRobot's client queue is indexed by *executed actions*
(a timestep advances only when an action is popped), so a stall pauses every queued chunk. That, and the
server's filtering, cannot be expressed as a trigger + fuser, so the preset runs this emulation instead:

client (`LeRobotClientQueue`, robot_client.py), every control tick:
  1. pop the next queued action if any (else the arm holds: a stall); `latest_action` = its timestep;
  2. then, if queue size / chunk size ≤ threshold (counted after the pop), send an observation stamped
     `max(latest_action, 0)`, with `must_go` = (flag set and queue empty); sending a must_go clears the flag;
  3. a chunk for observation timestep t holds actions for timesteps t, t+1, …: those ≤ latest_action are
     dropped (action 0 is kept at start-up, latest_action = -1), overlaps are merged (old·w + new·(1−w)),
     and the must_go flag is set again.
server (`LeRobotServerSlot`, policy_server.py): an observation is enqueued when must_go, or the first, or
  (its timestep not predicted yet and joint-state L2 to the last processed one ≥ 1 in LeRobot's units:
  degrees for the arm joints, 0–100 for the gripper); the queue has one slot (a newer observation
  replaces the waiting one); the server runs the waiting observation as soon as it is free, so the last
  observation received during an inference runs right after that chunk is returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SIMILARITY_ATOL = 1.0  # LeRobot's observations_similar default (L2 of the joint state, LeRobot units)


def lerobot_units(state: np.ndarray) -> np.ndarray:
    """Our radians (arm) and 0–1 opening (gripper, last) in LeRobot's units: degrees and 0–100."""
    s = np.asarray(state, dtype=float)
    return np.concatenate([np.degrees(s[:-1]), s[-1:] * 100.0])


@dataclass
class QueuedAction:
    timestep: int
    action: np.ndarray
    source: int  # request id of the chunk it came from (the newest one merged into it)


class LeRobotClientQueue:
    """The RobotClient's action queue, latest_action and must_go flag (no threads, no clock)."""

    def __init__(self, threshold: float, old_weight: float):
        self.threshold = float(threshold)
        self.old_weight = float(old_weight)
        self.queue: list[QueuedAction] = []  # ascending timesteps
        self.latest_action = -1
        self.must_go = True
        self.chunk_size = -1

    def pop(self) -> QueuedAction | None:
        """The action to execute this tick (None: the queue is empty, the arm holds)."""
        if not self.queue:
            return None
        item = self.queue.pop(0)
        self.latest_action = item.timestep
        return item

    def ready_to_send(self) -> bool:
        return len(self.queue) / self.chunk_size <= self.threshold

    def observation_stamp(self) -> tuple[int, bool]:
        """(timestep, must_go) of the observation sent now; a must_go clears the flag."""
        must_go = self.must_go and not self.queue
        if must_go:
            self.must_go = False
        return max(self.latest_action, 0), must_go

    def receive(self, first_timestep: int, actions: np.ndarray, source: int) -> None:
        """Merge a chunk whose action i is for timestep `first_timestep + i`."""
        self.chunk_size = max(self.chunk_size, len(actions))
        current = {q.timestep: q.action for q in self.queue}
        merged: list[QueuedAction] = []
        w = self.old_weight
        for i, action in enumerate(np.asarray(actions, dtype=float)):
            ts = first_timestep + i
            if ts <= self.latest_action:
                continue
            if ts in current:
                action = w * current[ts] + (1.0 - w) * action
            merged.append(QueuedAction(ts, action, source))
        self.queue = merged  # LeRobot replaces the queue with the incoming chunk's (merged) actions
        self.must_go = True


@dataclass
class LeRobotObservation:
    timestep: int
    must_go: bool
    state: np.ndarray  # LeRobot units (for the similarity filter)
    payload: Any  # what the policy is given (our capture tick, state, environment)


class LeRobotServerSlot:
    """The PolicyServer's observation filter and one-slot queue."""

    def __init__(self, atol: float = SIMILARITY_ATOL):
        self.atol = float(atol)
        self.slot: LeRobotObservation | None = None
        self.last_processed: LeRobotObservation | None = None
        self.predicted: set[int] = set()
        self.filtered = 0

    def enqueue(self, obs: LeRobotObservation) -> bool:
        if obs.must_go or self.last_processed is None or self._passes(obs):
            self.slot = obs  # a full one-slot queue drops the waiting observation
            return True
        self.filtered += 1
        return False

    def _passes(self, obs: LeRobotObservation) -> bool:
        if obs.timestep in self.predicted:
            return False
        assert self.last_processed is not None
        return not float(np.linalg.norm(obs.state - self.last_processed.state)) < self.atol

    def take(self) -> LeRobotObservation | None:
        """The observation the server runs next (GetActions), if one is waiting."""
        obs, self.slot = self.slot, None
        if obs is not None:
            self.predicted.add(obs.timestep)
            self.last_processed = obs
        return obs


@dataclass
class LeRobotTickResult:
    action: QueuedAction | None  # executed this tick (None: stall)
    request: LeRobotObservation | None  # an inference started this tick (the server took it)
    sent: bool  # an observation was sent this tick


class LeRobotLoop:
    """Client + server in virtual time. `plan(obs) -> actions [H, D]` is the policy; `latency() -> s`."""

    def __init__(self, threshold: float, old_weight: float, fps: float,
                 plan: Callable[[LeRobotObservation, int], np.ndarray], latency: Callable[[], float]):
        self.client = LeRobotClientQueue(threshold, old_weight)
        self.server = LeRobotServerSlot()
        self.fps = float(fps)
        self._plan, self._latency = plan, latency
        self._busy: tuple[float, int, LeRobotObservation, np.ndarray] | None = None  # (arrival_s, id, obs, chunk)
        self._next_id = 0
        self.started: list[tuple[int, LeRobotObservation, float]] = []  # (request id, observation, latency_s)

    def _start(self, now_s: float) -> LeRobotObservation | None:
        obs = self.server.take()
        if obs is None:
            return None
        rid, lat = self._next_id, float(self._latency())
        self._next_id += 1
        self._busy = (now_s + lat, rid, obs, np.asarray(self._plan(obs, rid), dtype=float))
        self.started.append((rid, obs, lat))
        return obs

    def deliver(self, k: int) -> list[int]:
        """Chunks finished by tick k's time reach the client; the server then runs the waiting observation."""
        now, done = k / self.fps, []
        while self._busy is not None and self._busy[0] <= now + 1e-9:
            arrival, rid, obs, chunk = self._busy
            self._busy = None
            self.client.receive(obs.timestep, chunk, rid)
            done.append(rid)
            self._start(arrival)
        return done

    def tick(self, k: int, observe: Callable[[int, bool], LeRobotObservation]) -> LeRobotTickResult:
        """One control-loop iteration at tick k: execute, then maybe send an observation."""
        action = self.client.pop()
        sent, started = False, None
        if self.client.ready_to_send():
            timestep, must_go = self.client.observation_stamp()
            self.server.enqueue(observe(timestep, must_go))
            sent = True
            if self._busy is None:
                started = self._start(k / self.fps)
        return LeRobotTickResult(action, started, sent)

