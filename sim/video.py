"""Film a real-time simulated arm while it runs: a camera rendered from its own thread.

The recorder copies the scene under the world's lock (microseconds) and rasterises on its own thread
with its own GL context, so the control loop and the physics thread never wait for the renderer.
Frames are taken on absolute deadlines; when the CPU cannot keep up, frames are skipped (never
bunched), and the video's frame rate is the rate achieved, so playback runs at wall-clock speed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from sim.robot import SimRobot


class LiveCameraRecorder:
    """`start()` before the episode, `stop()` after it, then `save(path)` (MP4)."""

    def __init__(self, robot: SimRobot, camera: str = "film", fps: float = 15.0,
                 image_size: tuple[int, int] = (240, 320)) -> None:
        self.robot = robot
        self.camera = camera
        self.fps = float(fps)
        self.image_size = image_size
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []  # monotonic time of each frame
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-recorder", daemon=True)

    def start(self, ready_timeout_s: float = 30.0) -> LiveCameraRecorder:
        """Start filming; returns once the first frame is rendered (the GL context and the first frame
        cost ~100 ms of CPU that must not land in the control loop's first ticks)."""
        self._thread.start()
        self._ready.wait(ready_timeout_s)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    @property
    def achieved_fps(self) -> float:
        """Frames per second actually filmed (mean frame interval), the playback rate of the MP4."""
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return self.fps
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])

    def _run(self) -> None:
        from sim.rendering import CameraRenderer

        try:
            renderer = CameraRenderer(self.robot.world.physics.model, [self.camera], self.image_size)
        except BaseException as exc:  # reported by save(): a video is never worth failing a run for
            self.error = exc
            self._ready.set()
            return
        start = time.monotonic()
        frame = 0
        try:
            while not self._stop.is_set():
                self.times.append(time.monotonic())
                self.frames.append(renderer.render(*self.robot.scene_snapshot())[self.camera])
                self._ready.set()
                frame = max(frame + 1, int((time.monotonic() - start) * self.fps))  # skip, never bunch
                self._stop.wait(max(0.0, start + frame / self.fps - time.monotonic()))
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()
            renderer.close()

    def save(self, path: str | Path) -> Path:
        """Write the frames as MP4 at the achieved frame rate; RuntimeError when there is nothing to write."""
        if self.error is not None:
            raise RuntimeError(f"camera recording failed: {self.error}")
        if not self.frames:
            raise RuntimeError("camera recording has no frames")
        import imageio.v2 as imageio

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimwrite(path, self.frames, fps=max(1.0, round(self.achieved_fps, 2)), macro_block_size=1)
        return path
