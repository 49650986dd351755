"""A dataset written by `vla-async record`'s LeRobot v3 writer loads in LeRobot 0.4.4's own
`LeRobotDataset`: frames, states, actions, tasks, decoded video frames and chunked actions.

The LeRobot venv has no MuJoCo, so the episodes are synthetic: each video frame carries a bright
square whose position encodes the frame index, so a wrong timestamp or episode offset is visible.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytest.importorskip("imageio_ffmpeg")

from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from sim.recording.episode import Episode  # noqa: E402
from sim.recording.lerobot_v3 import LeRobotV3Writer, write_episode_videos  # noqa: E402

pytestmark = [pytest.mark.lerobot]
NAMES = [f"j{i}.pos" for i in range(6)]
SIZE, FPS = 32, 30.0
TASKS = ("touch the ball", "pick up the red cube and put it in the green zone")


def marked_frames(n: int, episode: int) -> np.ndarray:
    frames = np.full((n, SIZE, SIZE, 3), 40, np.uint8)
    for k in range(n):
        row, col = divmod(k + 7 * episode, 6)
        frames[k, 4 * row % SIZE: 4 * row % SIZE + 4, 4 * col: 4 * col + 4] = (250, 60, 200)
    return frames


def synthetic_episode(index: int, n: int) -> Episode:
    rng = np.random.default_rng(index)
    states = rng.normal(size=(n, 6)).astype(np.float32)
    return Episode(task="reach_jump", seed=index, instruction=TASKS[index % 2], fps=FPS, states=states,
                   actions=states + 0.1, environment_states=rng.normal(size=(n, 26)).astype(np.float32),
                   images={"front": marked_frames(n, index), "wrist": marked_frames(n, index)[:, ::-1].copy()},
                   success=True)


def square_at(image_chw: np.ndarray) -> tuple[int, int]:
    magenta = (image_chw[0] > 0.8) & (image_chw[1] < 0.5)
    rows, cols = np.nonzero(magenta)
    return int(rows.mean()) // 4, int(cols.mean()) // 4


@pytest.mark.timeout(120)
def test_lerobot_loads_a_recorded_dataset(tmp_path):
    # pyav: LeRobot's default decoder, torchcodec, needs the system FFmpeg libraries (libavutil.so.5x),
    # which this machine does not have; it fails the same way on any dataset.
    video_backend = "pyav"
    root = tmp_path / "demos"
    lengths = [12, 9, 15]
    writer = LeRobotV3Writer(root, fps=FPS, cameras=("front", "wrist"), image_size=SIZE, state_names=NAMES,
                             env_dim=26, robot_type="so101_sim")
    episodes = [synthetic_episode(i, n) for i, n in enumerate(lengths)]
    for i, ep in enumerate(episodes):
        states, actions = ep.states.copy(), ep.actions.copy()
        summary = write_episode_videos(root, ep, i)
        writer.add(summary, i)
        ep.states, ep.actions = states, actions
    writer.finalize()

    ds = LeRobotDataset("local/vla_async_recorded", root=root, video_backend=video_backend)
    assert ds.num_episodes == 3 and len(ds) == sum(lengths) and ds.fps == 30
    assert ds.meta.video_keys == ["observation.images.front", "observation.images.wrist"]
    assert set(ds.meta.tasks.index) == set(TASKS)
    for global_index in (0, 11, 12, 20, 21, 35):
        ep_index = int(np.searchsorted(np.cumsum(lengths), global_index, side="right"))
        k = global_index - sum(lengths[:ep_index])
        item = ds[global_index]
        assert int(item["episode_index"]) == ep_index and int(item["frame_index"]) == k
        np.testing.assert_allclose(item["observation.state"].numpy(), episodes[ep_index].states[k], atol=1e-6)
        np.testing.assert_allclose(item["action"].numpy(), episodes[ep_index].actions[k], atol=1e-6)
        assert item["task"] == TASKS[ep_index % 2]
        front = item["observation.images.front"].numpy()
        assert front.shape == (3, SIZE, SIZE)
        assert square_at(front) == divmod(k + 7 * ep_index, 6)  # the right frame of the right episode
    stats = ds.meta.stats
    assert stats["observation.state"]["mean"].shape == (6,)
    assert stats["observation.images.front"]["mean"].shape == (3, 1, 1)

    chunked = LeRobotDataset("local/vla_async_recorded", root=root, video_backend=video_backend,
                             delta_timestamps={"action": [i / FPS for i in range(5)]})
    item = chunked[12 + 7]  # episode 1, frame 7 of 9: the last 3 of the chunk are padding
    assert tuple(item["action"].shape) == (5, 6)
    assert item["action_is_pad"].tolist() == [False, False, True, True, True]
    np.testing.assert_allclose(item["action"][0].numpy(), episodes[1].actions[7], atol=1e-6)
