"""DAgger recordings (`vla-async record --policy P --beta B`): a learned policy drives, the expert labels.

CI-sized: 2 short expert episodes → a policy trained 3 steps → 2 short DAgger episodes; what the arm executed
is the policy's chunk (β = 0) or the expert's (β = 1); the two recordings train as one dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("mujoco")
pytest.importorskip("pyarrow")

from vla_async.cli import main as cli_main  # noqa: E402

pytestmark = [pytest.mark.integration]
SIZE, TASK, SEED = 32, "pick_place", 11


def _record(out, *extra) -> int:
    return cli_main(["record", "--task", TASK, "--episodes", "2", "--workers", "1", "--seed", str(SEED), "--out",
                     str(out), "--cameras", "front", "--image-size", str(SIZE), "--max-seconds", "0.5",
                     "--noise-std", "0", *extra])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(expert demos, ONNX policy trained a few steps on them)."""
    root = tmp_path_factory.mktemp("dagger")
    assert _record(root / "demos") == 0
    run = root / "run"
    assert cli_main(["train", "--dataset", str(root / "demos"), "--out", str(run), "--steps", "3", "--batch-size", "4",
                     "--chunk-length", "10", "--head", "regression", "--no-progress"]) == 0
    onnx = run / "onnx" / "policy.onnx"
    assert cli_main(["export-onnx", "--backend", "torch", "--path", str(run / "policy.pt"), "--out", str(onnx)]) == 0
    return root / "demos", onnx


def _episodes(root) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()


def _first_action(root) -> np.ndarray:
    from policy_server.learning.demos import load_demos

    return load_demos(root).actions[0]


def _policy_chunks(onnx, first_command: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """The policy's chunk for the first frame of episode 0 (the same seed renders the same scene), and with
    `first_command`, its chunks for the second frame given the measured state and given that command."""
    import sim
    from policy_server.backend import PolicyInput, create_backend
    from vla_async.config import BackendConfig

    robot = sim.make_robot(TASK, mode="virtual", seed=SEED, cameras=("front",), image_size=(SIZE, SIZE))
    robot.connect()
    try:
        backend = create_backend(BackendConfig(name="onnx", path=str(onnx)))
        obs = robot.get_observation(with_images=True)
        first = backend.infer([PolicyInput(state=obs.state, images=obs.images, task=robot.instruction)])[0]
        if first_command is None:
            return (first,)
        robot.send_action(first_command)
        robot.step_tick()
        obs = robot.get_observation(with_images=True)
        given = [PolicyInput(state=s, images=obs.images, task=robot.instruction) for s in (obs.state, first_command)]
        return (first, *backend.infer(given))
    finally:
        robot.disconnect()


@pytest.mark.timeout(300)
def test_the_policy_drives_at_beta_0_and_the_expert_at_beta_1(recorded, tmp_path):
    demos, onnx = recorded
    assert _record(tmp_path / "b0", "--policy", str(onnx), "--beta", "0") == 0
    assert _record(tmp_path / "b1", "--policy", str(onnx), "--beta", "1") == 0
    assert [e["vla_async/expert_fraction"] for e in _episodes(tmp_path / "b0")] == [0.0, 0.0]
    assert [e["vla_async/expert_fraction"] for e in _episodes(tmp_path / "b1")] == [1.0, 1.0]
    policy_action = _policy_chunks(onnx)[0][0]
    np.testing.assert_allclose(_first_action(tmp_path / "b0"), policy_action, atol=1e-5)  # the executed command
    np.testing.assert_allclose(_first_action(tmp_path / "b1"), _first_action(demos), atol=1e-6)  # the expert's
    assert not np.allclose(policy_action, _first_action(demos), atol=1e-3)  # a 3-step policy is not the expert


@pytest.mark.timeout(300)
def test_every_tick_the_policy_is_given_the_last_command_or_the_measured_state(recorded, tmp_path):
    from policy_server.learning.demos import load_demos

    _, onnx = recorded
    for condition in ("command", "measured"):
        assert _record(tmp_path / condition, "--policy", str(onnx), "--replan-every", "1",
                       "--policy-state", condition) == 0
    by_command, by_measured = load_demos(tmp_path / "command").actions, load_demos(tmp_path / "measured").actions
    np.testing.assert_allclose(by_command[0], by_measured[0], atol=1e-6)  # no command before the first tick
    first, from_measured, from_command = _policy_chunks(onnx, by_command[0])
    np.testing.assert_allclose(by_command[0], first[0], atol=1e-5)
    np.testing.assert_allclose(by_command[1], from_command[0], atol=1e-5)  # a new chunk every tick, row 0 executed
    np.testing.assert_allclose(by_measured[1], from_measured[0], atol=1e-5)
    assert not np.allclose(from_command[0], from_measured[0], atol=1e-4)


@pytest.mark.timeout(300)
def test_with_a_delay_the_arm_holds_then_uses_the_delayed_chunk_from_the_row_for_now(recorded, tmp_path):
    from policy_server.learning.demos import load_demos

    _, onnx = recorded
    assert _record(tmp_path / "late", "--policy", str(onnx), "--replan-every", "1", "--policy-delay-ticks", "3") == 0
    demos = load_demos(tmp_path / "late")
    (first,) = _policy_chunks(onnx)
    for tick in range(3):  # start-up: the first chunk is not there yet
        np.testing.assert_allclose(demos.actions[tick], demos.states[0], atol=1e-6)
    np.testing.assert_allclose(demos.actions[3], first[3], atol=1e-5)  # captured at tick 0, row 3 is for tick 3
    assert not np.allclose(demos.actions[3], first[0], atol=1e-4)


@pytest.mark.timeout(300)
def test_with_a_lag_the_chunk_is_placed_lag_ticks_before_its_capture_tick_as_lag_rail_places_it(recorded, tmp_path):
    from policy_server.learning.demos import load_demos

    _, onnx = recorded
    assert _record(tmp_path / "lagged", "--policy", str(onnx), "--replan-every", "1", "--policy-state", "measured",
                   "--policy-delay-ticks", "3", "--policy-lag-ticks", "2") == 0
    demos = load_demos(tmp_path / "lagged")
    (first,) = _policy_chunks(onnx)
    np.testing.assert_allclose(demos.actions[2], demos.states[0], atol=1e-6)  # still holding at tick 2
    np.testing.assert_allclose(demos.actions[3], first[5], atol=1e-5)  # captured at tick 0, row 0 is tick -2
    assert not np.allclose(demos.actions[3], first[3], atol=1e-4)


def test_a_lag_needs_the_measured_state(recorded, tmp_path, capsys):
    _, onnx = recorded
    assert _record(tmp_path / "bad", "--policy", str(onnx), "--policy-lag-ticks", "2") != 0
    assert "--policy-lag-ticks needs --policy-state measured" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_demos_and_dagger_recordings_train_as_one_dataset(recorded, tmp_path, capsys):
    from policy_server.learning.demos import load_datasets, load_demos

    demos, onnx = recorded
    assert _record(tmp_path / "dagger", "--policy", str(onnx), "--beta", "0.5") == 0
    both = load_datasets(f"{demos},{tmp_path / 'dagger'}")
    a, b = load_demos(demos), load_demos(tmp_path / "dagger")
    assert len(both) == len(a) + len(b) and list(np.unique(both.episode)) == [0, 1, 2, 3]
    np.testing.assert_array_equal(both.images["front"][len(a):], b.images["front"])
    np.testing.assert_array_equal(both.episode_end[len(a):], b.episode_end + len(a))
    assert both.episode_end[-1] == len(both) and both.instructions[len(a):] == b.instructions
    capsys.readouterr()
    assert cli_main(["train", "--dataset", f"{demos},{tmp_path / 'dagger'}", "--out", str(tmp_path / "run"),
                     "--steps", "2", "--batch-size", "4", "--chunk-length", "10", "--head", "regression",
                     "--labels", "expert", "--no-progress"]) == 0
    assert "train: 4 episodes" in capsys.readouterr().out
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert str(tmp_path / "dagger") in json.dumps(log)


def test_a_missing_policy_or_a_bad_beta_is_a_one_line_error(tmp_path, capsys):
    assert _record(tmp_path / "x", "--policy", str(tmp_path / "nope.onnx")) == 2
    assert "is not a file" in capsys.readouterr().err
    (tmp_path / "p.onnx").write_bytes(b"")
    assert _record(tmp_path / "y", "--policy", str(tmp_path / "p.onnx"), "--beta", "1.5") == 2
    assert "--beta must be in [0, 1]" in capsys.readouterr().err
    assert _record(tmp_path / "z", "--policy", str(tmp_path / "p.onnx")) == 2
    err = capsys.readouterr().err
    assert "--policy" in err and "p.onnx" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "z").exists()


def test_a_policy_that_does_not_fit_the_recording_is_refused(recorded, tmp_path, capsys):
    _, onnx = recorded
    assert _record(tmp_path / "a", "--policy", str(onnx), "--replan-every", "11") == 2  # chunk length 10
    assert "--replan-every must be <= the policy's chunk length 10, got 11" in capsys.readouterr().err
    assert _record(tmp_path / "b", "--policy", str(onnx), "--cameras", "wrist") == 2
    assert "--policy needs camera(s) ['front'] at 32 px; recording ['wrist'] at 32 px" in capsys.readouterr().err


def test_datasets_that_do_not_match_are_refused(recorded, tmp_path):
    from policy_server.learning.demos import load_datasets

    demos, _ = recorded
    assert cli_main(["record", "--task", TASK, "--episodes", "1", "--workers", "1", "--out", str(tmp_path / "big"),
                     "--cameras", "front", "--image-size", "16", "--max-seconds", "0.2"]) == 0
    with pytest.raises(ValueError, match="does not match the first"):
        load_datasets([demos, tmp_path / "big"])


@pytest.mark.timeout(300)
def test_relabelling_in_worker_processes_gives_the_same_labels(recorded):
    from policy_server.learning.demos import load_demos
    from policy_server.learning.labels import expert_chunks

    demos = load_demos(recorded[0])
    offsets = np.linspace(0.0, 0.2, len(demos))
    args = (demos.states, demos.environment_states, demos.instructions, 10, demos.fps, offsets)
    serial, parallel = expert_chunks(*args), expert_chunks(*args, workers=2)
    assert serial.shape == (len(demos), 10, 6)
    np.testing.assert_array_equal(parallel, serial)
