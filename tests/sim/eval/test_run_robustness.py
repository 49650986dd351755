"""A long eval keeps what it measured: cells resolved once, every episode streamed, the JSON written whole."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import sim.eval.grid as grid
from sim.eval.cli import main
from sim.eval.grid import EvalConfig
from sim.eval.report import write_json
from sim.eval.runner import rows_from_stream, run_grid
from vla_async.config import ConfigError

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--task", "reach_jump", "--strategy", "sync,vlash_rail", "--latency_ms", "100", "--seeds", "0",
        "--reference=false", "--max_duration_s=2", "--quiet"]


def test_the_episode_stream_rebuilds_the_rows(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert main([*TINY, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    lines = [json.loads(line) for line in (tmp_path / "run.json.episodes.jsonl").read_text().splitlines()]
    assert [(line["strategy"], line["seed"]) for line in lines] == [("sync", 0), ("vlash_rail", 0)]
    rebuilt = rows_from_stream(lines)
    assert [r["strategy"] for r in rebuilt] == [r["strategy"] for r in rows]
    for a, b in zip(rebuilt, rows, strict=True):
        for key in ("trigger", "max_in_flight", "success_rate", "requests", "rms_jerk", "junction_pre_da_p95",
                    "hit_fraction"):
            assert a[key] == pytest.approx(b[key]), key
    assert all(0.0 <= r["hit_fraction"] <= 1.0 for r in rows)  # the task's own count of the first target (2 s)
    spec = importlib.util.spec_from_file_location("eval_tables", ROOT / "scripts" / "eval_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    from_stream = tables.load_rows([str(tmp_path / "run.json.episodes.jsonl")])  # what a dead run left
    assert [(r["strategy"], r["rms_jerk"]) for r in from_stream] == [(r["strategy"], r["rms_jerk"]) for r in rebuilt]


def test_a_preset_edited_mid_run_changes_nothing_in_it(monkeypatch):
    """Strategies are resolved before the first episode; the run never reads a preset again."""
    cfg = EvalConfig(tasks=["reach_jump"], strategies=["sync", "vlash_rail"], latencies_ms=[100], seeds=[0],
                     reference=False, max_duration_s=1.0)

    def broken(name):
        raise ConfigError(f"preset {name} is being edited")

    def edit_presets(episode, metrics):
        monkeypatch.setattr(grid, "load_strategy_preset", broken)

    result = run_grid(cfg, progress=False, on_episode=edit_presets)
    assert [r["strategy"] for r in result.rows] == ["sync", "vlash_rail"]


def test_write_json_leaves_the_old_file_when_serialising_fails(tmp_path):
    out = tmp_path / "r.json"
    write_json(out, {"a": 1}, [], [])
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError):
        write_json(out, {"a": 2}, [{"x": loop}], [])
    assert json.loads(out.read_text())["config"] == {"a": 1}


def test_expert_lag_only_for_the_in_process_expert():
    assert EvalConfig(expert_lag_s=0.08).expert_lag_s == 0.08
    with pytest.raises(ValueError, match="expert_lag_s"):
        EvalConfig(expert_lag_s=0.08, engine="realtime")
