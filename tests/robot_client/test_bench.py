"""`vla-async bench client` runs end to end and writes its numbers (values are not judged here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robot_client.bench import main


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_loop_bench_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    rc = main(["--skip-scheduler", "--robot", "kinematic", "--robot-joints", "14", "--backend", "linear",
               "--duration", "1", "--rates", "50", "--no-pin", "--out", str(tmp_path / "runs"), "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    (row,) = data["loop"]
    assert row["target_fps"] == 50 and row["joints"] == 14
    assert row["ticks"] + row["missed_ticks"] == 50
    for key in ("lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "achieved_fps", "work_p99_ms"):
        assert isinstance(row[key], float)
    assert "late p99" in capsys.readouterr().out
    assert (tmp_path / "runs" / "ticks_kinematic_50hz.jsonl").is_file()
