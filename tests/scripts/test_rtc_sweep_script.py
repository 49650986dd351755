"""scripts/rtc_sweep.py: delay-sweep tables and one plot per task from eval JSON, with a label per file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _row(strategy: str, latency_ms: float, success: float, dp: float, **extra: object) -> dict:
    return {"task": "reach_jump", "strategy": strategy, "latency_ms": latency_ms, "success_rate": success,
            "completion_time_s": 8.0, "junction_pre_dp_p95": dp, "reaction_s_mean": 0.2, "events": 4,
            "hit_missed": 1, "episodes": 2, "successes": round(2 * success), **extra}


def test_tables_and_plot_per_task(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"config": {"fps": 30.0}, "rows": [
        _row("sync", 0.0, 1.0, 0.05, typical_step=0.1), _row("rtc", 0.0, 0.5, 0.07), _row("rtc", 200.00000001, 1.0, 0.02)]}))
    b.write_text(json.dumps({"config": {"fps": 30.0}, "rows": [_row("rtc", 200.00000001, 0.0, 0.3)]}))
    c = tmp_path / "c.json"  # the same cells as a, other seeds: pooled
    c.write_text(json.dumps({"config": {"fps": 30.0}, "rows": [_row("rtc", 0.0, 1.0, 0.09)]}))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "rtc_sweep.py"), str(a), str(b), str(c), "--out",
                          str(tmp_path / "plots"), "--label", f"{b}=trained"], capture_output=True, text=True,
                         check=True).stdout
    assert "| method | d=0 | d=6 |" in out
    assert "| rtc | 75% | 100% |" in out and "| rtc (trained) | – | 0% |" in out  # success by delay in ticks
    assert "| rtc | 0.0800 | 0.0200 |" in out and "75%" in out  # junction (pooled mean); 3 of 4 targets hit
    assert "policy p95 moving step 0.1000 rad" in out
    assert (tmp_path / "plots" / "rtc_sweep_reach_jump.png").stat().st_size > 1000


def test_a_task_without_targets_gets_no_empty_panels(tmp_path):
    rows = [{**_row("rtc", ms, 1.0, 0.07), "task": "pick_place", "events": None, "hit_missed": None,
             "reaction_s_mean": None} for ms in (0.0, 200.00000001)]
    (tmp_path / "a.json").write_text(json.dumps({"config": {"fps": 30.0}, "rows": rows}))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "rtc_sweep.py"), str(tmp_path / "a.json"), "--out",
                          str(tmp_path / "plots")], capture_output=True, text=True, check=True).stdout
    assert "success rate" in out and "junction |Δp| p95" in out
    assert "targets hit" not in out and "reaction, mean" not in out
    assert (tmp_path / "plots" / "rtc_sweep_pick_place.png").stat().st_size > 1000
