"""The default strategy conditions on the command at the capture tick (not VLASH's rolled-forward state) and
places the chunk from that tick: a policy that is not told exec_offset_s then plans for the time it saw.
Seeds from the tuning range (0–99); reports use 1000+."""

from __future__ import annotations

import numpy as np
import pytest

from sim.eval import virtual_engine
from sim.eval.grid import EvalConfig, resolve_strategy
from vla_async.config import InjectedLatencyConfig, SafetyConfig
from vla_async.config.schema import strategy_config

CFG = EvalConfig(strategies=["vlash_rail", "vlash_rail_rf"],
                 variants={"vlash_rail_rf": {"preset": "vlash_rail", "rollforward": "commanded",
                                           "rollforward_to": "command"}})


def test_vlash_rail_sends_the_last_command_for_its_capture_tick():
    from sim import so101
    from vla_async.messages import ActionChunk
    from vla_async.scheduler import ActionScheduler

    sched = ActionScheduler(strategy_config("vlash_rail"), so101.robot_spec(30.0, cameras=()), chunk_length=30,
                            safety=SafetyConfig())
    measured = np.zeros(6)
    first = sched.on_tick(0, measured).request
    for k in range(1, 5):
        sched.on_tick(k, measured)
    ramp = (0.01 * np.arange(30))[:, None] * np.ones((1, 6))
    sched.on_chunk(ActionChunk(first.request_id, first.exec_tick, ramp.astype(np.float32)), k_now=5)
    out = sched.on_tick(5, measured)
    assert out.request is not None and out.request.exec_tick == out.request.tick == 5  # the chunk starts at capture
    np.testing.assert_allclose(out.request.rollforward_state, out.command)  # the command of the capture tick
    assert np.abs(out.command).max() > 0  # ... which is not the measured state


@pytest.mark.parametrize("seed", [0, 2])
def test_default_tracks_where_vlash_rollforward_trails_the_target(seed):
    """track @ 200 ms, expert not told the offset: rolled forward it plans for the capture time from the state at
    exec_tick and trails the target by the latency; the default plans for the capture time from the command at it."""
    lat = InjectedLatencyConfig(distribution="normal", mean_ms=200.0, jitter_ms=30.0, seed=seed)
    ours = virtual_engine.run_virtual_episode("track", resolve_strategy(CFG, "vlash_rail"), lat, seed, max_duration_s=8.0)
    old = virtual_engine.run_virtual_episode("track", resolve_strategy(CFG, "vlash_rail_rf"), lat, seed,
                                             max_duration_s=8.0)
    assert ours.success and not old.success
