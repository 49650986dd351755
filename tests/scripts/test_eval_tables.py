"""scripts/eval_tables.py: rows from JSON files or episode streams; the matched-trigger loss list."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("eval_tables", ROOT / "scripts" / "eval_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(strategy, trigger, success, jerk, latency=200.0, task="track"):
    return {"task": task, "strategy": strategy, "latency_ms": latency, "jitter_ms": 30.0, "trigger": trigger,
            "max_in_flight": 1, "episodes": 10, "success_rate": success, "success_ci95": [0.0, 1.0],
            "rms_jerk": jerk}


def test_losses_only_against_rivals_with_the_same_trigger():
    mod = _module()
    rows = [_row("vlash_rail", "every_tick", 0.7, 200.0), _row("aligned_et", "every_tick", 1.0, 900.0),
            _row("aligned", "delay", 1.0, 10.0), _row("vlash_rail", "every_tick", 1.0, 200.0, latency=300.0)]
    lines = mod.losses(rows)
    assert lines == ["- track @ 200 ms (every_tick): vlash_rail success 70.00 vs aligned_et 100.00"]


def test_later_files_replace_rows(tmp_path):
    mod = _module()
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"rows": [_row("vlash_rail", "every_tick", 0.0, 1.0), _row("rail", "every_tick", 1, 1)]}))
    second.write_text(json.dumps({"rows": [_row("vlash_rail", "every_tick", 1.0, 1.0)]}))
    rows = {r["strategy"]: r for r in mod.load_rows([str(first), str(second)])}
    assert rows["vlash_rail"]["success_rate"] == 1.0 and rows["rail"]["success_rate"] == 1
