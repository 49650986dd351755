"""MuJoCo model + data for the SO-101-class scene, and typed accessors for everything else in sim/.

One `SimPhysics` per robot (its own MjModel copy and MjData), so several robots can live in one
process. The control period must be a whole number of physics steps (checked here, as dm_control
does): by default the time step is the largest one <= 2 ms that divides the period.
"""

from __future__ import annotations

import copy
import math
from functools import lru_cache
from pathlib import Path

import mujoco
import numpy as np

from sim.so101 import ARM_JOINTS, GRIPPER_TRAVEL_M, LIMITS

ASSET = Path(__file__).resolve().parent / "assets" / "so101.xml"
MAX_TIMESTEP_S = 0.002
CUBES: tuple[str, ...] = ("cube_red", "cube_blue")
ZONES: tuple[str, ...] = ("zone_green", "zone_yellow")
CUBE_HALF = 0.015
PARKED_TARGET = np.array([0.0, 0.0, -0.5])

_LOW = np.array([lo for lo, _ in LIMITS])
_HIGH = np.array([hi for _, hi in LIMITS])
# action (5 joint angles + normalised gripper) -> actuator ctrl (angles + finger slide in metres)
_CTRL_SCALE = np.array([1.0, 1.0, 1.0, 1.0, 1.0, GRIPPER_TRAVEL_M])


def substeps_for(control_period_s: float, timestep_s: float) -> int:
    """Physics steps per control period; ValueError unless the period is a whole number of steps."""
    n = round(control_period_s / timestep_s)
    if n < 1 or abs(n * timestep_s - control_period_s) > 1e-9 * max(1.0, control_period_s):
        raise ValueError(
            f"control period {control_period_s:.6f} s is not a whole number of physics steps of "
            f"{timestep_s:.6f} s ({control_period_s / timestep_s:.3f}); pick a time step that divides it"
        )
    return n


@lru_cache(maxsize=1)
def _base_model() -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(str(ASSET))


class SimPhysics:
    """The scene's model and data with named accessors; knows nothing about tasks or time."""

    def __init__(self, fps: float, timestep_s: float | None = None):
        self.model = copy.deepcopy(_base_model())
        period = 1.0 / float(fps)
        if timestep_s is None:
            timestep_s = period / math.ceil(period / MAX_TIMESTEP_S - 1e-9)
        self.substeps = substeps_for(period, timestep_s)
        self.model.opt.timestep = timestep_s
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.arm_qpos = np.array([m.joint(j).qposadr[0] for j in ARM_JOINTS])
        self.gripper_qpos = int(m.joint("finger_left").qposadr[0])
        self.state_qpos = np.append(self.arm_qpos, self.gripper_qpos)
        self.cube_qpos = {c: int(m.joint(c).qposadr[0]) for c in CUBES}
        self.cube_geom = {c: m.geom(c).id for c in CUBES}
        self.finger_geoms = (m.geom("finger_left").id, m.geom("finger_right").id)
        self.mocap = {name: int(m.body(name).mocapid[0]) for name in (*ZONES, "target")}
        self.tool_site = m.site("tool").id

    # ---------------------------------------------------------------- state and command
    def joint_state(self) -> np.ndarray:
        """Measured joints in action units (radians, gripper normalised)."""
        return self.data.qpos[self.state_qpos] / _CTRL_SCALE

    def set_joint_state(self, q: np.ndarray) -> None:
        """Teleport the arm (reset only): positions, zero velocity, command and servo filter at q."""
        q = np.asarray(q, dtype=float)
        self.data.qpos[self.state_qpos] = q * _CTRL_SCALE
        self.data.qpos[self.model.joint("finger_right").qposadr[0]] = q[5] * GRIPPER_TRAVEL_M
        self.data.qvel[:] = 0.0
        self.set_command(q)
        self.data.act[:] = self.data.ctrl

    def set_command(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = np.clip(action, _LOW, _HIGH) * _CTRL_SCALE

    def command(self) -> np.ndarray:
        return self.data.ctrl / _CTRL_SCALE

    def tool_position(self) -> np.ndarray:
        return self.data.site_xpos[self.tool_site].copy()

    # ---------------------------------------------------------------- objects
    def cube_pose(self, cube: str) -> tuple[np.ndarray, float]:
        """(position, yaw) of a cube."""
        adr = self.cube_qpos[cube]
        pos = self.data.qpos[adr : adr + 3].copy()
        w, x, y, z = self.data.qpos[adr + 3 : adr + 7]
        return pos, math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))

    def place_cube(self, cube: str, xy: tuple[float, float], yaw: float) -> None:
        adr = self.cube_qpos[cube]
        self.data.qpos[adr : adr + 7] = [xy[0], xy[1], CUBE_HALF, math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]

    def set_mocap(self, name: str, pos: np.ndarray) -> None:
        self.data.mocap_pos[self.mocap[name]] = pos

    def mocap_pos(self, name: str) -> np.ndarray:
        return self.data.mocap_pos[self.mocap[name]].copy()

    def grasped(self, cube: str) -> bool:
        """Both fingers touch the cube (read from the last step's contacts)."""
        g = self.cube_geom[cube]
        left, right = self.finger_geoms
        touch_l = touch_r = False
        for i in range(self.data.ncon):
            c = self.data.contact[i]
            pair = (c.geom1, c.geom2)
            if g in pair:
                touch_l = touch_l or left in pair
                touch_r = touch_r or right in pair
        return touch_l and touch_r

    # ---------------------------------------------------------------- time
    def reset(self) -> None:
        mujoco.mj_resetData(self.model, self.data)

    def forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)

    def step(self, nstep: int) -> None:
        mujoco.mj_step(self.model, self.data, nstep=nstep)

    @property
    def time_s(self) -> float:
        return float(self.data.time)
