"""Controlled stop and dry run on the real-time sim arm against a real expert server on 127.0.0.1:
Ctrl-C (stop()), an exception in the loop and a lost server all end with the arm decelerated to rest
through the safety layer; a dry run never calls the robot's send_action."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")

from robot_client.controlled_stop import ServerLostError  # noqa: E402
from robot_client.dry_run import DryRunRobot  # noqa: E402
from robot_client.loop import RealTimeClient  # noqa: E402
from robot_client.robots import make_robot_from_config  # noqa: E402
from tests.client_stop import stop_once_moving  # noqa: E402
from vla_async.config import ClientConfig, RobotConfig, build_config  # noqa: E402
from vla_async.local_server import LocalServer, backend_args  # noqa: E402
from vla_async.robot import Robot, RobotObservation  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FPS = 30.0
ROBOT = RobotConfig(kind="sim", task="track", fps=FPS, render=False, cameras=[])
REST_DECELERATION = 3.0  # rad/s²: slow enough that stopping a moving arm takes several ticks


class Recording(Robot):
    """Passes everything to `inner`, records what was sent; get_observation fails after `fail_after` reads."""

    def __init__(self, inner: Robot, fail_after: int | None = None) -> None:
        self.inner, self.fail_after, self.reads = inner, fail_after, 0
        self.sent: list[np.ndarray] = []
        self.instruction = inner.instruction

    @property
    def spec(self):
        return self.inner.spec

    def connect(self) -> None:
        self.inner.connect()

    def disconnect(self) -> None:
        self.inner.disconnect()

    def get_observation(self, with_images: bool = True) -> RobotObservation:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise RuntimeError("camera cable pulled")
        return self.inner.get_observation(with_images)

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self.sent.append(np.array(action, copy=True))
        return self.inner.send_action(action)


def config(server: LocalServer, **extra: object) -> ClientConfig:
    data: dict = {
        "network": {"host": server.host, "port": server.port, "request_timeout_s": 1.0,
                    "heartbeat_interval_s": 0.1, "heartbeat_timeout_s": 0.5},
        "robot": ROBOT.model_dump(), "strategy": {"preset": "vlash_rail"},
        "safety": {"watchdog_timeout_s": 5.0, "rest_deceleration": REST_DECELERATION, "server_lost_stop_s": 0.5},
        "log": {"print_summary": False, "live_status": False}, "stop_on_success": False,
    }
    data.update(extra)
    return build_config(ClientConfig, data)


def assert_decelerated_to_rest(sent: list[np.ndarray], stop_ticks: int) -> None:
    """The stop's commands: speed never grows, each tick's change within rest_deceleration·dt, still at the end."""
    assert stop_ticks >= 2, "the arm was not moving when stopped: the test proves nothing"
    cmds = np.asarray(sent[-stop_ticks - 1:])[:, :5]  # arm joints (the gripper is stepwise)
    vel = np.diff(cmds, axis=0) * FPS
    assert np.all(np.abs(np.diff(vel, axis=0)) <= REST_DECELERATION / FPS * 1.0001 + 1e-9)
    assert np.all(np.abs(vel[-1]) <= REST_DECELERATION / FPS + 1e-9)
    np.testing.assert_allclose(sent[-1], sent[-2], atol=REST_DECELERATION / FPS / FPS + 1e-9)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    robot = make_robot_from_config(ROBOT)
    log = tmp_path_factory.mktemp("server") / "server.log"
    with LocalServer(backend_args("expert", robot.spec), log_path=log) as srv:
        yield srv


@pytest.mark.timeout(120)
def test_stop_request_decelerates_to_rest_then_holds(server: LocalServer) -> None:
    robot = Recording(make_robot_from_config(ROBOT))
    client = RealTimeClient(config(server), robot)
    with robot:
        stop_once_moving(client)
        client.run(duration_s=30.0)
    out = client.stop_outcome
    assert out is not None and out.reason == "stop requested (Ctrl-C)" and out.at_rest and out.torque == "held"
    assert_decelerated_to_rest(robot.sent, out.ticks)
    assert "at rest after" in out.message()


@pytest.mark.timeout(120)
def test_exception_in_the_loop_still_brings_the_arm_to_rest(server: LocalServer) -> None:
    robot = Recording(make_robot_from_config(ROBOT), fail_after=int(2.5 * FPS))
    client = RealTimeClient(config(server, robot={**ROBOT.model_dump(), "on_stop": "release"}), robot)
    with robot, pytest.raises(RuntimeError, match="camera cable pulled"):
        client.run(duration_s=30.0)
    out = client.stop_outcome
    assert out is not None and out.reason == "error in the control loop: RuntimeError: camera cable pulled"
    assert out.at_rest and out.torque == "held (release not supported by this robot)"
    assert_decelerated_to_rest(robot.sent, out.ticks)


@pytest.mark.timeout(120)
def test_lost_server_ends_the_run_with_the_arm_at_rest(tmp_path: Path) -> None:
    robot = Recording(make_robot_from_config(ROBOT))
    with LocalServer(backend_args("expert", robot.spec), log_path=tmp_path / "server.log") as srv:
        client = RealTimeClient(config(srv), robot)
        timer = threading.Timer(2.5, srv.kill)
        with robot, pytest.raises(ServerLostError, match="lost the policy server"):
            timer.start()
            client.run(duration_s=30.0)
    out = client.stop_outcome
    assert out is not None and out.reason.startswith("lost the policy server") and out.at_rest


@pytest.mark.timeout(120)
def test_dry_run_never_sends(server: LocalServer) -> None:
    recording = Recording(make_robot_from_config(ROBOT))
    robot = DryRunRobot(recording)
    client = RealTimeClient(config(server), robot)
    with robot:
        summary = client.run(duration_s=2.0)
    assert recording.sent == []  # nothing reached the robot, not even the controlled stop
    assert client.stop_outcome is not None and client.stop_outcome.torque == "untouched (dry run)"
    assert summary.chunks_received >= 1 and robot.commands >= summary.ticks > 0
    assert len(robot.would_send) == min(robot.commands, 1000)
