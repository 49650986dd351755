"""Report table, JSON and plots from synthetic episodes (no simulator needed)."""

from __future__ import annotations

import json

import numpy as np

from sim.eval.episode_log import EpisodeRecorder
from sim.eval.metrics import aggregate, episode_metrics
from sim.eval.plots import plot_junction_trajectory, plot_metrics_vs_latency
from sim.eval.quality import quality_checks
from sim.eval.report import markdown_table, write_json


def _log(step: float, chunk_every: int):
    rec = EpisodeRecorder({}, 30.0, np.array([True, True, False]))
    for k in range(60):
        rec.tick(tick=k, command=[step * k, np.sin(k / 5), 0], state=[step * k, 0, 0], source_request_id=k // chunk_every)
        if k % chunk_every == 0:
            rec.request(k // chunk_every, k, k)
    return rec.finish(True, 2.0)


def _row(strategy: str, lat: float, step: float) -> dict:
    return {"task": "pick_place", "strategy": strategy, "trigger": "every_tick", "latency_ms": lat, "jitter_ms": 0.0,
            "is_reference": lat == 0, **aggregate([episode_metrics(_log(step, 10))])}


def test_table_json_and_plots(tmp_path):
    rows = [_row("sync", 0, 0.01), _row("vlash_rail", 100, 0.01), _row("naive", 100, 0.03)]
    table = markdown_table(rows)
    assert table.count("\n") == 4 and "| pick_place | vlash_rail | every_tick | 100±0 | 1 | 100% | 6 |" in table
    write_json(tmp_path / "r.json", {"a": 1}, rows, [])
    assert json.loads((tmp_path / "r.json").read_text())["rows"][1]["strategy"] == "vlash_rail"
    (png,) = plot_metrics_vs_latency(rows, tmp_path)
    traj = plot_junction_trajectory({"a": _log(0.01, 10), "b": _log(0.03, 7)}, tmp_path / "t.png")
    assert png.stat().st_size > 10_000 and traj.stat().st_size > 10_000


def test_quality_checks_compare_against_the_right_rows():
    rows = [_row("sync", 0, 0.01), _row("vlash_rail", 100, 0.01), _row("naive", 100, 0.03)]
    checks = {c.target: c for c in quality_checks(rows)}
    jerk = next(c for t, c in checks.items() if "naive" in t)
    assert jerk.value == rows[1]["rms_jerk"] / rows[2]["rms_jerk"]
    assert checks["stalled ticks / episode = 0"].passed


def test_legend_explains_every_column_and_the_velocity_cap():
    from sim.eval.report import COLUMNS, legend

    text = legend(velocity_jump_cap=2.0)
    for col in COLUMNS:
        assert f"  {col.header}: " in text
    assert "max_acceleration / fps = 2.000 rad/s" in text


def test_fixed_length_tasks_show_no_completion_time():
    row = {**_row("vlash_rail", 100, 0.01), "task": "track"}
    assert "| track | vlash_rail | every_tick | 100±0 | 1 | 100% | 6 | – | – |" in markdown_table([row])


def test_demo_report_lists_misses_and_reads_the_result(tmp_path):
    from sim.demo_report import demo_report
    from sim.eval.grid import EvalConfig

    rows = [_row("sync", 0, 0.01), _row("vlash_rail", 150, 0.01), _row("sync", 150, 0.01)]
    rows[1]["stall_ticks"] = 3.0  # a miss of the quality bar ("stalled ticks / episode = 0")
    live = _log(0.01, 10)
    live.meta.update(seed=0)
    config = EvalConfig(tasks=["pick_place"], strategies=["vlash_rail", "sync"], latencies_ms=[150], jitter_ms=25)
    logs = {("pick_place", "sync", 150.0): _log(0.01, 5), ("pick_place", "sync", 0.0): _log(0.01, 5)}
    report = demo_report([{**rows[1], "strategy": "vlash_rail (real time, seed 0)", "engine": "realtime"}, *rows],
                         config, "vlash_rail", live, rows[1], logs, tmp_path, "the command at the capture tick")
    assert "Missed:\n  - stalled ticks / episode = 0: 3 (limit 0)" in report.text
    assert "vlash_rail sent the policy the command at the capture tick." in report.text
    assert "Reading: With a model that answers in 150 ms" in report.text and "3 held ticks" in report.text
    assert "columns: " in report.text and report.plot.stat().st_size > 10_000
    assert any(not c["passed"] for c in report.checks)


def test_failures_count_at_the_timeout_and_misses_are_censored():
    """Completion over all episodes counts a failure as its whole duration; a missed reaction counts as its
    whole window instead of dropping out of the mean; clipped ticks are counted from plan vs command."""
    from sim.eval.episode_log import EventRecord

    ok = episode_metrics(_log(0.01, 10))
    rec = EpisodeRecorder({}, 30.0, np.array([True, True, False]))
    for k in range(90):  # never moves toward the target; the plan asks for more than was sent on tick 40
        planned = [1.0, 0, 0] if k == 40 else [0.0, 0, 0]
        rec.tick(tick=k, command=[0.0, 0, 0], state=[0, 0, 0], source_request_id=0, planned=planned,
                 commanded_tool=(0.0, 0, 0), measured_tool=(0.0, 0, 0))
    rec.request(0, 0, 0)
    rec.add_events([EventRecord(1.0, "target_jump", (0.2, 0.0, 0.1))])
    failed = episode_metrics(rec.finish(False, None))
    assert failed["completion_all_s"] == 3.0 and failed["reaction_missed"] == 1
    assert failed["reaction_s"] == [2.0] and failed["time_to_hit_s"] == [2.0]
    assert failed["clip_ticks"] == 1
    row = aggregate([ok, failed])
    assert row["completion_time_s"] == (2.0 + 3.0) / 2 and row["completion_ok_s"] == 2.0


def test_start_up_wait_is_its_own_column_and_part_of_the_completion_time():
    """Ticks held before the first chunk are the start-up (not stalls); the table prints them in seconds."""
    from sim.eval.report import select_columns

    rec = EpisodeRecorder({}, 30.0, np.array([True, False]))
    for k in range(30):
        waiting = k < 6
        rec.tick(tick=k, command=[0.0 if waiting else 0.01 * k, 0], state=[0, 0], stalled=waiting,
                 source_request_id=-1 if waiting else 0)
    rec.request(0, 0, 0)
    m = episode_metrics(rec.finish(True, 1.0))
    assert m["startup_ticks"] == 6 and m["stall_ticks"] == 0
    row = {"task": "pick_place", "strategy": "s", "trigger": "every_tick", "latency_ms": 200.0, "jitter_ms": 0.0,
           "is_reference": False, **aggregate([m])}
    assert row["startup_s"] == 0.2
    table = markdown_table([row], columns=select_columns(["done ok s", "start s", "stalls"]))
    assert "| 1.00 | 0.20 | 0.0 |" in table.splitlines()[-1]
    older = {k: v for k, v in m.items() if k != "startup_s"}  # an episode stream written before the column
    assert aggregate([older])["startup_s"] is None and "| 1.00 | – |" in markdown_table(
        [{**row, **aggregate([older])}], columns=select_columns(["done ok s", "start s"]))
