"""Write episodes as a LeRobotDataset v3.0 (the layout LeRobot 0.4.4 reads).

  meta/info.json                                   features, fps, paths, totals (codebase_version v3.0)
  meta/stats.json                                  per-feature stats over the whole dataset
  meta/tasks.parquet                               task string (index) -> task_index
  meta/episodes/chunk-000/file-000.parquet         one row per episode: length, tasks, where its data
                                                   and video frames are, stats/<feature>/<stat>
  data/chunk-CCC/file-FFF.parquet                  one row per frame
  videos/<camera key>/chunk-CCC/file-FFF.mp4       H.264, yuv444p, one keyframe every 2 frames

Each episode gets its own data and video files (file index = episode index within a chunk of 1000),
so parallel workers can encode videos independently; LeRobot finds every file through the episodes
table. Videos are encoded with the ffmpeg that imageio-ffmpeg ships (H.264, which LeRobot's
torchcodec and pyav decoders read); the parquet files need pyarrow and pandas (`vla-async[train]`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.recording.episode import Episode
from sim.recording.stats import aggregate, image_stats, to_jsonable, vector_stats

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
STATE, ACTION, ENV = "observation.state", "action", "observation.environment_state"
IMAGE_PREFIX = "observation.images."
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
VIDEO_CRF = 18
PIX_FMT = "yuv444p"  # full-resolution colour: at 64 px, 4:2:0 smears the small coloured targets


def chunk_file(episode_index: int) -> tuple[int, int]:
    return divmod(episode_index, CHUNKS_SIZE)


def video_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def encode_video(frames: np.ndarray, path: Path, fps: float) -> None:
    """[T, H, W, 3] uint8 → H.264 mp4 with frame k at k / fps."""
    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out=PIX_FMT, quality=None,
        macro_block_size=1, ffmpeg_log_level="error",
        output_params=["-g", "2", "-crf", str(VIDEO_CRF), "-preset", "veryfast", "-threads", "1"],
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


@dataclass(eq=False)
class EpisodeSummary:
    """What the dataset metadata needs from an episode once its videos are written (no images)."""

    episode: Episode  # with images dropped
    image_stats: dict[str, dict[str, np.ndarray]]


def write_episode_videos(root: Path, episode: Episode, episode_index: int) -> EpisodeSummary:
    """Encode the episode's cameras (run in a worker) and return it without images."""
    chunk, file = chunk_file(episode_index)
    stats = {}
    for cam, frames in episode.images.items():
        key = video_key(cam)
        encode_video(frames, root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file), episode.fps)
        stats[key] = image_stats(frames)
    episode.images = {cam: np.empty((0,)) for cam in episode.images}  # keep the camera names only
    return EpisodeSummary(episode, stats)


class LeRobotV3Writer:
    """Collects episodes in order (data parquet written at once) and writes the metadata in `finalize`."""

    def __init__(self, root: str | Path, *, fps: float, cameras: Sequence[str], image_size: int,
                 state_names: Sequence[str], env_dim: int, robot_type: str):
        self.root = Path(root)
        self.fps = fps
        self.cameras = tuple(cameras)
        self.image_size = int(image_size)
        self.state_names = list(state_names)
        self.env_dim = int(env_dim)
        self.robot_type = robot_type
        self.tasks: dict[str, int] = {}
        self.rows: list[dict] = []
        self.episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self.total_frames = 0
        if (self.root / "meta" / "info.json").exists():
            raise FileExistsError(f"{self.root} already holds a dataset; choose a new --out folder")

    def add(self, summary: EpisodeSummary, episode_index: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        ep = summary.episode
        if episode_index != len(self.rows):
            raise ValueError(f"episodes must be added in order: expected {len(self.rows)}, got {episode_index}")
        task_index = self.tasks.setdefault(ep.instruction, len(self.tasks))
        n = ep.length
        frame_index = np.arange(n, dtype=np.int64)
        columns = {
            STATE: ep.states, ACTION: ep.actions, ENV: ep.environment_states,
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(n, episode_index, np.int64),
            "index": self.total_frames + frame_index,
            "task_index": np.full(n, task_index, np.int64),
        }
        table = pa.table({k: _arrow_column(v) for k, v in columns.items()})
        chunk, file = chunk_file(episode_index)
        path = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)

        stats = {k: vector_stats(v) for k, v in columns.items()} | summary.image_stats
        self.episode_stats.append(stats)
        row = {"episode_index": episode_index, "tasks": [ep.instruction], "length": n,
               "data/chunk_index": chunk, "data/file_index": file,
               "dataset_from_index": self.total_frames, "dataset_to_index": self.total_frames + n}
        for cam in self.cameras:
            key = video_key(cam)
            row |= {f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": n / self.fps}
        row |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
        row |= {f"stats/{feat}/{name}": np.asarray(v).tolist() for feat, s in stats.items() for name, v in s.items()}
        row |= {"vla_async/sim_task": ep.task, "vla_async/seed": ep.seed, "vla_async/success": ep.success, "vla_async/noisy": ep.noisy,
                "vla_async/expert_fraction": ep.expert_fraction}
        self.rows.append(row)
        self.total_frames += n

    def finalize(self) -> Path:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            raise ValueError("no episodes to write")
        meta = self.root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.rows), self.root / EPISODES_PATH)
        pd.DataFrame({"task_index": list(self.tasks.values())}, index=list(self.tasks)).to_parquet(meta / "tasks.parquet")
        features = list(self.episode_stats[0])
        stats = {f: aggregate([s[f] for s in self.episode_stats]) for f in features}
        (meta / "stats.json").write_text(json.dumps(to_jsonable(stats), indent=4))
        (meta / "info.json").write_text(json.dumps(self.info(), indent=4))
        return self.root

    def info(self) -> dict:
        n = len(self.rows)
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": n,
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200,
            "fps": int(round(self.fps)),
            "splits": {"train": f"0:{n}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.cameras else None,
            "features": self.features(),
        }

    def features(self) -> dict:
        s = self.image_size
        feats: dict[str, dict] = {}
        for cam in self.cameras:
            feats[video_key(cam)] = {
                "dtype": "video", "shape": [s, s, 3], "names": ["height", "width", "channels"],
                "info": {"video.height": s, "video.width": s, "video.codec": "h264", "video.pix_fmt": PIX_FMT,
                         "video.is_depth_map": False, "video.fps": int(round(self.fps)), "video.channels": 3,
                         "has_audio": False},
            }
        feats[STATE] = {"dtype": "float32", "shape": [len(self.state_names)], "names": self.state_names}
        feats[ACTION] = {"dtype": "float32", "shape": [len(self.state_names)], "names": self.state_names}
        feats[ENV] = {"dtype": "float32", "shape": [self.env_dim], "names": None}
        feats["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
        for key in INDEX_FEATURES[1:]:
            feats[key] = {"dtype": "int64", "shape": [1], "names": None}
        return feats


def _arrow_column(values: np.ndarray):
    import pyarrow as pa

    if values.ndim == 1:
        return pa.array(values)
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
