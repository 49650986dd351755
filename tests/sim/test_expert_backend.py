import numpy as np
import pytest

import sim
from policy_server.backend import BackendError, PolicyInput, create_backend
from sim.experts import ExpertPolicy
from sim.tasks.layout import ENV_STATE_DIM
from vla_async.config import BackendConfig
from vla_async.specs import check_compatible


def test_spec_matches_the_sim_robot_for_every_task():
    backend = create_backend(BackendConfig(name="expert", chunk_length=25))
    assert backend.spec.chunk_length == 25
    for task in ("reach_jump", "track", "pick_place"):
        check_compatible(sim.make_robot(task, cameras=("front",), render=False).spec, backend.spec)


def test_one_backend_serves_every_task_and_uses_the_conditioning_state():
    backend = create_backend(BackendConfig(name="expert", options={"chunk_length": 30, "fps": 30.0}))
    backend.warmup()
    batch, robots = [], []
    for task in ("reach_jump", "track", "pick_place"):
        robot = sim.make_robot(task, seed=1, cameras=(), render=False)
        obs = robot.get_observation(with_images=False)
        batch.append(PolicyInput(state=obs.state, task=robot.instruction, environment_state=obs.environment_state))
        robots.append(robot)
    chunks = backend.infer(batch)
    assert [c.shape for c in chunks] == [(30, 6)] * 3 and all(c.dtype == np.float32 for c in chunks)
    assert not np.allclose(chunks[0], chunks[2])
    moved = PolicyInput(state=batch[0].state + np.float32(0.2), task=batch[0].task,
                        environment_state=batch[0].environment_state)
    assert not np.allclose(backend.infer([moved])[0][0], chunks[0][0])


def test_errors_are_backend_errors():
    with pytest.raises(BackendError, match="unknown options"):
        create_backend(BackendConfig(name="expert", options={"bogus": 1}))
    backend = create_backend(BackendConfig(name="expert"))
    with pytest.raises(BackendError, match="environment_state"):
        backend.infer([PolicyInput(state=np.zeros(6, np.float32))])
    env = np.zeros(ENV_STATE_DIM, np.float32)
    env[2] = 1.0  # pick_place
    with pytest.raises(BackendError, match="name a cube"):
        backend.infer([PolicyInput(state=np.zeros(6, np.float32), environment_state=env, task="dance")])


def test_exec_offset_reaches_the_expert():
    robot = sim.make_robot("track", seed=3, cameras=(), render=False)
    for _ in range(5):  # the target's motion is known only from earlier frames
        robot.step_tick()
    obs = robot.get_observation(with_images=False)
    backend = create_backend(BackendConfig(name="expert", chunk_length=20))
    item = PolicyInput(state=obs.state, task=robot.instruction, environment_state=obs.environment_state)
    later = PolicyInput(**{**item.__dict__, "exec_offset_s": 0.3})
    (now_chunk, later_chunk) = backend.infer([item, later])
    expert = ExpertPolicy(chunk_length=20)
    np.testing.assert_array_equal(later_chunk, expert.plan(obs.state, obs.environment_state, robot.instruction, 0.3))
    assert not np.allclose(now_chunk, later_chunk)
    with pytest.raises(BackendError, match="exec_offset_s"):
        backend.infer([PolicyInput(**{**item.__dict__, "exec_offset_s": -1.0})])
