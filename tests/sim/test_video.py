"""The demo's MP4 is filmed from the live real-time arm (its own thread) by the film camera: no black band."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import sim
from sim.video import LiveCameraRecorder


def test_recorder_films_the_running_arm(tmp_path: Path) -> None:
    robot = sim.make_robot("reach_jump", mode="realtime", cameras=(), render=False)
    with robot:
        recorder = LiveCameraRecorder(robot, fps=10.0, image_size=(96, 128)).start()
        assert recorder.frames, "start() returns once the first frame exists"
        robot.send_action(np.array([0.8, 0.3, -0.3, 0.2, 0.0, 1.0]))  # move: later frames differ
        time.sleep(1.2)
        recorder.stop()
    assert recorder.error is None and len(recorder.frames) >= 3
    first, last = recorder.frames[0].astype(int), recorder.frames[-1].astype(int)
    assert np.abs(last - first).sum() > 0  # the arm moved on camera: live frames, not one repeated
    assert first[:8].mean() > 60  # the top rows show the table, not a black band
    path = recorder.save(tmp_path / "front.mp4")
    assert path.stat().st_size > 1000 and 0 < recorder.achieved_fps <= 10.5
