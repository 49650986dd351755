"""The `lerobot` preset against a line-by-line port of LeRobot 0.4.4's queue logic (robot_client.py:
_aggregate_action_queues, control_loop_action, _ready_to_send_observation, control_loop_observation;
policy_server.py: _enqueue_observation, _obs_sanity_checks, GetActions), replaying a recorded episode."""

from __future__ import annotations

from queue import Queue

import numpy as np
import pytest

from sim.eval import lerobot_emulation
from sim.eval.grid import EvalConfig, resolve_strategy
from sim.eval.virtual_engine import run_virtual_episode
from vla_async.config import InjectedLatencyConfig


class PortClient:
    """RobotClient's queue state, as LeRobot writes it (Queue of (timestep, action))."""

    def __init__(self, threshold, aggregate_fn):
        self.action_queue = Queue()
        self.latest_action = -1
        self.must_go = True
        self.action_chunk_size = -1
        self._chunk_size_threshold = threshold
        self.aggregate_fn = aggregate_fn

    def _aggregate_action_queues(self, incoming_actions):
        future_action_queue = Queue()
        current_action_queue = {ts: a for ts, a in self.action_queue.queue}
        for ts, action in incoming_actions:
            if ts <= self.latest_action:
                continue
            elif ts not in current_action_queue:
                future_action_queue.put((ts, action))
                continue
            future_action_queue.put((ts, self.aggregate_fn(current_action_queue[ts], action)))
        self.action_queue = future_action_queue

    def receive_actions(self, timed_actions):
        self.action_chunk_size = max(self.action_chunk_size, len(timed_actions))
        self._aggregate_action_queues(timed_actions)
        self.must_go = True

    def control_loop_action(self):
        ts, action = self.action_queue.get_nowait()
        self.latest_action = ts
        return ts, action

    def _ready_to_send_observation(self):
        return self.action_queue.qsize() / self.action_chunk_size <= self._chunk_size_threshold

    def control_loop_observation(self):
        timestep = max(self.latest_action, 0)
        must_go = self.must_go and self.action_queue.empty()
        if must_go:
            self.must_go = False
        return timestep, must_go


class PortServer:
    def __init__(self):
        self.observation_queue = Queue(maxsize=1)
        self._predicted_timesteps = set()
        self.last_processed_obs = None

    def _obs_sanity_checks(self, obs, previous_obs):
        if obs[0] in self._predicted_timesteps:
            return False
        elif bool(np.linalg.norm(obs[2] - previous_obs[2]) < 1):
            return False
        return True

    def _enqueue_observation(self, obs):
        if obs[1] or self.last_processed_obs is None or self._obs_sanity_checks(obs, self.last_processed_obs):
            if self.observation_queue.full():
                _ = self.observation_queue.get_nowait()
            self.observation_queue.put(obs)
            return True
        return False

    def get_actions(self):
        if self.observation_queue.empty():
            return None
        obs = self.observation_queue.get_nowait()
        self._predicted_timesteps.add(obs[0])
        self.last_processed_obs = obs
        return obs


class RecordingLoop(lerobot_emulation.LeRobotLoop):
    """Our emulation, logging every input it gets and every decision it makes."""

    events: list = []

    def _start(self, now_s):
        obs = super()._start(now_s)
        self.events.append(("take", None if obs is None else (obs.timestep, obs.must_go)))
        return obs

    def deliver(self, k):
        before = self._busy
        done = super().deliver(k)
        if done:
            _, rid, obs, chunk = before
            self.events.insert(len(self.events) - 1, ("arrive", obs.timestep, chunk.copy()))
        return done

    def tick(self, k, observe):
        seen = []

        def spy(ts, must_go):
            o = observe(ts, must_go)
            seen.append(o)
            return o

        filtered = self.server.filtered
        n = len(self.events)
        res = super().tick(k, spy)
        popped = None if res.action is None else (res.action.timestep, res.action.action.copy())
        sent = None if not seen else (seen[0].timestep, seen[0].must_go, seen[0].state.copy(),
                                      self.server.filtered == filtered)
        self.events.insert(n, ("tick", popped, sent))
        return res


@pytest.mark.parametrize("latency_ms", [100.0, 300.0])
def test_lerobot_preset_replays_like_lerobot(monkeypatch, latency_ms):
    RecordingLoop.events = []
    monkeypatch.setattr(lerobot_emulation, "LeRobotLoop", RecordingLoop)
    import sim.eval.lerobot_engine as engine

    monkeypatch.setattr(engine, "LeRobotLoop", RecordingLoop)
    cfg = EvalConfig(strategies=["lerobot"])
    lat = InjectedLatencyConfig(distribution="normal", mean_ms=latency_ms, jitter_ms=0.15 * latency_ms, seed=0)
    log = run_virtual_episode("reach_jump", resolve_strategy(cfg, "lerobot"), lat, 1000, max_duration_s=8.0)
    events = RecordingLoop.events
    assert sum(e[0] == "arrive" for e in events) >= 4 and log.meta["emulation"] == "lerobot_0_4_4"

    client, server = PortClient(0.5, lambda old, new: 0.3 * old + 0.7 * new), PortServer()
    filtered = stalls = 0
    for event in events:
        if event[0] == "arrive":
            client.receive_actions([(event[1] + i, a) for i, a in enumerate(event[2])])
        elif event[0] == "take":
            got = server.get_actions()
            assert (None if got is None else got[:2]) == event[1]
        else:
            _, popped, sent = event
            if client.action_queue.empty():
                assert popped is None
                stalls += 1
            else:
                ts, action = client.control_loop_action()
                assert popped is not None and ts == popped[0]
                np.testing.assert_allclose(action, popped[1], atol=1e-12)
            if client._ready_to_send_observation():
                ts, must_go = client.control_loop_observation()
                assert sent is not None and (ts, must_go) == sent[:2]
                accepted = server._enqueue_observation((ts, must_go, sent[2]))
                assert accepted == sent[3]
                filtered += not accepted
            else:
                assert sent is None
    assert filtered > 0 and stalls > 0  # the filter and the stalls it causes are exercised
