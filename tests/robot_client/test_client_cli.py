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


def test_lerobot_robot_says_what_is_missing_and_what_to_use() -> None:
    with pytest.raises(RobotUnavailableError) as info:
        make_robot_from_config(RobotConfig(kind="lerobot", lerobot_type="so101_follower"))
    msg = str(info.value)
    assert "no adapter" in msg and "robot.kind=sim" in msg and "vla_async.robot.Robot" in msg
    assert "issue" not in msg


def test_sim_robot_without_mujoco_is_one_clear_line() -> None:
    """A core-only install (no MuJoCo) running the default robot.kind=sim: a line, exit 2, no traceback."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['mujoco'] = None\n"  # import mujoco now fails like a missing package
            "from robot_client.cli import main; sys.exit(main(['--network.port=1']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "robot.kind=sim needs the MuJoCo simulator" in err and "pip install '.[sim]'" in err


def test_status_line_before_the_server_answers() -> None:
    from robot_client.loop import RealTimeClient
    from vla_async.config import ClientConfig, load_config

    config = load_config(ClientConfig, None, ["--network.port=5999"])
    line = RealTimeClient(config, robot=None, connect_timeout_s=7).status_line()  # type: ignore[arg-type]
    assert "waiting for the policy server at tcp://127.0.0.1:5999" in line and "Ctrl-C" in line


@pytest.mark.parametrize("argv,shown", [
    ([], "vlash_rail"),
    (["--strategy.name=sync"], "sync"),
    (["--strategy.trigger=horizon"], "vlash_rail (preset + overrides: trigger=horizon)"),
    (["--strategy.name=mine"], "mine (custom)"),
])
def test_printed_strategy_is_what_runs(argv: list[str], shown: str) -> None:
    from robot_client.cli import describe_strategy
    from vla_async.config import ClientConfig, load_config

    assert describe_strategy(load_config(ClientConfig, None, argv)) == shown


def test_live_status_into_a_file_writes_changed_lines_only() -> None:
    stream = io.StringIO()  # not a TTY
    with LiveStatus(lambda: "waiting for the policy server", stream=stream, period_s=0.01, file_period_s=0.0):
        import time

        time.sleep(0.15)
    assert stream.getvalue() == "waiting for the policy server\n"  # once, not once per period; no \r


def test_live_status_prints_lines() -> None:
    stream = io.StringIO()
    with LiveStatus(lambda: "tick 7", stream=stream, period_s=0.01):
        import time

        time.sleep(0.1)
    assert "tick 7\n" in stream.getvalue()
