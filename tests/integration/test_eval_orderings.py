"""Quick grid in virtual time, fixed seeds: the orderings the project promises (not wall-clock numbers)."""

from __future__ import annotations

import pytest

from sim.eval.grid import EvalConfig
from sim.eval.runner import run_grid

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LAT = 200.0


@pytest.fixture(scope="module")
def rows() -> dict[tuple[str, str, float], dict]:
    cfg = EvalConfig(tasks=["reach_jump", "pick_place"],
                     strategies=["sync", "naive", "lerobot", "aligned", "vlash", "vlash_rail"],
                     latencies_ms=[LAT], seeds=[0, 1], max_duration_s=25, workers=1)
    result = run_grid(cfg, progress=False)
    return {(r["task"], r["strategy"], r["latency_ms"]): r for r in result.rows}


def test_async_beats_sync_on_completion_time(rows):
    sync = rows[("pick_place", "sync", LAT)]
    for name in ("aligned", "vlash"):
        ours = rows[("pick_place", name, LAT)]
        assert ours["success_rate"] >= sync["success_rate"]
        assert ours["completion_time_s"] < sync["completion_time_s"], name
    assert sync["stall_ticks"] > 0 and rows[("pick_place", "vlash", LAT)]["stall_ticks"] < sync["stall_ticks"]


def test_default_strategy_beats_sync_on_completion_time(rows):
    ours, sync = rows[("pick_place", "vlash_rail", LAT)], rows[("pick_place", "sync", LAT)]
    assert ours["completion_time_s"] is not None and ours["completion_time_s"] < sync["completion_time_s"]


@pytest.mark.parametrize("task", ["reach_jump", "pick_place"])
def test_vlash_rail_smoother_than_naive_and_lerobot(rows, task):
    """Junction jumps in velocity and acceleration (|Δp| itself is capped by the safety layer's max step)."""
    ours = rows[(task, "vlash_rail", LAT)]
    for other in ("naive", "lerobot"):
        base = rows[(task, other, LAT)]
        assert ours["rms_jerk"] < base["rms_jerk"], other
        assert ours["junction_dv_p95"] < base["junction_dv_p95"], other
        assert ours["junction_da_p95"] < base["junction_da_p95"], other


def test_rollforward_reduces_misalignment(rows):
    """vlash = aligned + rollforward: chunks start where the arm will be, so the command jerks less."""
    vlash, aligned = rows[("reach_jump", "vlash", LAT)], rows[("reach_jump", "aligned", LAT)]
    assert vlash["rms_jerk"] < aligned["rms_jerk"]
    assert vlash["rollforward_error_mean"] is not None and aligned["rollforward_error_mean"] is None
