"""robot.kind=lerobot through LeRobot 0.4.4's own classes, on this project's simulated arm registered as a
LeRobot robot (lerobot_robot_vla_sim, type vla_sim_follower): units against LeRobot's own normalisation,
a task end to end through `vla-async client` against a real expert server on 127.0.0.1, the joint-order
check, dry run, controlled stop, max_relative_target and disable_torque_on_disconnect."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytest.importorskip("mujoco")

from lerobot.motors import Motor, MotorCalibration, MotorNormMode  # noqa: E402

from lerobot_robot_vla_sim.vla_sim_follower import SimMotorsBus  # noqa: E402
from robot_client.cli import main as client_main  # noqa: E402
from robot_client.lerobot_units import joint_units  # noqa: E402
from robot_client.loop import RealTimeClient  # noqa: E402
from robot_client.robots import make_robot  # noqa: E402
from sim import so101  # noqa: E402
from tests.client_stop import stop_once_moving  # noqa: E402
from vla_async.config import ClientConfig, RobotConfig, build_config  # noqa: E402
from vla_async.local_server import LocalServer, backend_args  # noqa: E402

pytestmark = [pytest.mark.lerobot, pytest.mark.integration]
TWO_PI_PER_TICK = 2 * np.pi / 4095


def sim_robot_config(task: str = "reach_jump", units: str = "radians", **lerobot: object) -> RobotConfig:
    return RobotConfig(kind="lerobot", fps=30.0, lerobot={
        "type": "vla_sim_follower", "units": units, "task": task, "sim_cameras": [], **lerobot})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    spec = so101.robot_spec(30.0, cameras=())
    with LocalServer(backend_args("expert", spec), log_path=tmp_path_factory.mktemp("srv") / "server.log") as srv:
        yield srv


def client_config(server: LocalServer, robot: RobotConfig, **extra: object) -> ClientConfig:
    data: dict = {"network": {"host": server.host, "port": server.port}, "robot": robot.model_dump(),
                  "log": {"print_summary": False, "live_status": False}, "stop_on_success": False, **extra}
    return build_config(ClientConfig, data)


def test_units_match_lerobots_own_normalisation() -> None:
    """Our calibration-derived scale against LeRobot's MotorsBus._normalize, both modes, both drive modes."""
    rng = np.random.default_rng(0)
    for mode, drive in [(MotorNormMode.DEGREES, 0), (MotorNormMode.RANGE_M100_100, 0), (MotorNormMode.RANGE_M100_100, 1)]:
        cal = {"j": MotorCalibration(id=1, drive_mode=drive, homing_offset=0, range_min=900, range_max=3100)}
        bus = SimMotorsBus({"j": Motor(1, "sts3215", mode)}, cal, arm=None)
        units = joint_units({"j": (mode.value, 4096)}, cal, ["j.pos"], "radians")
        for tick in rng.integers(900, 3101, size=20):
            native = bus._normalize({1: int(tick)})[1]
            expected = (-1 if drive else 1) * (tick - 2000) * TWO_PI_PER_TICK
            assert units.to_spec({"j.pos": native})[0] == pytest.approx(expected, abs=1e-9), (mode, drive, tick)
            assert units.to_native(units.to_spec({"j.pos": native}))["j.pos"] == pytest.approx(native)


@pytest.mark.timeout(120)
def test_adapter_reads_and_commands_the_sim_arm_in_both_unit_systems() -> None:
    for units, step in (("radians", 0.1), ("native", np.degrees(0.1))):
        robot = make_robot(sim_robot_config(units=units))
        robot.connect()
        try:
            sim_state = robot.lerobot.arm.get_observation(with_images=False).state
            got = robot.get_observation(with_images=False).state
            expect = sim_state if units == "radians" else np.r_[np.degrees(sim_state[:5]), sim_state[5] * 100]
            np.testing.assert_allclose(got, expect, atol=(TWO_PI_PER_TICK if units == "radians" else 0.1))
            target = got + np.r_[step, np.zeros(5)]
            applied = robot.send_action(target)
            np.testing.assert_allclose(applied, target, atol=abs(step) * 0.02)
            sim_cmd = robot.lerobot.arm.commanded_action()
            assert sim_cmd[0] == pytest.approx(sim_state[0] + 0.1, abs=2 * TWO_PI_PER_TICK)
        finally:
            robot.disconnect()


@pytest.mark.timeout(240)
def test_client_runs_a_task_end_to_end_on_the_lerobot_sim(server: LocalServer, capsys, tmp_path: Path) -> None:
    rc = client_main([
        "--robot.kind=lerobot", "--robot.lerobot.type=vla_sim_follower", "--robot.lerobot.units=radians",
        "--robot.lerobot.task=reach_jump", "--robot.lerobot.sim_cameras=[]", f"--network.port={server.port}",
        "--duration_s=40", "--log.live_status=false", f"--log.path={tmp_path / 'ticks.jsonl'}",
    ])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "robot lerobot:vla_sim_follower" in out.out and re.search(r"task_success\s+True", out.out), out.out
    assert "request latency" in out.out and "stopped (" in out.out and "at rest" in out.out


@pytest.mark.timeout(120)
def test_joint_order_mismatch_is_one_clear_error(server: LocalServer, capsys) -> None:
    order = ["shoulder_lift.pos", "shoulder_pan.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]
    rc = client_main([
        "--robot.kind=lerobot", "--robot.lerobot.type=vla_sim_follower", "--robot.lerobot.units=radians",
        "--robot.lerobot.sim_cameras=[]", f"--robot.lerobot.joint_order=[{','.join(order)}]",
        f"--network.port={server.port}", "--duration_s=5", "--log.live_status=false",
    ])
    err = capsys.readouterr().err
    assert rc == 1 and "same names in a different order" in err and "Traceback" not in err, err


@pytest.mark.timeout(120)
def test_bad_lerobot_config_names_the_field(capsys) -> None:
    rc = client_main(["--robot.kind=lerobot", "--robot.lerobot.type=vla_sim_follower", "--robot.lerobot.bogus=1"])
    err = capsys.readouterr().err
    assert rc == 2 and "bogus" in err and "LeRobot rejected" in err, err
    rc = client_main(["--robot.kind=lerobot", "--robot.lerobot.type=so101_follower"])
    err = capsys.readouterr().err
    assert rc == 2 and "port" in err, err


@pytest.mark.timeout(120)
def test_dry_run_sends_nothing_to_the_lerobot_robot(server: LocalServer) -> None:
    cfg = sim_robot_config(task="track").model_copy(update={"dry_run": True})
    robot = make_robot(cfg)
    robot.connect()
    try:
        before = robot.get_observation(with_images=False).state
        summary = RealTimeClient(client_config(server, cfg), robot).run(duration_s=3.0)
        after = robot.get_observation(with_images=False).state
    finally:
        robot.disconnect()
    assert robot.inner.lerobot.actions_sent == 0  # LeRobot's send_action was never called
    assert summary.chunks_received >= 1 and robot.commands >= summary.ticks > 0
    moves = np.abs(np.diff(np.asarray(robot.would_send)[:, :5], axis=0)).max()
    assert moves > 1e-3  # the policy did ask for motion
    np.testing.assert_allclose(after, before, atol=1e-6)


@pytest.mark.timeout(120)
def test_controlled_stop_then_release_through_lerobot(server: LocalServer) -> None:
    cfg = sim_robot_config(task="track", disable_torque_on_disconnect=False).model_copy(update={"on_stop": "release"})
    robot = make_robot(cfg)
    client = RealTimeClient(client_config(server, cfg, safety={"rest_deceleration": 3.0}), robot)
    robot.connect()
    try:
        stop_once_moving(client)
        client.run(duration_s=30.0)
        out = client.stop_outcome
        assert out is not None and out.at_rest and out.ticks >= 2 and out.torque == "released", out
        assert robot.lerobot.bus.torque_enabled is False
    finally:
        robot.disconnect()


@pytest.mark.timeout(120)
def test_robot_error_ends_with_a_clear_message_and_torque_per_config(server: LocalServer, capsys) -> None:
    rc = client_main([
        "--robot.kind=lerobot", "--robot.lerobot.type=vla_sim_follower", "--robot.lerobot.units=radians",
        "--robot.lerobot.task=track", "--robot.lerobot.sim_cameras=[]", "--robot.lerobot.fail_after_actions=45",
        "--robot.on_stop=release", f"--network.port={server.port}", "--duration_s=20", "--log.live_status=false",
    ])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err, err
    assert "stopped (error in the control loop: ConnectionError: simulated bus fault" in err
    assert "the robot failed during the stop" in err and "torque released" in err


@pytest.mark.timeout(60)
def test_max_relative_target_and_disable_torque_on_disconnect_are_lerobots() -> None:
    robot = make_robot(sim_robot_config(units="native", max_relative_target=2.0))
    robot.connect()
    present = robot.get_observation(with_images=False).state
    applied = robot.send_action(present + np.r_[20.0, np.zeros(5)])  # 20° asked, LeRobot clips to 2°
    assert applied[0] == pytest.approx(present[0] + 2.0, abs=0.1)
    robot.disconnect()
    assert robot.lerobot.bus.torque_enabled is False  # LeRobot's default: torque off on disconnect
    keep = make_robot(sim_robot_config(disable_torque_on_disconnect=False))
    keep.connect()
    keep.disconnect()
    assert keep.lerobot.bus.torque_enabled is True


@pytest.mark.timeout(120)
def test_so101_preset_dry_runs_on_the_sim_arm_in_degrees(server: LocalServer, capsys) -> None:
    """The shipped SO-101 follower preset (degrees, its safety limits) in shadow mode on the simulated follower."""
    rc = client_main([
        "--config", "robots/so101_follower", "--robot.lerobot.type=vla_sim_follower", "--robot.lerobot.cameras=null",
        "--robot.lerobot.sim_cameras=[]", "--robot.dry_run=true", "--network.image_encoding=raw",
        f"--network.port={server.port}", "--duration_s=2", "--log.live_status=false",
    ])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "robot lerobot:vla_sim_follower" in out.out and "commands logged, none sent" in out.out
