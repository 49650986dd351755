"""Headless camera rendering (mujoco.Renderer on EGL or OSMesa), from a copied snapshot of the scene.

The renderer owns a private MjData: callers hand it qpos and mocap positions taken under their
lock, so a real-time physics thread never waits for the (slow) CPU rasteriser.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import mujoco
import numpy as np


class CameraRenderer:
    """Renders named cameras at one image size. Create and use it on one thread (GL context)."""

    def __init__(self, model: mujoco.MjModel, cameras: Sequence[str], image_size: tuple[int, int]):
        self.cameras = tuple(cameras)
        self._data = mujoco.MjData(model)
        self._model = model
        height, width = image_size
        try:
            self._renderer = mujoco.Renderer(model, height=height, width=width)
        except Exception as exc:  # the GL back end reports many different types
            backend = os.environ.get("MUJOCO_GL", "(unset)")
            raise RuntimeError(
                f"cannot create a MuJoCo renderer with MUJOCO_GL={backend}: {exc}. "
                "Set MUJOCO_GL=egl (Mesa llvmpipe) or MUJOCO_GL=osmesa before starting Python."
            ) from exc

    def render(self, qpos: np.ndarray, mocap_pos: np.ndarray) -> dict[str, np.ndarray]:
        d = self._data
        d.qpos[:] = qpos
        d.mocap_pos[:] = mocap_pos
        mujoco.mj_kinematics(self._model, d)
        mujoco.mj_camlight(self._model, d)
        images = {}
        for cam in self.cameras:
            self._renderer.update_scene(d, camera=cam)
            images[cam] = self._renderer.render()
        return images

    def close(self) -> None:
        self._renderer.close()
