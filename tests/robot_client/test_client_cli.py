"""The client CLI and the robot factory: config errors fail at start-up with a clear message."""

from __future__ import annotations

import io

import pytest

from robot_client.cli import LiveStatus, main
from robot_client.robots import RobotUnavailableError, make_robot_from_config
from vla_async.config import ConfigError, RobotConfig, split_config_arg


def test_split_config_arg() -> None:
    assert split_config_arg(["--config", "a.yaml", "--x.y=1"]) == ("a.yaml", ["--x.y=1"])
    assert split_config_arg(["--config=b.yaml"]) == ("b.yaml", [])
    assert split_config_arg(["--a=1", "--config", "x.yaml", "--b=2"]) == ("x.yaml", ["--a=1", "--b=2"])
    assert split_config_arg(["--duration_s=3"]) == (None, ["--duration_s=3"])
    with pytest.raises(ConfigError):
        split_config_arg(["--config"])


def test_help_lists_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for field in ("--network.port", "--strategy.fuser.kind", "--robot.task", "--log.path", "--safety.watchdog_timeout_s"):
        assert field in out


def test_bad_config_fails_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "client/sim.yaml", "--strategy.preset=nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["--robot.fps=-1"]) == 2
    assert "robot.fps" in capsys.readouterr().err


def test_shipped_config_loads() -> None:
    from vla_async.config import ClientConfig, load_config

    cfg = load_config(ClientConfig, "client/sim.yaml", ["--strategy.preset=rail"])
    assert cfg.robot.kind == "sim" and cfg.strategy.name == "rail"


def test_lerobot_robot_is_a_clear_error() -> None:
    with pytest.raises(RobotUnavailableError, match="lerobot"):
        make_robot_from_config(RobotConfig(kind="lerobot", lerobot_type="so101_follower"))


def test_live_status_prints_lines() -> None:
    stream = io.StringIO()
    with LiveStatus(lambda: "tick 7", stream=stream, period_s=0.01):
        import time

        time.sleep(0.1)
    assert "tick 7\n" in stream.getvalue()
