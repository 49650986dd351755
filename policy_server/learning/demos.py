"""Read a recorded LeRobotDataset v3 folder (as `vla-async record` writes it) into memory for training.

Images are decoded from the mp4 files once (uint8, [N, H, W, 3] per camera): a 200-episode 64 px
reach_jump dataset with two cameras is ~1.2 GB. One ffmpeg process decodes all of a camera's episode
files in a row (concat demuxer): starting a process per file cost more CPU than decoding. The privileged environment state is read too, but
only the label relabelling uses it; it is never a policy input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STATE, ACTION, ENV = "observation.state", "action", "observation.environment_state"
IMAGE_PREFIX = "observation.images."


@dataclass(eq=False)
class Demos:
    fps: float
    state_names: list[str]
    cameras: list[str]
    states: np.ndarray  # [N, S] float32
    actions: np.ndarray  # [N, A] float32 (the recorded clean expert actions)
    environment_states: np.ndarray  # [N, E] float32
    images: dict[str, np.ndarray]  # camera -> [N, H, W, 3] uint8
    episode: np.ndarray  # [N] episode index of each frame
    episode_end: np.ndarray  # [N] one past the last frame of the frame's episode (global index)
    instructions: list[str]  # per frame
    # the scenes the episodes were recorded in: sim task -> seeds ("*": a recording that did not name its task);
    # empty for datasets recorded elsewhere. The model card keeps them so an evaluation can tell held-out seeds.
    scene_seeds: dict[str, list[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def image_size(self) -> int:
        return int(next(iter(self.images.values())).shape[1]) if self.images else 0

    def episodes(self) -> np.ndarray:
        return np.unique(self.episode)


def load_demos(root: str | Path, cameras: Sequence[str] | None = None, max_episodes: int | None = None) -> Demos:
    import pandas as pd
    import pyarrow.parquet as pq

    root = Path(root)
    info = _read_info(root)
    cameras = _cameras(root, info, cameras)
    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    episodes = sorted(episodes, key=lambda e: e["episode_index"])[:max_episodes]
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    task_of = {int(i): str(t) for t, i in zip(tasks.index, tasks["task_index"], strict=True)}
    per_episode = [_read_columns(root, info, ep) for ep in episodes]
    parts = {k: np.concatenate([e[k] for e in per_episode]) for k in per_episode[0]}
    lengths = np.array([len(e[STATE]) for e in per_episode])
    for cam in cameras:
        parts[IMAGE_PREFIX + cam] = np.concatenate(camera_frames(root, info, episodes, cam, lengths))
    return Demos(
        fps=float(info["fps"]), state_names=list(info["features"][STATE]["names"]), cameras=cameras,
        states=parts[STATE].astype(np.float32), actions=parts[ACTION].astype(np.float32),
        environment_states=parts[ENV].astype(np.float32),
        images={c: parts[IMAGE_PREFIX + c] for c in cameras}, episode=parts["episode_index"].astype(np.int64),
        episode_end=np.repeat(np.cumsum(lengths), lengths),
        instructions=[task_of[int(i)] for i in parts["task_index"]], scene_seeds=_scene_seeds(episodes),
    )


def _scene_seeds(episodes: Sequence[dict]) -> dict[str, list[int]]:
    """Sim task -> the seeds of the episodes our recorder wrote (`vla_async/seed`, `vla_async/sim_task`)."""
    scenes: dict[str, list[int]] = {}
    for ep in episodes:
        if ep.get("vla_async/seed") is not None:
            scenes.setdefault(str(ep.get("vla_async/sim_task") or "*"), []).append(int(ep["vla_async/seed"]))
    return scenes


def load_datasets(roots: str | Path | Sequence[str | Path], cameras: Sequence[str] | None = None,
                  max_episodes: int | None = None) -> Demos:
    """One or more datasets (a comma-separated string or a list of folders) as one `Demos`, e.g. expert
    demonstrations plus DAgger recordings; episodes are renumbered in order and must agree on fps, state
    names, cameras and image size. `max_episodes` applies to each dataset."""
    if isinstance(roots, str):
        roots = [r for r in roots.split(",") if r]
    elif isinstance(roots, Path):
        roots = [roots]
    parts = [load_demos(r, cameras, max_episodes) for r in roots]
    if not parts:
        raise ValueError("no dataset given")
    first = parts[0]
    for root, d in zip(roots, parts, strict=True):
        if (d.fps, d.state_names, d.cameras, d.image_size) != (first.fps, first.state_names, first.cameras, first.image_size):
            raise ValueError(f"dataset {root} does not match the first (fps, state names, cameras, image size): "
                             f"{(d.fps, d.state_names, d.cameras, d.image_size)} vs "
                             f"{(first.fps, first.state_names, first.cameras, first.image_size)}")
    if len(parts) == 1:
        return first
    episode_base = np.cumsum([0] + [len(d.episodes()) for d in parts[:-1]])
    frame_base = np.cumsum([0] + [len(d) for d in parts[:-1]])
    renumbered = [np.unique(d.episode, return_inverse=True)[1] + b for d, b in zip(parts, episode_base, strict=True)]
    return Demos(
        fps=first.fps, state_names=first.state_names, cameras=first.cameras,
        states=np.concatenate([d.states for d in parts]), actions=np.concatenate([d.actions for d in parts]),
        environment_states=np.concatenate([d.environment_states for d in parts]),
        images={c: np.concatenate([d.images[c] for d in parts]) for c in first.cameras},
        episode=np.concatenate(renumbered).astype(np.int64),
        episode_end=np.concatenate([d.episode_end + b for d, b in zip(parts, frame_base, strict=True)]),
        instructions=[t for d in parts for t in d.instructions],
        scene_seeds={task: [s for d in parts for s in d.scene_seeds.get(task, [])]
                     for task in dict.fromkeys(t for d in parts for t in d.scene_seeds)},
    )


def _cameras(root: Path, info: dict, cameras: Sequence[str] | None) -> list[str]:
    """The requested cameras (default: all recorded), each checked to be in the dataset."""
    recorded = [k[len(IMAGE_PREFIX):] for k, f in info["features"].items() if f["dtype"] == "video"]
    chosen = list(recorded if cameras is None else cameras)
    missing = sorted(set(chosen) - set(recorded))
    if missing:
        raise ValueError(f"dataset {root} has no camera(s) {missing}; it has {recorded}")
    return chosen


def _read_info(root: Path) -> dict:
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{root} is not a LeRobot dataset: no meta/info.json")
    return json.loads(info_path.read_text())


def _read_columns(root: Path, info: dict, ep: dict) -> dict[str, np.ndarray]:
    """One episode's columns (keyed by feature name)."""
    import pyarrow.parquet as pq

    table = pq.read_table(root / info["data_path"].format(chunk_index=ep["data/chunk_index"],
                                                         file_index=ep["data/file_index"]))
    return {k: np.asarray(table.column(k).to_pylist()) for k in (STATE, ACTION, ENV, "task_index", "episode_index")}


def camera_frames(root: Path, info: dict, episodes: Sequence[dict], cam: str, lengths: np.ndarray) -> list[np.ndarray]:
    """Each episode's frames of one camera, cut to the episode's length: all files decoded by one ffmpeg
    process when their frame counts add up, else file by file."""
    key = IMAGE_PREFIX + cam
    paths = [root / info["video_path"].format(video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"],
                                              file_index=ep[f"videos/{key}/file_index"]) for ep in episodes]
    frames = decode_videos(paths)
    if len(frames) == int(lengths.sum()):
        return np.split(frames, np.cumsum(lengths)[:-1])
    out = []
    for path, n in zip(paths, lengths, strict=True):
        video = decode_video(path)
        if len(video) < n:
            raise ValueError(f"{path} has {len(video)} frames, its episode {n}")
        out.append(video[:n])
    return out


def decode_videos(paths: Sequence[Path]) -> np.ndarray:
    """All frames of several mp4 files, in order, as [T, H, W, 3] uint8 (one ffmpeg process)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("".join(f"file '{Path(p).resolve()}'\n" for p in paths))
        listing.flush()
        return decode_video(Path(listing.name), ["-f", "concat", "-safe", "0"])


def decode_video(path: Path, input_params: Sequence[str] = ()) -> np.ndarray:
    """All frames of an mp4 as [T, H, W, 3] uint8 (every decoded frame: no frame-rate conversion)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", input_params=list(input_params),
                                        output_params=["-threads", "1", "-fps_mode", "passthrough"])
    meta = reader.__next__()
    w, h = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in reader]
    return np.stack(frames)
