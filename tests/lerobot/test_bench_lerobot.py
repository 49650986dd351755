"""`vla-async bench lerobot`: the `vla_async` LeRobot policy plugin gives LeRobot's server the chunk our server
gives, from the same robot observation; the simulated follower without environment_state shows LeRobot's
RobotClient only features it handles; and a tiny bench (1 seed, short episode) runs both real stacks."""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytest.importorskip("mujoco")
pytest.importorskip("grpc")
os.environ.setdefault("MUJOCO_GL", "egl")

from lerobot.async_inference.helpers import (  # noqa: E402
    map_robot_keys_to_lerobot_features,
    raw_observation_to_observation,
)
from lerobot.policies.factory import get_policy_class, make_pre_post_processors  # noqa: E402

from lerobot_policy_vla_async.export import export_policy  # noqa: E402
from lerobot_robot_vla_sim import VlaSimFollower, VlaSimFollowerConfig  # noqa: E402
from robot_client.lerobot_robot import LeRobotRobot  # noqa: E402
from sim.lerobot_bench.compare import DEFAULT_MODEL, main, sim_native_to_policy_scale  # noqa: E402
from vla_async.config import RobotConfig  # noqa: E402
from vla_async.policy_input import PolicyInput  # noqa: E402

pytestmark = [pytest.mark.lerobot, pytest.mark.integration]


def follower(environment_state: bool = False) -> VlaSimFollower:
    return VlaSimFollower(VlaSimFollowerConfig(task="reach_jump", seed=1000, sim_cameras=["front", "wrist"],
                                               image_height=64, image_width=64, environment_state=environment_state))


def test_lerobot_client_sees_only_state_and_images_without_environment_state() -> None:
    assert set(map_robot_keys_to_lerobot_features(follower())) == {
        "observation.state", "observation.images.front", "observation.images.wrist"}
    # the obstacle: with it, LeRobot's client would send the privileged state as a 60-pixel "image"
    assert "observation.images.environment_state" in map_robot_keys_to_lerobot_features(follower(True))


def test_plugin_policy_in_lerobots_server_pipeline_gives_our_servers_chunk(tmp_path) -> None:
    folder = export_policy(DEFAULT_MODEL, tmp_path / "policy", sim_native_to_policy_scale())
    policy = get_policy_class("vla_async").from_pretrained(folder)
    pre, post = make_pre_post_processors(  # exactly as LeRobot's PolicyServer.SendPolicyInstructions does
        policy.config, pretrained_path=str(folder),
        preprocessor_overrides={"device_processor": {"device": "cpu"}, "rename_observations_processor": {"rename_map": {}}},
        postprocessor_overrides={"device_processor": {"device": "cpu"}})
    robot = follower()
    robot.connect()
    try:
        ours_robot = LeRobotRobot(robot, RobotConfig(kind="lerobot", fps=30.0, lerobot={"type": "vla_sim_follower",
                                                                                        "units": "radians"}))
        for _ in range(3):
            raw = {**robot.get_observation(), "task": robot.instruction}
            # LeRobot's server path: raw observation → its observation → preprocessor → policy → postprocessor
            obs = pre(raw_observation_to_observation(raw, map_robot_keys_to_lerobot_features(robot),
                                                     policy.config.image_features))
            chunk = policy.predict_action_chunk(obs)
            theirs = np.stack([post(chunk[:, i, :])[0].numpy() for i in range(chunk.shape[1])])
            # our server's path, same observation (the world moves on between two reads): our adapter's units →
            # PolicyInput → the ONNX backend → back to LeRobot units
            state = ours_robot.units.to_spec(raw).astype(np.float32)
            images = {c.name: np.asarray(raw[c.name]) for c in ours_robot.spec.cameras}
            ours = policy.backend.infer([PolicyInput(state=state, images=images, task=robot.instruction)])[0]
            ours = ours / ours_robot.units.scale
            assert theirs.shape == ours.shape == (50, 6)
            np.testing.assert_allclose(theirs, ours, atol=1e-2)  # degrees / gripper percent
            robot.send_action({k: float(v) for k, v in zip(robot.action_features, theirs[5], strict=True)})
    finally:
        robot.disconnect()


def test_clock_starts_at_first_read_and_the_episode_log_is_written_at_its_end(tmp_path) -> None:
    log = tmp_path / "episode.json"
    robot = VlaSimFollower(VlaSimFollowerConfig(task="reach_jump", seed=1000, sim_cameras=[], clock="first_read",
                                                episode_log=str(log), episode_s=0.3))
    robot.connect()
    try:
        import time

        time.sleep(0.5)
        assert robot.arm.time_s == 0.0  # connected, not yet read: the world waits
        pose = robot.get_observation()
        deadline = time.monotonic() + 30.0
        while not log.exists() and time.monotonic() < deadline:
            robot.send_action({k: pose[k] for k in robot.action_features})
            time.sleep(1 / 30)
    finally:
        robot.disconnect()
    data = json.loads(log.read_text())
    assert data["complete"] and data["sim_s"] >= 0.3 and len(data["commands"]) >= 3
    assert data["to_policy_scale"][0] == pytest.approx(math.pi / 180, rel=1e-9)


@pytest.mark.timeout(1200)
def test_tiny_bench_runs_both_real_stacks(tmp_path, capsys) -> None:
    out = tmp_path / "bench"
    rc = main(["--seeds", "1000", "--latency_ms", "100", "--episode_s", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    rows = {r["stack"]: r for r in json.loads((out / "results.json").read_text())}
    assert set(rows) == {"lerobot", "ours vlash_rail"}
    for row in rows.values():
        (ep,) = row["episodes"]
        assert ep["complete"] and ep["commands"] > 10 and ep["rate_hz"] > 0
    assert re.search(r"\| lerobot \| 100 \| [01]/1 \|", printed) and re.search(r"\| ours vlash_rail \| 100 \|", printed)
    server_log = (out / "100ms" / "lerobot_server.log").read_text()
    assert "SUPPORTED_POLICIES extended with 'vla_async'" in server_log
    totals = [float(x) for x in re.findall(r"Action chunk #\d+ generated \| Total time: ([\d.]+)ms", server_log)]
    assert totals and min(totals) >= 100.0  # the injected latency is in LeRobot's policy step
